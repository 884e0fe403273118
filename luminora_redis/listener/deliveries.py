"""Deliveries of archived conversations to ``summarize`` and the ``on_archived`` sink,
from the outbox.

Every archive records its delivery in its bucket's outbox in the same atomic
step (``archive_session.lua``), so whatever archived it, any running listener
delivers it: it finds due deliveries, takes a lease on each
(``claim_delivery.lua``), calls the hook in a bounded pool of workers, then
acknowledges it, or reschedules it with capped exponential backoff,
quarantining it after ``max_attempts`` when that is set. A listener that dies
mid-delivery leaves a lease that lapses; then another listener, or the next
one to start, delivers again. Deliveries are therefore at least once, each
with the conversation's stable ``idempotency_key``.

Finding them: every listener offers what it archived to its own workers at
once, and offers again each retry it scheduled when that falls due. The full
scans of every bucket's outbox, which find the rest (``end_session`` in
another process, a dead listener's lapsed claim, an offer that found the
queue full), run every interval in one listener of the key prefix only: the
holder of the outbox scan lease (``<prefix>:deliverer``, ``sweep_lease.lua``
on its own key), which also wakes for the next due times its scans learned
(`DeadlineSchedule`). The others ask for the lease once per interval (one
cheap call, where a full scan is 1024 on a cluster) and take it over within
one lease after the holder stopped renewing; a holder that stops cleanly
releases it. A delivery left by a dead holder is therefore found within
about one lease plus one interval (docs/listener.md).

A hook call that overruns ``hook_timeout`` is abandoned (cancelled, and no
longer awaited) and counts as a failed attempt, so its worker is free at once:
no number of hung calls stops the other deliveries. A failure before the hook
(the archive cannot be read) counts as an attempt too; a delivery whose body
cannot be read is quarantined at once, since no retry can read it. Redis being
unreachable or refusing is an outage, never a failed attempt: the delivery's
lease lapses and it is tried again. Once the sink has acknowledged a delivery,
the user's ``archive_retention`` is applied (it never trims an archive whose
delivery is pending).

With ``summarize``, each attempt of a delivery runs two steps, in order:
``summarize(conversation)``, whose episode (when not None) is saved in the
user's memory as the session's one ``session_summary`` episode, then
``on_archived``; the delivery is acknowledged only after both. A failure of
either (an error, an overrun of ``hook_timeout``, an invalid episode, an
episode the store refuses) fails the whole attempt, which is retried and
quarantined like any: a failed ``summarize`` skips ``on_archived`` for that
attempt, and an ``on_archived`` that fails after the summary was saved makes
the next attempt run ``summarize`` again. The episode's id is derived from
the session id (``memory.session_summary_id``), so a second run, after such a
failure, a lapsed lease or two listeners racing, replaces the episode: the
user keeps exactly one summary per session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from luminora_redis.core.models import ArchivedConversation, DeliveryBacklog
from luminora_redis.io.store import SessionStore
from luminora_redis.listener import leases
from luminora_redis.listener.delivery_attempts import Attempts, Claim, retry_delay
from luminora_redis.listener.hooks import OnArchived, Summarize
from luminora_redis.listener.outages import Outage, call, is_outage, keep_trying
from luminora_redis.listener.schedule import DeadlineSchedule
from luminora_redis.ops import liveness, outbox

__all__ = ["Deliveries", "OnArchived", "Summarize", "retry_delay"]

logger = logging.getLogger("luminora_redis.listener")

#: An offer: the session id, its user when known, its conversation when the archive
#: returned it, and, when the archive recorded the delivery claimed by this listener,
#: (``time.monotonic()`` at the offer, the end of the claim's lease on the server clock).
Offer = tuple[str, str | None, ArchivedConversation | None, Claim | None]

#: Room kept in the queue for the archives under way when an archive asks whether it
#: may claim its delivery (more than the sweeper's and the notifications' concurrent
#: archives together).
ROOM = 64

#: Offers that may wait in memory for a worker (at least 4 per worker).
QUEUED = 1024

MIN_GAP = 0.002
BACKLOG_EVERY = 5.0  # seconds between backlog reports to the observer


class Deliveries:
    """Delivers the outbox to ``summarize`` and one hook (either may be None) with
    ``workers`` concurrent deliveries.

    A plain hook runs on the event loop (it must not block, and cannot be timed
    out), a plain ``summarize`` in a worker thread; an async one is awaited by its
    worker for at most ``hook_timeout`` seconds (None: no limit), each call. ``observer`` gets ``delivered``,
    ``delivery_failed`` and ``backlog`` calls when it has those methods.
    ``outage(what, holds)`` makes the `Outage` each loop waits outages out with (the
    workers' do not hold the listener's outage: the scan loop's does). ``owner`` is
    this listener's id in the outbox scan lease (unique per running listener),
    ``scan_lease`` that lease's length in seconds (None: 4 intervals, at least 1 s).
    """

    def __init__(self, store: SessionStore, hook: OnArchived | None, *, interval: float,
                 workers: int,
                 lease: float, backoff_base: float, backoff_cap: float,
                 max_attempts: int | None, hook_timeout: float | None = None,
                 observer: Any = None, on_error: Callable[[], None] = lambda: None,
                 outage: Callable[[str, bool], Outage] | None = None,
                 owner: str = "", scan_lease: float | None = None,
                 summarize: Summarize | None = None) -> None:
        self._store = store
        #: The attempts, and their counts (``delivered``, ``failed``, ``quarantined``,
        #: ``summarized``).
        self.attempts = Attempts(
            store, hook, summarize, lease=lease, hook_timeout=hook_timeout, workers=workers,
            backoff_base=backoff_base, backoff_cap=backoff_cap, max_attempts=max_attempts,
            observer=observer, on_error=on_error, reoffer=self.offer)
        self._interval = interval
        self._workers = workers
        self._owner = owner or f"deliveries#{id(self):x}"
        self._scan_lease_ms = max(1, int(1000 * (
            scan_lease if scan_lease is not None else max(1.0, 4 * interval))))
        #: Whether this listener held the outbox scan lease when it last asked.
        self.holds_lease = False
        #: Full outbox scans this listener ran.
        self.scans = 0
        self._observer = observer
        # The backlog reads every bucket's outbox: only for an observer that takes it.
        self._reports_backlog = callable(getattr(observer, "backlog", None))
        self._on_error = on_error
        self._new_outage = outage or (lambda what, holds: Outage(what, on_error=on_error))
        # Offers wait here for a worker (the session id, and its user when known); the rest
        # of the outbox waits in Redis for a scan.
        self._queue: asyncio.Queue[Offer | None] = asyncio.Queue(
            max(4 * workers, QUEUED))
        self._inflight: set[str] = set()
        self._releases: set[asyncio.Task[None]] = set()
        self._open = False  # whether the workers take offers (while ``run`` runs)
        self._schedule = DeadlineSchedule()
        self._wake = asyncio.Event()

    def lease_to_claim(self) -> int:
        """The lease (ms) an archive about to be offered may record its delivery claimed
        for, so that no claim of its own is needed; 0 when the queue has too little
        room left for it (the delivery is then recorded due, for a scan to find)."""
        room = self._queue.qsize() + ROOM < self._queue.maxsize
        return self.attempts.claim_ahead_ms if self._open and room else 0

    def offer(self, session_id: str, user_id: str | None = None,
              conversation: ArchivedConversation | None = None, claimed_until: int = 0
              ) -> None:
        """A delivery this listener just recorded, queued for a worker unless the queue
        is full (then it waits in the outbox for a scan). What comes with it saves round
        trips: ``user_id`` (its claim and its read share one), the ``conversation`` the
        archive returned (no read), ``claimed_until`` when the archive claimed it for
        this listener (no claim; the claim is let go when the offer cannot be queued)."""
        if session_id in self._inflight:
            return
        try:
            if not self._open:
                raise asyncio.QueueFull  # stopping: the workers take no more
            self._queue.put_nowait((session_id, user_id, conversation,
                                    (time.monotonic(), claimed_until) if claimed_until else None))
        except asyncio.QueueFull:
            if claimed_until:
                self._let_go(session_id, claimed_until)
        else:
            self._inflight.add(session_id)

    def _let_go(self, session_id: str, claimed_until: int) -> None:
        """Release a delivery claimed at its archive that this listener will not make (if
        the claim is still this listener's)."""
        async def release() -> None:
            try:
                await call(self._store, outbox.release_delivery, session_id, claimed_until)
            except Exception as error:
                logger.warning("letting the delivery of session %s go failed (%r); it is "
                               "due again when its lease lapses", session_id, error)

        task = asyncio.create_task(release(), name=f"release {session_id}")
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def run(self, stop: asyncio.Event, grace: float) -> None:
        """Scan and deliver until ``stop`` is set; in-flight deliveries then get ``grace``
        seconds to finish before they are cancelled (their leases lapse)."""
        delivering = self._new_outage("delivering archives", False)
        self._open = True
        workers = [asyncio.create_task(self._worker(delivering), name=f"delivery worker {n}")
                   for n in range(self._workers)]
        try:
            await self._scan_loop(stop)
        finally:
            try:
                await self._release()
            finally:
                await self._finish(workers, grace)

    async def _finish(self, workers: list[asyncio.Task[None]], grace: float) -> None:
        """Drop what is queued (letting go those claimed at their archive, so that they
        wait for no lease), give in-flight deliveries ``grace`` seconds, then cancel."""
        self._open = False
        while not self._queue.empty():
            if (item := self._queue.get_nowait()) is not None:
                self._inflight.discard(item[0])
                if item[3] is not None:
                    self._let_go(item[0], item[3][1])
        for _ in workers:
            self._queue.put_nowait(None)
        clock = asyncio.get_running_loop().time
        until = clock() + grace
        try:
            await asyncio.wait(workers, timeout=grace)
            await self.released(max(0.0, until - clock()))
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            self.attempts.hooks.close()
            self._inflight.clear()

    async def released(self, within: float) -> None:
        """Wait up to ``within`` seconds for the claims being let go (those of archives
        offered while stopping), then cancel the rest: their leases lapse."""
        if self._releases:
            await asyncio.wait(set(self._releases), timeout=within)
            for release in set(self._releases):
                release.cancel()

    def wake(self) -> None:
        """End the scan loop's pause (to stop, or to scan now)."""
        self._wake.set()

    async def _scan_loop(self, stop: asyncio.Event) -> None:
        clock = asyncio.get_running_loop().time
        next_full = next_backlog = 0.0

        async def scan() -> float:
            """One pass: a full scan when due, else the buckets the schedule knows to be
            due; the pause before the next pass."""
            nonlocal next_full, next_backlog
            full = clock() >= next_full
            leftover = False
            if full:
                self.holds_lease = await self._hold()
                if self.holds_lease:
                    leftover = await self._scan(None)
                    self.scans += 1
                else:
                    self._schedule.forget()  # the holder watches the due times
                next_full = clock() + self._interval
            elif due := self._schedule.take_due(time.time() * 1000):
                leftover = await self._scan(due)
            if self._reports_backlog and clock() >= next_backlog:
                next_backlog = clock() + BACKLOG_EVERY
                self._observer.backlog(await self.backlog())
            if leftover:
                # Due deliveries were left in the outbox (the queue was full, or a bucket
                # held more than one scan takes): scan again as soon as a worker has room,
                # not at the next full scan.
                next_full = clock()
                return self._interval
            return self._schedule.pause(next_full - clock(), time.time() * 1000, MIN_GAP)

        def lost() -> None:
            nonlocal next_full
            self._schedule.forget()
            next_full = 0.0

        await keep_trying(self._new_outage("scanning the outbox", True), stop, scan,
                          pause=self._pause, on_failure=lost)

    async def _hold(self) -> bool:
        """Take or renew the outbox scan lease; whether this listener holds it."""
        return await leases.take(self._store, liveness.outbox_scan_lease, self._owner,
                                 self._scan_lease_ms, held=self.holds_lease,
                                 lease="outbox scan lease", job="full outbox scans")

    async def _release(self) -> None:
        """Give the lease up on stop, so that another listener takes over at its next
        interval rather than after the lease lapses."""
        if self.holds_lease:
            self.holds_lease = False
            await leases.give_up(self._store, liveness.outbox_scan_lease, self._owner,
                                 lease="outbox scan lease")

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

    async def _worker(self, outage: Outage) -> None:
        while (item := await self._queue.get()) is not None:
            session_id, user_id, held, claim = item
            try:
                await self.attempts.deliver(session_id, user_id, held, claim)
            except Exception as error:
                # The lease lapses, and the delivery is due again.
                if is_outage(error):
                    outage.failed(error)
                else:
                    self._on_error()
                    logger.exception("delivery of session %s failed; it is retried when its "
                                     "lease lapses", session_id)
            else:
                outage.recovered()
            finally:
                self._inflight.discard(session_id)
                self._wake.set()  # room for more
