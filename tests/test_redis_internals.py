"""Each redis-py internal the library uses (``io/redis_internals.py``), exercised against
the installed redis-py: an upgrade that moves or changes one fails here, by name."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import hiredis
import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import NoScriptError

from luminora_redis.io import redis_internals as internals
from luminora_redis.testing import LocalCluster


@pytest.mark.asyncio
async def test_a_batch_is_read_reply_by_reply_with_error_replies_returned(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    pool = client.connection_pool
    connection = await pool.get_connection()
    try:
        key = f"internals:{uuid.uuid4().hex}"
        await connection.send_packed_command(connection.pack_commands(
            [("SET", key, "1"), ("EVALSHA", "0" * 40, 0), ("GET", key)]))
        read = internals.reply_reader(connection)
        async with internals.read_deadline(connection.socket_timeout):
            replies = [await read() for _ in range(3)]
        assert replies[0] in (True, b"OK") and replies[2] == b"1"
        assert isinstance(replies[1], NoScriptError)  # returned, not raised
        await client.delete(key)
    finally:
        await pool.release(connection)
        await client.aclose()


@pytest.mark.asyncio
async def test_the_read_deadline_times_out() -> None:
    with pytest.raises(asyncio.TimeoutError):
        async with internals.read_deadline(0.01):
            await asyncio.sleep(1)
    async with internals.read_deadline(None):
        await asyncio.sleep(0)


def test_hiredis_packing_parts() -> None:
    serializer = internals.hiredis_serializer()
    assert internals.HIREDIS_AVAILABLE and serializer is not None
    assert serializer.pack("EVALSHA", "abc", 0) == [hiredis.pack_command(("EVALSHA", "abc", 0))]
    assert serializer.pack("CLIENT NO-EVICT", bytearray(b"on")) == [
        hiredis.pack_command((b"CLIENT", b"NO-EVICT", b"on"))]
    pool = aioredis.ConnectionPool()
    base = internals.connection_class(pool)
    own = type("Own", (base,), {})
    internals.set_connection_class(pool, own)
    assert internals.connection_class(pool) is own
    assert type(pool.make_connection()) is own


@pytest.mark.asyncio
async def test_a_pinned_pubsub_connection_runs_its_callback_first_on_every_connect(
        redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    order: list[str] = []

    class First:
        async def first(self, connection: Any) -> None:
            order.append("first")

    holder = First()  # connect callbacks are weak methods: keep the object alive
    try:
        connection = await internals.pin_pubsub_connection(pubsub, holder.first)
        assert pubsub.connection is connection
        channel = f"internals:{uuid.uuid4().hex}"
        await pubsub.subscribe(channel)
        assert (await pubsub.get_message(timeout=1))["type"] == "subscribe"
        await connection.disconnect()
        await connection.connect()  # the callbacks: first, then the resubscription
        assert order == ["first"]
        assert (await pubsub.get_message(timeout=1))["type"] == "subscribe"
        await client.publish(channel, "hola")
        message = await pubsub.get_message(timeout=1)
        assert message is not None and message["data"] == b"hola"
    finally:
        await pubsub.aclose()
        await client.aclose()


def test_closed_under_recognises_only_a_transport_gone_inside_redis_or_asyncio() -> None:
    namespace: dict[str, Any] = {}
    exec(compile("def write(t):\n    t.writelines([])\n", "/x/asyncio/selector_events.py",
                 "exec"), namespace)
    with pytest.raises(AttributeError) as inside:
        namespace["write"](None)
    assert internals.closed_under(inside.value)
    with pytest.raises(AttributeError) as ours:
        None.writelines([])  # type: ignore[attr-defined]
    assert not internals.closed_under(ours.value)
    assert not internals.closed_under(ValueError("'NoneType'"))


@pytest.mark.asyncio
@pytest.mark.cluster
async def test_cluster_internals(redis_cluster: LocalCluster) -> None:
    client = RedisCluster.from_url(redis_cluster.url)
    try:
        nodes = internals.startup_nodes(client)
        assert nodes and all(isinstance(node, ClusterNode) for node in nodes.values())
        assert all(name == node.name for name, node in nodes.items())
        await client.initialize()
        await internals.rediscover_topology(client)
        assert len(client.get_primaries()) == 3

        key = f"{{internals}}:{uuid.uuid4().hex}"
        node = client.get_node_from_key(key)
        assert internals.slot_primary(client, client.keyslot(key)) == node.name
        assert {internals.slot_primary(client, slot) for slot in range(16384)} == {
            primary.name for primary in client.get_primaries()}
        replies = await internals.execute_on_node(
            node, [("SET", key, "1"), ("EVALSHA", "0" * 40, 0), ("GET", key)])
        assert replies[0] in (True, b"OK") and replies[2] == b"1"
        assert isinstance(replies[1], NoScriptError)

        assert await client.get(key) == b"1"
        assert client._initialize is False  # the flag remap_slots sets, as redis-py names it
        internals.remap_slots(client)
        assert client._initialize is True
        assert await client.get(key) == b"1"  # the next command maps the slots again
        assert client._initialize is False
        await client.delete(key)

        events = internals.CountingClusterNotifications(client)
        try:
            await events.subscribe_keyevent("expired")
            assert events.refreshes == 0
            # What get_message calls when a node's connection fails.
            await events._refresh_subscriptions_on_error()
            assert events.refreshes == 1
        finally:
            await events.aclose()
    finally:
        await client.aclose()


@pytest.mark.cluster
def test_blocking_cluster_internals(redis_cluster: LocalCluster) -> None:
    client = redis.cluster.RedisCluster.from_url(redis_cluster.url)
    try:
        assert internals.startup_nodes(client)
        key = f"{{internals}}:{uuid.uuid4().hex}"
        pool = internals.node_pool(client, key)
        node = client.get_node_from_key(key)
        assert internals.slot_primary(client, client.keyslot(key)) == node.name
        assert pool.connection_kwargs["port"] == node.port
        connection = pool.get_connection()
        try:
            connection.send_command("SET", key, "1")
            assert connection.read_response() in (True, b"OK")  # the node serves the key
        finally:
            pool.release(connection)
        client.delete(key)
    finally:
        client.close()
