"""What counts as Redis being unreachable for now, and how a listener waits it out.

The listener's loops retry these with bounded, jittered backoff and treat
anything else as a failure of the one item at hand (logged and counted).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from redis import exceptions as redis_errors
from redis.backoff import EqualJitterBackoff

from luminora_redis.scripts import Op
from luminora_redis.store import SessionStore

__all__ = ["UNAVAILABLE", "backoff", "call", "closed_under"]

T = TypeVar("T")

# redis-py raises its own ConnectionError and TimeoutError (BusyLoadingError, while a
# restarted server loads its data, is a ConnectionError); OSError is whatever the socket
# layer lets through unwrapped. During a cluster failover a primary's slots are unserved
# (CLUSTERDOWN, TRYAGAIN) and the client may find no node it can map the slots with
# (RedisClusterException, SlotNotCoveredError among them).
UNAVAILABLE = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError,
               redis_errors.ClusterDownError, redis_errors.TryAgainError,
               redis_errors.RedisClusterException)


def closed_under(error: BaseException) -> bool:
    """Whether ``error`` is the asyncio transport failing because redis-py closed the
    connection under a command in flight.

    redis-py 8.1 lets that surface as the AttributeError or TypeError of a
    transport whose internals are gone (``'NoneType' object has no attribute
    'writelines'``) instead of ConnectionError (redis/redis-py#4287). Its
    cluster client closes every connection whenever one command meets
    CLUSTERDOWN or one pipeline a connection error, so during a failover it
    happens to commands on healthy nodes too.
    """
    if not isinstance(error, (AttributeError, TypeError)) or "'NoneType'" not in str(error):
        return False
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and any(part in frames[-1].filename
                                for part in ("/redis/", "/asyncio/"))


def backoff(cap: float = 5.0) -> EqualJitterBackoff:
    """Reconnect delays: 25-50 ms at first, doubling, bounded to ``cap`` / 2 to ``cap`` s."""
    return EqualJitterBackoff(cap=cap, base=0.05)


async def call(store: SessionStore, operation: Callable[..., Op[T]], *args: Any) -> T:
    """Run one store operation; a connection closed under it raises ConnectionError,
    whatever redis-py let through (see `closed_under`)."""
    try:
        return await store.run(operation, *args)
    except (AttributeError, TypeError) as error:
        if not closed_under(error):
            raise
        raise redis_errors.ConnectionError(
            f"the connection was closed under the command ({error!r})") from error
