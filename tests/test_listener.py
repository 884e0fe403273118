"""ExpiryListener on a real redis-server and a real Redis Cluster: expired sessions reach
the archive once, promptly.

The behavioural tests run once per ``topology``: on the shared server, and on the
shared 3-primary cluster, where the listener subscribes on every primary. Tests
marked ``single_server`` run on the server only. Tests that need the server
configured their own way start a private ``RedisServer``; the others put
``notify-keyspace-events`` back as they found it, on every server.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis

from luminora_redis import (
    ArchivedConversation,
    ArchiveReason,
    DeliveryBacklog,
    ListenerSettings,
    SessionStore,
    SyncSessionStore,
)
from luminora_redis.core.codec import unreadable_records_total
from luminora_redis.core.errors import ConfigurationError, InvalidSettings
from luminora_redis.listener.expiry_listener import NOTIFICATION, SWEEP, ExpiryListener
from luminora_redis.listener.notifications import ensure_flags, merged_flags
from luminora_redis.testing import RedisServer

from conftest import open_store, require_redis_server, until, wait_until
from listener_support import (
    MIN_TTL,
    NOTIFY,
    PROMPTLY,
    archived_sessions,
    create_conversation,
    create_sessions,
    flag_set,
    flags_restored,
    index_sizes,
    nodes_of,
    open_async_stores,
    running,
)

# -- merging the notification flags (pure) -----------------------------------------


@pytest.mark.parametrize(("current", "merged"), [
    ("", "Ex"),
    ("Ex", None),
    ("xE", None),
    ("AE", None),          # A covers x
    ("AK", "AKE"),         # ... but not the E class
    ("Kg", "KgEx"),        # K and E are independent classes
    ("Elg", "Elgx"),
    ("KEA", None),
    ("gE", "gEx"),
    ("x", "xE"),
    ("g$lshzetdKE", "g$lshzetdKEx"),
    ("g$lshzxetdE", None),
    ("KEmn", "KEmnx"),     # m and n are not part of A, and kept
])
def test_merged_flags_adds_only_what_is_missing(current: str, merged: str | None) -> None:
    assert merged_flags(current) == merged
    if merged is not None:
        assert merged.startswith(current)
        assert flag_set(merged) >= flag_set(current) | {"E", "x"}


def test_merged_flags_takes_other_needs_and_refuses_unknown_flags() -> None:
    assert merged_flags("Ex", "Kx") == "ExK"
    assert merged_flags("g$lshzxetdE", "A") is None
    with pytest.raises(ValueError, match="unknown"):
        merged_flags("", "Eq")


async def test_listener_refuses_bad_arguments() -> None:
    store = SessionStore.from_url("redis://127.0.0.1:1/0")  # never connects
    for interval in (0, -1, math.nan, math.inf, "1"):
        with pytest.raises(ValueError, match="sweep_interval"):
            ExpiryListener(store, sweep_interval=interval)  # type: ignore[arg-type]
    for batch in (0, -5, 1.5, True):
        with pytest.raises(ValueError, match="sweep_batch"):
            ExpiryListener(store, sweep_batch=batch)  # type: ignore[arg-type]
    with pytest.raises(InvalidSettings, match="on_archived"):
        ExpiryListener(store, on_archived="print")  # type: ignore[arg-type]
    with pytest.raises(InvalidSettings, match="ListenerSettings"):
        ExpiryListener(store, 5)  # type: ignore[arg-type]
    await store.aclose()
    with SyncSessionStore.from_url("redis://127.0.0.1:1/0") as blocking, \
            pytest.raises(ConfigurationError, match="asyncio SessionStore"):
        ExpiryListener(blocking)  # type: ignore[arg-type]
    settings = ListenerSettings(sweep_interval=1.5, delivery_max_attempts=3)
    typed = ExpiryListener(store, settings, sweep_batch=7, name="typed")
    assert (typed.settings.sweep_interval, typed.settings.sweep_batch,
            typed.settings.delivery_max_attempts, typed.name) == (1.5, 7, 3, "typed")
    for bad in ({"delivery_workers": 0}, {"delivery_lease": 0}, {"catch_up": "no"},
                {"delivery_max_attempts": 0}, {"unknown": 1}):
        with pytest.raises(ValueError):
            ExpiryListener(store, **bad)
    cluster = SessionStore.from_url("redis://127.0.0.1:1/0", cluster=True)
    ExpiryListener(cluster)  # a cluster store is welcome: it subscribes on every primary
    await cluster.aclose()


# -- fixtures -----------------------------------------------------------------------


@pytest.fixture
def url(store_url: str, servers: list[RedisServer]) -> Iterator[str]:
    """The shared server or cluster, flushed; every server's notification flags restored
    afterwards."""
    with flags_restored(servers):
        yield store_url


def flags_of(servers: list[RedisServer]) -> list[str]:
    """Each server's notify-keyspace-events."""
    flags = []
    for server in servers:
        with server.client(decode_responses=True) as client:
            flags.append(client.config_get(NOTIFY)[NOTIFY])
    return flags


