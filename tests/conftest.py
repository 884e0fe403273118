"""Fixtures: a real redis-server and a real 3-primary Redis Cluster per test
session, and one store per shell and topology.

Behavioural tests are written once, as plain functions against ``store``,
which is parametrized over the asyncio store and the blocking store, each on
a single server and on the cluster. The asyncio store is presented through
``Blocking``, which runs each coroutine on one private event loop for the
whole test, so the same test body drives both shells. ``raw`` is a plain
client of the same topology, for looking behind the store's back. A test
that inspects one server's internals (INFO, CONFIG) is marked
``single_server`` and runs on the single server only. When ``CI`` is set, a
missing redis-server fails instead of skipping.

The servers come from the package's own pytest plugin
(`luminora_redis.testing.plugin`), so its fixtures are tested by use:
``redis_server``, ``redis_url`` and ``redis_cluster`` are its
``luminora_redis_server``, ``luminora_redis_url`` and ``luminora_redis_cluster``.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any, NoReturn

import pytest
import redis
import redis.cluster

from luminora_redis import SessionStore, SyncSessionStore
from luminora_redis.core.keys import KeySpace, SessionKeys, UserKeys
from luminora_redis.io.sync_store import close_client
from luminora_redis.testing import LocalCluster, RedisServer, find_redis_server

pytest_plugins = ["pytester"]


def in_ci() -> bool:
    """Whether ``CI`` is set to something other than empty, 0, false or no."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def redis_unavailable(reason: str) -> NoReturn:
    """Skip for ``reason``; under CI a missing Redis is a broken environment and fails."""
    if in_ci():
        pytest.fail(f"{reason}, and CI requires the integration tests", pytrace=False)
    pytest.skip(reason)


def require_redis_server() -> None:
    """Skip (or, under CI, fail) when there is no redis-server to start."""
    if find_redis_server() is None:
        redis_unavailable("redis-server is not installed")


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.005,
               what: str | None = None) -> Any:
    """Poll ``predicate`` until it returns something truthy, and return that; fail after
    ``timeout`` seconds, naming ``what`` (else the predicate). For code without a running
    event loop; `until` is the same poll for coroutines."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s: {what or predicate}")
        time.sleep(interval)


async def until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.005,
                what: str | None = None) -> Any:
    """`wait_until` inside an event loop: polls without blocking the loop, and awaits
    ``predicate``'s result when it is awaitable (an async predicate)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            pytest.fail(f"condition not met within {timeout} s: {what or predicate}")
        await asyncio.sleep(interval)


