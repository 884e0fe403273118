"""Taking and giving up the leases that elect one listener for a periodic job.

Two jobs run on one listener at a time: the full sweeps (``<prefix>:sweeper``,
``liveness.sweep_lease``) and the full outbox scans (``<prefix>:deliverer``,
``liveness.outbox_scan_lease``). Both leases are the same key-with-a-TTL
(``sweep_lease.lua``): the holder renews it every interval, and gives it up on
stop so that another listener takes over at its next interval rather than when
the lease lapses. The job's owner keeps whether it holds the lease.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from luminora_redis.core.context import Context
from luminora_redis.core.scripts import Op
from luminora_redis.io.store import SessionStore
from luminora_redis.listener.outages import call

__all__ = ["LeaseOperation", "give_up", "take"]

logger = logging.getLogger("luminora_redis.listener")

#: ``liveness.sweep_lease`` or ``liveness.outbox_scan_lease``: None when ``owner`` holds
#: the lease (or released it, with 0 ms), else the holder's id.
LeaseOperation = Callable[[Context, str, int], Op[str | None]]

#: Seconds a release may take on stop; after that the lease lapses by itself.
RELEASE_WITHIN = 2.0


async def take(store: SessionStore, operation: LeaseOperation, owner: str, lease_ms: int,
               *, held: bool, lease: str, job: str) -> bool:
    """Take or renew a lease for ``lease_ms``; whether ``owner`` holds it. Logs once
    when ``owner`` comes to hold it (``held``: whether it did before)."""
    holder = await call(store, operation, owner, lease_ms)
    if holder is None and not held:
        logger.info("%s holds the %s: it runs the %s", owner, lease, job)
    return holder is None


async def give_up(store: SessionStore, operation: LeaseOperation, owner: str, *,
                  lease: str) -> None:
    """Release a lease ``owner`` holds, within `RELEASE_WITHIN`; a failure is logged
    (stopping: the lease lapses by itself)."""
    try:
        await asyncio.wait_for(call(store, operation, owner, 0), RELEASE_WITHIN)
    except Exception as error:
        logger.debug("%s could not release the %s (%r); it lapses", owner, lease, error)