@pytest.fixture
async def make_store(url: str, topology: str) -> AsyncIterator[Callable[..., SessionStore]]:
    """Asyncio stores (each with its own client) of the current topology; closed afterwards."""
    async for make in open_async_stores(url, topology):
        yield make


@pytest.fixture
def private_server() -> Iterator[Callable[..., RedisServer]]:
    """Start private servers with a given config; stopped afterwards."""
    require_redis_server()
    servers: list[RedisServer] = []

    def start(**config: str) -> RedisServer:
        server = RedisServer(config=config)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


# -- archiving on expiry ------------------------------------------------------------


async def test_an_expired_session_is_archived_promptly_with_its_history(
        make_store: Callable[..., SessionStore]) -> None:
    store = make_store()
    seen: list[tuple[ArchivedConversation, float]] = []
    listener = ExpiryListener(store, on_archived=lambda c: seen.append((c, time.time())))
    async with running(listener):
        absolute = await create_conversation(store, "carlos", {"ttl": 0.3}, ["hola", "¡hola!"])
        idle = await create_conversation(store, "carlos", {"ttl": 60, "max_idle": 0.3}, [])
        await until(lambda: len(seen) == 2)
    by_id = {conversation.session_id: (conversation, at) for conversation, at in seen}
    for sid, (conversation, at) in by_id.items():
        lag = at - conversation.ended_at.timestamp()
        print(f"\nsession {sid} delivered {lag:.3f} s after its deadline")
        assert lag < PROMPTLY, f"archived and delivered {lag:.3f} s after its deadline"
    conversation = by_id[absolute][0]
    assert conversation.user_id == "carlos" and conversation.personality_name == "alicia"
    assert conversation.idempotency_key == absolute
    assert conversation.reason is ArchiveReason.ABSOLUTE
    assert [m.content for m in conversation.messages] == ["hola", "¡hola!"]
    assert by_id[idle][0].reason is ArchiveReason.IDLE and by_id[idle][0].messages == []
    assert listener.archived == 2 and listener.errors == 0
    assert await store.get_session(absolute) is None
    assert await store.get_expired_sessions() == []
    archived = await store.get_archived_conversations("carlos")
    assert {c.session_id for c in archived} == {absolute, idle}


async def test_the_sweeper_alone_archives_when_notifications_are_off(
        make_store: Callable[..., SessionStore], servers: list[RedisServer]) -> None:
    store = make_store()
    flags_before = flags_of(servers)
    listener = ExpiryListener(store, notifications=False, sweep_interval=0.05)
    async with running(listener):
        owners = await create_sessions(store, 10, 3, [0.05] * 10)
        await until(lambda: listener.archived == 10)
    assert listener.archived_by_path == {NOTIFICATION: 0, SWEEP: 10}
    assert flags_of(servers) == flags_before, "notifications=False leaves CONFIG alone"
    assert await archived_sessions(store, owners.values()) == Counter(list(owners))


async def test_between_full_sweeps_the_sweeper_wakes_for_the_deadlines_it_knows(
        make_store: Callable[..., SessionStore]) -> None:
    """A full sweep learns each bucket's next deadline; the sweeper then wakes for it and
    scans only the buckets that are due, long before the next full sweep."""
    store = make_store()
    sessions = [await store.create_session(f"user-{n}", "alicia", {"ttl": 60, "max_idle": idle})
                for n, idle in enumerate((0.3, 0.5, 0.7))]
    archived: list[tuple[ArchivedConversation, float]] = []
    listener = ExpiryListener(store, notifications=False, sweep_interval=60,
                              on_archived=lambda c: archived.append((c, time.time())))
    async with running(listener):
        await until(lambda: len(archived) == 3, timeout=10)
    assert listener.sweeps == 1, "no full sweep ran after the first one"
    # On a loaded machine the listener may start after the first deadlines: the start's
    # sweep then archives those together, in any order.
    assert sorted(c.session_id for c, _ in archived) == sorted(sessions)
    lags = [f"{(at - c.ended_at.timestamp()) * 1000:.0f} ms" for c, at in archived]
    print(f"\narchived {lags} after their deadlines")


