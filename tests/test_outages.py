"""A listener outlives every refusal of Redis: OOM, BUSY, removed notification flags.

The BUSY, flag and stop tests start a redis-server of their own
(``private_server``), since they configure it; the OOM window runs on the shared
server and on the shared cluster (every primary at once), whose ``maxmemory`` and
notification flags it puts back afterwards.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis

from luminora_redis import SessionStore, SyncSessionStore
from luminora_redis.core.errors import ConfigurationError, NotAcknowledged
from luminora_redis.listener.expiry_listener import NOTIFICATION, ExpiryListener
from luminora_redis.listener.outages import is_outage
from luminora_redis.testing import RedisServer

from conftest import until, wait_until
from listener_support import (
    NOTIFY,
    ListenProcess,
    archived_sessions,
    create_sessions,
    flags_restored,
    running,
)

# stop() returns within the stop grace plus the heartbeat's removal; this bound is a
# generous multiple of that, for a machine whose cores are busy with other work.
STOP_WITHIN = 30.0
FAST = {"sweep_interval": 0.05, "delivery_interval": 0.05, "delivery_backoff": 0.05,
        "heartbeat_interval": 0.05}


@pytest.fixture
def servers(servers: list[RedisServer]) -> Iterator[list[RedisServer]]:
    """conftest's ``servers``, their notification flags put back afterwards."""
    with flags_restored(servers):
        yield servers


@contextmanager
def out_of_memory(servers: list[RedisServer]) -> Iterator[None]:
    """Every server over its ``maxmemory`` with ``noeviction`` until the block ends."""
    clients = [server.client() for server in servers]
    before = [client.config_get("maxmemory*") for client in clients]
    try:
        for client in clients:
            client.config_set("maxmemory-policy", "noeviction")
            client.config_set("maxmemory", 1)
        yield
    finally:
        for client, config in zip(clients, before, strict=True):
            client.config_set("maxmemory", config["maxmemory"])
            client.config_set("maxmemory-policy", config["maxmemory-policy"])
            client.close()


def metric(registry: Any, name: str) -> float:
    value = registry.get_sample_value(name)
    return 0.0 if value is None else float(value)


@pytest.mark.slow
async def test_an_oom_window_is_an_outage_the_listener_waits_out(
        topology: str, servers: list[RedisServer], store_url: str) -> None:
    from luminora_redis.listener.metrics import ListenerMetrics

    url = store_url
    cluster = topology == "cluster"
    store = SessionStore.from_url(url, cluster=cluster)
    creator = SessionStore.from_url(url, cluster=cluster)
    delivered: set[str] = set()
    metrics = ListenerMetrics()
    listener = ExpiryListener(store, on_archived=lambda c: delivered.add(c.session_id),
                              observer=metrics, **FAST)
    try:
        async with running(listener) as [task]:
            owners = await create_sessions(creator, 12, 4, [0.2 + 0.1 * n for n in range(12)])
            lives = listener.lives
            with out_of_memory(servers):
                await until(lambda: listener.outage)
                assert not listener.live.is_set()
                assert metric(metrics.registry, "luminora_redis_outage") == 1
                # Deadlines pass while every write is refused; nothing ends the listener.
                await asyncio.sleep(1.5)
                assert not task.done() and listener.outage
            await asyncio.wait_for(listener.wait_live(after=lives), 30)
            assert not listener.outage
            await until(lambda: delivered == set(owners), timeout=30)
            counts = await archived_sessions(creator, owners.values())
            assert set(counts) == set(owners) and set(counts.values()) == {1}
            assert not task.done()
        assert metric(metrics.registry, "luminora_redis_outage") == 0
        assert metric(metrics.registry, "luminora_redis_outages_total") >= 1
        assert listener.outages >= 1
    finally:
        await store.aclose()
        await creator.aclose()


@contextmanager
def busy_for(server: RedisServer, seconds: float) -> Iterator[threading.Thread]:
    """Another client runs a script that keeps the server BUSY for ``seconds``."""
    with server.client() as admin:
        admin.config_set("busy-reply-threshold", 100)
    script = ("local s = redis.call('TIME') while true do local t = redis.call('TIME') "
              "if (t[1] - s[1]) * 1000000 + (t[2] - s[2]) > tonumber(ARGV[1]) then break end "
              "end return 1")

    def run() -> None:
        with server.client(socket_timeout=seconds + 30) as client:
            client.eval(script, 0, int(seconds * 1_000_000))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        thread.join(seconds + 30)


@pytest.mark.slow
async def test_a_busy_script_of_another_client_is_an_outage_the_listener_waits_out(
        private_server: RedisServer) -> None:
    store = SessionStore.from_url(private_server.url)
    creator = SessionStore.from_url(private_server.url)
    delivered: set[str] = set()
    listener = ExpiryListener(store, on_archived=lambda c: delivered.add(c.session_id), **FAST)
    try:
        async with running(listener) as [task]:
            owners = await create_sessions(creator, 8, 2, [0.2 + 0.1 * n for n in range(8)])
            lives = listener.lives
            with busy_for(private_server, 2.0) as busy:
                await until(lambda: listener.outage)
                await until(lambda: not busy.is_alive(), timeout=30)
                assert not task.done()
            await asyncio.wait_for(listener.wait_live(after=lives), 30)
            await until(lambda: delivered == set(owners), timeout=30)
            assert not task.done() and not listener.outage
    finally:
        await store.aclose()
        await creator.aclose()


