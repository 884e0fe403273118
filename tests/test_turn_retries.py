"""A caller's own retry of a turn: ``chat_turn``, ``append_message`` and
``append_messages`` take ``turn_id``, and a call repeating the session's last turn
id appends nothing and answers as that turn did.

``test_retries.py`` covers redis-py's resend of the same EVALSHA; here the caller
calls again. The faults are real: a store under ``acknowledge="replicas"`` whose
replica is stopped (SIGSTOP) gets ``NotAcknowledged``, and one whose connection is
killed (``CLIENT KILL``) while its ``WAIT`` blocks, after the turn ran, gets an
error for a turn that landed. A store under ``acknowledge="replicas"`` needs a
replica even to claim its layout, so those tests run on the plugin's Sentinel
deployment (a primary and its replica).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis

from luminora_redis import InvalidInput, NotAcknowledged, SessionStore, SyncSessionStore
from luminora_redis.testing import LocalSentinel

from conftest import Blocking, finish_loop, server_ms, session_keys, snapshot, wait_until
from listener_support import paused

LONG = {"ttl": 60, "max_idle": 30}
TURN = [("user", "hola"), ("assistant", "¡hola!")]


def contents(store: Any, session_id: str) -> list[str]:
    return [message.content for message in store.get_history(session_id)]


def a_millisecond_later(raw: Any, session_id: str) -> None:
    """Return once the server's clock has moved past the session's last activity, so a
    call now stamps a later time than the last turn did."""
    last = int(raw.hget(session_keys(session_id).meta, "last"))
    wait_until(lambda: server_ms(raw) > last, what="the server clock moving on")


# -- on any store ---------------------------------------------------------------------------


def test_a_turn_retried_with_its_turn_id_is_stored_once_and_answered_as_the_first(
        store: Any, raw: Any) -> None:
    sid = store.create_session("carlos", "alicia", LONG)
    store.chat_turn(sid, [("user", "earlier")])
    first = store.chat_turn(sid, TURN, last=3, turn_id="turn-1")
    # A read that slides the deadline does not end the turn: its retry still matches.
    a_millisecond_later(raw, sid)
    assert store.touch(sid)
    before = snapshot(raw)
    again = store.chat_turn(sid, TURN, last=3, turn_id="turn-1")
    assert snapshot(raw) == before  # nothing written
    assert again == first  # the same messages, with the timestamps they were stored with
    assert contents(store, sid) == ["earlier", "hola", "¡hola!"]
    assert again == store.get_history(sid, last=3)


def test_an_append_retried_with_its_turn_id_returns_the_messages_as_stored(
        store: Any, raw: Any) -> None:
    sid = store.create_session("carlos", "alicia", LONG)
    stored = store.append_messages(sid, TURN, turn_id="a:1")
    a_millisecond_later(raw, sid)
    assert store.get_history(sid, last=1)  # slides the deadline: the field last moves
    assert store.append_messages(sid, TURN, turn_id="a:1") == stored
    one = store.append_message(sid, "user", "¿qué tal?", {"k": 1}, turn_id="a:2")
    a_millisecond_later(raw, sid)
    assert store.touch(sid)
    assert store.append_message(sid, "user", "¿qué tal?", {"k": 1}, turn_id="a:2") == one
    assert store.get_history(sid) == [*stored, one]


def test_another_turn_id_or_none_appends_again(store: Any) -> None:
    sid = store.create_session("carlos", "alicia", LONG)
    store.chat_turn(sid, [("user", "ok")], turn_id="t1")
    store.chat_turn(sid, [("user", "ok")], turn_id="t2")
    store.chat_turn(sid, [("user", "ok")])
    store.append_message(sid, "user", "ok", turn_id="t3")
    store.append_messages(sid, [("user", "ok")], turn_id="t4")
    assert contents(store, sid) == ["ok"] * 5


def test_a_retry_after_the_next_turn_appends_again(store: Any) -> None:
    """Only the session's last turn id is kept (documented): a retry must come before
    the session's next turn, or it is a new turn."""
    sid = store.create_session("carlos", "alicia", LONG)
    store.chat_turn(sid, [("user", "hola")], turn_id="t1")
    store.chat_turn(sid, [("user", "next")])
    store.chat_turn(sid, [("user", "hola")], turn_id="t1")
    store.chat_turn(sid, [("user", "hola")], turn_id="t1")  # now the last again: once
    assert contents(store, sid) == ["hola", "next", "hola"]


def test_a_retry_is_told_by_its_turn_id_alone(store: Any) -> None:
    """The same ``turn_id`` means the same turn: a retry's messages are not compared."""
    sid = store.create_session("carlos", "alicia", LONG)
    first = store.chat_turn(sid, [("user", "hola")], turn_id="t1")
    assert store.chat_turn(sid, [("user", "otra cosa")], turn_id="t1") == first
    assert contents(store, sid) == ["hola"]


def test_a_caller_turn_id_never_matches_a_random_one(store: Any, raw: Any) -> None:
    sid = store.create_session("carlos", "alicia", LONG)
    store.chat_turn(sid, [("user", "hola")])
    random_id = raw.hget(session_keys(sid).meta, "tid").decode()
    assert random_id.isdigit()
    store.chat_turn(sid, [("user", "hola")], turn_id=random_id)
    assert contents(store, sid) == ["hola", "hola"]


@pytest.mark.parametrize("bad", ["", "x" * 65, "a b", "ñ", "a\n", "a/b", "*", "t1\x00",
                                 5, b"t1", ["t1"]])
