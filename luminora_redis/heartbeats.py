"""A running listener's heartbeat (see ``liveness``): refreshed while it runs,
removed on a clean stop. A failed beat is logged at debug level and retried at the
next interval: the heartbeat only tells operators who runs, so it never stops the
listener."""

from __future__ import annotations

import asyncio
import logging

from luminora_redis import liveness
from luminora_redis.outages import UNAVAILABLE, call
from luminora_redis.store import SessionStore

__all__ = ["beat", "leave"]

logger = logging.getLogger("luminora_redis.listener")


async def beat(store: SessionStore, name: str, interval: float, stop: asyncio.Event) -> None:
    """Say ``name`` is alive every ``interval`` seconds (for three intervals) until ``stop``."""
    ttl_ms = int(interval * 3000)
    while not stop.is_set():
        try:
            await call(store, liveness.heartbeat, name, ttl_ms)
        except UNAVAILABLE as error:
            logger.debug("heartbeat of listener %s failed (%s)", name, error)
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except asyncio.TimeoutError:
            pass


async def leave(store: SessionStore, name: str) -> None:
    """Remove ``name``'s heartbeat (a clean stop); a failure only leaves it to lapse."""
    try:
        await asyncio.wait_for(call(store, liveness.heartbeat, name, 0), 2.0)
    except (*UNAVAILABLE, asyncio.TimeoutError) as error:
        logger.debug("listener %s could not remove its heartbeat (%s)", name, error)