@pytest.mark.parametrize("kind", ["asyncio", "blocking"])
def test_without_a_listener_cleanup_archives_each_expired_session_once(
        kind: str, url: str, topology: str, raw: redis.Redis) -> None:
    store, close = open_store(kind, url, cluster=topology == "cluster")
    try:
        # Each session gets its message right after it is created, and lives MIN_TTL:
        # on a loaded machine seven creates can take longer than a few milliseconds.
        def visit(user: str, **config: Any) -> str:
            sid = store.create_session(user, "alicia", {"ttl": MIN_TTL, **config})
            store.append_message(sid, "user", "hola")
            return str(sid)

        auto = [visit(f"u{n % 2}") for n in range(5)]
        manual = [visit("u2", auto_cleanup=False) for _ in range(2)]
        wait_until(lambda: set(store.get_expired_sessions()) == set(auto + manual))
        assert store.cleanup_expired_sessions() == 7
        assert store.cleanup_expired_sessions() == 0
        assert store.get_expired_sessions() == []
        records = Counter(c.session_id for user in ("u0", "u1", "u2")
                          for c in store.get_archived_conversations(user, limit=None))
        assert records == Counter(auto + manual)
        assert index_sizes(raw) == 0
    finally:
        close()


@pytest.mark.slow
@pytest.mark.parametrize("listeners", [2, 4])
async def test_many_listeners_archive_each_session_exactly_once(
        listeners: int, make_store: Callable[..., SessionStore], raw: redis.Redis) -> None:
    count = 240
    calls: Counter[str] = Counter()
    group = [ExpiryListener(make_store(), sweep_interval=0.05, name=f"L{n}",
                            on_archived=lambda c: calls.update([c.session_id]))
             for n in range(listeners)]
    creator = make_store()
    rng = random.Random(listeners)
    async with running(*group):
        owners = await create_sessions(creator, count, 24,
                                       [rng.uniform(0.1, 0.8) for _ in range(count)])
        await until(lambda: sum(calls.values()) >= count, timeout=90)
        # Give late duplicates every chance to show up: two more full sweeps (only the
        # holder of the sweep lease sweeps every interval).
        sweeps = sum(listener.sweeps for listener in group)
        await until(lambda: sum(x.sweeps for x in group) >= sweeps + 2)
    by_path = Counter[str]()
    for listener in group:
        by_path.update(listener.archived_by_path)
    print(f"\n{listeners} listeners, {count} sessions: {dict(by_path)}, "
          f"per listener {[x.archived for x in group]}")
    # At least once in general; without a fault, no lease lapses: exactly once.
    assert calls == Counter(list(owners)), "on_archived: exactly one call per session in total"
    assert sum(listener.archived for listener in group) == count
    assert await archived_sessions(creator, owners.values()) == Counter(list(owners))
    for user in set(owners.values()):
        conversations = await creator.get_archived_conversations(user, limit=None)
        assert all(c.message_count == 1 and len(c.messages) == 1 for c in conversations)
    assert index_sizes(raw) == 0


async def test_nothing_of_an_archived_session_is_left_and_nothing_of_a_user_expires(
        make_store: Callable[..., SessionStore], raw: redis.Redis) -> None:
    store = make_store(max_history=2)  # five messages: the history overflows
    listener = ExpiryListener(store, sweep_interval=0.05)
    async with running(listener):
        sids = []
        for user in ("ana", "bo"):
            await store.update_affinity(user, "alicia", 10)
            await store.save_fact(user, "personal_info", "name", user)
            sids.append(await create_conversation(store, user, {"ttl": MIN_TTL},
                                                  [f"m{n}" for n in range(5)]))
        await until(lambda: listener.archived == 2)
    keys = [key.decode() for key in raw.scan_iter(match="*")]
    leftovers = [key for key in keys if any(sid in key for sid in sids) and ":a:" not in key]
    assert leftovers == []
    assert not any(":s:" in key for key in keys)
    assert {key: raw.pttl(key) for key in keys if raw.pttl(key) != -1} == {}
    for user in ("ana", "bo"):
        [conversation] = await store.get_archived_conversations(user)
        assert [m.content for m in conversation.messages] == [f"m{n}" for n in range(5)]


