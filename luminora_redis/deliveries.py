"""Deliveries of archived conversations to the ``on_archived`` sink, from the outbox.

Every archive records its delivery in its bucket's outbox in the same atomic
step (``archive_session.lua``), so whatever archived it, any running listener
delivers it: it finds due deliveries (a full scan every interval, the next
due times in between, and at once for what this listener archived), takes a
lease on each (``claim_delivery.lua``), calls the hook in a bounded pool of
workers, then acknowledges it, or reschedules it with capped exponential
backoff, quarantining it after ``max_attempts`` when that is set. A listener
that dies mid-delivery leaves a lease that lapses; then another listener, or
the next one to start, delivers again. Deliveries are therefore at least
once, each with the conversation's stable ``idempotency_key``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from luminora_redis import archive, outbox
from luminora_redis.context import Context
from luminora_redis.models import ArchivedConversation, DeliveryBacklog
from luminora_redis.outages import UNAVAILABLE, backoff, call
from luminora_redis.schedule import DeadlineSchedule
from luminora_redis.scripts import Op
from luminora_redis.store import SessionStore

__all__ = ["Deliveries", "OnArchived", "retry_delay"]

logger = logging.getLogger("luminora_redis.listener")

OnArchived = Callable[[ArchivedConversation], Awaitable[None] | None]

MIN_GAP = 0.002
BACKLOG_EVERY = 5.0  # seconds between backlog reports to the observer


def retry_delay(attempts: int, base: float, cap: float) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: doubling, capped."""
    return min(cap, base * 2 ** max(0, min(attempts - 1, 60)))


def _read_one(ctx: Context, user_id: str, session_id: str) -> Op[ArchivedConversation | None]:
    """The archived conversation the hook receives, or None when it is gone."""
    paged = getattr(archive, "read_archived_conversation", None)
    if paged is not None:
        found: ArchivedConversation | None = yield from paged(ctx, user_id, session_id)
        return found
    records = yield from archive.read_archived(ctx, ctx.keys.user(user_id), user_id, [session_id])
    return records[0] if records else None


