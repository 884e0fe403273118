"""When a listener counts as live, and the outages that suspend it.

A listener is live once three things hold: it is listening (subscribed to
expired events, or not wanting them), it is in no outage (no loop finds Redis
unreachable or refusing), and a full sweep has completed that began after the
last moment events may have been missed. That moment is a *generation*: it
moves on at every (re)subscription, at the end of every outage and whenever the
notification flags had to be put back; a sweep begun in an older generation
does not make the listener live. Tests and operators await `LiveState.wait_live`
after a fault to know that everything that expired meanwhile was caught up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

__all__ = ["LiveState"]

logger = logging.getLogger("luminora_redis.listener")


class LiveState:
    """The live state of one listener named ``name``. ``catch_up()`` asks its sweeper
    for a full sweep now; ``observer`` gets ``outage(active)`` when it has that method."""

    def __init__(self, name: str, catch_up: Callable[[], None], observer: Any = None) -> None:
        self._name = name
        self._catch_up = catch_up
        self._observer = observer
        #: Set once the listener is subscribed and a sweep after that has completed.
        self.started = asyncio.Event()
        #: Set while live; cleared when the subscription is lost or an outage begins.
        self.live = asyncio.Event()
        self.lives = 0  # times it became live
        self._changed = asyncio.Condition()
        self.listening = False  # notifications can arrive (or are not wanted)
        self.generation = 0
        self._live_generation = -1
        self._outages: set[str] = set()  # what is in an outage now
        self.outages = 0  # outages begun

    def reset(self, listening: bool) -> None:
        """A new run, or the end of one: not live, in no outage, and listening only if
        notifications are not wanted."""
        self.started.clear()
        self.live.clear()
        if self._outages:
            self._outages.clear()
            self._report()
        self.listening = listening

    def mark(self) -> tuple[bool, int]:
        """Taken before a full sweep begins, and handed back to `swept`."""
        return self.listening, self.generation

    def swept(self, mark: object) -> None:
        """A full sweep that began at ``mark`` completed: live, if nothing was missed since."""
        assert isinstance(mark, tuple)
        listening, generation = mark
        if listening and self.listening and generation == self.generation and not self._outages:
            self.become_live()

    def become_live(self) -> None:
        """Live in the current generation (once per generation)."""
        if self.generation <= self._live_generation:
            return
        self._live_generation = self.generation
        self.lives += 1
        self.live.set()
        asyncio.get_running_loop().create_task(self._announce())
        if not self.started.is_set():
            self.started.set()
            logger.info("listener %s started", self._name)

    async def _announce(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_live(self, after: int = 0) -> int:
        """Wait until live more than ``after`` times; the count."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.lives > after and self.live.is_set())
            return self.lives

    def subscribed(self) -> None:
        """Notifications arrive (again): what expired before may have been missed."""
        self.listening = True
        self.missed()

    def lost(self) -> None:
        """The subscription is lost: not live until it is back and caught up."""
        self.listening = False
        self.live.clear()

    def missed(self) -> None:
        """Events may have been missed: not live until a full sweep begun now completes."""
        self.live.clear()
        self.generation += 1

    @property
    def in_outage(self) -> bool:
        return bool(self._outages)

    def outage_changed(self, what: str, active: bool) -> None:
        """``what`` (a loop) began or ended an outage. The listener's outage spans from the
        first loop's start to the last loop's end; after it, a catch-up sweep."""
        was = bool(self._outages)
        if active:
            self._outages.add(what)
        else:
            self._outages.discard(what)
        if was == bool(self._outages):
            return
        if self._outages:
            self.outages += 1
            self.live.clear()
        else:
            self.missed()
            self._catch_up()
        self._report()

    def _report(self) -> None:
        report = getattr(self._observer, "outage", None)
        if report is not None:
            report(bool(self._outages))
