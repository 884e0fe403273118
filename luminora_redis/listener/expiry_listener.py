"""ExpiryListener: every expired session reaches its user's archive exactly once, and every
archive reaches the ``on_archived`` sink at least once.

It wires the keyspace-notification fast path (`expired_events`), the sweeper
that guarantees it (`sweeper`), the delivery of the outbox to the sink
(`deliveries`) and a heartbeat, and archives what the first two find. How the
parts fit, and why, is in docs/listener.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from typing import Any

from luminora_redis.core.errors import ConfigurationError, InvalidSettings
from luminora_redis.io.store import SessionStore
from luminora_redis.listener import heartbeat as heartbeats
from luminora_redis.listener.compression import Compressions
from luminora_redis.listener.deliveries import Deliveries, OnArchived, Summarize
from luminora_redis.listener.expired_events import ExpiredEvents
from luminora_redis.listener.live_state import LiveState
from luminora_redis.listener.outages import Outage, call, describe, keep_trying, refused_permission
from luminora_redis.listener.settings import ListenerObserver, ListenerSettings
from luminora_redis.listener.stopping import cancel, step, unless_stopped
from luminora_redis.listener.sweeper import Sweeper
from luminora_redis.ops import archive

__all__ = ["NOTIFICATION", "SWEEP", "ExpiryListener", "ListenerObserver", "ListenerSettings",
           "OnArchived", "Summarize"]

logger = logging.getLogger("luminora_redis.listener")

#: The ``path`` an archive took: a keyspace notification, or the sweeper.
NOTIFICATION = "notification"
SWEEP = "sweep"

_STOP_GRACE = 5.0  # seconds in-flight archives and deliveries get to finish on stop
_STOP_CANCEL = 2.0  # seconds the loops get to end once cancelled, then they are abandoned
_STOP_LEAVE = 3.0  # seconds removing the heartbeat may take


class ExpiryListener:
    """Archives expired sessions of one store and delivers archives to ``on_archived``.

    ``on_archived`` is a plain or async callable receiving each
    ``ArchivedConversation`` at least once, whichever path archived it (expiry,
    sweep, ``end_session``, ``cleanup_expired_sessions``), with a stable
    ``idempotency_key``; a plain one runs on the event loop and must not block.

    ``summarize`` is a plain or async callable receiving the same conversations,
    which returns the episode to keep of each (a `SessionSummary`, or a mapping
    with ``title``, ``summary``, ``importance`` and ``sentiment``) or None: it is
    saved as the session's one ``session_summary`` episode, with the session's
    personality, exactly once per session however often it runs. It runs before
    ``on_archived`` in each delivery attempt, with the same retries,
    ``hook_timeout`` and quarantine (see ``luminora_redis.listener.deliveries``); a
    plain one runs in a worker thread. ``settings`` is a `ListenerSettings`, or its
    fields as keywords.
    """

    def __init__(self, store: SessionStore, settings: ListenerSettings | None = None, *,
                 on_archived: OnArchived | None = None, summarize: Summarize | None = None,
                 observer: ListenerObserver | None = None, **overrides: Any) -> None:
        if not isinstance(store, SessionStore):
            raise ConfigurationError(f"ExpiryListener needs the asyncio SessionStore, not "
                                     f"{type(store).__name__}")
        if on_archived is not None and not callable(on_archived):
            raise InvalidSettings(f"on_archived must be callable, not {on_archived!r}")
        if summarize is not None and not callable(summarize):
            raise InvalidSettings(f"summarize must be callable, not {summarize!r}")
        if settings is not None and not isinstance(settings, ListenerSettings):
            raise InvalidSettings(f"settings must be a ListenerSettings, not "
                                  f"{type(settings).__name__}")
        base = settings.model_dump(exclude_unset=True) if settings is not None else {}
        self.settings = ListenerSettings.model_validate({**base, **overrides})
        self._store = store
        self._on_archived = on_archived
        self._summarize = summarize
        self._observer = observer
        self.name = self.settings.name or f"{socket.gethostname()}:{os.getpid()}"
        self._state = LiveState(self.name, lambda: self._sweeper.wake.set(), observer)
        #: Set once the listener is subscribed and a sweep after that has completed.
        self.started = self._state.started
        #: Set while live: subscribed, in no outage and caught up (see ``live_state``).
        self.live = self._state.live
        self._stop = asyncio.Event()
        self._stopped = asyncio.Event()
        self._stopped.set()
        self._inflight: set[str] = set()  # sessions this listener is archiving or has queued
        self._archived = {NOTIFICATION: 0, SWEEP: 0}
        self._errors = 0
        self._owner = f"{self.name}#{secrets.token_hex(4)}"  # in the leases it holds
        self._sweeper = self._new_sweeper()
        self._events = ExpiredEvents(
            store, self.name, self.settings, self._state, stop=self._stop,
            archive=lambda sid: self._archive(sid, NOTIFICATION), inflight=self._inflight,
            wake_sweeper=lambda: self._sweeper.wake.set(), outage=self._outage,
            on_error=self._count_error, observer=observer)
        self._deliveries: Deliveries | None = None
        self._compressions = Compressions(store, self._count_error)

    def _new_sweeper(self) -> Sweeper:
        s = self.settings
        return Sweeper(self._store, interval=s.sweep_interval, batch=s.sweep_batch,
                       max_failures=s.sweep_max_failures, lease=s.lease,
                       full_interval=s.full_sweep_interval, on_pass=self._passed,
                       owner=self._owner,
                       archive=lambda sid: self._archive(sid, SWEEP), inflight=self._inflight,
                       mark=self._state.mark, on_full_sweep=self._swept,
                       on_error=self._count_error,
                       outage=self._outage)

    # -- counters ----------------------------------------------------------------

    @property
    def archived(self) -> int:
        """Sessions this listener archived, by either path."""
        return sum(self._archived.values())

    @property
    def archived_by_path(self) -> dict[str, int]:
        """Sessions this listener archived, by ``notification`` and ``sweep``."""
        return dict(self._archived)

    @property
    def sweeps(self) -> int:
        """Completed sweep passes: every interval of the sweep lease's holder (in full every
        ``full_sweep_interval``, else the buckets whose hint passed); the others sweep in
        full at start and after a reconnect."""
        return self._sweeper.sweeps

    @property
    def sweeping(self) -> bool:
        """Whether this listener held the sweep lease when it last asked: it runs the
        periodic full sweeps of its key prefix."""
        return self._sweeper.holds_lease

    @property
    def scanning_outbox(self) -> bool:
        """Whether this listener held the outbox scan lease when it last asked: it runs
        the periodic full outbox scans of its key prefix (only with ``on_archived``)."""
        return self._deliveries is not None and self._deliveries.holds_lease

    @property
    def outbox_scans(self) -> int:
        """Full outbox scans this listener ran (only the outbox scan lease's holder scans)."""
        return self._deliveries.scans if self._deliveries is not None else 0

    @property
    def errors(self) -> int:
        """Failures logged: lost connections, failed archive calls, failed hooks."""
        return self._errors

    @property
    def reconnects(self) -> int:
        """Times the notification subscription was re-established after a loss."""
        return self._events.reconnects

    @property
    def lives(self) -> int:
        """Times the listener became live: once at start, then once per reconnect and per
        outage."""
        return self._state.lives

    @property
    def delivered(self) -> int:
        """Deliveries this listener made to ``on_archived`` and acknowledged."""
        return self._deliveries.attempts.delivered if self._deliveries is not None else 0

    @property
    def summarized(self) -> int:
        """Session summaries this listener's ``summarize`` returned and it saved (a
        session's summary saved again after a failed attempt counts again)."""
        return self._deliveries.attempts.summarized if self._deliveries is not None else 0

    @property
    def quarantined(self) -> int:
        """Sweep entries and deliveries this listener quarantined."""
        deliveries = self._deliveries.attempts.quarantined if self._deliveries is not None else 0
        return self._sweeper.quarantined + deliveries

    async def wait_live(self, after: int = 0) -> int:
        """Wait until the listener has become live more than ``after`` times (e.g. pass
        `lives` read before a fault to await the catch-up after the reconnect); returns
        the count. Bound it with ``asyncio.wait_for``."""
        return await self._state.wait_live(after)

    # -- lifecycle ----------------------------------------------------------------

    async def run(self) -> None:
        """Listen, sweep and deliver until `stop` is called or this task is cancelled.

        Redis being unreachable or refusing (OOM, BUSY, LOADING, READONLY, …) is
        an outage that every loop waits out with bounded, jittered backoff, at
        start too; `outage` and the observer show it. It raises only on a
        configuration the store refuses at start (e.g. a layout version), on a
        refusal of this user's rights at start (``NOPERM``, ``WRONGPASS``: see
        `refused_permission`; a ``ConfigurationError`` chained to the refusal), or
        on a bug that escaped a loop; then with that error, never one met while
        stopping.
        """
        if not self._stopped.is_set():
            raise RuntimeError(f"listener {self.name} is already running")
        self._stopped.clear()
        self._state.reset(listening=not self.settings.notifications)
        self._events.sweeper_only = False
        try:
            if await self._start():
                await self._serve()
        finally:
            self._state.reset(listening=False)
            self._stop.clear()
            self._stopped.set()

    async def _start(self) -> bool:
        """Read the keyspace's layout, waiting out outages; False when stopped first.

        A call stuck on a paused server does not hold a stop up. A refusal of this
        user's rights is taken as permanent here: nothing has worked yet, so it is
        a misconfiguration rather than an ACL changed under a running listener."""
        refused: list[Exception] = []

        async def read_layout() -> None:
            try:
                await unless_stopped(self._store.context(), self._stop)
            except Exception as error:
                if not refused_permission(error):
                    raise
                refused.append(error)

        await keep_trying(self._outage("starting the listener"), self._stop, read_layout,
                          on_bug=_reraise)
        if refused:
            reason = (f"Redis refused this user at start-up ({describe(refused[0])}); grant "
                      f"the right it names (ACL SETUSER), then start the listener again")
            logger.error("listener %s cannot start: %s", self.name, reason)
            raise ConfigurationError(reason) from refused[0]
        return not self._stop.is_set()

    async def _serve(self) -> None:
        s = self.settings
        beat = heartbeats.beat(self._store, self.name, s.heartbeat_interval, self._stop,
                               self._outage("the heartbeat"),
                               delivers=self._delivers)
        loops = [asyncio.create_task(self._sweeper.run(self._stop), name=f"{self.name} sweeper"),
                 asyncio.create_task(beat, name=f"{self.name} heartbeat")]
        if s.notifications:
            loops += self._events.start()
        if self._delivers:
            self._deliveries = Deliveries(
                self._store, self._on_archived, interval=s.delivery_interval,
                workers=s.delivery_workers, lease=s.delivery_lease, hook_timeout=s.hook_limit,
                backoff_base=s.delivery_backoff, backoff_cap=s.delivery_backoff_cap,
                max_attempts=s.delivery_max_attempts, observer=self._observer,
                on_error=self._count_error, outage=self._outage, owner=self._owner,
                scan_lease=s.scan_lease, summarize=self._summarize)
            loops.append(asyncio.create_task(self._deliveries.run(self._stop, _STOP_GRACE),
                                             name=f"{self.name} deliveries"))
        stopper = asyncio.create_task(self._stop.wait())
        logger.info("listener %s running: sweep every %.3f s, notifications %s, deliveries %s",
                    self.name, s.sweep_interval, "on" if s.notifications else "off",
                    "on" if self._deliveries is not None else "off (no on_archived or summarize)")
        try:
            pending: set[asyncio.Task[Any]] = {stopper, *loops}
            while not stopper.done():
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task is not stopper:
                        task.result()  # a loop may end by itself; one that fails is a bug
        finally:
            await self._shutdown(stopper, loops)
            logger.info("listener %s stopped: %d archived, %d delivered, %d sweeps, %d errors, "
                        "%d reconnects, %d outages", self.name, self.archived, self.delivered,
                        self.sweeps, self._errors, self.reconnects, self.outages)

    @property
    def _delivers(self) -> bool:
        return self._on_archived is not None or self._summarize is not None

    async def stop(self) -> None:
        """Ask `run` to finish and wait until it has; in-flight work completes first."""
        if self._stopped.is_set():
            return
        self._wake_all()
        await self._stopped.wait()

    def _wake_all(self) -> None:
        self._stop.set()
        self._sweeper.wake.set()
        if self._deliveries is not None:
            self._deliveries.wake()

    async def _shutdown(self, stopper: asyncio.Task[Any], loops: list[asyncio.Task[None]]) -> None:
        """Stop reading notifications, let in-flight work finish, close everything.

        Each step is bounded and handles its own errors (`stopping`), so the whole
        takes at most about ``2 × _STOP_GRACE + 3 × _STOP_CANCEL + _STOP_LEAVE`` seconds
        whatever Redis does, and never raises but for a cancellation of `run`."""
        self._sweeper.closing = True
        self._wake_all()
        stopper.cancel()
        finished = {task for task in loops if task.done()}  # their errors are run()'s
        try:
            await self._events.stop_reading(_STOP_GRACE)
            await asyncio.wait(loops, timeout=_STOP_GRACE + 1)
            await self._compressions.drain(_STOP_CANCEL, _STOP_CANCEL)
            if self._deliveries is not None:
                await self._deliveries.released(_STOP_CANCEL)
        finally:
            abandoned = await cancel([stopper, *loops], _STOP_CANCEL)
            for task in loops:
                if task in abandoned:
                    logger.error("listener task %s did not end within %.1f s of its "
                                 "cancellation; abandoned", task.get_name(), _STOP_CANCEL)
                elif task not in finished and not task.cancelled() and task.exception():
                    logger.error("listener task %s failed while stopping", task.get_name(),
                                 exc_info=task.exception())
            await step(f"listener {self.name} removing its heartbeat",
                       heartbeats.leave(self._store, self.name), _STOP_LEAVE)
            self._inflight.clear()
            self._sweeper.closing = False
            self._sweeper.wake.clear()

    # -- outages ----------------------------------------------------------------------

    @property
    def outage(self) -> bool:
        """Whether some loop of this listener finds Redis unreachable or refusing now;
        `live` is clear meanwhile, and set again after the catch-up sweep that
        follows the outage."""
        return self._state.in_outage

    @property
    def outages(self) -> int:
        """Outages this listener waited out or is waiting out (overlapping ones of
        several loops count once)."""
        return self._state.outages

    def _outage(self, what: str, holds: bool = True) -> Outage:
        """A fresh `Outage` for one of this listener's loops. One that ``holds`` is part of
        the listener's outage: it retries the same call until Redis answers, so it sees the
        end too. Workers that each try one item (and leave the rest to a loop that does)
        only log and count theirs."""
        change = self._state.outage_changed if holds else (lambda what, active: None)
        return Outage(what, on_error=self._count_error, on_change=change)

    # -- the sweeper and liveness ---------------------------------------------------

    async def sweep_once(self) -> int:
        """One full sweep: archive every auto_cleanup session whose deadline has passed.
        Returns how many this call archived; connection errors propagate."""
        archived = await self._sweeper.sweep_once()
        if self._observer is not None:
            self._observer.swept()
        return archived

    def _passed(self) -> None:
        """A sweep pass through the due-bucket hints completed (not a full sweep)."""
        if self._observer is not None:
            self._observer.swept()

    def _swept(self, mark: object) -> None:
        if self._observer is not None:
            self._observer.swept()
        self._state.swept(mark)

    # -- archiving ----------------------------------------------------------------

    async def _archive(self, session_id: str, path: str) -> bool | archive.StillLive:
        """Archive one expired session; True when this call did, `StillLive` (its raised
        deadline) when the session lives on. Errors propagate."""
        settings = self._store.settings
        # What this listener hands on (its sink, its compression) comes back with the
        # archive, up to a page: no round trip reads it again.
        returned = settings.page_size if (
            self._deliveries is not None or settings.compress_archives) else 0
        deliveries = self._deliveries
        lease = deliveries.lease_to_claim() if deliveries is not None else 0
        archived = await call(self._store, archive.archive_due, session_id, "expire", False,
                              returned, lease)
        if archived is None or isinstance(archived, archive.StillLive):
            return archived or False
        lag = max(0.0, time.time() - archived.ended_ms / 1000)
        if path == NOTIFICATION and not self._archived[path]:
            self._events.flags.confirmed()
        self._archived[path] += 1
        if self._observer is not None:
            self._observer.archived(path, lag)
        logger.info("archived session %s of user %r: %s, %d messages, by %s, %.3f s after "
                    "its deadline", session_id, archived.user_id, archived.reason.value,
                    archived.message_count, path, lag)
        if self._deliveries is not None:
            self._deliveries.offer(session_id, archived.user_id, archived.conversation,
                                   archived.claimed_until)
        await self._compressions.start(archived)  # after the offer, in its own task: off the lag
        return True

    def _count_error(self) -> None:
        self._errors += 1
        if self._observer is not None:
            self._observer.error()


def _reraise(error: Exception) -> float:
    """An error that is not an outage ends the loop: it propagates."""
    raise error
