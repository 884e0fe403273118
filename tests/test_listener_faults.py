"""Real faults under the listener: a SIGKILLed CLI, a restarted Redis, a dropped connection.

The kill and restart tests start a redis-server of their own (``private_server``),
since they kill it or let a listener process change its settings. The dropped
connection runs on the shared server and on the shared cluster (on every primary
at once), whose notification flags it puts back afterwards. Failover is in
``test_cluster_failover.py``.
"""

from __future__ import annotations

import asyncio
import random
import signal
import urllib.request
from collections import Counter
from collections.abc import Iterator

import pytest
import redis

from luminora_redis import ArchivedConversation, SessionStore, SyncSessionStore
from luminora_redis.listener.expiry_listener import NOTIFICATION, ExpiryListener
from luminora_redis.testing import RedisServer

from conftest import until, wait_until
from listener_support import (
    ListenProcess,
    archived_sessions,
    create_sessions,
    flags_restored,
    index_sizes,
    running,
)

pytestmark = pytest.mark.slow

def metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#"))


def test_a_listener_killed_in_a_storm_loses_nothing_and_duplicates_nothing(
        private_server: RedisServer) -> None:
    pytest.importorskip("prometheus_client")
    count = 300
    rng = random.Random(7)
    store = SyncSessionStore.from_url(private_server.url)
    raw = private_server.client()
    first = ListenProcess("--url", private_server.url, "--sweep-interval", "0.1")
    second: ListenProcess | None = None
    try:
        first.wait_started()
        owners = {}
        for n in range(count):
            user = f"user-{n % 30}"
            sid = store.create_session(user, "alicia", {"ttl": rng.uniform(0.1, 2.5)})
            store.append_message(sid, "user", f"message {n}")
            owners[sid] = user
        wait_until(lambda: len(first.archived()) >= 50, timeout=15)
        first.process.send_signal(signal.SIGKILL)
        assert first.finish() == -signal.SIGKILL
        # Sessions expire while no listener runs.
        wait_until(lambda: len(store.get_expired_sessions()) >= 20, timeout=15)

        second = ListenProcess("--url", private_server.url, "--sweep-interval", "0.1",
                               "--metrics-port", "0", "--log-level", "info")
        second.wait_started()
        wait_until(lambda: index_sizes(raw) == 0 and not store.get_expired_sessions(),
                   timeout=20)
        port = int(second.find(r"metrics on http://127\.0\.0\.1:(\d+)/metrics").group(1))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            metrics = reply.read().decode()
        second.process.send_signal(signal.SIGTERM)
        assert second.finish() == 0, second.log()
    finally:
        for process in (first, second):
            if process is not None and process.process.poll() is None:
                process.process.kill()
                process.finish()
        store.close()
        raw.close()

    logged = Counter(first.archived() + second.archived())
    print(f"\nkilled after {len(first.archived())}, the restarted listener archived "
          f"{len(second.archived())}")
    assert max(logged.values()) == 1, "a session was archived twice"
    assert set(logged) <= set(owners)
    with SyncSessionStore.from_url(private_server.url) as check:
        records = Counter(c.session_id for user in set(owners.values())
                          for c in check.get_archived_conversations(user, limit=None))
        assert all(c.message_count == 1 for user in set(owners.values())
                   for c in check.get_archived_conversations(user, limit=None))
    assert records == Counter(list(owners)), "every session archived exactly once"
    assert metric(metrics, "luminora_redis_archived_total") == len(second.archived())
    assert metric(metrics, "luminora_redis_sweeps_total") > 0
    assert "luminora_redis_archive_lag_seconds_bucket" in metrics
    assert "luminora_redis_reconnects_total" in metrics
    assert "luminora_redis_errors_total" in metrics
    assert second.find(r"SIGTERM received, stopping") and second.find(r"listener \S+ stopped")