class Deliveries:
    """Delivers the outbox to one hook with ``workers`` concurrent calls.

    A plain hook runs on the event loop (it must not block); an async one is
    awaited by its worker. ``observer`` gets ``delivered``, ``delivery_failed``
    and ``backlog`` calls when it has those methods.
    """

    def __init__(self, store: SessionStore, hook: OnArchived, *, interval: float, workers: int,
                 lease: float, backoff_base: float, backoff_cap: float,
                 max_attempts: int | None, observer: Any = None,
                 on_error: Callable[[], None] = lambda: None) -> None:
        self._store = store
        self._hook = hook
        self._interval = interval
        self._workers = workers
        self._lease_ms = max(1, int(lease * 1000))
        self._base = backoff_base
        self._cap = backoff_cap
        self._max_attempts = max_attempts
        self._observer = observer
        self._on_error = on_error
        self._queue: asyncio.Queue[str | None] = asyncio.Queue(4 * workers)
        self._inflight: set[str] = set()
        self._schedule = DeadlineSchedule()
        self._wake = asyncio.Event()
        self.delivered = 0
        self.failed = 0
        self.quarantined = 0

    def _report(self, name: str, *args: Any) -> None:
        method = getattr(self._observer, name, None)
        if method is not None:
            method(*args)

    def offer(self, session_id: str) -> None:
        """A delivery this listener just recorded: try it now if a worker has room."""
        if session_id in self._inflight:
            return
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(session_id)
            self._inflight.add(session_id)

    async def run(self, stop: asyncio.Event, grace: float) -> None:
        """Scan and deliver until ``stop`` is set; in-flight deliveries then get ``grace``
        seconds to finish before they are cancelled (their leases lapse)."""
        workers = [asyncio.create_task(self._worker(), name=f"delivery worker {n}")
                   for n in range(self._workers)]
        try:
            await self._scan_loop(stop)
        finally:
            while not self._queue.empty():
                self._inflight.discard(self._queue.get_nowait() or "")
            for _ in workers:
                self._queue.put_nowait(None)
            try:
                await asyncio.wait(workers, timeout=grace)
            finally:
                for worker in workers:
                    worker.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
                self._inflight.clear()

    def wake(self) -> None:
        """End the scan loop's pause (to stop, or to scan now)."""
        self._wake.set()

    async def _scan_loop(self, stop: asyncio.Event) -> None:
        clock = asyncio.get_running_loop().time
        delays, failures = backoff(), 0
        next_full = next_backlog = 0.0
        while not stop.is_set():
            full = clock() >= next_full
            leftover = False
            try:
                if full:
                    leftover = await self._scan(None)
                    next_full = clock() + self._interval
                elif due := self._schedule.take_due(time.time() * 1000):
                    leftover = await self._scan(due)
                if self._observer is not None and clock() >= next_backlog:
                    next_backlog = clock() + BACKLOG_EVERY
                    self._report("backlog", await self.backlog())
                failures = 0
            except UNAVAILABLE as error:
                self._on_error()
                self._schedule.forget()
                next_full = 0.0
                delay = delays.compute(failures)
                failures += 1
                logger.warning("scanning the outbox failed, Redis unreachable (%s); retrying "
                               "in %.2f s", error, delay)
                await self._pause(delay)
                continue
            if leftover:
                # Due deliveries were left in the outbox (the queue was full, or a bucket
                # held more than one scan takes): scan again as soon as a worker has room,
                # not at the next full scan.
                next_full = clock()
                await self._pause(self._interval)
                continue
            await self._pause(self._schedule.pause(next_full - clock(), time.time() * 1000, MIN_GAP))

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def backlog(self) -> DeliveryBacklog:
        return await call(self._store, outbox.delivery_backlog)

    async def _scan(self, buckets: list[int] | None) -> bool:
        """Queue the due deliveries of ``buckets`` (all when None); whether some due ones
        were left in the outbox."""
        scanned = buckets if buckets is not None else range(
            (await self._store.context()).keys.buckets)
        scan = await call(self._store, outbox.scan_due_deliveries, scanned, 4 * self._workers)
        self._schedule.learn(scan, scanned, time.time() * 1000)
        for session_id in scan.session_ids:
            if self._queue.full():
                return True  # the rest waits for room; leases are taken only by workers
            self.offer(session_id)
        return scan.more

    async def _worker(self) -> None:
        while (session_id := await self._queue.get()) is not None:
            try:
                await self._deliver(session_id)
            except UNAVAILABLE as error:
                self._on_error()
                logger.warning("delivery of session %s interrupted, Redis unreachable (%s); "
                               "it is retried when its lease lapses", session_id, error)
            except Exception:
                self._on_error()
                logger.exception("delivery of session %s failed; it is retried when its "
                                 "lease lapses", session_id)
            finally:
                self._inflight.discard(session_id)
                self._wake.set()  # room for more

    async def _deliver(self, session_id: str) -> None:
        delivery = await call(self._store, outbox.claim_delivery, session_id, self._lease_ms)
        if delivery is None:
            return
        conversation = await call(self._store, _read_one, delivery.user_id, session_id)
        if conversation is None:
            logger.warning("session %s of user %r: its archive is gone (archive_retention, or "
                           "the user was erased); delivery dropped", session_id,
                           delivery.user_id)
            await call(self._store, outbox.ack_delivery, session_id)
            return
        try:
            result = self._hook(conversation)
            if inspect.isawaitable(result):
                await result
        except Exception:
            await self._retry(session_id, delivery.attempts)
            return
        await self._acknowledge(session_id)
        self.delivered += 1
        self._report("delivered", delivery.attempts)
        await call(self._store, archive.retain, delivery.user_id)

    async def _acknowledge(self, session_id: str) -> None:
        """Acknowledge a delivery the sink took, retrying while Redis is unreachable for
        up to half the lease: a lost acknowledgement means a second delivery."""
        delays, failures = backoff(cap=1.0), 0
        give_up = asyncio.get_running_loop().time() + self._lease_ms / 2000
        while True:
            try:
                await call(self._store, outbox.ack_delivery, session_id)
                return
            except UNAVAILABLE:
                delay = delays.compute(failures)
                failures += 1
                if asyncio.get_running_loop().time() + delay > give_up:
                    raise
                await asyncio.sleep(delay)

    async def _retry(self, session_id: str, attempts: int) -> None:
        self.failed += 1
        self._on_error()
        self._report("delivery_failed")
        delay = retry_delay(attempts, self._base, self._cap)
        outcome = await call(self._store, outbox.retry_delivery, session_id,
                             int(delay * 1000), self._max_attempts)
        if outcome == "retry":
            # Offered again when due (a hair late: claiming early finds it not due).
            asyncio.get_running_loop().call_later(delay + 0.005, self.offer, session_id)
        if outcome == "quarantined":
            self.quarantined += 1
            logger.exception("on_archived failed for session %s, attempt %d of %d: delivery "
                             "quarantined (list_quarantined() lists it)", session_id, attempts,
                             self._max_attempts)
        else:
            logger.exception("on_archived failed for session %s (attempt %d); retrying in "
                             "%.2f s", session_id, attempts, delay)
