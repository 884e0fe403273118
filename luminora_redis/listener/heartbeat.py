"""A running listener's heartbeat (see ``liveness``): refreshed while it runs,
removed on a clean stop. The heartbeat only tells operators who runs, so a
failed beat never stops the listener: it is an outage (or, for anything else,
an error logged once) that the next interval retries."""

from __future__ import annotations

import asyncio
import logging

from luminora_redis.io.store import SessionStore
from luminora_redis.listener.outages import Outage, call, describe, keep_trying
from luminora_redis.ops import liveness

__all__ = ["beat", "leave"]

logger = logging.getLogger("luminora_redis.listener")


async def beat(store: SessionStore, name: str, interval: float, stop: asyncio.Event,
               outage: Outage, delivers: bool) -> None:
    """Say ``name`` is alive (and whether it ``delivers`` to a hook) every ``interval``
    seconds, for three intervals, until ``stop``."""
    ttl_ms = int(interval * 3000)

    async def one() -> float:
        await call(store, liveness.heartbeat, name, ttl_ms, delivers)
        return interval

    await keep_trying(outage, stop, one, retry_after=interval)


async def leave(store: SessionStore, name: str, within: float = 2.0) -> bool:
    """Remove ``name``'s heartbeat (a clean stop), waiting up to ``within`` seconds;
    whether it did. It never raises: whatever fails (Redis gone, or this user lacking
    a right) only leaves the heartbeat to lapse, and is logged once."""
    try:
        await asyncio.wait_for(call(store, liveness.heartbeat, name, 0), within)
    except Exception as error:
        logger.warning("listener %s could not remove its heartbeat (%s); it lapses by "
                       "itself", name, describe(error))
        return False
    return True