def server_ms(raw: redis.Redis) -> int:
    """The server's clock, in Unix milliseconds."""
    seconds, micros = raw.time()
    return int(seconds * 1000 + micros // 1000)


#: PEXPIRETIME where the server lacks it (Redis 6.2): the absolute deadline as PTTL plus
#: the server's clock, read between two TIME calls of the same millisecond, so the sum is
#: exact (PTTL subtracts the real time too). -1 and -2 as PEXPIRETIME replies them.
_PEXPIRETIME_62 = """
for _ = 1, 100 do
  local before = redis.call('TIME')
  local ttl = redis.call('PTTL', KEYS[1])
  local after = redis.call('TIME')
  if ttl < 0 then return ttl end
  local ms = before[1] * 1000 + math.floor(before[2] / 1000)
  if ms == after[1] * 1000 + math.floor(after[2] / 1000) then return ms + ttl end
end
return redis.error_reply('PEXPIRETIME fallback: no two TIME calls in one millisecond')
"""
_native_pexpiretime = [True]


def pexpiretime(raw: Any, key: str | bytes) -> int:
    """``raw.pexpiretime(key)``, also on a server without PEXPIRETIME (Redis 6.2)."""
    if _native_pexpiretime[0]:
        try:
            return int(raw.pexpiretime(key))
        except redis.ResponseError as error:
            if "unknown command" not in str(error).lower():
                raise
            _native_pexpiretime[0] = False
    return int(raw.eval(_PEXPIRETIME_62, 1, key))


def snapshot(raw: redis.Redis) -> dict[bytes, tuple[Any, int]]:
    """Every key with its content and absolute expiry: any write changes it. Hashes are
    compared by their fields, since a hash table's serialized order is not its content."""
    return {key: (sorted(raw.hgetall(key).items()) if raw.type(key) == b"hash" else raw.dump(key),
                  pexpiretime(raw, key)) for key in raw.scan_iter(count=1000)}


#: The default layout of a fresh store (prefix ``lr``, 1024 buckets), for looking at keys.
KEYS = KeySpace("lr", 1024)


def session_keys(session_id: str) -> SessionKeys:
    """The keys of one session under the default layout."""
    bucket = KEYS.bucket_of_session(session_id)
    assert bucket is not None
    return KEYS.session(session_id, bucket)


def user_keys(user_id: str) -> UserKeys:
    """The keys of one user under the default layout."""
    return KEYS.user(user_id)


class Blocking:
    """The coroutine methods of an asyncio store as blocking calls on one private loop."""

    def __init__(self, store: SessionStore, loop: asyncio.AbstractEventLoop) -> None:
        self.inner = store
        self.loop = loop

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if inspect.iscoroutinefunction(attribute):
            def call(*args: Any, **kwargs: Any) -> Any:
                return self.loop.run_until_complete(attribute(*args, **kwargs))
            return call
        return attribute


def finish_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Close a private loop as ``asyncio.run`` does: tasks redis-py left running (its
    fire-and-forget disconnects) finish first, so no socket is left to the collector."""
    pending = asyncio.all_tasks(loop)
    if pending:
        _, still = loop.run_until_complete(asyncio.wait(pending, timeout=5))
        for task in still:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


@pytest.fixture(scope="session")
def luminora_redis_unavailable() -> Callable[[str], NoReturn]:
    """The plugin's fixtures skip without Redis; this suite fails instead under CI."""
    return redis_unavailable


@pytest.fixture(scope="session")
def redis_server(luminora_redis_server: Any) -> RedisServer:
    """The plugin's private server; the suite inspects its process, so it must be local."""
    if not isinstance(luminora_redis_server, RedisServer):
        redis_unavailable("this suite needs a local redis-server, not a container")
    return luminora_redis_server


@pytest.fixture
def redis_url(redis_server: RedisServer, luminora_redis_url: str) -> str:
    """The shared server's URL, its data flushed and its scripts intact."""
    return luminora_redis_url


@pytest.fixture(scope="session")
def redis_cluster(luminora_redis_cluster: LocalCluster) -> LocalCluster:
    """The plugin's 3-primary cluster."""
    return luminora_redis_cluster


@pytest.fixture
def private_server() -> Iterator[RedisServer]:
    """A redis-server of this test's own, for tests that kill, restart or reconfigure it.
    Its data survives a kill (AOF, fsync always), so a restart finds every acknowledged
    write."""
    require_redis_server()
    with RedisServer(config={"appendonly": "yes", "appendfsync": "always"}) as server:
        yield server


def flush_cluster(cluster: LocalCluster) -> None:
    cluster.flushall()


@cache
def binary_version() -> tuple[int, ...] | None:
    """The Redis version of the binary the fixtures start (``LUMINORA_REDIS_SERVER`` or
    the one on PATH), from its ``--version``; Valkey counts as the Redis it forked, 7.2.
    None when there is none, or it does not say."""
    path = find_redis_server()
    if path is None:
        return None
    try:
        text = subprocess.run([path, "--version"], capture_output=True, text=True,
                              timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    if text.startswith("Valkey"):
        return (7, 2)
    found = re.search(r"v=(\d+)\.(\d+)", text)
    return (int(found.group(1)), int(found.group(2))) if found else None


def pytest_runtest_setup(item: pytest.Item) -> None:
    """``@pytest.mark.requires_redis((7, 0), "why")``: skip, saying why, on an older
    server binary (Redis 6.2 has no script flags, PEXPIRETIME, CLIENT NO-EVICT, ...)."""
    marker = item.get_closest_marker("requires_redis")
    if marker is None:
        return
    needed, why = marker.args
    found = binary_version()
    if found is not None and found < needed:
        pytest.skip(f"needs Redis {'.'.join(map(str, needed))}+ ({why}); the server is "
                    f"{'.'.join(map(str, found))}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``single_server`` keep only their single-server variant, and every
    cluster test is also ``slow``: the inner loop (``-m "not slow"``) runs each behaviour
    on the single server, the full run on both topologies."""
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        topology = callspec.params.get("topology") if callspec is not None else None
        cluster_only_variant = topology == "cluster" and item.get_closest_marker("single_server")
        (dropped if cluster_only_variant else kept).append(item)
        if item.get_closest_marker("cluster") and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(params=["single", pytest.param("cluster", marks=pytest.mark.cluster)])
def topology(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(topology: str, request: pytest.FixtureRequest) -> str:
    """The URL the ``store`` fixtures use: the shared server or the shared cluster, flushed."""
    if topology == "cluster":
        request.getfixturevalue("redis_cluster")
        return str(request.getfixturevalue("luminora_cluster_url"))
    return str(request.getfixturevalue("redis_url"))


@pytest.fixture
def servers(topology: str, store_url: str, request: pytest.FixtureRequest) -> list[RedisServer]:
    """The servers behind ``store_url``, flushed: the shared server, or the shared cluster's
    primaries. A test that reconfigures them puts their settings back."""
    if topology == "cluster":
        return list(request.getfixturevalue("redis_cluster").primaries())
    return [request.getfixturevalue("redis_server")]


@pytest.fixture
def raw(store_url: str, topology: str) -> Iterator[Any]:
    """A plain blocking client of the store's topology, for looking at keys behind its back."""
    client: Any = (redis.cluster.RedisCluster.from_url(store_url) if topology == "cluster"
                   else redis.Redis.from_url(store_url))
    yield client
    close_client(client)


def open_store(kind: str, url: str, *, cluster: bool = False,
               **settings: Any) -> tuple[Any, Callable[[], None]]:
    """A store of one shell over ``url`` and the function that closes it."""
    if kind == "blocking":
        store = SyncSessionStore.from_url(url, cluster=cluster, **settings)
        return store, store.close
    loop = asyncio.new_event_loop()
    inner = SessionStore.from_url(url, cluster=cluster, **settings)

    def close() -> None:
        try:
            loop.run_until_complete(inner.aclose())
        finally:
            finish_loop(loop)

    return Blocking(inner, loop), close


@pytest.fixture(params=["asyncio", "blocking"])
def shell(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_store(shell: str, topology: str, store_url: str) -> Iterator[Callable[..., Any]]:
    """Open stores of the current shell and topology with custom settings; closed afterwards."""
    closers: list[Callable[[], None]] = []

    def make(**settings: Any) -> Any:
        store, close = open_store(shell, store_url, cluster=topology == "cluster", **settings)
        closers.append(close)
        return store

    yield make
    for close in reversed(closers):
        close()


@pytest.fixture
def store(make_store: Callable[..., Any]) -> Any:
    """A store with default settings, in the current shell."""
    return make_store()
