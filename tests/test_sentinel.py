"""Sentinel: ``redis+sentinel://`` URLs for both stores and the CLI, and writes
acknowledged by replicas (``WAIT``) or the append-only file (``WAITAOF``).

The deployment is the testing plugin's (`LocalSentinel`: a primary, a replica,
three sentinels). A replica is "paused" with SIGSTOP: a real process that
stops answering, as a hung or partitioned replica does.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import redis.asyncio.cluster

from luminora_redis import (
    ConfigurationError,
    ExpiryListener,
    InvalidSettings,
    NotAcknowledged,
    SessionStore,
    SyncSessionStore,
)
from luminora_redis.io.sentinel_url import parse_sentinel_url
from luminora_redis.testing import LocalSentinel, RedisServer, free_port

from conftest import (
    Blocking,
    finish_loop,
    require_redis_server,
    session_keys,
    until,
    wait_until,
)
from listener_support import ListenProcess, paused, running


@pytest.fixture(autouse=True)
def _needs_redis() -> None:
    require_redis_server()


# -- the URL -------------------------------------------------------------------------


def test_sentinel_url_names_sentinels_service_db_and_options() -> None:
    parsed = parse_sentinel_url(
        "redis+sentinel://app:s%40cret@10.0.0.1:26380,[::1],sentinel-b/cache/3"
        "?socket_timeout=2.5&sentinel_password=sp&protocol=3")
    assert parsed.sentinels == (("10.0.0.1", 26380), ("::1", 26379), ("sentinel-b", 26379))
    assert parsed.service == "cache"
    assert parsed.db == 3
    assert parsed.connection == {"username": "app", "password": "s@cret", "socket_timeout": 2.5,
                                 "protocol": 3}
    assert parsed.sentinel == {"password": "sp", "socket_timeout": 2.5, "protocol": 3}
    tls = parse_sentinel_url("rediss+sentinel://h:1/svc?ssl_ca_certs=/ca.pem")
    assert tls.db == 0
    assert tls.connection == {"ssl": True, "ssl_ca_certs": "/ca.pem"}
    assert tls.sentinel == {"ssl": True, "ssl_ca_certs": "/ca.pem"}


@pytest.mark.parametrize(("url", "says"), [
    ("redis+sentinel://h:26379", "no service name"),
    ("redis+sentinel://h:26379/", "no service name"),
    ("redis+sentinel:///svc", "no sentinel address"),
    ("redis+sentinel://h:port/svc", "bad port"),
    ("redis+sentinel://h:70000/svc", "bad port"),
    ("redis+sentinel://h:1,:2/svc", "without a host"),
    ("redis+sentinel://h:1/svc/db1", "database must be a number"),
    ("redis+sentinel://h:1/svc/0/extra", "too many path parts"),
    ("redis+sentinel://h:1/svc?sockettimeout=1", "unknown option 'sockettimeout'"),
    ("redis+sentinel://h:1/svc?socket_timeout=-1", "must be positive"),
    ("redis+sentinel://h:1/svc?ssl=maybe", "ssl must be true or false"),
    ("redis+sentinel://h:1/svc#x", "fragment"),
    ("redis://h:1/svc", "scheme must be"),
])
def test_malformed_sentinel_urls_are_refused_saying_why(url: str, says: str) -> None:
    with pytest.raises(InvalidSettings, match=says) as refused:
        parse_sentinel_url(url)
    assert "redis+sentinel://[user:password@]host:port" in str(refused.value)


def test_a_refused_url_never_shows_its_password() -> None:
    with pytest.raises(InvalidSettings) as refused:
        parse_sentinel_url("redis+sentinel://app:hunter2@h:1")
    assert "hunter2" not in str(refused.value)
    assert "app:***@h:1" in str(refused.value)


def test_both_stores_refuse_a_malformed_url_and_a_sentinel_cluster() -> None:
    for make in (SessionStore.from_url, SyncSessionStore.from_url):
        with pytest.raises(InvalidSettings, match="no service name"):
            make("redis+sentinel://127.0.0.1:1")
        with pytest.raises(InvalidSettings, match="not a Redis Cluster"):
            make("redis+sentinel://127.0.0.1:1/svc", cluster=True)


# -- the rules of acknowledgement (no I/O) ---------------------------------------------------


def test_a_short_wait_makes_each_successful_write_not_acknowledged() -> None:
    from luminora_redis.core.scripts import script_sources
    from luminora_redis.core.settings import StoreSettings
    from luminora_redis.io.acknowledge import Acknowledgement
    from luminora_redis.io.batching import demoted

    ack = Acknowledgement(StoreSettings(acknowledge="replicas", acknowledge_replicas=2,
                                        acknowledge_timeout=0.25), script_sources())
    assert ack.command == ("WAIT", 2, 250)
    assert ack.writes("chat_turn") and not ack.writes("read_history")
    failed = redis.ResponseError("a script error")
    replies = ack.apply([1, failed, 3, 4], [True, True, False, True], 1)
    assert isinstance(replies[0], NotAcknowledged) and isinstance(replies[3], NotAcknowledged)
    assert replies[0] is not replies[3]
    assert "1 of the 2 replicas" in str(replies[0])
    assert replies[1] is failed and replies[2] == 3
    assert ack.apply([1], [True], 2) == [1] and not ack.fell_short(2)
    lost = redis.ConnectionError("gone")
    [error] = ack.apply([1], [True], lost)
    assert isinstance(error, NotAcknowledged) and error.__cause__ is lost
    aof = Acknowledgement(StoreSettings(acknowledge="aof"), script_sources())
    assert aof.command == ("WAITAOF", 1, 0, 1000)
    assert not aof.fell_short([1, 0]) and aof.fell_short([0, 0])
    assert demoted([1, redis.exceptions.ReadOnlyError("READONLY")]) and not demoted([1, failed])


# -- stores over the URL -----------------------------------------------------------------


def test_both_stores_from_a_sentinel_url_write_to_the_primary(
        luminora_redis_sentinel: LocalSentinel, luminora_sentinel_url: str) -> None:
    primary = luminora_redis_sentinel.primary
    with SyncSessionStore.from_url(luminora_sentinel_url) as sync_store:
        sid = sync_store.create_session("carlos", "alicia")
        sync_store.chat_turn(sid, [("user", "hola")])
        assert sync_store.client.connection_pool.connection_kwargs["db"] == 0
    loop = asyncio.new_event_loop()
    try:
        store = Blocking(SessionStore.from_url(luminora_sentinel_url), loop)
        assert [m.content for m in store.get_history(sid)] == ["hola"]
        store.chat_turn(sid, [("assistant", "¡hola!")])
        store.aclose()
    finally:
        finish_loop(loop)
        loop.close()
    with primary.client() as raw:
        assert raw.llen(session_keys(sid).history) == 2


def test_acknowledge_is_refused_on_a_cluster_client() -> None:
    client = redis.asyncio.cluster.RedisCluster(host="127.0.0.1", port=7000)
    with pytest.raises(ConfigurationError, match="not supported on Redis Cluster"):
        SessionStore(client, acknowledge="replicas")


def test_acknowledge_settings_are_checked() -> None:
    with pytest.raises(InvalidSettings, match="acknowledge"):
        SyncSessionStore(redis.Redis(), acknowledge="replica")
    with pytest.raises(InvalidSettings, match="acknowledge_replicas"):
        SyncSessionStore(redis.Redis(), acknowledge="replicas", acknowledge_replicas=0)


# -- acknowledge="replicas" --------------------------------------------------------------



async def test_a_write_returns_only_once_the_replica_has_it(
        luminora_redis_sentinel: LocalSentinel, luminora_sentinel_url: str) -> None:
    deployment = luminora_redis_sentinel
    replica, primary = deployment.replica, deployment.primary
    store = SessionStore.from_url(luminora_sentinel_url, acknowledge="replicas",
                                  acknowledge_timeout=30.0)
    raw = primary.client()
    replica_raw = replica.client()
    try:
        sid = await store.create_session("carlos", "alicia")
        history = session_keys(sid).history
        with paused(replica):
            turn = asyncio.create_task(store.chat_turn(sid, [("user", "hola")]))
            # The turn ran on the primary, and its call still waits for the replica.
            await until(lambda: raw.llen(history) == 1, what="the turn on the primary")
            await asyncio.sleep(0)  # the turn's task gets its turn
            assert not turn.done()
        await turn
        assert replica_raw.llen(history) == 1  # read right after the call returned
    finally:
        await store.aclose()
        raw.close()
        replica_raw.close()


def test_blocking_store_writes_wait_for_the_replica_too(
        luminora_redis_sentinel: LocalSentinel, luminora_sentinel_url: str) -> None:
    deployment = luminora_redis_sentinel
    replica, primary = deployment.replica, deployment.primary
    with SyncSessionStore.from_url(luminora_sentinel_url, acknowledge="replicas",
                                   acknowledge_timeout=30.0) as store, \
            primary.client() as raw, replica.client() as replica_raw:
        sid = store.create_session("carlos", "alicia")
        history = session_keys(sid).history
        with ThreadPoolExecutor(1) as pool:
            with paused(replica):
                turn = pool.submit(store.chat_turn, sid, [("user", "hola")])
                wait_until(lambda: raw.llen(history) == 1, what="the turn on the primary")
                assert not turn.done()
            turn.result(timeout=30)
        assert replica_raw.llen(history) == 1


@pytest.mark.parametrize("shell", ["asyncio", "blocking"])
def test_a_write_no_replica_confirms_raises_not_acknowledged_within_the_timeout(
        luminora_redis_sentinel: LocalSentinel, luminora_sentinel_url: str, shell: str) -> None:
    deployment = luminora_redis_sentinel
    loop = asyncio.new_event_loop()
    store: SyncSessionStore | Blocking = (
        SyncSessionStore.from_url(luminora_sentinel_url, acknowledge="replicas",
                                  acknowledge_timeout=0.5) if shell == "blocking" else
        Blocking(SessionStore.from_url(luminora_sentinel_url, acknowledge="replicas",
                                       acknowledge_timeout=0.5), loop))
    try:
        sid = store.create_session("carlos", "alicia")
        store.save_fact("carlos", "personal_info", "name", "Carlos")
        with paused(deployment.replica), deployment.primary.client() as raw:
            started = time.monotonic()
            with pytest.raises(NotAcknowledged, match="0 of the 1 replicas") as refused:
                store.chat_turn(sid, [("user", "hola")])
            assert time.monotonic() - started < 5.0
            assert "may or may not survive a failover" in str(refused.value)
            assert raw.llen(session_keys(sid).history) == 1  # it ran on the primary
            # A script that only reads waits for nobody.
            started = time.monotonic()
            assert [fact.value for fact in store.get_facts("carlos")] == ["Carlos"]
            assert time.monotonic() - started < 0.4
    finally:
        if isinstance(store, Blocking):
            store.aclose()
        else:
            store.close()
        finish_loop(loop)
        loop.close()


async def test_one_wait_covers_an_auto_pipelined_batch(
        luminora_redis_sentinel: LocalSentinel, luminora_sentinel_url: str) -> None:
    deployment = luminora_redis_sentinel
    primary = deployment.primary
    store = SessionStore.from_url(luminora_sentinel_url, acknowledge="replicas")
    raw = primary.client(decode_responses=True)
    replica_raw = deployment.replica.client()
    try:
        sids = [await store.create_session(f"user{n}", "alicia") for n in range(40)]
        raw.config_resetstat()
        batches = store._runner.pipeline.batches
        await asyncio.gather(*(store.chat_turn(sid, [("user", "hola")]) for sid in sids))
        sent = store._runner.pipeline.batches - batches
        waits = int(raw.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))
        assert waits == sent < len(sids)
        assert all(replica_raw.llen(session_keys(sid).history) == 1 for sid in sids)
    finally:
        await store.aclose()
        raw.close()
        replica_raw.close()


@pytest.mark.parametrize("shell", ["asyncio", "blocking"])
def test_a_flushed_script_is_loaded_and_its_write_still_waits(
        luminora_redis_sentinel: LocalSentinel, luminora_sentinel_url: str, shell: str) -> None:
    deployment = luminora_redis_sentinel
    loop = asyncio.new_event_loop()
    store: SyncSessionStore | Blocking = (
        SyncSessionStore.from_url(luminora_sentinel_url, acknowledge="replicas")
        if shell == "blocking" else
        Blocking(SessionStore.from_url(luminora_sentinel_url, acknowledge="replicas"), loop))
    try:
        sid = store.create_session("carlos", "alicia")
        with deployment.primary.client(decode_responses=True) as raw:
            raw.script_flush()
            raw.config_resetstat()
            store.chat_turn(sid, [("user", "hola")])
            stats = raw.info("commandstats")
            assert stats["cmdstat_script|load"]["calls"] >= 1
            # The refused send and the resend after the load each ended with a wait.
            assert stats["cmdstat_wait"]["calls"] == 2
        with deployment.replica.client() as replica_raw:
            assert replica_raw.llen(session_keys(sid).history) == 1
    finally:
        if isinstance(store, Blocking):
            store.aclose()
        else:
            store.close()
        finish_loop(loop)
        loop.close()


# -- acknowledge="aof" -------------------------------------------------------------------


def _version(server: RedisServer) -> tuple[int, ...]:
    with server.client(decode_responses=True) as raw:
        return tuple(int(part) for part in str(raw.info("server")["redis_version"]).split(".")[:2])


@pytest.mark.parametrize("appendonly", ["yes", "no"])
def test_aof_acknowledges_on_disk_or_is_refused_clearly(appendonly: str) -> None:
    with RedisServer(config={"appendonly": appendonly, "appendfsync": "always"}) as server:
        with SyncSessionStore.from_url(server.url, acknowledge="aof") as store:
            if _version(server) < (7, 2) or appendonly == "no":
                with pytest.raises(ConfigurationError, match=r"needs WAITAOF \(Redis 7.2 or later\) "
                                                            r"with appendonly yes"):
                    store.create_session("carlos", "alicia")
                return
            sid = store.create_session("carlos", "alicia")
            store.chat_turn(sid, [("user", "hola")])
            with server.client(decode_responses=True) as raw:
                assert int(raw.info("commandstats")["cmdstat_waitaof"]["calls"]) >= 2


# -- the CLI -----------------------------------------------------------------------------


@pytest.mark.slow
def test_the_cli_takes_a_sentinel_url(luminora_sentinel_url: str) -> None:
    from click.testing import CliRunner

    from luminora_redis.cli import main

    with SyncSessionStore.from_url(luminora_sentinel_url) as store:
        sid = store.create_session("carlos", "alicia")
    listed = CliRunner().invoke(main, ["sessions", "list", "--json", "--url", luminora_sentinel_url])
    assert listed.exit_code == 0, listed.output
    assert sid in listed.output
    checked = CliRunner().invoke(main, ["check", "--url", luminora_sentinel_url])
    assert "cannot reach" not in checked.output, checked.output
    assert checked.exit_code in (0, 1), checked.output
    bad = CliRunner().invoke(main, ["sessions", "list", "--url", "redis+sentinel://127.0.0.1:1"])
    assert bad.exit_code == 2
    assert "no service name" in bad.output
    nobody = CliRunner().invoke(main, ["sessions", "list", "--url",
                                       f"redis+sentinel://127.0.0.1:{free_port()}/mymaster"])
    assert nobody.exit_code == 3, nobody.output
    assert "cannot reach Redis" in nobody.output
    clustered = CliRunner().invoke(main, ["sessions", "list", "--cluster", "--url",
                                          luminora_sentinel_url])
    assert clustered.exit_code == 2
    assert "drop --cluster" in clustered.output


@pytest.mark.slow
def test_listen_over_a_sentinel_url_archives_expired_sessions(luminora_sentinel_url: str) -> None:
    process = ListenProcess("--url", luminora_sentinel_url, "--sweep-interval", "0.1")
    try:
        process.wait_started()
        with SyncSessionStore.from_url(luminora_sentinel_url) as store:
            sid = store.create_session("carlos", "alicia", {"ttl": 0.2})
            store.append_message(sid, "user", "hola")
            wait_until(lambda: sid in process.archived(), timeout=15, what="the archive")
            assert [c.session_id for c in store.get_archived_conversations("carlos")] == [sid]
        process.process.send_signal(signal.SIGTERM)
        assert process.finish() == 0, process.log()
    finally:
        if process.process.poll() is None:
            process.process.kill()
            process.finish()


# -- the listener under acknowledge="replicas" ---------------------------------------------


@pytest.mark.slow
async def test_a_listener_waits_out_a_replica_that_stops_acknowledging(
        luminora_redis_sentinel: LocalSentinel, luminora_sentinel_url: str,
        caplog: pytest.LogCaptureFixture) -> None:
    deployment = luminora_redis_sentinel
    store = SessionStore.from_url(luminora_sentinel_url, acknowledge="replicas",
                                  acknowledge_timeout=0.2)
    creator = SessionStore.from_url(luminora_sentinel_url)
    delivered: asyncio.Queue[str] = asyncio.Queue()
    listener = ExpiryListener(store, on_archived=lambda c: delivered.put_nowait(c.session_id),
                              sweep_interval=0.05, heartbeat_interval=0.05)
    try:
        async with running(listener) as [task]:
            lives = listener.lives
            with paused(deployment.replica):
                sid = await creator.create_session("carlos", "alicia", {"ttl": 0.2})
                await until(lambda: listener.outage, what="the outage")
                assert not task.done()
            await asyncio.wait_for(listener.wait_live(after=lives), 30)
            assert await asyncio.wait_for(delivered.get(), 30) == sid
            assert not task.done()
        # An outage to wait out, logged as one, not a bug with its traceback.
        assert any("Redis cannot serve" in record.getMessage() for record in caplog.records)
        assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
    finally:
        await store.aclose()
        await creator.aclose()
