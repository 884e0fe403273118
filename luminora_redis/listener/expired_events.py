"""ExpiredEvents: the keyspace-notification half of the listener.

It runs the subscription to ``expired`` events (`subscriptions`), maps each
expired key to a session of this store, queues it and archives it in a pool of
workers; it keeps the ``notify-keyspace-events`` flags (`FlagKeeper`) and, each
time the subscription is (re-)established, has the sweeper catch up on what
expired meanwhile. `ExpiryListener` wires it to the sweeper, the deliveries
and the heartbeat; how the parts fit, and why, is in docs/listener.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from redis import exceptions as redis_errors

from luminora_redis.io.store import SessionStore
from luminora_redis.listener.live_state import LiveState
from luminora_redis.listener.notifications import FlagKeeper
from luminora_redis.listener.outages import Outage, is_outage, keep_trying
from luminora_redis.listener.settings import ListenerObserver, ListenerSettings
from luminora_redis.listener.stopping import cancel
from luminora_redis.listener.subscriptions import subscription_for

__all__ = ["ExpiredEvents"]

logger = logging.getLogger("luminora_redis.listener")

_WORKERS = 8  # concurrent archives of notified sessions
_QUEUE_SIZE = 10_000  # notified sessions waiting for a worker; the reader waits when full


class ExpiredEvents:
    """Archives the sessions whose ``expired`` events reach this listener.

    ``archive`` archives one session by the notification path; ``inflight`` is
    the set of sessions being archived or queued, shared with the sweeper so
    that neither takes a session the other holds; ``wake_sweeper`` asks for a
    catch-up sweep; ``outage`` makes the `Outage` of one loop and ``on_error``
    counts a failure.
    """

    def __init__(self, store: SessionStore, name: str, settings: ListenerSettings,
                 state: LiveState, *, stop: asyncio.Event,
                 archive: Callable[[str], Awaitable[object]], inflight: set[str],
                 wake_sweeper: Callable[[], None], outage: Callable[..., Outage],
                 on_error: Callable[[], None], observer: ListenerObserver | None) -> None:
        self._store = store
        self._name = name
        self._settings = settings
        self._state = state
        self._stop = stop
        self._archive = archive
        self._inflight = inflight
        self._wake_sweeper = wake_sweeper
        self._outage = outage
        self._count_error = on_error
        self._observer = observer
        self._queue: asyncio.Queue[str | None] = asyncio.Queue(_QUEUE_SIZE)
        self._subscriptions = 0  # subscriptions established, the first included
        self._subscribed: Outage | None = None  # the notification subscription's outages
        #: The subscription was refused: no flags to keep.
        self.sweeper_only = False
        self.flags = FlagKeeper(store.client, name)
        #: Times the subscription was re-established after a loss.
        self.reconnects = 0
        self._reader: asyncio.Task[None] | None = None
        self._workers = 0

    def start(self) -> list[asyncio.Task[None]]:
        """Start the notification reader, its workers and, when the listener configures
        the flags, their keeper; returns their tasks, the reader first."""
        s = self._settings
        self._reader = asyncio.create_task(self._notification_loop(),
                                           name=f"{self._name} notifications")
        archiving = self._outage("archiving notified sessions", holds=False)
        workers = [asyncio.create_task(self._worker(archiving), name=f"{self._name} worker {n}")
                   for n in range(_WORKERS)]
        self._workers = len(workers)
        tasks = [self._reader, *workers]
        if s.configure_notifications:
            kept = self.flags.keep(s.heartbeat_interval, self._stop,
                                   self._outage("checking the notification flags"),
                                   listening=self._keeps_flags,
                                   on_restored=self._missed)
            tasks.append(asyncio.create_task(kept, name=f"{self._name} notification flags"))
        return tasks

    async def stop_reading(self, within: float) -> None:
        """Cancel the reader (given ``within`` seconds to end), drop the queued sessions
        and tell every worker to end once its archive is done."""
        reader, workers = self._reader, self._workers
        self._reader, self._workers = None, 0
        if reader is not None:
            await cancel({reader}, within)
        # Queued sessions stay in the deadline index: whoever sweeps next takes them.
        while not self._queue.empty():
            self._queue.get_nowait()
        for _ in range(workers):
            self._queue.put_nowait(None)

    async def _notification_loop(self) -> None:
        outage = self._outage("the notification subscription")
        self._subscribed = outage
        subscription = subscription_for(self._store, self._name, self._on_expired,
                                        self._on_subscribed, self._count_error)

        async def listen() -> float | None:
            try:
                await subscription.run()
            except redis_errors.NoPermissionError as error:
                self._count_error()
                # A MissingPermission (subscriptions.py) names the channel rule to add.
                logger.warning(
                    "cannot subscribe to expired events (%s); archiving through the sweeper "
                    "only, every %.3f s", error, self._settings.sweep_interval)
                self.sweeper_only = True
                self._state.subscribed()
                self._wake_sweeper()
                return None  # the outage, if any, ends: Redis answered
            return 0.0

        # The sweeper covers the gap until the subscription is back.
        await keep_trying(outage, self._stop, listen, on_failure=self._state.lost)

    async def _on_subscribed(self) -> None:
        """The subscription is live (again): merge the flags, then have the sweeper catch
        up on whatever expired meanwhile."""
        # A restarted server, or a replica promoted by a failover, lacks our CONFIG SET.
        if self._settings.configure_notifications:
            await self.flags.ensure()
        self._subscriptions += 1
        self._state.subscribed()
        if self._subscriptions > 1:
            self.reconnects += 1
            if self._observer is not None:
                self._observer.reconnected()
            logger.info("listener %s resubscribed to expired events; catching up", self._name)
        if self._subscribed is not None:
            self._subscribed.recovered()
        if self._settings.catch_up:
            self._wake_sweeper()
        else:
            self._state.become_live()

    def _keeps_flags(self) -> bool:
        """Whether the flags matter now: subscribed, and not refused the channel."""
        return self._state.listening and not self.sweeper_only

    def _missed(self) -> None:
        """Events may have been missed: catch up before being live again."""
        self._state.missed()
        self._wake_sweeper()

    async def _on_expired(self, key: str) -> None:
        ctx = await self._store.context()
        session_id = ctx.keys.session_id_of_key(key)
        if session_id is None or session_id in self._inflight:
            return
        self._inflight.add(session_id)
        await self._queue.put(session_id)

    async def _worker(self, outage: Outage) -> None:
        while (session_id := await self._queue.get()) is not None:
            try:
                await self._archive(session_id)
            except Exception as error:
                if is_outage(error):
                    # The session stays due in the deadline index: the sweeper takes it.
                    outage.failed(error)
                else:
                    self._count_error()
                    logger.exception("archiving session %s failed; the sweeper retries it",
                                     session_id)
            else:
                outage.recovered()
            finally:
                self._inflight.discard(session_id)
