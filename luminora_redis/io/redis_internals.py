"""Every redis-py internal the library reaches into, each behind one small function.

redis-py gives no public way to do a few things the stores and the listener
need: read a batch's replies without per-reply bookkeeping, write one batch to
one cluster node, look up a slot's primary, have a cluster client map its slots again, pin a pub/sub
connection, learn that a cluster subscription was refreshed, recognise a
redis-py bug by its traceback. Each accessor below says what it reaches into,
why, and on which redis-py versions it was checked; the rest of the library
calls only these, and ``tests/test_redis_internals.py`` exercises each one
against the installed redis-py, so an upgrade that breaks one fails loudly
there rather than deep inside a batch or a failover.

Not here, because they are public redis-py API: ``Connection.pack_commands``,
``send_packed_command``, ``read_response``, ``disconnect``; ``ConnectionPool``'s
``get_connection``, ``release``, ``connection_kwargs``;
``Connection.register_connect_callback``, ``PubSub.on_connect``,
``RedisCluster.get_node_from_key``, ``get_primaries``, ``keyslot``,
``Script.sha``. The one pydantic internal (setting ``__pydantic_fields_set__``
and its siblings on a hot-path model) stays in ``core/models.py``'s
``trusted``, below the io layer; ``tests/test_operations.py`` pins it against
``model_construct``.

"Checked on" names the redis-py releases whose source was read and whose
tests passed with the accessor: the project requires redis>=8.0.
"""

from __future__ import annotations

import traceback
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from redis.asyncio.cluster import PipelineCommand
from redis.asyncio.connection import async_timeout as _async_timeout  # type: ignore[attr-defined]
from redis.asyncio.keyspace_notifications import AsyncClusterKeyspaceNotifications
from redis.exceptions import SlotNotCoveredError
from redis.utils import HIREDIS_AVAILABLE

__all__ = ["HIREDIS_AVAILABLE", "CountingClusterNotifications", "closed_under",
           "connection_class", "execute_on_node", "hiredis_serializer", "node_pool",
           "pin_pubsub_connection", "read_deadline", "rediscover_topology", "remap_slots",
           "reply_reader", "set_connection_class", "slot_primary", "startup_nodes"]

# -- batches on one connection (io/autopipeline.py, io/sync_runner.py) ---------------------


def reply_reader(connection: Any) -> Callable[[], Awaitable[Any]]:
    """How to read one reply of a batch on an asyncio connection: its parser's own
    ``read_response`` (``Connection._parser``).

    ``Connection.read_response`` wraps that read in per-call work (a timeout
    context, a host string, health-check bookkeeping) that costs several times
    the read itself, once per reply of the batch; the batch's whole read is
    bounded by `read_deadline` instead. The parser returns a Redis error reply
    as a ``ResponseError`` object rather than raising it: the reply of its
    call. A connection without such a parser falls back to its own
    ``read_response``. Checked on 8.1.0 (``_RESP2Parser``, ``_RESP3Parser``,
    ``_AsyncHiredisParser``).
    """
    read = getattr(getattr(connection, "_parser", None), "read_response", None)
    if read is None:
        read = connection.read_response
    return read  # type: ignore[no-any-return]


def read_deadline(seconds: float | None) -> AbstractAsyncContextManager[Any]:
    """A context that times out after ``seconds`` (None: never), as redis-py's own reads
    do: ``redis.asyncio.connection.async_timeout``, ``asyncio.timeout`` on Python
    3.11.3+ and the ``async_timeout`` package before. Imported from redis-py so that
    the library needs no dependency of its own for Python 3.10. Checked on 8.1.0."""
    context: AbstractAsyncContextManager[Any] = _async_timeout(seconds)
    return context


async def execute_on_node(node: Any, commands: Iterable[Sequence[Any]]) -> list[Any]:
    """Send ``commands`` to one asyncio ``ClusterNode`` as one pipelined write; each
    command's reply, or its error, in order.

    Reaches into ``ClusterNode.execute_pipeline`` and ``PipelineCommand`` (its
    ``result``), redis-py's per-node step under ``ClusterPipeline``: the public
    cluster pipeline retries a whole failed pipeline, replaying writes. Checked on
    8.1.0 (8.1 also PREPAREs HIMPORT fieldsets there, which EVALSHA never needs).
    """
    pipeline = [PipelineCommand(index, *command) for index, command in enumerate(commands)]
    await node.execute_pipeline(pipeline)
    return [command.result for command in pipeline]


def remap_slots(client: Any) -> None:
    """Have an asyncio ``RedisCluster`` rediscover its slot map before its next command,
    as it does itself after a connection error of its own (``RedisCluster._initialize``).

    A batch written around the client (`execute_on_node`) that lost its
    connection may have lost a node; without this the client would keep routing
    to it until one of its own commands failed. Checked on 8.1.0.
    """
    client._initialize = True


def node_pool(client: Any, key: Any) -> Any:
    """The connection pool of the node that serves ``key``, for a blocking ``RedisCluster``:
    ``ClusterNode.redis_connection.connection_pool``. The blocking cluster pipeline
    refuses EVALSHA, so a batch goes out on that pool's connection. Checked on 8.1.0."""
    return client.get_node_from_key(key).redis_connection.connection_pool


