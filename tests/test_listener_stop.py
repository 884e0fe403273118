"""A listener that always stops, and says what it knows about the notification flags.

`ExpiryListener.stop()` returns within a bound and `run()` ends, whatever the last
call to Redis met: a paused server, a killed one, a user lacking a right the
shutdown needs, or one lacking a right at start-up (then `run()` raises that
refusal). Where ``CONFIG`` is unavailable the listener cannot read the flags: it
says they are unknown, archives on notification when they are preset, and by
the sweeper when they are not. Each test starts a redis-server of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
import redis.asyncio as aioredis

from luminora_redis import SessionStore
from luminora_redis.core.errors import ConfigurationError
from luminora_redis.listener import heartbeat as heartbeats
from luminora_redis.listener.expiry_listener import NOTIFICATION, SWEEP, ExpiryListener
from luminora_redis.listener.outages import refused_permission
from luminora_redis.listener.stopping import step
from luminora_redis.testing import RedisServer

from conftest import require_redis_server, until
from listener_support import ListenProcess, create_sessions, paused, running

#: Far above what a stop takes (the grace for in-flight work, then bounded cancellations,
#: under 20 s at worst), so a busy machine never fails it; a stop that hangs does.
STOP_BOUND = 45.0


@contextmanager
def server_with(**config: str) -> Iterator[RedisServer]:
    require_redis_server()
    with RedisServer(config=config) as server:
        yield server



def add_user(server: RedisServer, *rules: str) -> str:
    """A user ``limited`` with every right but ``rules`` takes away; its URL."""
    with server.client() as admin:
        admin.execute_command("ACL", "SETUSER", "limited", "on", ">pw", "~*", "&*", "+@all",
                              *rules)
    return f"redis://limited:pw@{server.host}:{server.port}/0"


async def stop_within(listener: ExpiryListener, task: asyncio.Task[None]) -> None:
    """Stop ``listener``, failing the test when the stop or ``run()`` outlasts the bound."""
    try:
        await asyncio.wait_for(listener.stop(), STOP_BOUND)
    except asyncio.TimeoutError:
        pytest.fail(f"stop() did not return within {STOP_BOUND} s")
    done, _ = await asyncio.wait({task}, timeout=5)
    assert task in done, "run() still runs after stop() returned"


async def abandon(task: asyncio.Task[None]) -> None:
    """After a failed test: do not leave run() running into the next test."""
    if not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=5)


def messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


# -- stopping ----------------------------------------------------------------------------


async def test_stop_returns_while_a_paused_server_holds_the_start_up_call() -> None:
    with server_with() as server:
        # A client as an application makes it, without a socket timeout: a call to a paused
        # server waits for ever.
        store = SessionStore(aioredis.Redis(host=server.host, port=server.port))
        listener = ExpiryListener(store, sweep_interval=0.1)
        try:
            with paused(server):
                task = asyncio.create_task(listener.run())
                # The start-up call is out, waiting for the paused server.
                await until(lambda: store.client.connection_pool._in_use_connections)
                try:
                    await stop_within(listener, task)
                finally:
                    await abandon(task)
            assert task.result() is None
            assert listener.sweeps == 0 and not listener.started.is_set()
        finally:
            await store.client.aclose()


async def test_a_right_refused_at_start_up_ends_run_with_the_refusal(
        caplog: pytest.LogCaptureFixture) -> None:
    with server_with() as server:
        store = SessionStore.from_url(add_user(server, "-@scripting"))
        listener = ExpiryListener(store, sweep_interval=0.1)
        task = asyncio.create_task(listener.run())
        try:
            with caplog.at_level(logging.WARNING, logger="luminora_redis.listener"):
                done, _ = await asyncio.wait({task}, timeout=STOP_BOUND)
                assert task in done, "run() waits for ever for a right nobody grants"
            await asyncio.wait_for(listener.stop(), 1.0)  # not running: returns at once
        finally:
            await abandon(task)
            await store.aclose()
    error = task.exception()
    assert isinstance(error, ConfigurationError) and refused_permission(error), repr(error)
    assert "evalsha" in str(error).lower()
    assert not listener.started.is_set()
    errors = messages(caplog, logging.ERROR)
    assert len(errors) == 1 and "cannot start" in errors[0] and "evalsha" in errors[0], errors


def test_listen_exits_with_one_line_when_a_right_is_refused_at_start_up() -> None:
    with server_with() as server:
        listen = ListenProcess("--url", add_user(server, "-@scripting"), "--sweep-interval", "0.1")
        code = listen.finish()
    assert code == 2, listen.log()
    assert listen.find(r"refused this user at start-up .*evalsha"), listen.log()
    assert not listen.find("a new one starts"), listen.log()  # no restart fixes it


async def test_stop_returns_when_the_user_cannot_remove_its_heartbeat(
        caplog: pytest.LogCaptureFixture) -> None:
    with server_with() as server:
        # Without ZREM this user can say it is alive (a listener with a hook adds itself to
        # both sets) but not that it stopped.
        store = SessionStore.from_url(add_user(server, "-zrem"))
        listener = ExpiryListener(store, sweep_interval=0.1, heartbeat_interval=0.2,
                                  on_archived=lambda conversation: None)
        admin = server.client()
        try:
            with caplog.at_level(logging.WARNING, logger="luminora_redis.listener"):
                async with running(listener) as (task,):
                    await until(lambda: admin.zscore("lr:listeners", listener.name))
                    await stop_within(listener, task)
            assert task.result() is None
            assert admin.zscore("lr:listeners", listener.name) is not None  # left to lapse
        finally:
            await store.aclose()
            admin.close()
    left = [m for m in messages(caplog, logging.WARNING) if "could not remove its heartbeat" in m]
    assert len(left) == 1 and "can't run this command" in left[0], left


@pytest.mark.parametrize("fault", ["killed", "paused"])
async def test_stop_returns_when_redis_fails_under_a_running_listener(
        fault: str, caplog: pytest.LogCaptureFixture) -> None:
    with server_with() as server:
        store = SessionStore(aioredis.Redis(host=server.host, port=server.port))
        listener = ExpiryListener(store, sweep_interval=0.1, heartbeat_interval=0.2,
                                  on_archived=lambda conversation: None)
        try:
            with caplog.at_level(logging.WARNING, logger="luminora_redis.listener"):
                async with running(listener) as (task,):
                    await create_sessions(store, 3, 1, [60] * 3)
                    if fault == "killed":
                        server.kill()
                        await stop_within(listener, task)
                    else:
                        with paused(server):
                            await stop_within(listener, task)
            assert task.result() is None
        finally:
            await store.client.aclose()
    left = [m for m in messages(caplog, logging.WARNING) if "could not remove its heartbeat" in m]
    assert len(left) == 1, left


async def test_run_raises_the_error_it_ended_on_not_one_met_while_stopping(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # No Redis reply escapes a loop (each waits outages out, or logs and retries): a bug
    # does. Stand-ins for the heartbeat play one, and a shutdown step that fails too.
    bug = RuntimeError("a bug in a loop")

    async def beat(*args: object, **kwargs: object) -> None:
        raise bug

    async def leave(*args: object, **kwargs: object) -> bool:
        raise RuntimeError("a failure while stopping")

    monkeypatch.setattr(heartbeats, "beat", beat)
    monkeypatch.setattr(heartbeats, "leave", leave)
    with server_with() as server:
        store = SessionStore.from_url(server.url)
        listener = ExpiryListener(store, sweep_interval=0.1)
        try:
            with caplog.at_level(logging.ERROR, logger="luminora_redis.listener"):
                with pytest.raises(RuntimeError) as ended:
                    await asyncio.wait_for(listener.run(), STOP_BOUND)
            await asyncio.wait_for(listener.stop(), 1.0)  # it has ended: returns at once
        finally:
            await store.aclose()
    assert ended.value is bug
    failed = [r for r in caplog.records if "removing its heartbeat failed" in r.getMessage()]
    assert len(failed) == 1 and failed[0].exc_info is not None
    assert "a failure while stopping" in str(failed[0].exc_info[1])


async def test_a_shutdown_step_that_ignores_its_cancellation_is_abandoned(
        caplog: pytest.LogCaptureFixture) -> None:
    # What a cancellation lost inside redis-py looks like to the shutdown.
    release = asyncio.Event()
    ended = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await release.wait()
        ended.set()

    with caplog.at_level(logging.ERROR, logger="luminora_redis.listener"):
        await asyncio.wait_for(step("a stubborn step", stubborn(), 0.2), 10)
    assert not ended.is_set()
    assert messages(caplog, logging.ERROR) == ["a stubborn step did not finish within 0.2 s; "
                                               "abandoned"]
    release.set()
    await asyncio.wait_for(ended.wait(), 5)


# -- what the listener says about the notification flags -----------------------------------


async def test_with_config_renamed_away_and_the_flags_preset_sessions_are_archived_on_notification(
        caplog: pytest.LogCaptureFixture) -> None:
    with server_with(**{"rename-command": 'CONFIG ""', "notify-keyspace-events": "Ex"}) as server:
        with server.client() as admin, pytest.raises(redis.ResponseError, match="unknown command"):
            admin.config_get("notify-keyspace-events")
        store = SessionStore.from_url(server.url)
        # Sweeps far apart: only notifications can archive within the test.
        listener = ExpiryListener(store, sweep_interval=60, catch_up=False)
        try:
            with caplog.at_level(logging.INFO, logger="luminora_redis"):
                async with running(listener):
                    # Sessions created before the first full sweep ends would be learnt by it.
                    await until(lambda: listener.sweeps >= 1)
                    owners = await create_sessions(store, 4, 2, [0.05] * 4)
                    await until(lambda: listener.archived == len(owners), timeout=20)
        finally:
            await store.aclose()
    assert listener.archived_by_path == {NOTIFICATION: len(owners), SWEEP: 0}
    logged = [r.getMessage() for r in caplog.records]
    assert not [m for m in logged if "sweeper only" in m], logged
    warnings = messages(caplog, logging.WARNING)
    assert len(warnings) == 1 and "expired events is unknown" in warnings[0], warnings
    assert [m for m in messages(caplog, logging.INFO) if "expired events arrive" in m]


async def test_with_config_renamed_away_and_no_flags_the_sweeper_archives(
        caplog: pytest.LogCaptureFixture) -> None:
    with server_with(**{"rename-command": 'CONFIG ""'}) as server:
        store = SessionStore.from_url(server.url)
        listener = ExpiryListener(store, sweep_interval=0.1)
        try:
            with caplog.at_level(logging.INFO, logger="luminora_redis"):
                async with running(listener):
                    owners = await create_sessions(store, 4, 2, [0.05] * 4)
                    await until(lambda: listener.archived == len(owners), timeout=20)
        finally:
            await store.aclose()
    assert listener.archived_by_path == {NOTIFICATION: 0, SWEEP: len(owners)}
    logged = [r.getMessage() for r in caplog.records]
    assert not [m for m in logged if "sweeper only" in m], logged  # it cannot know
    warnings = messages(caplog, logging.WARNING)
    assert len(warnings) == 1 and "expired events is unknown" in warnings[0], warnings
    assert not [m for m in messages(caplog, logging.INFO) if "expired events arrive" in m]
