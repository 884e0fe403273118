"""Redis Cluster layout: a user and their sessions share one slot, and users
spread over every primary. The behavioural suite itself runs on the cluster
through the ``topology`` parameter of ``store``; this file checks what only a
cluster can show."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
from redis.asyncio.connection import AbstractConnection as AsyncConnection
from redis.connection import AbstractConnection as SyncConnection
from redis.crc import key_slot

from luminora_redis import SyncSessionStore
from luminora_redis.testing import LocalCluster

from conftest import flush_cluster, open_store, wait_until

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


class SendCounter:
    """The packed sends of every redis-py connection (both shells), by server port."""

    def __init__(self) -> None:
        self.sends: dict[int, list[bytes]] = defaultdict(list)

    def record(self, port: int, command: Any) -> None:
        data = command if isinstance(command, (bytes, str)) else b"".join(command)
        self.sends[port].append(data.encode() if isinstance(data, str) else bytes(data))

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        blocking, asynchronous = SyncConnection.send_packed_command, AsyncConnection.send_packed_command

        def blocking_send(conn: Any, command: Any, check_health: bool = True) -> None:
            self.record(conn.port, command)
            blocking(conn, command, check_health)

        async def async_send(conn: Any, command: Any, check_health: bool = True) -> None:
            self.record(conn.port, command)
            await asynchronous(conn, command, check_health)

        monkeypatch.setattr(SyncConnection, "send_packed_command", blocking_send)
        monkeypatch.setattr(AsyncConnection, "send_packed_command", async_send)


@pytest.mark.parametrize("shell", ["asyncio", "blocking"])
def test_the_sweep_batch_reaches_every_node_in_one_round_trip_each(
        cluster: LocalCluster, shell: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """get_expired_sessions asks all 1024 buckets. Grouped per node, each primary gets
    its share of the 2 * 1024 script calls in one send; one send per call would show
    hundreds of sends per node. (The blocking pipeline adds redis-py's SCRIPT EXISTS
    check before it: two round trips per node, whatever the number of calls.)"""
    store, close = open_store(shell, cluster.url, cluster=True)
    counter = SendCounter()
    clients = [server.client() for server in cluster.primaries()]
    try:
        assert store.get_expired_sessions() == []  # connects and loads the script everywhere
        for client in clients:
            client.config_resetstat()
        with monkeypatch.context() as patch:
            counter.install(patch)
            assert store.get_expired_sessions() == []
        calls = {client.connection_pool.connection_kwargs["port"]:
                 client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
                 for client in clients}
    finally:
        for client in clients:
            client.close()
        close()
    assert sum(calls.values()) == 2 * 1024  # the deadline and the manual index of every bucket
    assert all(count > 100 for count in calls.values()), calls  # buckets live on every primary
    sends = counter.sends
    assert set(sends) == set(calls), sends.keys()
    for port, packets in sends.items():
        assert [b"EVALSHA" in packet for packet in packets].count(True) == 1, (port, len(packets))
        assert len(packets) <= 2, (port, [packet[:40] for packet in packets])


def other_clients(cluster: LocalCluster) -> int:
    """Client connections of every primary, not counting the connection that asks."""
    total = 0
    for server in cluster.primaries():
        with server.client() as client:
            total += len(client.client_list(_type="normal")) - 1
    return total


@pytest.mark.parametrize("shell", ["asyncio", "blocking"])
def test_closing_a_cluster_store_closes_its_socket_to_every_node(
        cluster: LocalCluster, shell: str) -> None:
    """redis-py's blocking RedisCluster.close() leaves its node pools connected (the
    sockets then surface as ResourceWarnings whenever the collector finds them)."""
    store, close = open_store(shell, cluster.url, cluster=True)
    store.get_expired_sessions()  # one pipeline per primary: a connection to each
    assert other_clients(cluster) >= 3
    close()
    wait_until(lambda: other_clients(cluster) == 0, timeout=10)
