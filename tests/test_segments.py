"""A live conversation stays bounded: a full overflow moves into archived segments of
the same session, and every reader pages across segments, overflow and history, so
no message is lost or duplicated. Both shells, single server and cluster."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
import redis

from luminora_redis import SessionNotFound
from luminora_redis.core.context import Context
from luminora_redis.core.scripts import Call
from luminora_redis.core.settings import StoreSettings
from luminora_redis.ops import sessions

from conftest import session_keys, user_keys

LONG = {"ttl": 60, "max_idle": 30}
SMALL = {"max_history": 3, "max_overflow": 4, "page_size": 2}


def contents(messages: list[Any]) -> list[str]:
    return [message.content for message in messages]


def chat(store: Any, session_id: str, first: int, count: int, per_turn: int = 1) -> None:
    """Messages m<first>..m<first+count-1>, ``per_turn`` to a turn."""
    numbers = list(range(first, first + count))
    for start in range(0, count, per_turn):
        store.chat_turn(session_id, [("user", f"m{n}") for n in numbers[start:start + per_turn]])


def expected(count: int) -> list[str]:
    return [f"m{n}" for n in range(count)]


@pytest.fixture
def small(make_store: Any) -> Any:
    return make_store(**SMALL)


def session_lists(raw: Any, session_id: str, user: str = "carlos") -> dict[str, int]:
    keys, archived = session_keys(session_id), user_keys(user)
    meta = raw.hgetall(keys.meta)
    segs = int(meta.get(b"segs", 0))
    return {"history": raw.llen(keys.history), "overflow": raw.llen(keys.overflow),
            "segs": segs, "base": int(meta.get(b"base", 0)),
            "in_segments": sum(raw.llen(archived.segment(session_id, n))
                               for n in range(1, segs + 1))}


@pytest.mark.parametrize("per_turn", [1, 3, 5])
def test_a_full_overflow_becomes_a_segment_and_history_reads_every_message_once(
        small: Any, raw: redis.Redis, per_turn: int) -> None:
    session_id = small.create_session("carlos", "alicia", LONG)
    chat(small, session_id, 0, 45, per_turn)
    lists = session_lists(raw, session_id)
    assert lists["history"] == 3
    assert lists["overflow"] < 4
    assert lists["segs"] >= 5
    assert lists["in_segments"] == lists["base"]
    assert lists["base"] + lists["overflow"] + lists["history"] == 45
    assert contents(small.get_history(session_id)) == expected(45)


def test_the_last_n_messages_reach_back_into_segments(small: Any) -> None:
    session_id = small.create_session("carlos", "alicia", LONG)
    chat(small, session_id, 0, 30, 2)
    for last in (0, 1, 2, 3, 4, 7, 8, 13, 29, 30, 31, 1000):
        assert contents(small.get_history(session_id, last=last)) == expected(30)[-last or 30:][
            :last], last
    turn = small.chat_turn(session_id, [("user", "m30")], last=12)
    assert contents(turn) == expected(31)[-12:]


def test_an_ended_session_is_archived_with_its_segments_in_order(
        small: Any, raw: redis.Redis) -> None:
    session_id = small.create_session("carlos", "alicia", LONG)
    chat(small, session_id, 0, 23, 3)
    segs = session_lists(raw, session_id)["segs"]
    assert segs >= 3
    assert small.end_session(session_id)
    record, _, _ = user_keys("carlos").archived(session_id)
    assert int(raw.hget(record, "segs")) == segs
    conversation = small.get_archived_conversation("carlos", session_id)
    assert conversation is not None
    assert contents(conversation.messages) == expected(23)
    assert conversation.message_count == 23
    (listed,) = small.get_archived_conversations("carlos")
    assert contents(listed.messages) == expected(23)
    assert not any(raw.exists(key) for key in session_keys(session_id)[:4])


def test_delete_session_deletes_its_segments(small: Any, raw: redis.Redis) -> None:
    session_id = small.create_session("carlos", "alicia", LONG)
    chat(small, session_id, 0, 20, 1)
    segs = session_lists(raw, session_id)["segs"]
    assert segs >= 3
    user = user_keys("carlos")
    assert all(raw.exists(user.segment(session_id, n)) for n in range(1, segs + 1))
    assert small.delete_session(session_id)
    assert not any(raw.exists(user.segment(session_id, n)) for n in range(1, segs + 2))
    assert not any(raw.exists(key) for key in session_keys(session_id)[:4])


def test_a_failed_segment_move_does_not_fail_the_committed_turn_and_the_next_turn_retries(
        small: Any, raw: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    session_id = small.create_session("carlos", "alicia", LONG)
    blocker = user_keys("carlos").segment(session_id, 1)
    raw.set(blocker, "in the way")  # archive_segment refuses to overwrite it: a real error
    with caplog.at_level(logging.WARNING, logger="luminora_redis.segments"):
        chat(small, session_id, 0, 9)
    assert "next turn retries" in caplog.text
    lists = session_lists(raw, session_id)
    assert lists["segs"] == 0 and lists["overflow"] == 6
    assert contents(small.get_history(session_id)) == expected(9)
    raw.delete(blocker)
    chat(small, session_id, 9, 1)
    lists = session_lists(raw, session_id)
    assert lists["segs"] == 1 and lists["in_segments"] == 7 and lists["overflow"] == 0
    assert contents(small.get_history(session_id)) == expected(10)


@pytest.mark.slow
def test_a_reader_sees_each_message_once_in_order_while_turns_move_them(
        make_store: Any) -> None:
    writer = make_store(**SMALL)
    reader = make_store(**SMALL)
    session_id = writer.create_session("carlos", "alicia", LONG)
    done = threading.Event()
    failures: list[BaseException] = []

    def write() -> None:
        try:
            chat(writer, session_id, 0, 120, 1)
        except BaseException as error:  # pragma: no cover - reported below
            failures.append(error)
        finally:
            done.set()

    thread = threading.Thread(target=write)
    thread.start()
    reads = 0
    while not done.is_set() or reads == 0:
        seen = contents(reader.get_history(session_id))
        assert seen == expected(len(seen)), seen
        reads += 1
    thread.join(timeout=60)
    assert not failures
    assert contents(reader.get_history(session_id)) == expected(120)


def test_retention_deletes_the_segments_of_the_conversations_it_trims(
        make_store: Any, raw: redis.Redis) -> None:
    # Without deliveries: with them, retention waits for the sink (test_deliveries.py).
    store = make_store(archive_retention=1, deliveries=False, **SMALL)
    old = store.create_session("carlos", "alicia", LONG)
    chat(store, old, 0, 15, 1)
    segs = session_lists(raw, old)["segs"]
    assert segs >= 2
    assert store.end_session(old)
    user = user_keys("carlos")
    assert all(raw.exists(user.segment(old, n)) for n in range(1, segs + 1))
    new = store.create_session("carlos", "alicia", LONG)
    chat(store, new, 0, 15, 1)
    assert store.end_session(new)
    assert not any(raw.exists(user.segment(old, n)) for n in range(1, segs + 1))
    assert all(raw.exists(user.segment(new, n)) for n in range(1, segs + 1))
    (kept,) = store.get_archived_conversations("carlos")
    assert kept.session_id == new and contents(kept.messages) == expected(15)


def test_only_a_turn_that_fills_the_overflow_has_a_follow_up_and_it_never_raises() -> None:
    ctx = Context(StoreSettings(max_overflow=4), 1024)
    session_id = ctx.keys.new_session_id("carlos")
    under = sessions.chat_turn(ctx, session_id, [("user", "x")], last=0)
    assert next(under).script == "chat_turn"
    with pytest.raises(StopIteration):
        under.send([1, 0, 1_700_000_000_000, 3])
    full = sessions.chat_turn(ctx, session_id, [("user", "x")], last=0)
    next(full)
    follow_up = full.send([1, 0, 1_700_000_000_000, 4])
    assert isinstance(follow_up, Call) and follow_up.script == "read_segments"
    with pytest.raises(StopIteration) as done:
        full.throw(redis.ConnectionError("gone"))
    assert done.value.value == []


def test_a_session_archived_between_pages_raises_instead_of_returning_part() -> None:
    ctx = Context(StoreSettings(page_size=2), 1024)
    session_id = ctx.keys.new_session_id("carlos")
    op = sessions.get_history(ctx, session_id)
    first = next(op)
    assert first.script == "chat_turn" and first.args[1] == -2
    page = op.send([1, 0, 1_700_000_000_000, 1, 0, 3, None, b"m0", b"m1"])
    assert page.script == "read_history" and page.args[:2] == (2, 2)
    with pytest.raises(SessionNotFound):
        op.send([0])