@pytest.mark.single_server
@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync-hook", "async-hook"])
async def test_a_failing_hook_is_logged_and_retried_and_the_archive_stays(
        asynchronous: bool, make_store: Callable[..., SessionStore],
        caplog: pytest.LogCaptureFixture) -> None:
    store = make_store()
    called: list[str] = []

    def fail_first(conversation: ArchivedConversation) -> None:
        called.append(conversation.idempotency_key)
        if len(called) == 1:
            raise RuntimeError("the sink is down")

    async def fail_first_async(conversation: ArchivedConversation) -> None:
        await asyncio.sleep(0)
        fail_first(conversation)

    listener = ExpiryListener(store, sweep_interval=0.05, delivery_backoff=0.05,
                              delivery_interval=0.05,
                              on_archived=fail_first_async if asynchronous else fail_first)
    with caplog.at_level(logging.ERROR, logger="luminora_redis.listener"):
        async with running(listener):
            [first] = await create_sessions(store, 1, 1, [0.05])
            await until(lambda: called == [first, first])
            [second] = await create_sessions(store, 1, 1, [0.05])
            await until(lambda: called == [first, first, second])
    failures = [r for r in caplog.records if "on_archived failed" in r.getMessage()]
    assert len(failures) == 1 and first in failures[0].getMessage()
    assert failures[0].exc_info is not None and "the sink is down" in str(failures[0].exc_info[1])
    assert listener.errors == 1 and listener.archived == 2 and listener.delivered == 2
    archived = {c.session_id for c in await store.get_archived_conversations("user-0")}
    assert archived == {first, second}
    assert await store.delivery_backlog() == DeliveryBacklog(
        pending=0, oldest_age_seconds=None, quarantined=0)


@pytest.mark.single_server
async def test_sessions_without_auto_cleanup_are_left_for_cleanup(
        make_store: Callable[..., SessionStore]) -> None:
    store = make_store()
    listener = ExpiryListener(store, sweep_interval=0.05)
    async with running(listener):
        manual = await store.create_session("carlos", "alicia",
                                            {"ttl": 0.05, "auto_cleanup": False})
        auto = await store.create_session("carlos", "alicia", {"ttl": 0.05})
        await until(lambda: listener.archived == 1)
        sweeps = listener.sweeps
        await until(lambda: listener.sweeps >= sweeps + 3)
        assert listener.archived == 1
        assert await store.get_expired_sessions() == [manual]
    assert [c.session_id for c in await store.get_archived_conversations("carlos")] == [auto]
    assert await store.cleanup_expired_sessions() == 1
    assert {c.session_id for c in await store.get_archived_conversations("carlos")} == {
        manual, auto}