def test_refusals_are_outages_and_failures_of_a_request_are_not() -> None:
    from redis import exceptions as errors

    for outage in (errors.OutOfMemoryError("command not allowed"),
                   errors.ResponseError("BUSY Redis is busy running a script"),
                   errors.BusyLoadingError("Redis is loading"), errors.ReadOnlyError("replica"),
                   errors.ResponseError("MASTERDOWN Link with MASTER is down"),
                   errors.NoScriptError("No matching script"), errors.TryAgainError("again"),
                   errors.ClusterDownError("The cluster is down"),
                   errors.ResponseError("MISCONF Redis is configured to save RDB snapshots"),
                   errors.ConnectionError("gone"), errors.TimeoutError("slow")):
        assert is_outage(outage), outage
    for failure in (errors.ResponseError("WRONGTYPE Operation against a key"),
                    errors.ResponseError("user_script:3: attempt to compare nil"),
                    ValueError("bad"), KeyError("x")):
        assert not is_outage(failure), failure
    mapped = ConfigurationError("refused")
    mapped.__cause__ = errors.OutOfMemoryError("command not allowed")
    assert is_outage(mapped)
    assert is_outage(NotAcknowledged("0 of the 1 replicas it waits for confirmed it"))
    hook = RuntimeError("the sink is down")
    hook.__cause__ = errors.ConnectionError("the sink's own Redis")
    assert not is_outage(hook)  # only the library's errors carry a refusal in their cause


async def test_removed_notification_flags_are_restored_and_logged_once(
        private_server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    store = SessionStore.from_url(private_server.url)
    # The sweeper is slow here, so that the expiry below is archived by its notification.
    listener = ExpiryListener(store, **{**FAST, "heartbeat_interval": 0.1, "sweep_interval": 5.0})
    admin = private_server.client(decode_responses=True)
    try:
        with flags_restored([private_server]):
            async with running(listener):
                lives = listener.lives
                with caplog.at_level("WARNING", logger="luminora_redis.listener"):
                    admin.config_set(NOTIFY, "")
                    await until(lambda: "x" in admin.config_get(NOTIFY)[NOTIFY]
                                and "E" in admin.config_get(NOTIFY)[NOTIFY])
                    await asyncio.wait_for(listener.wait_live(after=lives), 30)
                restored = [r for r in caplog.records if "lacked the expired events" in
                            r.getMessage()]
                assert len(restored) == 1
                # Notifications work again: an expiry is archived by one.
                before = listener.archived_by_path[NOTIFICATION]
                await create_sessions(store, 1, 1, [0.2])
                await until(lambda: listener.archived_by_path[NOTIFICATION] > before)
    finally:
        admin.close()
        await store.aclose()


async def test_stop_returns_after_run_ended_on_a_refused_start(private_server: RedisServer) -> None:
    with private_server.client() as raw:
        raw.set("lr:layout", "not a hash")  # the layout key of another kind: refused at start
    store = SessionStore.from_url(private_server.url)
    listener = ExpiryListener(store, **FAST)
    try:
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            await asyncio.wait_for(listener.run(), STOP_WITHIN)
        await asyncio.wait_for(listener.stop(), STOP_WITHIN)
    finally:
        await store.aclose()


@pytest.mark.requires_redis(
    (7, 0), "the outage is an OOM refusal before a script runs, which needs script flags")
async def test_stop_during_an_outage_returns_and_ends_the_outage(private_server: RedisServer) -> None:
    from luminora_redis.listener.metrics import ListenerMetrics

    store = SessionStore.from_url(private_server.url)
    metrics = ListenerMetrics()
    listener = ExpiryListener(store, observer=metrics, **FAST)
    try:
        with out_of_memory([private_server]):
            task = asyncio.create_task(listener.run())
            await until(lambda: listener.outage)
            assert metric(metrics.registry, "luminora_redis_outage") == 1
            await asyncio.wait_for(listener.stop(), STOP_WITHIN)
            await asyncio.wait_for(task, STOP_WITHIN)
        assert not listener.outage and metric(metrics.registry, "luminora_redis_outage") == 0
    finally:
        await store.aclose()


@pytest.mark.slow
def test_the_listen_command_keeps_running_through_an_oom_window(private_server: RedisServer) -> None:
    process = ListenProcess("--url", private_server.url, "--sweep-interval", "0.05")
    try:
        process.wait_started()
        with SyncSessionStore.from_url(private_server.url) as store, private_server.client() as raw:
            sid = store.create_session("carlos", "alicia", {"ttl": 60, "max_idle": 0.3})
            session_key = store.context().keys.session(sid, int(sid[:4], 16)).session
            with out_of_memory([private_server]):
                # The session expires inside the window; archiving it is refused.
                wait_until(lambda: not raw.exists(session_key))
                wait_until(lambda: process.find(r"Redis cannot serve"))
                assert process.process.poll() is None, process.log()
                assert sid not in process.archived()
            wait_until(lambda: sid in process.archived(), timeout=20)
            assert process.process.poll() is None, process.log()
            wait_until(lambda: process.find(r"works again after"))
    finally:
        process.process.terminate()
        process.finish()
