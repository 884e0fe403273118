"""AsyncStoreBase: what the asyncio store stands on, below its operation methods.

The asyncio client it takes, its one runner, its first use (``context``: the
server's identity, the acknowledgement check, the key layout agreed with Redis,
the server findings, ``check_server``) and ``run``, which hands an operation to
the runner; closing an asyncio client with its sockets. ``SessionStore`` (``io/store.py``)
adds the public methods; ``SyncStoreBase`` (``io/sync_base.py``) is the
blocking twin of this class.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from luminora_redis.core.context import Context
from luminora_redis.core.models import ServerFinding
from luminora_redis.core.scripts import Op
from luminora_redis.core.settings import StoreSettings
from luminora_redis.io.acknowledge import aof_refusal
from luminora_redis.io.base import StoreBase, check_flag, claim_layout
from luminora_redis.io.redis_internals import startup_nodes
from luminora_redis.io.runner import AsyncRunner
from luminora_redis.io.sentinel_url import sentinel_clients
from luminora_redis.io.server_checks import findings_for, policies_async, warn_findings
from luminora_redis.io.server_identity import identity_async

__all__ = ["AsyncStoreBase", "close_client"]

T = TypeVar("T")


async def close_client(client: aioredis.Redis | RedisCluster) -> None:
    """Close an asyncio client and its sockets. After a connection error redis-py's
    ``RedisCluster`` marks itself for re-initialisation, and ``aclose()`` then returns
    without closing anything: every node is disconnected here as well."""
    await client.aclose()
    for sentinel in sentinel_clients(client):
        await sentinel.aclose()
    if isinstance(client, RedisCluster):
        nodes = [*client.get_nodes(), *startup_nodes(client).values()]
        await asyncio.gather(*(node.disconnect() for node in nodes))


class AsyncStoreBase(StoreBase):
    """The asyncio client, its runner, first use, ``run`` and ``check_server``; the base of
    ``SessionStore``."""

    _client_types = (aioredis.Redis, RedisCluster)
    _client_kinds = "an asyncio client, redis.asyncio.Redis or redis.asyncio.cluster.RedisCluster"
    _client_hint = ("a blocking client (redis.Redis) goes to SyncSessionStore; "
                   "SessionStore.from_url(url) makes the right client")

    def __init__(self, client: aioredis.Redis | RedisCluster,
                 settings: StoreSettings | None = None, *, autopipeline: bool = True,
                 **overrides: Any) -> None:
        check_flag(autopipeline, "autopipeline")
        super().__init__(client, settings, **overrides)
        self._lock: asyncio.Lock | None = None
        self._runner = AsyncRunner(client, self._scripts, autopipeline=autopipeline,
                                   prefix=self.settings.prefix, ack=self._ack)

    # -- driving operations ---------------------------------------------------

    async def context(self) -> Context:
        """The key layout and settings every operation takes, agreed with Redis on first
        use (the server's identity, checked against the supported minimum; then one round
        trip: the prefix's bucket count and layout version), then cached.

        Part of the extension API: an operation of ``luminora_redis.ops`` is called with
        this context first, e.g. ``ctx.keys.user("carlos")`` names a user's keys."""
        if self._ctx is None:
            if self._lock is None:
                self._lock = asyncio.Lock()
            async with self._lock:
                if self._ctx is None:
                    self._use_identity(await identity_async(self._client))
                    if self._ack is not None and self._ack.mode == "aof":
                        try:
                            await self._client.execute_command("WAITAOF", 1, 0, 1)
                        except ResponseError as error:
                            raise aof_refusal(error) from error
                    ctx = await self._runner.drive(claim_layout(self._settings, self._cluster,
                                                                self._hints))
                    warn_findings(await self.check_server())
                    self._ctx = ctx
        return self._ctx

    async def run(self, operation: Callable[..., Op[T]], *args: Any) -> T:
        """Run one operation generator of ``luminora_redis.ops`` with this store's context
        and its one runner (autopipelining, retries and error mapping included); returns
        what the operation returns. The extension API: every public method, the listener,
        the CLI and the adapters are built on it, e.g.
        ``store.run(scans.scan_due, None, False, 500)`` (awaited on ``SessionStore``)."""
        ctx = self._ctx or await self.context()
        return await self._runner.drive(operation(ctx, *args))

    async def check_server(self) -> list[ServerFinding]:
        """Server settings that endanger the data (``maxmemory-policy`` of every primary);
        the store logs them once at first use."""
        return findings_for(await policies_async(self._client))
