"""Real faults and misconfigurations, in both shells.

A Redis outage must surface as redis-py's ConnectionError, never as a
missing session; a flushed script cache must be invisible; a client or a
bucket count the store cannot work with is refused clearly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel

from luminora_redis import (
    ArchiveReason,
    ConfigurationError,
    SessionStore,
    SyncSessionStore,
)
from luminora_redis.testing import RedisServer

from conftest import open_store, snapshot, wait_until

LONG = {"ttl": 60, "max_idle": 30}


@pytest.fixture
def private_store(shell: str, private_server: RedisServer) -> Iterator[Any]:
    store, close = open_store(shell, private_server.url)
    yield store
    close()


# -- Redis is down -----------------------------------------------------------------------


DOWN_OPERATIONS = {
    "get_session": lambda store, sid: store.get_session(sid),
    "touch": lambda store, sid: store.touch(sid),
    "is_session_expired": lambda store, sid: store.is_session_expired(sid),
    "get_history": lambda store, sid: store.get_history(sid),
    "append_message": lambda store, sid: store.append_message(sid, "user", "hi"),
    "get_mood": lambda store, sid: store.get_mood(sid),
    "end_session": lambda store, sid: store.end_session(sid),
    "delete_session": lambda store, sid: store.delete_session(sid),
    "list_user_sessions": lambda store, sid: store.list_user_sessions("carlos"),
    "get_expired_sessions": lambda store, sid: store.get_expired_sessions(),
    "cleanup_expired_sessions": lambda store, sid: store.cleanup_expired_sessions(),
    "get_affinity": lambda store, sid: store.get_affinity("carlos", "alicia"),
    "get_facts": lambda store, sid: store.get_facts("carlos"),
    "get_archived_conversations": lambda store, sid: store.get_archived_conversations("carlos"),
}


def test_redis_down_raises_connection_error_instead_of_looking_like_not_found(
        private_store: Any, private_server: RedisServer) -> None:
    store = private_store
    session_id = store.create_session("carlos", "alicia", LONG)
    store.chat_turn(session_id, [("user", "hola")])
    store.update_affinity("carlos", "alicia", 30)
    private_server.kill()
    for name, operation in DOWN_OPERATIONS.items():
        with pytest.raises(redis.exceptions.ConnectionError):
            operation(store, session_id)
            pytest.fail(f"{name} answered while Redis was down")

    private_server.restart()
    session = store.get_session(session_id)
    assert session is not None and session.user_id == "carlos"
    assert [m.content for m in store.chat_turn(session_id, [("user", "back")])] == ["hola", "back"]
    assert store.get_affinity("carlos", "alicia").points == 30
    assert store.create_session("carlos", "alicia", LONG) != session_id


def test_a_store_whose_first_call_finds_redis_down_raises_and_recovers(
        private_store: Any, private_server: RedisServer) -> None:
    private_server.kill()
    with pytest.raises(redis.exceptions.ConnectionError):
        private_store.get_affinity("carlos", "alicia")
    private_server.restart()
    assert private_store.get_affinity("carlos", "alicia") is None
    assert private_store.update_affinity("carlos", "alicia", 5).points == 5


# -- the script cache is flushed ---------------------------------------------------------


def test_every_operation_works_after_script_flush(store: Any, raw: redis.Redis) -> None:
    """redis-py's Script reloads on NOSCRIPT, for single calls and for pipelined batches."""
    warm = store.create_session("carlos", "alicia", LONG)
    store.chat_turn(warm, [("user", "warm")])
    store.get_expired_sessions()
    shas = [script.sha for script in store._scripts.values()]
    raw.script_flush()
    assert not any(raw.script_exists(*shas))

    session_id = store.create_session("carlos", "alicia", LONG)
    assert [m.content for m in store.chat_turn(session_id, [("user", "hola")])] == ["hola"]
    assert store.touch(session_id)
    assert store.get_session(session_id).user_id == "carlos"
    assert store.save_mood(session_id, "shy").mood == "shy"
    assert store.update_affinity("carlos", "alicia", 30).points == 30
    assert store.get_affinity("carlos", "alicia").level == "acquaintance"
    store.save_fact("carlos", "personal_info", "name", "Carlos")
    assert [f.value for f in store.get_facts("carlos")] == ["Carlos"]
    assert store.delete_fact("carlos", "personal_info", "name")
    store.save_episode("carlos", "milestone", "First chat", "We met", importance=8)
    assert [e.title for e in store.get_episodes("carlos")] == ["First chat"]
    store.record_trait("carlos", "alicia", "humor", 0.5)
    assert len(store.get_evolution("carlos")) == 2
    assert store.end_session(session_id)
    assert store.delete_session(warm)

    raw.script_flush()
    lapsed = store.create_session("carlos", "alicia", {"ttl": 0.05, "auto_cleanup": False})
    wait_until(lambda: store.is_session_expired(lapsed), timeout=5)
    raw.script_flush()
    assert store.get_expired_sessions() == [lapsed]
    raw.script_flush()
    assert store.cleanup_expired_sessions() == 1
    archived = store.get_archived_conversations("carlos")
    assert [(a.session_id, a.reason) for a in archived] == [
        (lapsed, ArchiveReason.ABSOLUTE), (session_id, ArchiveReason.ENDED)]


# -- clients the store cannot work with --------------------------------------------------


def test_a_blocking_client_that_decodes_responses_is_refused() -> None:
    client = redis.Redis(decode_responses=True)
    try:
        with pytest.raises(ConfigurationError, match="decode_responses"):
            SyncSessionStore(client)
    finally:
        client.close()