def startup_nodes(client: Any) -> dict[str, Any]:
    """A cluster client's startup nodes by name (``nodes_manager.startup_nodes``), asyncio
    or blocking: the nodes it was given, which ``get_nodes`` omits until it has
    connected (to name the cluster, and to close every socket it may hold).
    Checked on 8.1.0."""
    return client.nodes_manager.startup_nodes  # type: ignore[no-any-return]


def slot_primary(client: Any, slot: int) -> str | None:
    """The name of the primary that serves ``slot`` in a cluster client's slot map
    (``nodes_manager.get_node_from_slot``), asyncio or blocking; None when no node does
    (SlotNotCoveredError). redis-py's public lookup takes a key, not a slot; the
    per-node hint keys (``io/hint_slots.py``) look slots up. Checked on 8.1.0."""
    try:
        node = client.nodes_manager.get_node_from_slot(slot)
    except SlotNotCoveredError:
        return None
    return str(node.name)


async def rediscover_topology(client: Any) -> None:
    """Have an asyncio ``RedisCluster`` map its slots and nodes again now
    (``nodes_manager.initialize``), e.g. after a primary died: until then it keeps
    naming the dead primary, and a subscription to every primary keeps failing on it.
    Checked on 8.1.0."""
    await client.nodes_manager.initialize()


# -- hiredis packing (io/packing.py) ----------------------------------------------------


def hiredis_serializer() -> Any:
    """redis-py's hiredis command packer (``redis.connection.HiredisRespSerializer``,
    which converts a multi-word command name and bytearray or memoryview arguments);
    None without hiredis. The blocking client uses it; the asyncio one never does.
    Checked on 8.1.0."""
    if not HIREDIS_AVAILABLE:
        return None
    from redis.connection import HiredisRespSerializer

    return HiredisRespSerializer()


def connection_class(pool: Any) -> type:
    """The class a connection pool makes its new connections of
    (``ConnectionPool.connection_class``). Checked on 8.1.0."""
    return pool.connection_class  # type: ignore[no-any-return]


def set_connection_class(pool: Any, cls: type) -> None:
    """Make ``pool``'s new connections of ``cls`` (connections it holds stay as they are).
    The class is a constructor argument only; the pool reads the attribute each time
    it makes a connection. Checked on 8.1.0."""
    pool.connection_class = cls


# -- pub/sub (listener/subscriptions.py) -------------------------------------------------


async def pin_pubsub_connection(pubsub: Any, first: Callable[[Any], Awaitable[None]]) -> Any:
    """Give an asyncio ``PubSub`` its connection now, with ``first`` run before the
    resubscription each time it (re)connects; the connection.

    ``PubSub.connection`` is normally taken by its first command, which also
    registers ``on_connect`` (the resubscription) as a connect callback; taking it
    here lets ``first`` (``CLIENT NO-EVICT on``) come before it. redis-py keeps
    connect callbacks as weak methods: ``first`` must be a bound method whose
    object outlives the subscription. Checked on 8.1.0.
    """
    connection = await pubsub.connection_pool.get_connection()
    pubsub.connection = connection
    connection.register_connect_callback(first)
    connection.register_connect_callback(pubsub.on_connect)
    return connection


class CountingClusterNotifications(AsyncClusterKeyspaceNotifications):
    """redis-py's subscription on every cluster primary, counting how often it was
    refreshed: a changed count is how the listener learns that a node's connection
    failed and its events may have been lost.

    Relies on ``get_message`` calling ``refresh_subscriptions`` (through
    ``_refresh_subscriptions_on_error``) when a node's connection fails, and on
    nothing else telling so. Checked on 8.1.0.
    """

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.refreshes = 0

    async def refresh_subscriptions(self) -> None:
        """Subscribe new primaries and broken connections again (see the base class)."""
        self.refreshes += 1
        await super().refresh_subscriptions()  # type: ignore[no-untyped-call]

    async def aclose(self) -> None:
        """Close every node's subscription."""
        await super().aclose()  # type: ignore[no-untyped-call]


# -- a redis-py bug -------------------------------------------------------------------------


def closed_under(error: BaseException) -> bool:
    """Whether ``error`` is the asyncio transport failing because redis-py closed the
    connection under a command in flight.

    redis-py 8.1 lets that surface as the AttributeError or TypeError of a
    transport whose internals are gone (``'NoneType' object has no attribute
    'writelines'``) instead of ConnectionError (redis/redis-py#4287): the last
    frame of its traceback lies in redis-py or asyncio. Its cluster client closes
    every connection whenever one command meets CLUSTERDOWN or one pipeline a
    connection error, so during a failover it happens to commands on healthy
    nodes too. Checked on 8.1.0.
    """
    if not isinstance(error, (AttributeError, TypeError)) or "'NoneType'" not in str(error):
        return False
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and any(part in frames[-1].filename
                                for part in ("/redis/", "/asyncio/"))