def test_an_invalid_turn_id_is_refused_with_nothing_written(
        store: Any, raw: Any, bad: Any) -> None:
    sid = store.create_session("carlos", "alicia", LONG)
    store.chat_turn(sid, [("user", "hola")], turn_id="t1")
    before = snapshot(raw)
    calls: list[Callable[[], Any]] = [
        lambda: store.chat_turn(sid, TURN, turn_id=bad),
        lambda: store.chat_turn(sid, [], turn_id=bad),
        lambda: store.append_message(sid, "user", "hola", turn_id=bad),
        lambda: store.append_messages(sid, TURN, turn_id=bad),
    ]
    for call in calls:
        with pytest.raises(InvalidInput, match="turn_id"):
            call()
    assert snapshot(raw) == before


def test_the_longest_and_every_allowed_character_are_accepted(store: Any) -> None:
    sid = store.create_session("carlos", "alicia", LONG)
    for turn_id in ("x" * 64, "AZaz09_-.:", "1"):
        store.chat_turn(sid, [("user", turn_id)], turn_id=turn_id)
        store.chat_turn(sid, [("user", turn_id)], turn_id=turn_id)
    assert contents(store, sid) == ["x" * 64, "AZaz09_-.:", "1"]


# -- under acknowledge="replicas" -------------------------------------------------------------



@pytest.fixture
def acknowledged(shell: str, luminora_sentinel_url: str) -> Iterator[Callable[..., Any]]:
    """Open stores of the current shell under ``acknowledge="replicas"`` with the
    given ``acknowledge_timeout``; closed afterwards."""
    closers: list[Callable[[], None]] = []

    def make(timeout: float) -> Any:
        if shell == "blocking":
            blocking = SyncSessionStore.from_url(luminora_sentinel_url, acknowledge="replicas",
                                                 acknowledge_timeout=timeout)
            closers.append(blocking.close)
            return blocking
        loop = asyncio.new_event_loop()
        store = Blocking(SessionStore.from_url(luminora_sentinel_url, acknowledge="replicas",
                                               acknowledge_timeout=timeout), loop)

        def close() -> None:
            try:
                store.aclose()
            finally:
                finish_loop(loop)

        closers.append(close)
        return store

    yield make
    for close in reversed(closers):
        close()


@pytest.mark.parametrize("shell", ["asyncio", "blocking"])
def test_a_turn_not_acknowledged_is_stored_once_however_often_it_is_retried(
        acknowledged: Callable[..., Any], luminora_redis_sentinel: LocalSentinel) -> None:
    deployment = luminora_redis_sentinel
    store = acknowledged(0.5)
    sid = store.create_session("carlos", "alicia", LONG)
    store.chat_turn(sid, [("user", "earlier")])
    history = session_keys(sid).history
    with deployment.primary.client() as raw, deployment.replica.client() as replica_raw:
        with paused(deployment.replica):
            with pytest.raises(NotAcknowledged):
                store.chat_turn(sid, TURN, last=3, turn_id="turn-1")
            assert raw.llen(history) == 3  # it ran on the primary
            # A retry appends nothing, and is no more acknowledged than the turn it
            # repeats: its wait covers that turn, which the stopped replica lacks. (On
            # Redis 7.2+ and Valkey a WAIT on a connection that has written nothing
            # returns at once: the retry rewrites the turn id for its wait to cover.)
            with pytest.raises(NotAcknowledged):
                store.chat_turn(sid, TURN, last=3, turn_id="turn-1")
            assert raw.llen(history) == 3
        # From another store, as another process would: the call returns once the
        # replica has the turn, once.
        context = acknowledged(30.0).chat_turn(sid, TURN, last=3, turn_id="turn-1")
        assert replica_raw.llen(history) == 3
    assert [m.content for m in context] == ["earlier", "hola", "¡hola!"]
    assert context == store.get_history(sid, last=3)
    assert contents(store, sid) == ["earlier", "hola", "¡hola!"]


@pytest.mark.parametrize("shell", ["asyncio", "blocking"])
def test_a_turn_whose_connection_broke_in_its_wait_is_stored_once_when_retried(
        acknowledged: Callable[..., Any], luminora_redis_sentinel: LocalSentinel) -> None:
    """The turn ran on the primary, and its connection is killed while its WAIT blocks:
    the caller gets an error for a turn that landed, and retries it."""
    deployment = luminora_redis_sentinel
    store = acknowledged(60.0)
    sid = store.create_session("carlos", "alicia", LONG)
    store.chat_turn(sid, [("user", "earlier")])  # the script loaded: one send below
    history = session_keys(sid).history
    with deployment.primary.client() as raw, ThreadPoolExecutor(1) as pool:
        def waiting() -> list[int]:
            return [int(c["id"]) for c in raw.client_list() if c.get("cmd") == "wait"]

        with paused(deployment.replica):
            turn = pool.submit(store.chat_turn, sid, TURN, 2, turn_id="turn-1")
            [client] = wait_until(waiting, timeout=30, what="the turn's WAIT blocking")
            assert raw.llen(history) == 3  # the turn ran before its WAIT
            raw.client_kill_filter(_id=client)
            with pytest.raises((NotAcknowledged, redis.ConnectionError)):
                turn.result(timeout=30)
        context = store.chat_turn(sid, TURN, 2, turn_id="turn-1")
    assert [m.content for m in context] == ["hola", "¡hola!"]
    assert contents(store, sid) == ["earlier", "hola", "¡hola!"]
    assert context == store.get_history(sid, last=2)
