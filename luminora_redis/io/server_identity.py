"""Reading the server's identity (``INFO server``) through either kind of client.

A store asks once, at first use, before its first script runs (see
``StoreBase.use_identity``): the answer decides whether the server is
supported and how the scripts are sent (``core.server``). On a cluster every
primary is asked and the oldest one counts. Nothing here is on the hot path.

Two refusals are told apart:

- a server that does not know ``HELLO``, which redis-py sends first on every
  connection to speak RESP3: older than Redis 6.0, so `UnsupportedServer`;
- a server that refuses ``INFO`` (a restricted ACL user without ``+info``, or
  the command renamed away): the check is skipped with one INFO log line and
  the scripts are sent as written; an old server then shows itself through
  its own script errors.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from redis.asyncio.cluster import RedisCluster as AsyncCluster
from redis.cluster import RedisCluster
from redis.exceptions import NoPermissionError, ResponseError

from luminora_redis.core.server import (
    ServerIdentity,
    check_supported,
    parse_identity,
    script_sources_for,
    without_hello,
)

__all__ = ["identity_async", "identity_blocking", "scripts_blocking"]

logger = logging.getLogger("luminora_redis.server_identity")


def _oldest(replies: Iterable[Any]) -> ServerIdentity:
    return min((parse_identity(reply) for reply in replies), key=lambda found: found.version)


def _unknown(error: ResponseError) -> None:
    """Re-raise ``error`` unless it is a refusal of ``INFO`` (then log that the check is
    skipped); a refused ``HELLO`` becomes UnsupportedServer."""
    unsupported = without_hello(error)
    if unsupported is not None:
        raise unsupported from error
    text = str(error).lower()
    if not isinstance(error, NoPermissionError) and "unknown command" not in text:
        raise error
    logger.info("the server refused INFO server (%s): its version is not checked and the "
                "scripts are sent with their flags; grant +info to have it checked", error)


async def identity_async(client: Any) -> ServerIdentity | None:
    """The identity of the server behind an asyncio client (a cluster: its oldest primary),
    or None when INFO is refused. Raises UnsupportedServer when HELLO is refused."""
    try:
        if isinstance(client, AsyncCluster):
            await client.initialize()
            return _oldest([await client.info("server", target_nodes=node)
                            for node in client.get_primaries()])
        return _oldest([await client.info("server")])
    except ResponseError as error:
        _unknown(error)
    return None


def identity_blocking(client: Any) -> ServerIdentity | None:
    """The blocking twin of `identity_async`."""
    try:
        if isinstance(client, RedisCluster):
            cluster: Any = client  # redis-py leaves the blocking cluster's methods untyped
            return _oldest([cluster.info("server", target_nodes=node)
                            for node in cluster.get_primaries()])
        return _oldest([client.info("server")])
    except ResponseError as error:
        _unknown(error)
    return None


def scripts_blocking(client: Any) -> dict[str, Any]:
    """Every script registered on a blocking client as its server is sent them, for a
    runner outside a store (``migration``); UnsupportedServer on too old a server."""
    identity = identity_blocking(client)
    if identity is not None:
        check_supported(identity)
    flags = identity is None or identity.script_flags
    return {name: client.register_script(source)
            for name, source in script_sources_for(flags).items()}
