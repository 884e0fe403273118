"""Failover under running listeners: a primary of a 3-primary, 3-replica cluster goes
away while sessions expire, its replica takes over, and every session reaches its
user's archive exactly once.

Each test starts its own ``LocalCluster(primaries=3, replicas=1)``: it kills a node
or swaps roles. Waits are on the cluster's own state (CLUSTER NODES, CLUSTER INFO,
CLUSTER SLOTS through ``LocalCluster``), never on sleeps.

Every session is archived exactly once either way, and every archive reaches
``on_archived``: its delivery is recorded in the archive's own atomic step and
replicated with it, so an archive whose reply died with its primary is still
delivered, by whichever listener finds it in the outbox. Deliveries are at least
once: a failover may lose a claim or an acknowledgement (redis-py's cluster client
closes connections under commands in flight, even in a CLUSTER FAILOVER); then the
lease lapses and the conversation is delivered again, with the same idempotency key.
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
from luminora_redis.listener.expiry_listener import ExpiryListener
from luminora_redis.testing import POLL_INTERVAL, LocalCluster, RedisServer

from conftest import require_redis_server, until
from listener_support import archived_sessions, create_sessions, flag_set, index_sizes, nodes_of, running

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
    # A short lease: a delivery whose claim or acknowledgement was lost in the failover
    # is delivered again within the test.
    listeners = [ExpiryListener(store, sweep_interval=0.1, name=f"L{n}", delivery_interval=0.5,
                                delivery_lease=2.0,
                                on_archived=lambda c: calls.update([c.idempotency_key]))
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
            lives = [listener.lives for listener in listeners]
            await asyncio.to_thread(take_over, cluster, victim, replica, how)

            async def all_archived() -> bool:
                return len(await archived_sessions(creator, owners.values())) == count

            await until(all_archived, timeout=60)
            await until(lambda: set(calls) >= set(owners), timeout=30)
            # Give late duplicates every chance to show up: two more full sweeps (by
            # whichever listener holds the sweep lease).
            sweeps = sum(listener.sweeps for listener in listeners)
            await until(lambda: sum(x.sweeps for x in listeners) >= sweeps + 2)
            # Both listeners follow the promoted replica: subscribed there, flags set there.
            await asyncio.wait_for(asyncio.gather(
                *(x.wait_live(after=n) for x, n in zip(listeners, lives, strict=True))), 30)
            assert all(listener.reconnects >= 1 for listener in listeners)
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
          f"delivered again: {sum(calls.values()) - len(calls)}")
    assert counts == Counter(list(owners)), "every session archived exactly once"
    # Every archive reaches the sink, at least once (a kill may lose an acknowledgement),
    # under its session id as the idempotency key.
    assert set(calls) == set(owners), "on_archived: every archive delivered"
    assert expired_left == [] and left == 0
