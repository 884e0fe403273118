"""Reading the server's identity (``HELLO``, else ``INFO server``) through either kind of client.

A store asks once, at first use, before its first script runs (see
``StoreBase._use_identity``): the answer decides whether the server is
supported and how the scripts are sent (``core.server``). On a cluster every
primary is asked and the oldest one counts. Nothing here is on the hot path.

Two refusals are told apart:

- a server that does not know ``HELLO``, which redis-py sends first on every
  connection to speak RESP3: older than Redis 6.0, so `UnsupportedServer`;
- a server that refuses ``HELLO`` (renamed away; the ACL never refuses it):
  the identity is asked of ``INFO server`` instead; should that be refused too
  (a restricted ACL user without ``+info``), the check is skipped with one INFO
  log line and the scripts are sent as written, and an old server shows itself
  through its own script errors.

``HELLO`` comes first because every user may send it: asking ``INFO`` first
would leave a refusal in the ``ACL LOG`` of every least-privilege user at each
store's first use. Valkey names itself there (``server``, ``version``) as it
does in ``INFO``.
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
    parse_hello,
    parse_identity,
    script_sources_for,
    without_hello,
)

__all__ = ["identity_async", "identity_blocking", "scripts_blocking"]

logger = logging.getLogger("luminora_redis.server_identity")


def _oldest(found: Iterable[ServerIdentity]) -> ServerIdentity:
    return min(found, key=lambda identity: identity.version)


def _refusal(error: ResponseError) -> ResponseError:
    """``error`` when it is a refusal (no permission, or an unknown command: renamed away),
    else re-raised; a refused ``HELLO`` (a server older than Redis 6.0) is UnsupportedServer."""
    unsupported = without_hello(error)
    if unsupported is not None:
        raise unsupported from error
    if not isinstance(error, NoPermissionError) and "unknown command" not in str(error).lower():
        raise error
    return error


def _hello_refused(error: ResponseError) -> ResponseError:
    """``error`` when ``HELLO`` was refused or is unknown (INFO may still tell the version:
    a server that lacks ``HELLO`` is judged once INFO is refused too), else re-raised."""
    if without_hello(error) is None:
        return _refusal(error)
    return error


def _skipped(hello: ResponseError, info: ResponseError) -> None:
    unsupported = without_hello(hello)
    if unsupported is not None:
        raise unsupported from hello
    logger.info("the server refused HELLO (%s) and INFO server (%s): its version is not "
                "checked and the scripts are sent with their flags; grant +info to have it "
                "checked", hello, info)


async def identity_async(client: Any) -> ServerIdentity | None:
    """The identity of the server behind an asyncio client (a cluster: its oldest primary),
    or None when HELLO and INFO are refused. UnsupportedServer when HELLO is unknown and
    INFO is refused (an unknown HELLO with INFO answering yields the old version)."""
    targets: list[dict[str, Any]] = [{}]
    if isinstance(client, AsyncCluster):
        await client.initialize()
        targets = [{"target_nodes": node} for node in client.get_primaries()]
    try:
        return _oldest([parse_hello(await client.execute_command("HELLO", **target))
                        for target in targets])
    except ResponseError as error:
        refused = _hello_refused(error)
    try:
        return _oldest([parse_identity(await client.info("server", **target))
                        for target in targets])
    except ResponseError as error:
        _skipped(refused, _refusal(error))
    return None


def identity_blocking(client: Any) -> ServerIdentity | None:
    """The blocking twin of `identity_async`."""
    targets: list[dict[str, Any]] = [{}]
    if isinstance(client, RedisCluster):
        cluster: Any = client  # redis-py leaves the blocking cluster's methods untyped
        targets = [{"target_nodes": node} for node in cluster.get_primaries()]
    try:
        return _oldest([parse_hello(client.execute_command("HELLO", **target))
                        for target in targets])
    except ResponseError as error:
        refused = _hello_refused(error)
    try:
        return _oldest([parse_identity(client.info("server", **target)) for target in targets])
    except ResponseError as error:
        _skipped(refused, _refusal(error))
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
