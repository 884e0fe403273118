"""SyncStoreBase: what the blocking store stands on, below its operation methods.

The blocking twin of ``AsyncStoreBase`` (``io/async_base.py``): the blocking
client it takes, its one runner, its first use (``context``), ``run`` and
``check_server``; closing a blocking client with its sockets. ``io/sync_store.py``
gives its public methods the docstrings of ``SessionStore``'s.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.cluster import RedisCluster
from redis.exceptions import ResponseError

from luminora_redis.core.context import Context
from luminora_redis.core.models import ServerFinding
from luminora_redis.core.scripts import Op
from luminora_redis.core.settings import StoreSettings
from luminora_redis.io.acknowledge import aof_refusal
from luminora_redis.io.base import StoreBase, claim_layout
from luminora_redis.io.redis_internals import startup_nodes
from luminora_redis.io.sentinel_url import sentinel_clients
from luminora_redis.io.server_checks import findings_for, policies_blocking, warn_findings
from luminora_redis.io.server_identity import identity_blocking
from luminora_redis.io.sync_runner import SyncRunner

__all__ = ["SyncStoreBase", "close_client"]

T = TypeVar("T")


def close_client(client: redis.Redis | RedisCluster) -> None:
    """Close a blocking client and its sockets. ``RedisCluster.close()`` releases each
    node's client but not the node's connection pool, so its sockets stay open until
    the garbage collector finds them (an unclosed-socket ``ResourceWarning``)."""
    client.close()
    for sentinel in sentinel_clients(client):
        sentinel.close()
    if isinstance(client, RedisCluster):
        cluster: Any = client  # redis-py leaves the blocking RedisCluster.get_nodes untyped
        nodes = [*cluster.get_nodes(), *startup_nodes(cluster).values()]
        for node in nodes:
            if node.redis_connection is not None:
                node.redis_connection.connection_pool.disconnect()


class SyncStoreBase(StoreBase):
    """The blocking client, its runner, first use, ``run`` and ``check_server``; the base
    of ``SyncSessionStore``."""

    _client_types = (redis.Redis, RedisCluster)
    _client_kinds = "a blocking client, redis.Redis or redis.cluster.RedisCluster"
    _client_hint = ("an asyncio client (redis.asyncio.Redis) goes to SessionStore; "
                   "SyncSessionStore.from_url(url) makes the right client")

    def __init__(self, client: redis.Redis | RedisCluster,
                 settings: StoreSettings | None = None, **overrides: Any) -> None:
        super().__init__(client, settings, **overrides)
        self._lock = threading.Lock()
        self._runner = SyncRunner(client, self._scripts, prefix=self.settings.prefix,
                                  ack=self._ack)

    # -- driving operations ---------------------------------------------------

    def context(self) -> Context:
        with self._lock:
            if self._ctx is None:
                self._use_identity(identity_blocking(self._client))
                if self._ack is not None and self._ack.mode == "aof":
                    try:
                        self._client.execute_command("WAITAOF", 1, 0, 1)
                    except ResponseError as error:
                        raise aof_refusal(error) from error
                ctx = self._runner.drive(claim_layout(self._settings, self._cluster, self._hints))
                warn_findings(self.check_server())
                self._ctx = ctx
        return self._ctx

    def run(self, operation: Callable[..., Op[T]], *args: Any) -> T:
        ctx = self._ctx or self.context()
        return self._runner.drive(operation(ctx, *args))

    def check_server(self) -> list[ServerFinding]:
        return findings_for(policies_blocking(self._client))
