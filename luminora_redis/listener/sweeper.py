"""The sweeper: the guarantee behind keyspace notifications (see docs/listener.md).

Every ``sweep_interval`` it asks all buckets' deadline indexes which scores have
passed on the server clock (strictly: Redis expires a key only once now > its
deadline) and archives those sessions. On a single server a full sweep asks
for every bucket's earliest score in one script call (``scan_buckets.lua``),
then asks only the buckets that have something due for their due entries; on a
cluster, which refuses one script the keys of many slots, it asks every bucket,
in one pipelined round trip per node (`scans.earliest_scores`). Between
full sweeps it wakes for the next deadlines the replies named
(`DeadlineSchedule`). An entry whose archive keeps failing is quarantined after
``max_failures`` attempts, so its bucket moves on.

Index scores are lower bounds of the sessions' deadlines (chat turns do not
rewrite them): an entry found due while its session is still live is raised to
the session's real expiry by the archive path's first script (``read_meta``),
so the next sweep does not find it again until it is really due.

One sweeper per key prefix: the periodic full sweeps run only in the listener
that holds the sweep lease (``<prefix>:sweeper``, ``sweep_lease.lua``). Every
listener asks for the lease once per interval (one cheap script call): the
holder renews it, the others find it held and do nothing more. The lease lasts
``lease`` seconds (by default 4 sweep intervals, at least 1 s); when the holder
dies or cannot reach Redis it stops renewing, and the first listener to ask
after the lease lapsed takes over: within about one lease. A holder that stops
cleanly releases it, so the next interval of another listener takes over.
Catch-up sweeps (at start, and after a reconnect of the notification
subscription) run whether or not this listener holds the lease: they are what
makes a listener ``live``, and cost one sweep per reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from luminora_redis.io.store import SessionStore
from luminora_redis.listener import leases
from luminora_redis.listener.outages import Outage, call, is_outage, keep_trying
from luminora_redis.listener.schedule import DeadlineSchedule
from luminora_redis.ops import liveness, outbox, scans

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
    logged. ``owner`` is this sweeper's id in the sweep lease, unique per running
    listener; ``lease`` the lease length in seconds. ``outage(what)`` makes the
    `Outage` through which each run waits out Redis being unreachable or refusing.
    """

    def __init__(self, store: SessionStore, *, interval: float, batch: int, max_failures: int,
                 archive: Archive, inflight: set[str], mark: Callable[[], object],
                 on_full_sweep: Callable[[object], None],
                 on_error: Callable[[], None], owner: str, lease: float,
                 outage: Callable[[str], Outage]) -> None:
        self._store = store
        self._interval = interval
        self._owner = owner
        self._lease_ms = max(1, int(lease * 1000))
        #: Whether this sweeper held the sweep lease when it last asked.
        self.holds_lease = False
        self._batch = batch
        self._max_failures = max_failures
        self._archive = archive
        self._inflight = inflight
        self._mark = mark
        self._on_full_sweep = on_full_sweep
        self._on_error = on_error
        self._new_outage = outage
        self.schedule = DeadlineSchedule()
        self.wake = asyncio.Event()  # ends the pause: stop, or a catch-up sweep
        self.closing = False
        self._next_full = 0.0  # loop time of the next full sweep
        self._catch_up = True  # whether the next full sweep runs without the lease
        self._full = False  # whether the current pass is a full sweep
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
            except Exception as error:
                if is_outage(error):
                    raise  # not this session's failure: the sweep waits the outage out
                self._on_error()
                logger.exception("archiving session %s failed", session_id)
                return await self._failed(session_id)
            finally:
                self._inflight.discard(session_id)

        total = 0
        previous: set[str] = set()
        while True:
            scan = await call(self._store, scans.scan_due, scanned, False, self._batch)
            self.schedule.learn(scan, scanned, time.time() * 1000)
            mine = [sid for sid in scan.session_ids if sid not in self._inflight]
            self._inflight.update(mine)
            results = await asyncio.gather(*(one(sid) for sid in mine), return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            total += sum(1 for result in results if result == 1)
            # Archived, quarantined and live (re-scored) entries all leave the due range:
            # scan again while the batch was full and what it found changed.
            found = set(scan.session_ids)
            if not scan.more or found == previous or self.closing:
                return total
            previous = found

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
        and, in between, scans of just the buckets the schedule knows to be due. An
        outage ends a pass early, and a catch-up full sweep follows it; any other
        failure is logged and the next pass comes as usual."""
        self._next_full = 0.0
        self._catch_up = True  # the first sweep, and the one after each wake, run regardless
        try:
            await keep_trying(self._new_outage("the sweeper"), stop, self._cycle,
                              pause=self._pause, on_failure=self._lost, on_bug=self._bug)
        finally:
            await self._release()

    async def _cycle(self) -> float:
        """One pass of `run`: a full sweep when one is due and this sweeper holds the lease
        (or it is a catch-up), else the due buckets; the pause before the next pass."""
        if self.wake.is_set():
            self.wake.clear()
            self._next_full, self._catch_up = 0.0, True
        self._full = full = asyncio.get_running_loop().time() >= self._next_full
        mark = self._mark()
        if full:
            self.holds_lease = await self._hold()
            if self.holds_lease or self._catch_up:
                await self.sweep_once()
                self._on_full_sweep(mark)
            else:
                self.schedule.forget()  # the holder watches the deadlines
            self._catch_up = False
        elif due := self.schedule.take_due(time.time() * 1000):
            await self.sweep(due)
        return self._next_pause()

    def _next_pause(self) -> float:
        """After a pass: when the next full sweep is due, and the pause until the next pass."""
        clock = asyncio.get_running_loop().time
        if self._full:
            self._next_full = clock() + self._interval
        return self.schedule.pause(self._next_full - clock(), time.time() * 1000, MIN_GAP)

    def _lost(self) -> None:
        """Redis cannot serve: forget the schedule, and sweep in full once it can."""
        self.schedule.forget()
        self._next_full, self._catch_up = 0.0, True

    def _bug(self, error: Exception) -> float:
        """A pass failed for another reason: logged; the next pass comes as usual."""
        self._on_error()
        logger.error("sweep failed; the next one runs in %.3f s", self._interval, exc_info=error)
        return self._next_pause()

    async def _hold(self) -> bool:
        """Take or renew the sweep lease; whether this sweeper holds it."""
        return await leases.take(self._store, liveness.sweep_lease, self._owner,
                                 self._lease_ms, held=self.holds_lease, lease="sweep lease",
                                 job="full sweeps")

    async def _release(self) -> None:
        """Give the lease up on stop, so that another listener takes over at its next
        interval rather than after the lease lapses."""
        if self.holds_lease:
            self.holds_lease = False
            await leases.give_up(self._store, liveness.sweep_lease, self._owner,
                                 lease="sweep lease")

    async def _pause(self, seconds: float) -> None:
        """Sleep up to ``seconds``; a stop or a catch-up request ends it early."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.wake.wait(), seconds)
