"""Redis Cluster layout: a user and their sessions share one slot, and users
spread over every primary. The behavioural suite itself runs on the cluster
through the ``topology`` parameter of ``store``; this file checks what only a
cluster can show."""

from __future__ import annotations

from collections import defaultdict

import pytest
from redis.crc import key_slot

from luminora_redis import SyncSessionStore
from luminora_redis.testing import LocalCluster

from conftest import flush_cluster

pytestmark = pytest.mark.cluster

USERS = [f"user-{n}" for n in range(60)] + ["a{b}c", "x:y", "Ünïcödé😀"]


@pytest.fixture
def cluster(redis_cluster: LocalCluster) -> LocalCluster:
    flush_cluster(redis_cluster)
    return redis_cluster


def fill(store: SyncSessionStore) -> None:
    for user in USERS:
        sid = store.create_session(user, "alicia", {"ttl": 60, "max_idle": 30})
        store.chat_turn(sid, [("user", "hola"), ("assistant", "¡hola!")])
        store.update_affinity(user, "alicia", 10)
        store.save_fact(user, "personal_info", "name", user)
        store.save_episode(user, "milestone", "met", "first chat", importance=7)
        store.end_session(store.create_session(user, "alicia"))


def keys_by_node(cluster: LocalCluster) -> dict[int, list[bytes]]:
    found = {}
    for server in cluster.primaries():
        with server.client() as client:
            found[server.port] = list(client.scan_iter(count=1000))
    return found


def test_users_land_on_every_primary_and_each_users_keys_share_one_slot(
        cluster: LocalCluster) -> None:
    with SyncSessionStore.from_url(cluster.url, cluster=True) as store:
        fill(store)
    by_node = keys_by_node(cluster)
    assert len(by_node) == 3
    assert all(len(keys) > 50 for keys in by_node.values()), {
        port: len(keys) for port, keys in by_node.items()}
    slots_of_tag: dict[bytes, set[int]] = defaultdict(set)
    for keys in by_node.values():
        for key in keys:
            if b"{" in key:
                tag = key[key.index(b"{"):key.index(b"}") + 1]
                slots_of_tag[tag].add(key_slot(key))
    assert slots_of_tag and all(len(slots) == 1 for slots in slots_of_tag.values())


def test_the_sweep_batch_reaches_every_node_in_one_pipeline_each(cluster: LocalCluster) -> None:
    """get_expired_sessions asks all 1024 buckets: with per-node pipelines that is one
    round trip per primary, seen as exactly 1024 script calls in the servers' stats."""
    with SyncSessionStore.from_url(cluster.url, cluster=True) as store:
        store.create_session("warm-up", "alicia")
        clients = [server.client() for server in cluster.primaries()]
        try:
            for client in clients:
                client.config_resetstat()
            assert store.get_expired_sessions() == []
            calls = sum(client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
                        for client in clients)
        finally:
            for client in clients:
                client.close()
    assert calls == 2 * 1024  # the deadline and the manual index of every bucket