@pytest.mark.single_server
async def test_cancelling_run_closes_everything(make_store: Callable[..., SessionStore]) -> None:
    listener = ExpiryListener(make_store())
    task = asyncio.create_task(listener.run())
    await asyncio.wait_for(listener.wait_live(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await listener.stop()  # already stopped: returns at once


# -- the server's configuration ------------------------------------------------------


@pytest.mark.parametrize("flags", ["Kg", "Elg", "AK", "KEA"])
async def test_existing_notification_flags_are_kept_and_ex_added_on_every_server(
        flags: str, servers: list[RedisServer], make_store: Callable[..., SessionStore],
        raw: redis.Redis) -> None:
    for server in servers:
        with server.client() as client:
            client.config_set(NOTIFY, flags)
    store = make_store()
    # A sweep interval far beyond the test, and no catch-up sweep after a resubscription
    # (redis-py's cluster subscription refreshes by itself now and then): only
    # notifications can archive in time.
    listener = ExpiryListener(store, sweep_interval=60, catch_up=False)
    async with running(listener):
        # The first full sweep must be over before the sessions exist, or it learns their
        # deadlines and the sweeper archives them when they fall due.
        await until(lambda: listener.sweeps >= 1)
        after = flags_of(servers)
        # Enough users that every primary of a cluster holds some of the sessions.
        owners = await create_sessions(store, 12, 12, [0.05] * 12)
        await until(lambda: listener.archived == len(owners))
    assert [flag_set(flag) for flag in after] == [flag_set(flags) | {"E", "x"}] * len(servers)
    assert len(nodes_of(raw, owners)) == len(servers)
    assert listener.archived_by_path == {NOTIFICATION: len(owners), SWEEP: 0}
    assert listener.errors == 0


async def test_ensure_flags_merges_on_every_server_and_warns_once_where_config_is_refused(
        url: str, topology: str, servers: list[RedisServer],
        caplog: pytest.LogCaptureFixture) -> None:
    for n, server in enumerate(servers):
        with server.client() as client:
            client.config_set(NOTIFY, ["Kg", "El", "AK"][n % 3])
            client.execute_command("ACL", "SETUSER", "noconfig", "on", ">pw", "~*", "&*",
                                   "+@all", "-config")
    cluster = topology == "cluster"
    admin = SessionStore.from_url(url, cluster=cluster)
    limited = SessionStore.from_url(url.replace("redis://", "redis://noconfig:pw@"),
                                    cluster=cluster)
    try:
        with caplog.at_level(logging.WARNING, logger="luminora_redis.notifications"):
            refused = await ensure_flags(limited.client)
            quiet = await ensure_flags(limited.client, warn=False)
        assert await ensure_flags(admin.client)
        assert await ensure_flags(admin.client)  # nothing left to add
    finally:
        await admin.aclose()
        await limited.aclose()
        for server in servers:
            with server.client() as client:
                client.execute_command("ACL", "DELUSER", "noconfig")
    assert (refused, quiet) == (False, False)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "'E', 'x'" in warnings[0], warnings
    assert [flag_set(flag) for flag in flags_of(servers)] == [
        flag_set(["Kg", "El", "AK"][n % 3]) | {"E", "x"} for n in range(len(servers))]


@pytest.mark.parametrize(("rules", "says"), [
    (["&*", "-config"], ["notify-keyspace-events", "'E', 'x'", "sweeper"]),
    (["resetchannels"], ["&__keyevent@0__:expired", "sweeper"]),
], ids=["no-config", "no-channels"])
async def test_a_restricted_user_gets_one_warning_and_the_sweeper_archives(
        rules: list[str], says: list[str], private_server: Callable[..., RedisServer],
        caplog: pytest.LogCaptureFixture) -> None:
    server = private_server()
    with server.client() as admin:
        admin.execute_command("ACL", "SETUSER", "limited", "on", ">pw", "~*", "+@all", *rules)
    store = SessionStore.from_url(f"redis://limited:pw@{server.host}:{server.port}/0")
    # Frequent heartbeats: a flag keeper that ran after the refusal would warn again.
    listener = ExpiryListener(store, sweep_interval=0.05, heartbeat_interval=0.05)
    try:
        with caplog.at_level(logging.WARNING):
            async with running(listener):
                await create_sessions(store, 5, 2, [0.05] * 5)
                await until(lambda: listener.archived == 5)
    finally:
        await store.aclose()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert all(part in warnings[0] for part in says), warnings[0]
    assert listener.archived_by_path == {NOTIFICATION: 0, SWEEP: 5}
    with server.client(decode_responses=True) as admin:
        assert admin.config_get(NOTIFY)[NOTIFY] == ""


# -- the command line -----------------------------------------------------------------


def test_metrics_are_served_in_the_prometheus_text_format() -> None:
    pytest.importorskip("prometheus_client")
    from luminora_redis.listener.metrics import ListenerMetrics

    metrics = ListenerMetrics()
    metrics.archived(NOTIFICATION, 0.03)
    metrics.archived(SWEEP, 0.2)
    metrics.archived(SWEEP, 0.3)
    metrics.swept()
    metrics.error()
    metrics.reconnected()
    metrics.delivered(1)
    metrics.delivery_failed()
    metrics.backlog(DeliveryBacklog(pending=4, oldest_age_seconds=2.5, quarantined=1,
                                    quarantined_sessions=2))
    metrics.outage(True)
    metrics.outage(False)
    metrics.outage(True)
    unreadable = float(unreadable_records_total())
    server = metrics.serve("127.0.0.1", 0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics",
                                    timeout=5) as reply:
            text = reply.read().decode()
    finally:
        server.close()
    for line in ('luminora_redis_archived_total{path="notification"} 1.0',
                 'luminora_redis_archived_total{path="sweep"} 2.0',
                 'luminora_redis_archive_lag_seconds_bucket{le="0.05"} 1.0',
                 'luminora_redis_archive_lag_seconds_bucket{le="0.25"} 2.0',
                 "luminora_redis_archive_lag_seconds_count 3.0",
                 "luminora_redis_sweeps_total 1.0", "luminora_redis_errors_total 1.0",
                 "luminora_redis_reconnects_total 1.0", "luminora_redis_deliveries_total 1.0",
                 "luminora_redis_delivery_failures_total 1.0",
                 "luminora_redis_deliveries_pending 4.0",
                 "luminora_redis_delivery_oldest_age_seconds 2.5",
                 "luminora_redis_deliveries_quarantined 1.0",
                 "luminora_redis_sessions_quarantined 2.0", "luminora_redis_outage 1.0",
                 "luminora_redis_outages_total 2.0",
                 f"luminora_redis_unreadable_records_total {unreadable}"):
        assert line in text.splitlines(), line
