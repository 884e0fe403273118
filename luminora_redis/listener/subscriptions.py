"""Subscriptions to ``expired`` events: one server, or every primary of a cluster,
behind one interface (see docs/listener.md for why each works the way it does).

`subscription_for` picks the kind for a store's client. ``run()`` hands every
expired key to ``on_expired`` and calls ``on_subscribed`` whenever the
subscription is (re)established, until it fails, raising the error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from redis import exceptions as redis_errors
from redis.asyncio.cluster import RedisCluster
from redis.keyspace_notifications import KeyeventChannel

from luminora_redis.core.errors import missing_permission
from luminora_redis.io.redis_internals import (
    CountingClusterNotifications,
    pin_pubsub_connection,
    rediscover_topology,
)
from luminora_redis.io.store import SessionStore
from luminora_redis.listener.outages import UNAVAILABLE, backoff

__all__ = ["ClusterSubscription", "ServerSubscription", "Subscription", "subscription_for"]

logger = logging.getLogger("luminora_redis.listener")

OnExpired = Callable[[str], Awaitable[None]]
OnSubscribed = Callable[[], Awaitable[None]]

PING_AFTER = 5.0  # seconds of pub/sub silence before a PING, and before giving up on its reply
CLUSTER_CHECK = 0.5  # seconds between checks that every primary is subscribed
# Pause between two polls of the primaries while none had an event: the most it adds
# to the lag, against idle wake-ups (docs/listener.md).
CLUSTER_IDLE = 0.01


class Subscription(Protocol):
    """Expired events of one store's keyspace, wherever they are published."""

    async def run(self) -> None:
        """Deliver events until the subscription fails; raises its error."""


def subscription_for(store: SessionStore, name: str, on_expired: OnExpired,
                     on_subscribed: OnSubscribed, on_error: Callable[[], None]) -> Subscription:
    """The subscription that fits the store's client: cluster or single server."""
    if isinstance(store.client, RedisCluster):
        return ClusterSubscription(store.client, name, on_expired, on_subscribed, on_error)
    return ServerSubscription(store.client, on_expired, on_subscribed)


def _raise_refusal(error: redis_errors.ResponseError, db: int) -> None:
    """Raise a refusal of the ACL (the channel, SUBSCRIBE, PING) as a `MissingPermission`
    that names the rule to add; return for any other error."""
    refused = missing_permission(error, db=db)
    if refused is not None:
        raise refused from error


def _key(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


async def no_evict(connection: Any) -> None:
    """``CLIENT NO-EVICT on`` for one connection, where the server allows it."""
    try:
        await connection.send_command("CLIENT", "NO-EVICT", "on")
        await connection.read_response()
    except redis_errors.ResponseError as error:
        logger.debug("CLIENT NO-EVICT refused (%s); the connection may be evicted", error)


class ServerSubscription:
    """One pub/sub connection, whose confirmations say when it is live (redis-py
    resubscribes by itself after a short outage). The connection asks not to be
    evicted, again after every reconnect."""

    def __init__(self, client: Any, on_expired: OnExpired, on_subscribed: OnSubscribed) -> None:
        self._client = client
        self._on_expired = on_expired
        self._on_subscribed = on_subscribed

    async def _no_evict(self, connection: Any) -> None:
        # A bound method: redis-py keeps connect callbacks as weak methods.
        await no_evict(connection)

    async def run(self) -> None:
        db = int(self._client.connection_pool.connection_kwargs.get("db", 0))
        try:
            await self._listen(db)
        except redis_errors.ResponseError as error:
            _raise_refusal(error, db)
            raise

    async def _listen(self, db: int) -> None:
        pubsub = self._client.pubsub()
        try:
            # On every reconnect NO-EVICT comes before the resubscription.
            connection = await pin_pubsub_connection(pubsub, self._no_evict)
            await no_evict(connection)
            await pubsub.subscribe(str(KeyeventChannel("expired", db=db)))
            pinged = False
            while True:
                message = await pubsub.get_message(timeout=PING_AFTER)
                if message is None:
                    # A silent connection may be half-open; a PING must come back.
                    if pinged:
                        raise redis_errors.ConnectionError(
                            f"no reply to PING within {PING_AFTER} s on the pub/sub connection")
                    await pubsub.ping()
                    pinged = True
                    continue
                pinged = False
                if message["type"] == "message":
                    await self._on_expired(_key(message["data"]))
                elif message["type"] == "subscribe":
                    await self._on_subscribed()
        finally:
            await pubsub.aclose()


class ClusterSubscription:
    """One subscription per primary, following the topology. A primary that cannot be
    subscribed is retried with backoff while the others go on; Redis Cluster has db 0
    only."""

    def __init__(self, client: RedisCluster, name: str, on_expired: OnExpired,
                 on_subscribed: OnSubscribed, on_error: Callable[[], None]) -> None:
        self._client = client
        self._name = name
        self._on_expired = on_expired
        self._on_subscribed = on_subscribed
        self._on_error = on_error

    async def run(self) -> None:
        try:
            await self._listen()
        except redis_errors.ResponseError as error:
            _raise_refusal(error, 0)
            raise

    async def _listen(self) -> None:
        events = CountingClusterNotifications(self._client)
        loop = asyncio.get_running_loop()
        # A failover takes a few seconds, and an attempt costs one connect and one
        # CLUSTER SLOTS: retry often, to subscribe the promoted replica soon after.
        delays, failures = backoff(cap=1.0), 0
        primaries: frozenset[str] = frozenset()
        stale = True  # events may have been missed since the last on_subscribed
        check_at = loop.time()
        try:
            await events.subscribe(KeyeventChannel("expired", db=0))
            while True:
                if loop.time() >= check_at:
                    try:
                        primaries = await self._follow(events, primaries, stale)
                    except UNAVAILABLE as error:
                        self._on_error()
                        delay = delays.compute(failures)
                        failures += 1
                        check_at = loop.time() + delay
                        logger.warning("cannot subscribe to expired events on every primary "
                                       "(%s); retrying in %.2f s, the sweeper covers the gap",
                                       error, delay)
                    else:
                        stale, failures = False, 0
                        check_at = loop.time() + CLUSTER_CHECK
                refreshes = events.refreshes
                event = await events.get_message(timeout=0)  # every primary, no waiting
                if events.refreshes != refreshes:  # a node's connection failed
                    stale = True
                    if failures == 0:
                        check_at = loop.time()
                if event is not None:
                    await self._on_expired(_key(event.key))
                else:
                    await asyncio.sleep(CLUSTER_IDLE)
        finally:
            await events.aclose()

    async def _follow(self, events: CountingClusterNotifications, known: frozenset[str],
                      stale: bool) -> frozenset[str]:
        """Subscribe every primary that lacks the subscription; when the primaries are
        not the ``known`` ones or events may have been lost, ``on_subscribed``.
        Returns the primaries now subscribed."""
        try:
            await events.refresh_subscriptions()
        except UNAVAILABLE:
            # The client may still map slots to a primary that died: rediscover the
            # topology, so that the next attempt subscribes whoever replaced it.
            await rediscover_topology(self._client)
            raise
        primaries = frozenset(node.name for node in self._client.get_primaries())
        if stale or primaries != known:
            if known and primaries != known:
                logger.info("listener %s: the primaries changed from %s to %s", self._name,
                            ", ".join(sorted(known)), ", ".join(sorted(primaries)))
            await self._on_subscribed()
        return primaries
