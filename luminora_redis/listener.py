"""ExpiryListener: every expired session reaches its user's archive, promptly and exactly once.

Two paths lead to one idempotent archive script (``archive.archive_session``
in ``expire`` mode):

- **The fast path, keyspace notifications.** When Redis reclaims an expired
  session hash (on access, or in its active expiry cycle, usually well within
  100 ms of the deadline) it publishes the key on ``__keyevent@<db>__:expired``.
  The listener subscribes there, keeps the keys that are session hashes of
  this store, and archives them at once.
- **The guarantee, the sweeper.** Every auto_cleanup session's effective
  deadline is in its bucket's ``deadlines`` index until it is archived. Every
  ``sweep_interval`` the sweeper asks all buckets, in one pipelined round
  trip per node, which deadlines have passed on the server clock, and
  archives those sessions. Each reply also names the bucket's next deadline;
  between full sweeps the sweeper wakes when the earliest known one falls due
  and asks only the buckets that are due (`DeadlineSchedule`), so a session
  whose deadline was known at the last full sweep is archived within a round
  trip of it, whatever Redis's own expiry cycle does. Pub/sub is
  fire-and-forget: a notification sent while no listener was subscribed
  (down, crashed, reconnecting, flags not yet set, CONFIG refused) is gone
  for good, but the index entry stays until the archive script removes it,
  so a sweep finds it.

Exactly once: the script re-checks and moves a session in one atomic step,
so when notifications, sweepers, several listeners and
``cleanup_expired_sessions`` race for a session, exactly one call archives it
and gets the result; only that listener counts it and calls ``on_archived``.
When that call's reply is lost (its server dies after running the script, or
redis-py closes the connection under it and retries), nobody learns that it
archived the session: the archive is still there exactly once, and its
``on_archived`` call never happens. The hook is at most once under such faults.

Order, at start and after every reconnect: subscribe, wait for Redis to
confirm, merge the notification flags, then sweep. Whatever expired before
the subscription was live is in the index, so once the first sweep after the
first confirmation is done (``started``) nothing can fall between the paths.

On a single server the subscription is plain redis-py pub/sub (`_listen_server`).
``redis.asyncio.keyspace_notifications.AsyncKeyspaceNotifications`` was
considered: it hides the subscribe confirmations, and they are what tells us
the subscription is live, and that redis-py reconnected and resubscribed by
itself after a server restart (whose CONFIG changes are then gone, and whose
missed events need a catch-up sweep).

On Redis Cluster each primary publishes the events of its own keys only, so
`_listen_cluster` subscribes on every primary through redis-py's
``AsyncClusterKeyspaceNotifications``, which keeps one pub/sub connection per
primary and re-subscribes new primaries in ``refresh_subscriptions()``. The
listener calls that every `_CLUSTER_CHECK` seconds (it makes no network call
unless a primary is new or its connection broke) and at once after redis-py
refreshed by itself; whenever the set of primaries changed or a connection was
lost it merges the flags on every primary (a promoted replica has its own
CONFIG) and sweeps to catch up. The client's map of primaries follows a
failover through the listener's own traffic: the sweeper reaches every primary
each ``sweep_interval``, and a primary whose subscription fails makes the
listener rediscover the topology before it retries. What that class hides,
and how the listener copes:

- Subscribe confirmations. A subscription counts as live once
  ``refresh_subscriptions()`` has written SUBSCRIBE to every primary; the flags
  and the catch-up sweep follow, each at least one round trip later on the same
  servers, which have read the SUBSCRIBE by then in practice (and if one had
  not, the next sweep archives what it missed).
- Errors of one node's connection: ``get_message`` refreshes by itself and only
  logs a failed refresh. `_ClusterEvents` counts refreshes, so the listener
  knows that a node's events may have been lost.
- Its ``get_message(timeout)`` polls one primary per call, round robin, each
  for up to min(0.1, timeout / primaries) seconds, so every event of a burst on
  one node waits while the idle others are polled: on 3 primaries with a 0.03 s
  timeout, expiry bursts came 30-45 ms late at p50 and 120-290 ms at p99, and
  with 1.0 s (what its ``listen()`` uses) up to 1.7 s. ``get_message(timeout=0)``
  instead reads whatever any primary has, at once, so the listener calls that
  and sleeps `_CLUSTER_IDLE` when nothing came: 5-7 ms late at p50 and 12 ms at
  p99, next to Redis's own ~100 ms to notice an expiry, for about 3 % of a core
  while idle; 5 ms would halve the delay for 1.5 times the idle CPU
  (``benchmarks/bench_cluster_notifications.py`` measures all of these).
- A channel the ACL user may not subscribe to is dropped by redis-py without
  an error: on such a cluster the listener archives through the sweeper, and
  cannot say why.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import os
import socket
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from redis import exceptions as redis_errors
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.keyspace_notifications import AsyncClusterKeyspaceNotifications
from redis.backoff import EqualJitterBackoff
from redis.keyspace_notifications import KeyeventChannel

from luminora_redis import archive
from luminora_redis.archive import Archived
from luminora_redis.context import Context
from luminora_redis.models import ArchivedConversation
from luminora_redis.notifications import ensure_flags
from luminora_redis.schedule import DeadlineSchedule
from luminora_redis.scripts import Op
from luminora_redis.store import SessionStore

__all__ = ["NOTIFICATION", "SWEEP", "ExpiryListener", "ListenerObserver", "OnArchived"]

logger = logging.getLogger("luminora_redis.listener")

#: The ``path`` an archive took: a keyspace notification, or the sweeper.
NOTIFICATION = "notification"
SWEEP = "sweep"

OnArchived = Callable[[ArchivedConversation], Awaitable[None] | None]

# Redis is unreachable, for now. redis-py raises its own ConnectionError and
# TimeoutError (BusyLoadingError, while a restarted server loads its data, is a
# ConnectionError); OSError is whatever the socket layer lets through
# unwrapped. During a cluster failover a primary's slots are unserved
# (CLUSTERDOWN, TRYAGAIN) and the client may find no node it can map the slots
# with (RedisClusterException, SlotNotCoveredError among them).
_UNAVAILABLE = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError,
                redis_errors.ClusterDownError, redis_errors.TryAgainError,
                redis_errors.RedisClusterException)

T = TypeVar("T")

_WORKERS = 8  # concurrent archives of notified sessions
_QUEUE_SIZE = 10_000  # notified sessions waiting for a worker; the reader waits when full
_SWEEP_CONCURRENCY = 16  # concurrent archives within one sweep
_PING_AFTER = 5.0  # seconds of pub/sub silence before a PING, and before giving up on its reply
_STOP_GRACE = 5.0  # seconds in-flight archives get to finish on stop
# Least pause between two scans of due buckets: the schedule maps the server's clock
# onto ours, and an estimate a hair early must not spin.
_MIN_GAP = 0.002
_CLUSTER_CHECK = 0.5  # seconds between checks that every primary is subscribed
# Pause between two polls of the primaries while none had an event (see the module
# docstring): the most it adds to the lag, against idle wake-ups.
_CLUSTER_IDLE = 0.01


def _closed_under(error: BaseException) -> bool:
    """Whether ``error`` is the asyncio transport failing because redis-py closed the
    connection under a command in flight.

    redis-py 8.1 lets that surface as the AttributeError or TypeError of a
    transport whose internals are gone (``'NoneType' object has no attribute
    'writelines'``, ``'NoneType' object is not callable``) instead of
    ConnectionError (redis/redis-py#4287). Its cluster client closes every
    connection whenever one command meets CLUSTERDOWN or one pipeline a
    connection error, so during a failover it happens to commands on healthy
    nodes too.
    """
    if not isinstance(error, (AttributeError, TypeError)) or "'NoneType'" not in str(error):
        return False
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and any(part in frames[-1].filename
                                for part in ("/redis/", "/asyncio/"))


def _backoff(cap: float = 5.0) -> EqualJitterBackoff:
    """Reconnect delays: 25-50 ms at first, doubling, bounded to ``cap`` / 2 to ``cap`` s."""
    return EqualJitterBackoff(cap=cap, base=0.05)


class ListenerObserver(Protocol):
    """Receives what a listener does, e.g. to export metrics (see ``luminora_redis.metrics``).

    Called on the event loop: keep each call cheap and non-blocking.
    """

    def archived(self, path: str, lag: float) -> None:
        """A session was archived by this listener; ``lag`` is seconds past its deadline
        (this host's clock against the deadline Redis set, so it assumes synced clocks)."""

    def swept(self) -> None:
        """A sweep pass completed."""

    def error(self) -> None:
        """Something failed and was logged: a connection, an archive call, the hook."""

    def reconnected(self) -> None:
        """The notification subscription was re-established after a loss."""


class _ClusterEvents(AsyncClusterKeyspaceNotifications):
    """redis-py's per-primary subscription, counting how often it was refreshed.

    Its ``get_message`` refreshes the subscriptions by itself when a node's
    connection fails, and tells no one; a changed count is how the listener
    learns that a node's events may have been lost.
    """

    def __init__(self, client: RedisCluster) -> None:
        super().__init__(client)
        self.refreshes = 0

    async def refresh_subscriptions(self) -> None:
        """Subscribe new primaries and broken connections again (see the base class)."""
        self.refreshes += 1
        await super().refresh_subscriptions()


class ExpiryListener:
    """Archives expired sessions of one store: keyspace notifications plus a sweeper.

    ``sweep_interval`` (seconds) bounds how late a session is archived when
    its notification is lost. ``on_archived`` is a plain or async callable
    that receives the ``ArchivedConversation`` of each session this listener
    archived, once; a plain one runs on the event loop, so it must not block.
    A failing hook is logged and counted, and the archive stays.
    ``notifications=False`` runs the sweeper alone; ``configure_notifications=
    False`` leaves the server's ``notify-keyspace-events`` untouched.
    ``sweep_batch`` is how many due sessions one bucket yields per round
    trip. ``observer`` (a `ListenerObserver`) receives counts and lags.
    """

    def __init__(self, store: SessionStore, *, sweep_interval: float = 0.25,
                 on_archived: OnArchived | None = None, notifications: bool = True,
                 configure_notifications: bool = True, sweep_batch: int = 500,
                 name: str | None = None, observer: ListenerObserver | None = None) -> None:
        if not isinstance(store, SessionStore):
            raise TypeError(f"ExpiryListener needs the asyncio SessionStore, not {store!r}")
        if (isinstance(sweep_interval, bool) or not isinstance(sweep_interval, (int, float))
                or not math.isfinite(sweep_interval) or sweep_interval <= 0):
            raise ValueError(f"sweep_interval must be a positive number of seconds, "
                             f"not {sweep_interval!r}")
        if isinstance(sweep_batch, bool) or not isinstance(sweep_batch, int) or sweep_batch < 1:
            raise ValueError(f"sweep_batch must be a positive integer, not {sweep_batch!r}")
        if on_archived is not None and not callable(on_archived):
            raise TypeError(f"on_archived must be callable, not {on_archived!r}")
        self._store = store
        self._sweep_interval = float(sweep_interval)
        self._on_archived = on_archived
        self._notifications = notifications
        self._configure = configure_notifications
        self._sweep_batch = sweep_batch
        self._observer = observer
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        #: Set once the listener is subscribed and a sweep after that has completed.
        self.started = asyncio.Event()
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()  # ends the sweeper's pause: stop, or a catch-up sweep
        self._schedule = DeadlineSchedule()  # when each bucket next has a session due
        self._stopped = asyncio.Event()
        self._stopped.set()
        self._closing = False
        self._queue: asyncio.Queue[str | None] = asyncio.Queue(_QUEUE_SIZE)
        self._inflight: set[str] = set()  # sessions this listener is archiving or has queued
        self._listening = False  # notifications can arrive (or are not wanted)
        self._subscriptions = 0  # subscription confirmations, the first included
        self._failures = 0  # notification connection failures since the last confirmation
        self._warned = False
        self._archived = {NOTIFICATION: 0, SWEEP: 0}
        self._sweeps = 0
        self._errors = 0
        self._reconnects = 0

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
        """Completed sweep passes."""
        return self._sweeps

    @property
    def errors(self) -> int:
        """Failures logged: lost connections, failed archive calls, failed hooks."""
        return self._errors

    @property
    def reconnects(self) -> int:
        """Times the notification subscription was re-established after a loss."""
        return self._reconnects

    # -- lifecycle ----------------------------------------------------------------

    async def run(self) -> None:
        """Listen and sweep until `stop` is called or this task is cancelled.

        Connection losses are retried with bounded, jittered backoff for as
        long as it runs; it raises only on a bug in one of its own loops.
        """
        if not self._stopped.is_set():
            raise RuntimeError(f"listener {self.name} is already running")
        self._stopped.clear()
        self.started.clear()
        self._listening = not self._notifications
        sweeper = asyncio.create_task(self._sweep_loop(), name=f"{self.name} sweeper")
        notifier: asyncio.Task[None] | None = None
        workers: list[asyncio.Task[None]] = []
        if self._notifications:
            notifier = asyncio.create_task(self._notification_loop(),
                                           name=f"{self.name} notifications")
            workers = [asyncio.create_task(self._worker(), name=f"{self.name} worker {n}")
                       for n in range(_WORKERS)]
        stopper = asyncio.create_task(self._stop.wait())
        loops = [sweeper, *([notifier] if notifier else []), *workers]
        logger.info("listener %s running: sweep every %.3f s, notifications %s",
                    self.name, self._sweep_interval, "on" if self._notifications else "off")
        try:
            pending: set[asyncio.Task[Any]] = {stopper, *loops}
            while not stopper.done():
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task is not stopper:
                        task.result()  # a loop may end by itself; one that fails is a bug
        finally:
            await self._shutdown(stopper, notifier, loops, len(workers))
            logger.info("listener %s stopped: %d archived, %d sweeps, %d errors, %d reconnects",
                        self.name, self.archived, self._sweeps, self._errors, self._reconnects)

    async def stop(self) -> None:
        """Ask `run` to finish and wait until it has; in-flight archives complete first."""
        if self._stopped.is_set():
            return
        self._stop.set()
        self._wake.set()
        await self._stopped.wait()

    async def _shutdown(self, stopper: asyncio.Task[Any], notifier: asyncio.Task[None] | None,
                        loops: list[asyncio.Task[None]], workers: int) -> None:
        """Stop reading notifications, let in-flight archives finish, close everything."""
        self._closing = True
        self._stop.set()
        self._wake.set()
        stopper.cancel()
        if notifier is not None:
            notifier.cancel()
        finished = {task for task in loops if task.done()}
        # Queued sessions stay in the deadline index: whoever sweeps next takes them.
        while not self._queue.empty():
            self._queue.get_nowait()
        for _ in range(workers):
            self._queue.put_nowait(None)
        try:
            await asyncio.wait(loops, timeout=_STOP_GRACE)
        finally:
            for task in loops:
                task.cancel()
            results = await asyncio.gather(stopper, *loops, return_exceptions=True)
            for task, result in zip(loops, results[1:], strict=True):
                if task not in finished and isinstance(result, Exception):
                    logger.error("listener task %s failed while stopping", task.get_name(),
                                 exc_info=result)
            self._inflight.clear()
            self._closing = False
            self._stop.clear()
            self._wake.clear()
            self._stopped.set()

    # -- the sweeper ----------------------------------------------------------------

    async def sweep_once(self) -> int:
        """One full sweep: archive every auto_cleanup session whose deadline has passed.

        Returns how many this call archived (others may have archived some
        first). Connection errors propagate; other failures of one session
        are logged and counted, and the pass goes on.
        """
        archived = await self._sweep(None)
        self._sweeps += 1
        if self._observer is not None:
            self._observer.swept()
        return archived

    async def _sweep(self, buckets: list[int] | None) -> int:
        """Archive the due sessions of ``buckets`` (all when None) and learn when each
        of them is next due."""
        scanned = buckets if buckets is not None else range((await self._store._context()).keys.buckets)
        limit = asyncio.Semaphore(_SWEEP_CONCURRENCY)

        async def one(session_id: str) -> bool:
            try:
                async with limit:
                    return await self._archive(session_id, SWEEP)
            finally:
                self._inflight.discard(session_id)

        total = 0
        while True:
            scan = await self._call(archive.scan_due, buckets, False, self._sweep_batch)
            self._schedule.learn(scan, scanned, time.time() * 1000)
            mine = [sid for sid in scan.session_ids if sid not in self._inflight]
            self._inflight.update(mine)
            results = await asyncio.gather(*(one(sid) for sid in mine), return_exceptions=True)
            done = sum(1 for result in results if result is True)
            total += done
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            if not scan.more or done == 0 or self._closing:
                return total

    async def _sweep_loop(self) -> None:
        """Full sweeps every ``sweep_interval`` (at once on a catch-up request) and, in
        between, scans of just the buckets the schedule knows to be due."""
        backoff, failures = _backoff(), 0
        clock = asyncio.get_running_loop().time
        next_full = 0.0
        while not self._stop.is_set():
            if self._wake.is_set():
                self._wake.clear()
                next_full = 0.0
            listening = self._listening
            full = clock() >= next_full
            try:
                if full:
                    await self.sweep_once()
                elif due := self._schedule.take_due(time.time() * 1000):
                    await self._sweep(due)
            except _UNAVAILABLE as error:
                self._count_error()
                self._schedule.forget()
                next_full = 0.0
                delay = backoff.compute(failures)
                failures += 1
                logger.warning("sweep failed, Redis unreachable (%s); retrying in %.2f s",
                               error, delay)
                await self._pause(delay)
                continue
            except Exception:
                self._count_error()
                logger.exception("sweep failed; the next one runs in %.3f s",
                                 self._sweep_interval)
            else:
                failures = 0
                if full and listening and not self.started.is_set():
                    self.started.set()
                    logger.info("listener %s started", self.name)
            if full:
                next_full = clock() + self._sweep_interval
            pause = max(0.0, next_full - clock())
            due_in = self._schedule.seconds_until_due(time.time() * 1000)
            if due_in is not None:
                pause = min(pause, max(due_in, _MIN_GAP))
            await self._pause(pause)

    async def _pause(self, seconds: float) -> None:
        """Sleep up to ``seconds``; a stop or a catch-up request ends it early."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    # -- notifications ----------------------------------------------------------------

    async def _notification_loop(self) -> None:
        backoff = _backoff()
        while True:
            try:
                await self._listen()
            except redis_errors.NoPermissionError as error:
                self._count_error()
                logger.warning(
                    "cannot subscribe to expired events (%s): this user needs the channel "
                    "permission for __keyevent@*__:expired (ACL &__keyevent@*__:expired); "
                    "archiving through the sweeper only, every %.3f s", error,
                    self._sweep_interval)
                self._listening = True
                self._wake.set()
                return
            except _UNAVAILABLE as error:
                reason = f"lost the notification connection ({error})"
            except Exception as error:
                logger.exception("notification subscription failed")
                reason = f"notification subscription failed ({error!r})"
            self._count_error()
            self._listening = False
            delay = backoff.compute(self._failures)
            self._failures += 1
            logger.warning("%s; reconnecting in %.2f s, the sweeper covers the gap", reason, delay)
            await asyncio.sleep(delay)

    async def _listen(self) -> None:
        """Subscribe to this database's ``expired`` events and hand each expired key to
        `_on_expired` until the subscription fails (raising its error), calling
        `_on_subscribed` whenever it is (re)established."""
        if isinstance(self._store.client, RedisCluster):
            await self._listen_cluster()
        else:
            await self._listen_server()

    async def _listen_server(self) -> None:
        """The single-server subscription: one pub/sub connection, whose confirmations
        say when it is live (redis-py resubscribes by itself after a short outage)."""
        ctx = await self._store._context()
        db = int(self._store.client.connection_pool.connection_kwargs.get("db", 0))
        pubsub = self._store.client.pubsub()
        try:
            await pubsub.subscribe(str(KeyeventChannel("expired", db=db)))
            pinged = False
            while True:
                message = await pubsub.get_message(timeout=_PING_AFTER)
                if message is None:
                    # A silent connection may be half-open; a PING must come back.
                    if pinged:
                        raise redis_errors.ConnectionError(
                            f"no reply to PING within {_PING_AFTER} s on the pub/sub connection")
                    await pubsub.ping()
                    pinged = True
                    continue
                pinged = False
                if message["type"] == "message":
                    await self._on_expired(ctx, message["data"])
                elif message["type"] == "subscribe":
                    await self._on_subscribed()
        finally:
            await pubsub.aclose()

    async def _listen_cluster(self) -> None:
        """The Redis Cluster subscription: one per primary, following the topology.

        A primary that cannot be subscribed (dead, or not yet replaced by its
        replica) is retried with backoff while the others go on notifying;
        Redis Cluster has no db but 0.
        """
        ctx = await self._store._context()
        events = _ClusterEvents(self._store.client)
        loop = asyncio.get_running_loop()
        # A failover takes a few seconds, and an attempt costs one connect and one CLUSTER
        # SLOTS: retry often, to subscribe the promoted replica soon after.
        backoff, failures = _backoff(cap=1.0), 0
        primaries: frozenset[str] = frozenset()
        stale = True  # events may have been missed since the last _on_subscribed
        check_at = loop.time()
        try:
            await events.subscribe(KeyeventChannel("expired", db=0))
            while True:
                if loop.time() >= check_at:
                    try:
                        primaries = await self._follow_cluster(events, primaries, stale)
                    except _UNAVAILABLE as error:
                        self._count_error()
                        delay = backoff.compute(failures)
                        failures += 1
                        check_at = loop.time() + delay
                        logger.warning("cannot subscribe to expired events on every primary "
                                       "(%s); retrying in %.2f s, the sweeper covers the gap",
                                       error, delay)
                    else:
                        stale, failures = False, 0
                        check_at = loop.time() + _CLUSTER_CHECK
                refreshes = events.refreshes
                event = await events.get_message(timeout=0)  # every primary, no waiting
                if events.refreshes != refreshes:  # a node's connection failed
                    stale = True
                    if failures == 0:
                        check_at = loop.time()
                if event is not None:
                    await self._on_expired(ctx, event.key)
                else:
                    await asyncio.sleep(_CLUSTER_IDLE)
        finally:
            await events.aclose()

    async def _follow_cluster(self, events: _ClusterEvents, known: frozenset[str],
                              stale: bool) -> frozenset[str]:
        """Subscribe every primary that lacks the subscription; when the primaries are
        not the ``known`` ones or events may have been lost, `_on_subscribed`.
        Returns the primaries now subscribed."""
        client = self._store.client
        try:
            await events.refresh_subscriptions()
        except _UNAVAILABLE:
            # The client may still map slots to a primary that died: rediscover the
            # topology, so that the next attempt subscribes whoever replaced it.
            await client.nodes_manager.initialize()
            raise
        primaries = frozenset(node.name for node in client.get_primaries())
        if stale or primaries != known:
            if known and primaries != known:
                logger.info("listener %s: the primaries changed from %s to %s", self.name,
                            ", ".join(sorted(known)), ", ".join(sorted(primaries)))
            await self._on_subscribed()
        return primaries

    async def _on_subscribed(self) -> None:
        """The subscription is live (again): merge the flags, then have the sweeper catch
        up on whatever expired meanwhile."""
        # A restarted server, or a replica promoted by a failover, lacks our CONFIG SET.
        if self._configure and not await ensure_flags(self._store.client, warn=not self._warned):
            self._warned = True
        self._subscriptions += 1
        if self._subscriptions > 1:
            self._reconnects += 1
            if self._observer is not None:
                self._observer.reconnected()
            logger.info("listener %s resubscribed to expired events; catching up", self.name)
        self._failures = 0
        self._listening = True
        self._wake.set()

    async def _on_expired(self, ctx: Context, key: bytes | str) -> None:
        if isinstance(key, bytes):
            key = key.decode("utf-8", "replace")
        session_id = ctx.keys.session_id_of_key(key)
        if session_id is None or session_id in self._inflight:
            return
        self._inflight.add(session_id)
        await self._queue.put(session_id)

    async def _worker(self) -> None:
        while (session_id := await self._queue.get()) is not None:
            try:
                await self._archive(session_id, NOTIFICATION)
            except _UNAVAILABLE as error:
                self._count_error()
                logger.warning("could not archive session %s on its notification (%s); "
                               "the sweeper will", session_id, error)
            finally:
                self._inflight.discard(session_id)

    # -- archiving ----------------------------------------------------------------

    async def _call(self, operation: Callable[..., Op[T]], *args: Any) -> T:
        """Run one store operation; a connection closed under it raises ConnectionError,
        whatever redis-py let through (see `_closed_under`)."""
        try:
            return await self._store._run(operation, *args)
        except (AttributeError, TypeError) as error:
            if not _closed_under(error):
                raise
            raise redis_errors.ConnectionError(
                f"the connection was closed under the command ({error!r})") from error

    async def _archive(self, session_id: str, path: str) -> bool:
        """Archive one expired session; True when this call did.

        Connection errors propagate; any other failure is logged and counted.
        """
        try:
            archived = await self._call(archive.archive_session, session_id, "expire")
        except _UNAVAILABLE:
            raise
        except Exception:
            self._count_error()
            logger.exception("archiving session %s failed", session_id)
            return False
        if archived is None:
            return False
        lag = max(0.0, time.time() - archived.ended_ms / 1000)
        self._archived[path] += 1
        if self._observer is not None:
            self._observer.archived(path, lag)
        logger.info("archived session %s of user %r: %s, %d messages, by %s, %.3f s after "
                    "its deadline", session_id, archived.user_id, archived.reason.value,
                    archived.message_count, path, lag)
        if self._on_archived is not None:
            await self._call_hook(self._on_archived, archived)
        return True

    async def _call_hook(self, hook: OnArchived, archived: Archived) -> None:
        try:
            conversation = await self._read_archived(archived)
            if conversation is None:
                logger.warning("session %s was archived but its record is gone already "
                               "(archive_retention); on_archived not called", archived.session_id)
                return
            result = hook(conversation)
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            logger.error("stopped before on_archived was called for session %s; the archive "
                         "is kept", archived.session_id)
            raise
        except Exception:
            self._count_error()
            logger.exception("on_archived failed for session %s; the archive is kept",
                             archived.session_id)

    async def _read_archived(self, archived: Archived) -> ArchivedConversation | None:
        """What the hook receives; retried while Redis is unreachable, since the
        session is archived already and nobody else will call the hook for it."""
        backoff, failures = _backoff(), 0
        while True:
            try:
                return await self._call(archive.get_archived_conversation, archived)
            except _UNAVAILABLE as error:
                self._count_error()
                delay = backoff.compute(failures)
                failures += 1
                logger.warning("could not read archived session %s for on_archived (%s); "
                               "retrying in %.2f s", archived.session_id, error, delay)
                await asyncio.sleep(delay)

    def _count_error(self) -> None:
        self._errors += 1
        if self._observer is not None:
            self._observer.error()
