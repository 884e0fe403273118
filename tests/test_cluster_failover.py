"""Failover under running listeners: a primary of a 3-primary, 3-replica cluster goes
away while sessions expire, its replica takes over, and every session reaches its
user's archive exactly once.

Each test starts its own ``LocalCluster(primaries=3, replicas=1)``: it kills a node
or swaps roles. Waits are on the cluster's own state (CLUSTER NODES, CLUSTER INFO,
CLUSTER SLOTS through ``LocalCluster``), never on sleeps.

Every session is archived exactly once either way. ``on_archived`` is exactly once
after CLUSTER FAILOVER; after a kill it is at most once: an archive script that ran on
the dying primary (and reached its replica) but whose reply did not reach the
listener archived its session unseen, so nobody calls the hook for it. That happened
in about one kill in four, for one or two sessions. Replication is asynchronous too,
so a primary killed between running an archive script and sending its effects to the
replica would lose that archive, and the promoted replica would archive the session
again (one record, two hook calls); that window is far too short for these tests to
hit, and they assert no duplicate.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import redis
import redis.cluster
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from luminora_redis import SessionStore
from luminora_redis.listener import ExpiryListener
from luminora_redis.testing import POLL_INTERVAL, LocalCluster, RedisServer

from conftest import require_redis_server
from listener_support import (
    archived_sessions,
    create_sessions,
    flag_set,
    index_sizes,
    nodes_of,
    running,
    until,
)

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

CHANNEL = "__keyevent@0__:expired"


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    require_redis_server()
    with LocalCluster(primaries=3, replicas=1) as started:
        yield started


def failover_client(url: str) -> RedisCluster:
    """A cluster client that rides out a failover: redis-py's default retries (10, at most
    1 s apart) may run out before a replica is promoted; these last about 10 s."""
    return RedisCluster.from_url(
        url, retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), 20))


def replica_of(cluster: LocalCluster, primary: RedisServer) -> RedisServer:
    """The running replica that replicates ``primary``."""
    for server in cluster.servers:
        if server is primary or not server.running:
            continue
        with server.client(decode_responses=True) as client:
            info = client.info("replication")
        if info["role"] == "slave" and int(info["master_port"]) == primary.port:
            return server
    raise AssertionError(f"no replica of {primary!r}")


def take_over(cluster: LocalCluster, primary: RedisServer, replica: RedisServer,
              how: str, timeout: float = 30.0) -> None:
    """Make ``replica`` the primary of ``primary``'s slots, by killing ``primary`` or by
    CLUSTER FAILOVER, and wait until every live node says so (CLUSTER NODES) and the
    cluster is healthy again (``cluster_state:ok`` everywhere, every slot on a live
    primary)."""
    if how == "kill":
        primary.kill()
    else:
        with replica.client() as client:
            client.execute_command("CLUSTER", "FAILOVER")
    deadline = time.monotonic() + timeout
    while not (replica in (primaries := cluster.primaries()) and primary not in primaries):
        if time.monotonic() > deadline:
            raise AssertionError(f"{replica!r} did not take over from {primary!r}")
        time.sleep(POLL_INTERVAL)
    cluster.wait_until_ok(timeout=max(1.0, deadline - time.monotonic()))


@pytest.mark.parametrize("how", ["kill", "cluster-failover"])
async def test_a_failover_while_sessions_expire_archives_each_exactly_once(
        how: str, cluster: LocalCluster) -> None:
    count = 150
    calls: Counter[str] = Counter()
    stores = [SessionStore(failover_client(cluster.url)) for _ in range(3)]
    listeners = [ExpiryListener(store, sweep_interval=0.1, name=f"L{n}",
                                on_archived=lambda c: calls.update([c.session_id]))
                 for n, store in enumerate(stores[:2])]
    creator = stores[2]
    raw = redis.cluster.RedisCluster.from_url(cluster.url)
    rng = random.Random(3)
    try:
        async with running(*listeners):
            owners = await create_sessions(creator, count, 30,
                                           [rng.uniform(0.5, 2.5) for _ in range(count)])
            per_node = Counter(node for sid in owners for node in nodes_of(raw, [sid]))
            assert len(per_node) == 3, "the sessions must live on every primary"
            victim_name, _ = per_node.most_common(1)[0]
            victim = next(s for s in cluster.primaries() if victim_name.endswith(f":{s.port}"))
            replica = replica_of(cluster, victim)
            await until(lambda: sum(calls.values()) >= 20)
            await asyncio.to_thread(take_over, cluster, victim, replica, how)

            async def all_archived() -> bool:
                return len(await archived_sessions(creator, owners.values())) == count

            await until(all_archived, timeout=30)
            # Give late duplicates every chance to show up: two more sweeps each.
            sweeps = [listener.sweeps for listener in listeners]
            await until(lambda: all(x.sweeps >= s + 2
                                    for x, s in zip(listeners, sweeps, strict=True)))
            # Both listeners follow the promoted replica: subscribed there, flags set there.
            await until(lambda: all(listener.reconnects >= 1 for listener in listeners))
            with replica.client(decode_responses=True) as promoted:
                await until(lambda: int(dict(promoted.pubsub_numsub(CHANNEL))[CHANNEL]) == 2)
                assert flag_set(promoted.config_get("notify-keyspace-events")[
                    "notify-keyspace-events"]) >= {"E", "x"}
        counts = await archived_sessions(creator, owners.values())
        expired_left = await creator.get_expired_sessions()
        left = await asyncio.to_thread(index_sizes, raw)
    finally:
        raw.close()
        for store in stores:
            await store.client.aclose()
    print(f"\n{how}: victim {victim.port} held {per_node[victim_name]} sessions; "
          f"{[x.archived_by_path for x in listeners]}, reconnects "
          f"{[x.reconnects for x in listeners]}, errors {[x.errors for x in listeners]}, "
          f"on_archived missed for {count - len(calls)}")
    assert counts == Counter(list(owners)), "every session archived exactly once"
    assert max(calls.values()) == 1 and set(calls) <= set(owners), "on_archived never twice"
    assert sum(calls.values()) == sum(listener.archived for listener in listeners)
    if how == "cluster-failover":
        assert calls == Counter(list(owners)), "on_archived: exactly one call per session"
    assert expired_left == [] and left == 0