async def test_redis_restarted_under_a_running_listener_loses_nothing(
        private_server: RedisServer) -> None:
    count = 150
    rng = random.Random(11)
    calls: Counter[str] = Counter()
    keys: set[tuple[str, str]] = set()

    def sink(conversation: ArchivedConversation) -> None:
        calls.update([conversation.session_id])
        keys.add((conversation.session_id, conversation.idempotency_key))

    store = SessionStore.from_url(private_server.url)
    creator = SessionStore.from_url(private_server.url)
    # A short lease: a delivery whose claim or acknowledgement died with the server is
    # delivered again within the test.
    listener = ExpiryListener(store, sweep_interval=0.1, delivery_interval=0.5,
                              delivery_lease=2.0, on_archived=sink)

    async def all_archived() -> bool:
        counts = await archived_sessions(creator, owners.values())
        return len(counts) == count

    try:
        async with running(listener):
            owners = await create_sessions(creator, count, 15,
                                           [rng.uniform(0.1, 3.0) for _ in range(count)])
            await until(lambda: listener.archived >= 30)
            lives = listener.lives
            await asyncio.to_thread(private_server.kill)
            await asyncio.sleep(0.5)  # the outage itself: deadlines pass while Redis is down
            await asyncio.to_thread(private_server.restart)
            # A pooled connection of the test's own client may be stale once.
            await until(lambda: reachable(creator))
            await until(all_archived, timeout=30)
            await asyncio.wait_for(listener.wait_live(after=lives), 30)
            assert listener.reconnects >= 1
            with private_server.client(decode_responses=True) as client:
                # The restart dropped the CONFIG SET; the listener set the flags again.
                await until(lambda: set(client.config_get(
                    "notify-keyspace-events")["notify-keyspace-events"]) >= {"E", "x"})
            late = await creator.create_session("carlos", "alicia", {"ttl": 0.05})
            await until(lambda: calls[late] == 1)
            await until(lambda: set(calls) >= set(owners), timeout=30)
        counts = await archived_sessions(creator, owners.values())
        assert await creator.get_expired_sessions() == []
    finally:
        await store.aclose()
        await creator.aclose()
    print(f"\nafter the restart: {listener.archived_by_path}, errors {listener.errors}, "
          f"reconnects {listener.reconnects}, hook calls {sum(calls.values())}")
    assert counts == Counter(list(owners)), "every session archived exactly once"
    # Every archive reaches the sink, also one whose archive reply died with the server:
    # its delivery was recorded in the same atomic step. At least once, with one key.
    assert set(calls) == {*owners, late}
    assert all(sid == key for sid, key in keys)


async def reachable(store: SessionStore) -> bool:
    try:
        return bool(await store.client.ping())
    except redis.ConnectionError:
        return False


@pytest.fixture
def notifying(servers: list[RedisServer]) -> Iterator[list[RedisServer]]:
    """conftest's ``servers`` (the shared server, or the shared cluster's primaries),
    their notification flags put back afterwards."""
    with flags_restored(servers):
        yield servers


async def test_a_dropped_notification_connection_is_reestablished(
        topology: str, notifying: list[RedisServer]) -> None:
    url = notifying[0].url
    store = SessionStore.from_url(url, cluster=topology == "cluster")
    # Only notifications can archive within the test once the first sweep is done: no
    # full sweep for a minute, and no catch-up sweep after a resubscription.
    listener = ExpiryListener(store, sweep_interval=60, catch_up=False)
    try:
        async with running(listener):
            # redis-py may be re-establishing a cluster node's subscription by itself.
            await until(lambda: all(pubsub_clients(server) == 1 for server in notifying))
            lives = listener.lives
            for server in notifying:
                with server.client() as admin:
                    assert admin.client_kill_filter(_type="pubsub") == 1
            # Live again: resubscribed everywhere and the flags merged.
            await asyncio.wait_for(listener.wait_live(after=lives), 30)
            assert listener.reconnects >= 1
            # Enough users that every primary of a cluster holds some of the sessions.
            owners = await create_sessions(store, 12, 12, [0.05] * 12)
            await until(lambda: listener.archived == len(owners))
        counts = await archived_sessions(store, owners.values())
    finally:
        await store.aclose()
    assert listener.archived_by_path[NOTIFICATION] == len(owners)
    assert counts == Counter(list(owners))


def pubsub_clients(server: RedisServer) -> int:
    with server.client() as admin:
        return len(admin.client_list(_type="pubsub"))
