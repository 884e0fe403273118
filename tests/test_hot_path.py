"""The chat turn's lean form: no index write per turn, the activity in the meta hash,
the overflow read only when it may hold messages, and the light context objects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from luminora_redis import ArchiveReason, ContextMessage, Message, Role, SessionExpired

from conftest import pexpiretime, server_ms, session_keys

LONG = {"ttl": 60, "max_idle": 30}


def test_a_turn_leaves_the_deadline_index_alone_and_keeps_the_activity_in_meta(
        store: Any, raw: redis.Redis) -> None:
    session_id = store.create_session("carlos", "alicia", LONG)
    keys = session_keys(session_id)
    first = raw.zscore(keys.deadlines, session_id)
    wait_ms = server_ms(raw) + 2
    while server_ms(raw) < wait_ms:
        pass
    store.chat_turn(session_id, [("user", "hola")])
    assert raw.zscore(keys.deadlines, session_id) == first  # a lower bound now
    last = int(raw.hget(keys.meta, "last"))
    assert last > first - 30_000
    assert pexpiretime(raw, keys.session) == last + 30_000
    assert store.get_session(session_id).last_activity.timestamp() * 1000 == last


def test_the_archive_ends_an_idle_session_at_its_last_activity_plus_idle(
        make_store: Callable[..., Any], raw: redis.Redis) -> None:
    store = make_store()
    session_id = store.create_session("carlos", "alicia", {"ttl": 60, "max_idle": 30,
                                                           "auto_cleanup": False})
    store.chat_turn(session_id, [("user", "hola")])
    keys = session_keys(session_id)
    last = int(raw.hget(keys.meta, "last"))
    raw.delete(keys.session)  # as Redis does at the deadline
    raw.zadd(keys.manual, {session_id: server_ms(raw) - 1})  # due; only a lower bound
    assert store.cleanup_expired_sessions() == 1
    (archived,) = store.get_archived_conversations("carlos")
    assert archived.reason == ArchiveReason.IDLE
    assert round(archived.ended_at.timestamp() * 1000) == last + 30_000


def test_a_session_written_by_an_older_version_is_read_and_moved_on_its_next_turn(
        store: Any, raw: redis.Redis) -> None:
    """Before this layout the activity lived in the session hash and the meta hash had
    no idle or last: such a session keeps working and moves them on its first write."""
    session_id = store.create_session("carlos", "alicia", LONG)
    keys = session_keys(session_id)
    old_last = int(raw.hget(keys.meta, "last")) - 5
    raw.hdel(keys.meta, "idle", "last")
    raw.hset(keys.session, "last", old_last)
    assert store.get_session(session_id).last_activity.timestamp() * 1000 == old_last
    context = store.chat_turn(session_id, [("user", "hola")])
    assert [m.content for m in context] == ["hola"]
    assert int(raw.hget(keys.meta, "idle")) == 30_000
    last = int(raw.hget(keys.meta, "last"))
    assert last >= old_last + 5
    assert pexpiretime(raw, keys.session) == last + 30_000


def test_an_older_session_that_never_turned_again_is_archived_at_its_index_score(
        make_store: Callable[..., Any], raw: redis.Redis) -> None:
    store = make_store()
    session_id = store.create_session("carlos", "alicia", {"ttl": 60, "max_idle": 30,
                                                           "auto_cleanup": False})
    keys = session_keys(session_id)
    raw.hdel(keys.meta, "idle", "last")
    ended = server_ms(raw) - 1000
    raw.zadd(keys.manual, {session_id: ended})  # the old layout kept this score exact
    raw.delete(keys.session)
    assert store.cleanup_expired_sessions() == 1
    (archived,) = store.get_archived_conversations("carlos")
    assert round(archived.ended_at.timestamp() * 1000) == ended


def test_a_raised_history_bound_still_reads_the_overflow(make_store: Callable[..., Any]) -> None:
    """Messages past the bound sit in the overflow; when a later deployment raises the
    bound, the history is shorter than asked and the overflow must still be read."""
    small = make_store(max_history=3)
    session_id = small.create_session("carlos", "alicia", LONG)
    small.chat_turn(session_id, [("user", f"m{n}") for n in range(5)])
    large = make_store(max_history=10)
    context = large.chat_turn(session_id, [("user", "m5")], last=6)
    assert [m.content for m in context] == [f"m{n}" for n in range(6)]


def test_an_expired_session_is_not_written_by_a_turn(store: Any, raw: redis.Redis) -> None:
    session_id = store.create_session("carlos", "alicia", LONG)
    keys = session_keys(session_id)
    store.chat_turn(session_id, [("user", "hola")])
    before = raw.hgetall(keys.meta), raw.lrange(keys.history, 0, -1)
    raw.delete(keys.session)  # expired, not yet archived
    with pytest.raises(SessionExpired):
        store.chat_turn(session_id, [("user", "late")])
    assert (raw.hgetall(keys.meta), raw.lrange(keys.history, 0, -1)) == before
    assert not raw.exists(keys.session)  # never resurrected


def test_the_context_is_light_and_equals_the_stored_messages(store: Any) -> None:
    session_id = store.create_session("carlos", "alicia", LONG)
    context = store.chat_turn(session_id, [("user", "hola"), ("assistant", "¡hola!", {"k": [1]})])
    history = store.get_history(session_id)
    assert all(type(m) is ContextMessage for m in context)
    assert context == history
    assert [m.to_message() for m in context] == history
    assert all(isinstance(m, Message) for m in history)
    assert context[1].role is Role.ASSISTANT and context[1].metadata == {"k": [1]}
    assert context[0].timestamp == history[0].timestamp
    assert context[0].timestamp.tzinfo is not None
    assert round(context[0].timestamp.timestamp() * 1000) == context[0].timestamp_ms
    assert context[0] != context[1]
    with pytest.raises(AttributeError):
        context[0].extra = 1  # slotted