def test_an_asyncio_client_that_decodes_responses_is_refused() -> None:
    client = redis.asyncio.Redis(decode_responses=True)
    try:
        with pytest.raises(ConfigurationError, match="decode_responses"):
            SessionStore(client)
    finally:
        asyncio.run(client.aclose())


@pytest.mark.parametrize("kind", ["redis.asyncio.Redis", "redis.asyncio.cluster.RedisCluster"])
def test_an_asyncio_client_is_refused_by_the_blocking_store(kind: str) -> None:
    client: Any = (redis.asyncio.Redis(port=1) if kind == "redis.asyncio.Redis" else
                   redis.asyncio.cluster.RedisCluster(host="127.0.0.1", port=1))
    try:
        with pytest.raises(ConfigurationError) as caught:
            SyncSessionStore(client)
        message = str(caught.value)
        assert "redis.Redis or redis.cluster.RedisCluster" in message and "SessionStore" in message
    finally:
        asyncio.run(client.aclose())


def test_a_blocking_client_is_refused_by_the_asyncio_store() -> None:
    client = redis.Redis(port=1)
    try:
        with pytest.raises(ConfigurationError) as caught:
            SessionStore(client)  # type: ignore[arg-type]
        message = str(caught.value)
        assert "redis.asyncio.Redis or redis.asyncio.cluster.RedisCluster" in message
        assert "SyncSessionStore" in message and "redis.client.Redis" in message
    finally:
        client.close()


@pytest.mark.parametrize("thing", [None, "redis://localhost:6379/0", 6379, object()],
                         ids=["none", "url", "port", "object"])
def test_something_that_is_not_a_redis_client_is_refused_by_both_stores(thing: object) -> None:
    for store_class in (SessionStore, SyncSessionStore):
        with pytest.raises(ConfigurationError, match=f"{store_class.__name__} needs"):
            store_class(thing)  # type: ignore[arg-type]


def test_a_sentinel_client_is_welcome_in_its_shell() -> None:
    """``Sentinel(...).master_for()`` makes a subclass of the shell's ``Redis``; nothing is
    sent at construction, so no sentinel has to run."""
    blocking = redis.sentinel.Sentinel([("127.0.0.1", 1)]).master_for("mymaster")
    asynchronous = redis.asyncio.sentinel.Sentinel([("127.0.0.1", 1)]).master_for("mymaster")
    try:
        assert SyncSessionStore(blocking).client is blocking
        assert SessionStore(asynchronous).client is asynchronous
        with pytest.raises(ConfigurationError):
            SessionStore(blocking)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError):
            SyncSessionStore(asynchronous)  # type: ignore[arg-type]
    finally:
        blocking.close()
        asyncio.run(asynchronous.aclose())


@pytest.mark.parametrize("call", [
    lambda: SyncSessionStore.from_url(None),  # type: ignore[arg-type]
    lambda: SessionStore.from_url(6379),  # type: ignore[arg-type]
    lambda: SyncSessionStore.from_url("http://localhost:6379"),
    lambda: SessionStore.from_url("redis://localhost:port/0"),
    lambda: SyncSessionStore.from_url("redis://127.0.0.1:1/0", cluster="no"),  # type: ignore[arg-type]
    lambda: SessionStore.from_url("redis://127.0.0.1:1/0", autopipeline=1),  # type: ignore[arg-type]
    lambda: SyncSessionStore(redis.Redis(port=1), settings={"prefix": "x"}),  # type: ignore[arg-type]
], ids=["url-none", "url-int", "url-scheme", "url-port", "cluster-string", "autopipeline-int",
        "settings-dict"])
def test_a_url_or_option_the_store_cannot_use_is_refused_by_name(call: Any) -> None:
    with pytest.raises(ConfigurationError) as caught:
        call()
    assert isinstance(caught.value, ValueError)
    assert any(word in str(caught.value) for word in ("url", "cluster", "autopipeline", "settings"))


def test_a_store_works_with_a_client_it_did_not_make(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        store = SyncSessionStore(client)
        session_id = store.create_session("carlos", "alicia", LONG)
        store.close()  # not its client: must stay open
        assert store.get_session(session_id).user_id == "carlos"
    finally:
        client.close()


# -- the bucket layout -------------------------------------------------------------------


def test_a_bucket_count_that_disagrees_with_the_record_is_refused_on_first_use(
        make_store: Any, raw: redis.Redis) -> None:
    first = make_store()
    session_id = first.create_session("carlos", "alicia", LONG)
    assert raw.hget("lr:layout", "buckets") == b"1024"
    before = snapshot(raw)
    other = make_store(buckets=64)
    with pytest.raises(ConfigurationError, match="1024"):
        other.get_session(session_id)
    with pytest.raises(ConfigurationError):
        other.update_affinity("carlos", "alicia", 1)
    assert snapshot(raw) == before


def test_a_store_without_a_bucket_count_adopts_the_recorded_one(
        make_store: Any, raw: redis.Redis) -> None:
    first = make_store(buckets=64)
    session_id = first.create_session("carlos", "alicia", LONG)
    first.update_affinity("carlos", "alicia", 30)
    assert int(session_id[:4], 16) < 64
    assert raw.hget("lr:layout", "buckets") == b"64"

    adopting = make_store()
    assert adopting.get_session(session_id).user_id == "carlos"
    assert adopting._ctx.keys.buckets == 64
    # "carlos" is in bucket 547 of 1024 but 35 of 64: only the adopted count finds the data.
    assert adopting.get_affinity("carlos", "alicia").points == 30
    assert adopting.create_session("carlos", "alicia", LONG)[:4] == session_id[:4]
    assert make_store(buckets=64).get_affinity("carlos", "alicia").points == 30
