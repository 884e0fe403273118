"""Stopping within a bound, whatever Redis does meanwhile.

A listener's stop must return even when Redis is paused, unreachable or refusing
the last calls: every step of a shutdown runs here with a time bound and its own
error handling, so that one failing or hanging step neither skips the next ones
nor replaces the error that ended ``run()``. A task that outlives its bound
(a cancellation redis-py lost, a read on a socket without a timeout) is
abandoned with one ERROR, not awaited for ever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

__all__ = ["cancel", "step", "unless_stopped"]

T = TypeVar("T")

logger = logging.getLogger("luminora_redis.listener")

_AFTER_CANCEL = 1.0  # seconds a cancelled call gets to end before it is abandoned


async def cancel(tasks: Iterable[asyncio.Task[Any]], within: float) -> set[asyncio.Task[Any]]:
    """Cancel ``tasks`` until they end, for up to ``within`` seconds; the tasks still
    running then, abandoned (their outcome is retrieved when they end, unlogged).

    Cancelled once, a task can go on: a cancellation is sometimes lost inside
    redis-py's pub/sub read (seen with redis-py 8.1 on Python 3.11, about one stop
    in three during an OOM outage), so each is cancelled again until it ends."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    pending = {task for task in tasks if not task.done()}
    while pending and loop.time() < deadline:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.05)
    for task in pending:
        task.add_done_callback(_retrieve)
    return pending


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def step(what: str, work: Awaitable[Any], within: float) -> None:
    """Run one shutdown step for up to ``within`` seconds. It never raises, but for the
    cancellation of its caller: a failure is logged once with its traceback, and a
    step that overruns is cancelled and logged."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.wait({task}, timeout=within)
    except asyncio.CancelledError:
        await cancel({task}, _AFTER_CANCEL)
        raise
    if not task.done():
        logger.error("%s did not finish within %.1f s; abandoned", what, within)
        await cancel({task}, _AFTER_CANCEL)
    if task.done() and not task.cancelled() and (error := task.exception()) is not None:
        logger.error("%s failed", what, exc_info=error)


async def unless_stopped(work: Awaitable[T], stop: asyncio.Event) -> tuple[bool, T | None]:
    """Await ``work`` unless ``stop`` is set first: (True, its result), or (False, None)
    once ``stop`` is set, ``work`` then cancelled. Its error propagates.

    A call to a paused server, on a client without a socket timeout, waits for
    ever; a stop must not wait with it."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not task.done():
            await cancel({task}, _AFTER_CANCEL)
    if task.done() and not task.cancelled():
        return True, task.result()
    return False, None
