"""The sweeper: the guarantee behind keyspace notifications (see docs/listener.md).

Every ``sweep_interval`` it asks all buckets' deadline indexes, in one
pipelined round trip per node, which deadlines have passed on the server
clock (strictly: Redis expires a key only once now > its deadline), and
archives those sessions. Between full sweeps it wakes for the next deadlines
the replies named (`DeadlineSchedule`). An entry whose archive keeps failing
is quarantined after ``max_failures`` attempts, so its bucket moves on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from luminora_redis import archive, outbox
from luminora_redis.outages import UNAVAILABLE, backoff, call
from luminora_redis.schedule import DeadlineSchedule
from luminora_redis.store import SessionStore

__all__ = ["Sweeper"]

logger = logging.getLogger("luminora_redis.listener")

CONCURRENCY = 16  # concurrent archives within one sweep
# Least pause between two scans of due buckets: the schedule maps the server's clock
# onto ours, and an estimate a hair early must not spin.
MIN_GAP = 0.002

Archive = Callable[[str], Awaitable[bool]]


class Sweeper:
    """Full sweeps every ``interval`` and scans of due buckets in between.

    ``archive(session_id)`` archives one session (True when that call did) and
    raises on failure; ``inflight`` holds sessions some other path is archiving.
    ``on_full_sweep(mark)`` runs after each successful full sweep with what
    ``mark()`` returned just before it started; ``on_error`` after each failure
    logged.
    """

    def __init__(self, store: SessionStore, *, interval: float, batch: int, max_failures: int,
                 archive: Archive, inflight: set[str], mark: Callable[[], object],
                 on_full_sweep: Callable[[object], None],
                 on_error: Callable[[], None]) -> None:
        self._store = store
        self._interval = interval
        self._batch = batch
        self._max_failures = max_failures
        self._archive = archive
        self._inflight = inflight
        self._mark = mark
        self._on_full_sweep = on_full_sweep
        self._on_error = on_error
        self.schedule = DeadlineSchedule()
        self.wake = asyncio.Event()  # ends the pause: stop, or a catch-up sweep
        self.closing = False
        self.sweeps = 0
        self.quarantined = 0

    async def sweep_once(self) -> int:
        """One full sweep; how many sessions this call archived."""
        archived = await self.sweep(None)
        self.sweeps += 1
        return archived

    async def sweep(self, buckets: list[int] | None) -> int:
        """Archive the due sessions of ``buckets`` (all when None) and learn when each
        of them is next due."""
        scanned = buckets if buckets is not None else range(
            (await self._store.context()).keys.buckets)
        limit = asyncio.Semaphore(CONCURRENCY)

        async def one(session_id: str) -> int:
            """1 archived, 0 not (someone else did, or not due), -1 quarantined."""
            try:
                async with limit:
                    return int(await self._archive(session_id))
            except UNAVAILABLE:
                raise
            except Exception:
                self._on_error()
                logger.exception("archiving session %s failed", session_id)
                return await self._failed(session_id)
            finally:
                self._inflight.discard(session_id)

        total = 0
        while True:
            scan = await call(self._store, archive.scan_due, scanned, False, self._batch)
            self.schedule.learn(scan, scanned, time.time() * 1000)
            mine = [sid for sid in scan.session_ids if sid not in self._inflight]
            self._inflight.update(mine)
            results = await asyncio.gather(*(one(sid) for sid in mine), return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            done = sum(1 for result in results if result == 1)
            moved = sum(1 for result in results if result == -1)
            total += done
            if not scan.more or done + moved == 0 or self.closing:
                return total

    async def _failed(self, session_id: str) -> int:
        quarantined, failures = await call(self._store, outbox.sweep_failed, session_id,
                                           self._max_failures)
        if not quarantined:
            return 0
        self.quarantined += 1
        logger.error("session %s failed to archive %d times: quarantined (its keys are kept; "
                     "list_quarantined() lists it), the sweep moves on", session_id, failures)
        return -1

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep until ``stop`` is set: full sweeps every interval (at once when woken)
        and, in between, scans of just the buckets the schedule knows to be due."""
        delays, failures = backoff(), 0
        clock = asyncio.get_running_loop().time
        next_full = 0.0
        while not stop.is_set():
            if self.wake.is_set():
                self.wake.clear()
                next_full = 0.0
            full = clock() >= next_full
            mark = self._mark()
            try:
                if full:
                    await self.sweep_once()
                elif due := self.schedule.take_due(time.time() * 1000):
                    await self.sweep(due)
            except UNAVAILABLE as error:
                self._on_error()
                self.schedule.forget()
                next_full = 0.0
                delay = delays.compute(failures)
                failures += 1
                logger.warning("sweep failed, Redis unreachable (%s); retrying in %.2f s",
                               error, delay)
                await self._pause(delay)
                continue
            except Exception:
                self._on_error()
                logger.exception("sweep failed; the next one runs in %.3f s", self._interval)
            else:
                failures = 0
                if full:
                    self._on_full_sweep(mark)
            if full:
                next_full = clock() + self._interval
            await self._pause(self.schedule.pause(next_full - clock(), time.time() * 1000, MIN_GAP))

    async def _pause(self, seconds: float) -> None:
        """Sleep up to ``seconds``; a stop or a catch-up request ends it early."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.wake.wait(), seconds)
