"""The sweeper: the guarantee behind keyspace notifications (see docs/listener.md).

It archives every auto_cleanup session whose deadline index score has passed on
the server clock (strictly: Redis expires a key only once now > its deadline).
Its cost follows the work, not the bucket count: each ``interval`` it reads the
due-bucket hints, and asks only the buckets whose hint has passed.

The hints (sorted sets: member = bucket, score = a lower bound of that bucket's
earliest deadline index score; 16 keys ``<prefix>:{h<g>}:due`` on a single
server, one key per primary node on a cluster: ``scans``, ``io/hint_slots.py``):

- A writer that adds a deadline (``create_session``) lowers its bucket's hint
  (``ZADD LT``, ``scans.create_hinted``): on a single server inside its own
  script, with the exact deadline; on a cluster (a script declares keys of one
  slot) by ``lower_hints`` right after it in the same round trip, on the key of
  the node serving the bucket, less a margin (``scans.HINT_MARGIN_MS``) for
  clocks. Raising an entry (``read_meta``) writes no hint: hints are lower bounds.
- Each tick the lease holder takes the passed hints (``take_hints``: read and
  removed in one call; one call on a single server, one per node on a
  cluster, on that node's hint key, whatever the bucket count), scans those buckets'
  indexes (``due_sessions``), archives what is due, and puts each bucket's
  next score back (``lower_hints``, ``ZADD LT``). In
  that order no deadline is lost: one indexed after the take lands its own
  hint (LT keeps the lower of the two), one indexed before it is seen by the
  scan. An entry still due after that (its archive failed) gets a hint one
  interval ahead, so it is retried at the next tick until it is quarantined.
- Between ticks the sweeper sleeps until the earliest hint it knows
  (`HintSchedule`): the earliest few coming within two intervals (a take reads
  them, with their buckets, and leaves them; nothing beyond, which the next
  tick's take sees coming), and the next scores it put back. On a cluster a
  writer's hint is a margin early: the bucket is looked at once before the
  deadline, learns the exact score, and is looked at again on time.
- A pass that wakes for hints of known buckets asks those buckets in the round
  trip of its take, right after it (``take_and_scan``): one connection runs the
  two in that order on a single server, which keeps the argument above. On a
  cluster the take and the scan are on different nodes, in no set order, so
  the scan waits for the take's reply, as for buckets the take alone names.
- Passes overlap (up to ``MAX_PASSES``): a hint falling due while a pass is
  archiving starts another at once, so a deadline waits for its own pass only.
  Two passes never take the same bucket (a take removes what it read), a
  session is archived by one path at a time (``inflight``), put-backs only
  lower hints, and all passes share one archive bound (``CONCURRENCY``).
- It asks a bucket twice only when the first answer may be stale: an entry
  the notification path is archiving, a failure, or a full batch. An entry
  another pass is archiving is that pass's to settle: it puts the bucket's
  next score back, or a retry hint when the archive failed. Otherwise the scan's
  next score, read before the archives, is the bucket's next score: what was
  archived was due, what was indexed since wrote its own hint, and a live
  session's entry scores the deadline its archive call returned (raised by
  ``read_meta``: index scores are lower bounds, chat turns do not rewrite them).

What can lose a hint: a crash between the take and the put-back, or, on a
cluster, a writer's hint call that failed after its script ran, a take and a
scan between a writer's script and its hint call, or a reshard while slot maps
disagree. So a FULL sweep (every bucket, as before the hints) still runs every
``full_interval`` (default 30 s) and at every catch-up (start, reconnect), and
lowers every bucket's hint to its next score: it is the guarantee, and it
covers data written before the hints existed. On a single server a full sweep
asks for every bucket's earliest score in one script call (``scan_buckets.lua``);
on a cluster it asks every bucket, in one pipelined round trip per node, and
takes the passed entries of the hint keys no longer read (a reshard's, the
16-key layout's; ``scans.scan_due``), so those empty as their entries pass.

An entry whose archive keeps failing is quarantined after ``max_failures``
attempts, so its bucket moves on.

One sweeper per key prefix: the ticks run only in the listener that holds the
sweep lease (``<prefix>:sweeper``, ``sweep_lease.lua``), which every listener
asks for once per interval. It lasts ``lease`` seconds (by default 4 sweep
intervals, at least 1 s); when the holder dies or cannot reach Redis, the first
listener to ask after it lapsed takes over, with a full sweep. A holder that
stops cleanly releases it.
Catch-up sweeps (at start, and after a reconnect of the notification
subscription) run whether or not this listener holds the lease: they are what
makes a listener ``live``, and cost one full sweep per reconnect.
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
from luminora_redis.listener.schedule import HintSchedule, Wake
from luminora_redis.ops import archive, liveness, outbox, scans

__all__ = ["Sweeper"]

logger = logging.getLogger("luminora_redis.listener")

CONCURRENCY = 16  # concurrent archives, all passes together
#: Passes for due hints that may run at once (see the module docstring).
MAX_PASSES = 4
#: Seconds between full sweeps of the lease holder, by default (see the module).
FULL_SWEEP_INTERVAL = 30.0
# Least pause between two scans of due buckets: the schedule maps the server's clock
# onto ours, and an estimate a hair early must not spin.
MIN_GAP = 0.002

Archive = Callable[[str], Awaitable[bool | archive.StillLive]]


class Sweeper:
    """Ticks every ``interval`` (a full sweep every ``full_interval``, else the buckets
    whose hint passed) and, in between, takes of the hints as they fall due.

    ``archive(session_id)`` archives one session (True when that call did) and
    raises on failure; ``inflight`` holds sessions some other path is archiving.
    ``on_full_sweep(mark)`` runs after each successful full sweep with what
    ``mark()`` returned just before it started, ``on_pass()`` after each other pass
    of an interval; ``on_error`` after each failure logged. ``owner`` is this
    sweeper's id in the sweep lease, unique per running listener; ``lease`` the
    lease length in seconds. ``outage(what)`` makes the
    `Outage` through which each run waits out Redis being unreachable or refusing.
    """

    def __init__(self, store: SessionStore, *, interval: float, batch: int, max_failures: int,
                 archive: Archive, inflight: set[str], mark: Callable[[], object],
                 on_full_sweep: Callable[[object], None],
                 on_error: Callable[[], None], owner: str, lease: float,
                 outage: Callable[[str], Outage],
                 full_interval: float = FULL_SWEEP_INTERVAL,
                 on_pass: Callable[[], None] | None = None) -> None:
        self._store = store
        self._interval = interval
        self._full_interval = max(full_interval, interval)
        self._owner = owner
        self._lease_ms = max(1, int(lease * 1000))
        #: Whether this sweeper held the sweep lease when it last asked.
        self.holds_lease = False
        self._batch = batch
        self._max_failures = max_failures
        self._archive = archive
        self._inflight = inflight
        self._sweeping: set[str] = set()  # the part of ``inflight`` this sweeper's passes hold
        self._mark = mark
        self._on_full_sweep = on_full_sweep
        self._on_pass = on_pass
        self._on_error = on_error
        self._new_outage = outage
        self.schedule = HintSchedule()
        self._alarm = asyncio.Event()  # ends the pause: a wake, or a pass learned a hint
        #: Set to end the pause for a stop or a catch-up sweep.
        self.wake = Wake(self._alarm)
        self.closing = False
        self._next_tick = 0.0  # loop time of the next tick
        self._next_full = 0.0  # loop time of the next full sweep
        self._catch_up = True  # whether the next tick is a full sweep run without the lease
        self._pending: set[int] = set()  # buckets taken from the hints, not swept yet
        self._limit = asyncio.Semaphore(CONCURRENCY)
        self._passes: set[asyncio.Task[int]] = set()  # passes for hints, running
        #: Ticks that swept (full or by the hints), and catch-up sweeps.
        self.sweeps = 0
        #: Full sweeps among them.
        self.full_sweeps = 0
        #: Takes of the hints (each tick of the holder, and each wake for a hint).
        self.takes = 0
        self.quarantined = 0

    async def sweep_once(self) -> int:
        """One full sweep; how many sessions this call archived."""
        archived = await self.sweep(None)
        self.sweeps += 1
        self.full_sweeps += 1
        return archived

    async def sweep_hinted(self, known: set[int] | None = None) -> int:
        """Take the passed hints and sweep their buckets; how many sessions this call
        archived. ``known``: buckets known to have a hint passed, asked in the round trip
        of the take where that keeps the order (a single server). Buckets taken by a
        pass that failed are swept by the next one."""
        # Two intervals ahead: the next tick's take may come a little late.
        due, first = await call(self._store, scans.take_and_scan, sorted(known or ()),
                                int(2000 * self._interval), self._batch)
        self.takes += 1
        self.schedule.clock(due.now_ms, time.time() * 1000)
        self.schedule.taken(due.buckets)  # this pass asks them: no other need wake for them
        self.schedule.note(due.next_ms)
        for bucket, score in due.coming.items():
            self.schedule.note(score, bucket)
        self._alarm.set()  # the loop may be asleep until the tick: the schedule changed
        scanned = set(known or ()) if first is not None else set()
        buckets = self._pending.union(due.buckets, () if first is not None else known or ())
        self._pending.clear()
        rest = sorted(buckets - scanned)
        sweeps = ([self.sweep(sorted(scanned), first)] if first is not None else []) + (
            [self.sweep(rest)] if rest else [])
        archived = 0
        for result in await asyncio.gather(*sweeps, return_exceptions=True):
            if isinstance(result, BaseException):
                self._pending.update(buckets | scanned)
                raise result
            archived += result
        return archived

    async def sweep(self, buckets: list[int] | None, first: scans.DueScan | None = None) -> int:
        """Archive the due sessions of ``buckets`` (all when None), then put each bucket's
        next score back into the hints, and note them in the schedule. ``first``: the
        scan of ``buckets`` already made."""
        space = (await self._store.context()).keys
        targets = list(range(space.buckets)) if buckets is None else buckets
        limit = self._limit

        async def one(session_id: str) -> int:
            """1 archived, 0 not (someone else did, or not due), -1 quarantined; a session
            found live is 0, its raised deadline noted in ``raised``."""
            try:
                async with limit:
                    result = await self._archive(session_id)
                if isinstance(result, archive.StillLive):
                    raised[session_id] = result.deadline_ms
                    return 0
                return int(result)
            except Exception as error:
                if is_outage(error):
                    raise  # not this session's failure: the sweep waits the outage out
                self._on_error()
                logger.exception("archiving session %s failed", session_id)
                return await self._failed(session_id)
            finally:
                self._inflight.discard(session_id)
                self._sweeping.discard(session_id)

        total = 0
        ahead: dict[int, int] = {}
        previous: set[str] = set()
        raised: dict[str, int] = {}  # live sessions found due -> their real deadlines
        while True:
            if first is None:
                scan = await call(self._store, scans.scan_due, targets, False, self._batch)
            else:
                scan, first = first, None
            # The clocks are compared as the reply arrives, not after the archives.
            self.schedule.clock(scan.now_ms, time.time() * 1000)
            for bucket in targets:
                ahead.pop(bucket, None)
            ahead.update(scan.next_deadlines)
            mine = [sid for sid in scan.session_ids if sid not in self._inflight]
            # Another pass archiving an entry settles its bucket (its put-back, or its retry
            # hint on failure): no need to ask that bucket again for it.
            settling = self._sweeping.intersection(scan.session_ids)
            self._inflight.update(mine)
            self._sweeping.update(mine)
            results = await asyncio.gather(*(one(sid) for sid in mine), return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            total += sum(1 for result in results if result == 1)
            # Archived and quarantined entries left the index, and the scan already named
            # the next score of their buckets; a live session's entry now scores the
            # deadline its archive call returned. Entries not archived otherwise (one
            # another path is archiving; a failure) and a full batch need another look
            # at their buckets.
            for sid, deadline in raised.items():
                if (owner := space.bucket_of_session(sid)) is not None:
                    ahead[owner] = min(ahead.get(owner, deadline), deadline)
            found = set(scan.session_ids)
            unsettled = found.difference(
                sid for sid, result in zip(mine, results) if result != 0).difference(
                    raised, settling)
            raised.clear()
            again = found if scan.more else unsettled
            if not again or found == previous or self.closing:
                break
            previous = found
            targets = sorted({owner for sid in again
                              if (owner := space.bucket_of_session(sid)) is not None})
        # Buckets that still hold due entries (failing ones, those another path is
        # archiving, those behind them in a full batch): looked at again a tick from now.
        retry = scan.now_ms + int(self._interval * 1000)
        for sid in again:
            if (owner := space.bucket_of_session(sid)) is not None:
                ahead[owner] = min(ahead.get(owner, retry), retry)
        await call(self._store, scans.lower_hints, ahead)
        for bucket, score in ahead.items():
            self.schedule.note(score, bucket)
        self._alarm.set()
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
        """Sweep until ``stop`` is set: a tick every interval (at once when woken) and, in
        between, takes of the hints as they fall due. An outage ends a pass early, and a
        catch-up full sweep follows it; any other failure is logged and the next pass
        comes as usual."""
        self._next_tick = self._next_full = 0.0
        self._catch_up = True  # the first sweep, and the one after each wake, run regardless
        try:
            await keep_trying(self._new_outage("the sweeper"), stop, self._cycle,
                              pause=self._pause, on_failure=self._lost, on_bug=self._bug)
        finally:
            try:
                # Passes end soon once ``closing`` is set; cancelled with this task.
                await asyncio.gather(*self._passes, return_exceptions=True)
            finally:
                self._passes.clear()
                await self._release()

    async def _cycle(self) -> float:
        """One pass of `run`: at a tick, renew the lease and sweep (in full when one is due
        or this is a catch-up); between ticks, a take of the hints when the schedule says
        one has passed. Returns the pause before the next pass."""
        clock = asyncio.get_running_loop().time
        self._reap()
        if self.wake.is_set():
            self.wake.clear()
            self._next_tick = self._next_full = 0.0
            self._catch_up = True
        if clock() >= self._next_tick:
            self._next_tick = clock() + self._interval
            mark = self._mark()
            held, self.holds_lease = self.holds_lease, await self._hold()
            # A new holder sweeps in full: the last one may have died holding taken hints.
            if self._catch_up or (self.holds_lease and (not held or clock() >= self._next_full)):
                self._next_full = clock() + self._full_interval
                await self.sweep_once()
                self._on_full_sweep(mark)
            elif self.holds_lease:
                await self._start_pass(tick=True)
            else:
                self.schedule.forget()  # the holder watches the deadlines
            self._catch_up = False
        elif self.holds_lease and (known := self.schedule.take_due(time.time() * 1000)) \
                is not None:
            await self._start_pass(tick=False, known=known)
        return self._next_pause()

    async def _start_pass(self, *, tick: bool, known: set[int] | None = None) -> None:
        """Start a pass for the hints that fell due (at a ``tick``: that interval's;
        ``known``: buckets known to be among them), beside those still running (waiting
        for one to end when `MAX_PASSES` run)."""
        while len(self._passes) >= MAX_PASSES:
            await asyncio.wait(self._passes, return_when=asyncio.FIRST_COMPLETED)
            self._reap()
        task = asyncio.create_task(self._pass(tick, known), name="sweep for due hints")
        self._passes.add(task)

    async def _pass(self, tick: bool, known: set[int] | None) -> int:
        archived = await self.sweep_hinted(known)
        if tick:
            self.sweeps += 1
            if self._on_pass is not None:
                self._on_pass()
        return archived

    def _reap(self) -> None:
        """Forget the passes that ended; the first one's failure is raised here, so the
        loop meets it as if the pass had run inline (an outage: catch up; a bug: logged)."""
        done = [task for task in self._passes if task.done()]
        failure: BaseException | None = None
        for task in done:
            self._passes.discard(task)
            if not task.cancelled() and (error := task.exception()) is not None:
                failure = failure or error
        if failure is not None:
            raise failure

    def _next_pause(self) -> float:
        """The pause until the next pass: the next tick, or the earliest known hint."""
        return self.schedule.pause(self._next_tick - asyncio.get_running_loop().time(),
                                   time.time() * 1000, MIN_GAP)

    def _lost(self) -> None:
        """Redis cannot serve: forget the schedule, and sweep in full once it can."""
        self.schedule.forget()
        self._next_tick = self._next_full = 0.0
        self._catch_up = True

    def _bug(self, error: Exception) -> float:
        """A pass failed for another reason: logged; the next pass comes as usual (the
        buckets it took from the hints with it)."""
        self._on_error()
        logger.error("sweep failed; the next one runs in %.3f s", self._interval, exc_info=error)
        return self._next_pause()

    async def _hold(self) -> bool:
        """Take or renew the sweep lease; whether this sweeper holds it."""
        return await leases.take(self._store, liveness.sweep_lease, self._owner,
                                 self._lease_ms, held=self.holds_lease, lease="sweep lease",
                                 job="the sweeps")

    async def _release(self) -> None:
        """Give the lease up on stop, so that another listener takes over at its next
        interval rather than after the lease lapses."""
        if self.holds_lease:
            self.holds_lease = False
            await leases.give_up(self._store, liveness.sweep_lease, self._owner,
                                 lease="sweep lease")

    async def _pause(self, seconds: float) -> None:
        """Sleep up to ``seconds``; a stop, a catch-up request or a hint a pass learned
        ends it early."""
        if not self._alarm.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._alarm.wait(), seconds)
        self._alarm.clear()

