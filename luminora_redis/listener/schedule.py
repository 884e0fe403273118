"""When a listener next looks at its sorted sets: `DeadlineSchedule` per bucket (the
delivery loop's outboxes), `HintSchedule` for the sweeper's due-bucket hints, and
`Wake`, a request that ends the sweeper's pause early.

DeadlineSchedule: when each bucket next has an entry due, as a scan learned it.
A full scan of every bucket (the delivery loop's outbox scan) cannot run
often, but it learns when each bucket's earliest remaining entry falls; the
loop keeps those times here and, between full scans, wakes when the earliest
one falls due and asks only the buckets that are due. Scores the schedule
cannot know (an entry added after its bucket was scanned) are caught by the
next full scan. (The sweeper used this too, until the due-bucket hints let it
learn of new deadlines without a full sweep: `HintSchedule`.)

Scores are Redis's clock (ms); the schedules map them onto this host's clock
with the offset seen in the latest reply. An estimate that is early only
costs a query that finds nothing due yet.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from collections.abc import Iterable

from luminora_redis.ops.scans import DueScan

__all__ = ["DeadlineSchedule", "HintSchedule", "Wake"]


class DeadlineSchedule:
    """The next known deadline of every bucket, earliest first. Not thread-safe."""

    def __init__(self) -> None:
        self._next: dict[int, int] = {}
        self._heap: list[tuple[int, int]] = []
        self._offset_ms = 0.0  # server clock minus this host's clock

    def __len__(self) -> int:
        return len(self._next)

    def learn(self, scan: DueScan, scanned: Iterable[int], local_ms: float) -> None:
        """Record what a scan of the ``scanned`` buckets said about their next deadlines."""
        self._offset_ms = scan.now_ms - local_ms
        for bucket in scanned:
            deadline = scan.next_deadlines.get(bucket)
            if deadline is None:
                self._next.pop(bucket, None)
            elif self._next.get(bucket) != deadline:
                self._next[bucket] = deadline
                heapq.heappush(self._heap, (deadline, bucket))

    def forget(self) -> None:
        """Drop everything known (e.g. after reconnecting to a server that may have restarted)."""
        self._next.clear()
        self._heap.clear()

    def _earliest(self) -> tuple[int, int] | None:
        while self._heap:
            deadline, bucket = self._heap[0]
            if self._next.get(bucket) == deadline:
                return deadline, bucket
            heapq.heappop(self._heap)  # superseded by a later scan
        return None

    def seconds_until_due(self, local_ms: float) -> float | None:
        """How long until the earliest known deadline (0 when past), or None when none is known."""
        earliest = self._earliest()
        if earliest is None:
            return None
        return max(0.0, (earliest[0] - self._offset_ms - local_ms) / 1000)

    def take_due(self, local_ms: float) -> list[int]:
        """The buckets whose known deadline has passed; they leave the schedule until
        a scan of them says when they are next due."""
        server_now = local_ms + self._offset_ms
        due = []
        while (earliest := self._earliest()) is not None and earliest[0] <= server_now:
            heapq.heappop(self._heap)
            del self._next[earliest[1]]
            due.append(earliest[1])
        return due

    def pause(self, until_full: float, local_ms: float, least: float) -> float:
        """Seconds to sleep: until the next full scan (``until_full`` s away) or the
        earliest known deadline, whichever is first, but at least ``least`` for the
        latter (an estimate a hair early must not spin)."""
        pause = max(0.0, until_full)
        due_in = self.seconds_until_due(local_ms)
        if due_in is not None:
            pause = min(pause, max(due_in, least))
        return pause


class HintSchedule:
    """When the sweeper should next take the due-bucket hints: the hints it knows of.

    Between its interval ticks the sweeper sleeps until the earliest hint it knows
    (see ``luminora_redis.listener.sweeper``): the earliest one each take of the
    hints left, and each bucket's next score it put back itself. A hint is a lower
    bound of its bucket's earliest deadline, so waking for it never comes late for
    a deadline the hints know; one that turns out early only costs a take that
    finds the bucket not due yet and learns its exact score. Deadlines added after
    the last take (a new session) are found at the next tick, which reads the
    hints again.

    Every hint noted is kept until it passes, not only the earliest: passes of the
    sweeper overlap, so a take may read the hints before another pass's put-back
    lands; what that pass noted must still wake the sweeper. A hint noted with its
    bucket (a put-back, or one a take saw coming) lets the pass that wakes for it
    ask that bucket in the round trip of its take (`take_due`). Scores are Redis's
    clock (ms), mapped onto this host's with the offset seen in the latest reply.
    Not thread-safe."""

    #: How long a clock sample counts (ms): the offset is the largest of that window's.
    WINDOW_MS = 2000.0

    def __init__(self) -> None:
        # A heap of the known hints (ms, server clock); a score no longer in _buckets is
        # left in it and skipped when it comes up.
        self._hints: list[int] = []
        self._buckets: dict[int, set[int]] = {}  # each known hint -> the buckets it is of
        self._bare: set[int] = set()  # the hints known of no bucket (a take's next_ms)
        self._scores: dict[int, set[int]] = {}  # each bucket -> its hints known
        self._offset_ms = 0.0  # server clock minus this host's clock
        # (local ms, offset) of recent replies, offsets decreasing: the window's largest first.
        self._samples: deque[tuple[float, float]] = deque()

    @property
    def earliest(self) -> int | None:
        """The earliest known hint (ms, server clock), or None."""
        hints = self._hints
        while hints and hints[0] not in self._buckets:
            heapq.heappop(hints)  # dropped by `taken`
        return hints[0] if hints else None

    def clock(self, server_ms: int, local_ms: float) -> None:
        """Record the server clock a reply carried, read at ``local_ms`` on this host.

        A reply read late (a busy event loop) makes the server's clock look behind and
        would move every wake-up as late: the offset is the largest of the last
        `WINDOW_MS`'s samples, the one read soonest after it was sent."""
        offset = server_ms - local_ms
        samples = self._samples
        while samples and samples[-1][1] <= offset:
            samples.pop()
        samples.append((local_ms, offset))
        while samples[0][0] < local_ms - self.WINDOW_MS:
            samples.popleft()
        self._offset_ms = samples[0][1]

    def note(self, hint_ms: int | None, bucket: int | None = None) -> None:
        """A hint is known to fall at ``hint_ms`` (None: nothing learned), of ``bucket``
        when that is known."""
        if hint_ms is None:
            return
        buckets = self._buckets.get(hint_ms)
        if buckets is None:
            buckets = self._buckets[hint_ms] = set()
            heapq.heappush(self._hints, hint_ms)
        if bucket is None:
            self._bare.add(hint_ms)
        else:
            buckets.add(bucket)
            self._scores.setdefault(bucket, set()).add(hint_ms)

    def taken(self, buckets: Iterable[int]) -> None:
        """A take removed these buckets' hints: the pass that took them puts their next
        scores back, so what was known of them no longer wakes anyone."""
        for bucket in buckets:
            for score in self._scores.pop(bucket, ()):
                noted = self._buckets.get(score)
                if noted is not None:
                    noted.discard(bucket)
                    if not noted and score not in self._bare:
                        del self._buckets[score]

    def forget(self) -> None:
        """Drop what is known (another sweeper watches, or Redis was lost)."""
        self._hints.clear()
        self._buckets.clear()
        self._bare.clear()
        self._scores.clear()

    def seconds_until_due(self, local_ms: float) -> float | None:
        """How long until the earliest known hint passes on the server's clock (0 when it
        has), or None when none is known. Due is strictly after the score, as for the
        deadline indexes: a hint at t is due once the server's clock reads t + 1."""
        earliest = self.earliest
        if earliest is None:
            return None
        return max(0.0, (earliest + 1 - self._offset_ms - local_ms) / 1000)

    def take_due(self, local_ms: float) -> set[int] | None:
        """None when no known hint has passed; else every passed one is forgotten, for the
        take it calls for (which learns the next one), and the buckets they were known
        to be of are returned (maybe none)."""
        now = local_ms + self._offset_ms
        earliest = self.earliest
        if earliest is None or earliest >= now:
            return None
        due: set[int] = set()
        while (earliest := self.earliest) is not None and earliest < now:
            heapq.heappop(self._hints)
            self._bare.discard(earliest)
            due |= self._buckets.pop(earliest)
        for bucket in due:
            scores = self._scores.get(bucket)
            if scores is not None:
                scores.difference_update(s for s in list(scores) if s < now)
                if not scores:
                    del self._scores[bucket]
        return due

    def pause(self, until_tick: float, local_ms: float, least: float) -> float:
        """Seconds to sleep: until the next tick (``until_tick`` s away) or the earliest
        known hint, whichever is first, but at least ``least`` for the latter (an
        estimate a hair early must not spin)."""
        pause = max(0.0, until_tick)
        due_in = self.seconds_until_due(local_ms)
        if due_in is not None:
            pause = min(pause, max(due_in, least))
        return pause


class Wake:
    """A request for a catch-up sweep (or the stop): like an ``asyncio.Event``, and it
    ends the sweeper's pause."""

    def __init__(self, alarm: asyncio.Event) -> None:
        self._requested = False
        self._alarm = alarm

    def set(self) -> None:
        self._requested = True
        self._alarm.set()

    def clear(self) -> None:
        self._requested = False

    def is_set(self) -> bool:
        return self._requested
