"""DeadlineSchedule: when each bucket next has a session due, as the sweeper learned it.

A full sweep asks every bucket's deadline index (one script call on a single
server, 1024 on a cluster), so it cannot run often. But it also learns when
each bucket's earliest remaining deadline falls. Index scores are lower
bounds of the sessions' deadlines, so a bucket may be woken for a session
that chatted on: the sweep raises that entry to its real expiry, and the
schedule learns the bucket's next score from the same scan. The sweeper keeps those
deadlines here and, between full sweeps, wakes when the earliest one falls
due and asks only the buckets that are due. Known deadlines are therefore
archived within a round trip of expiring, and the cost follows the expiry
rate rather than the bucket count. Deadlines the schedule cannot know (a
session created or touched after its bucket was scanned) are caught by the
next full sweep, or by a keyspace notification.

Deadlines are Redis's clock (ms); the schedule maps them onto this host's
clock with the offset seen in the latest reply. An estimate that is early
only costs a query that finds nothing due yet.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from luminora_redis.ops.scans import DueScan

__all__ = ["DeadlineSchedule"]


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
