"""What counts as Redis being unavailable for now, and how a listener's loops wait it out.

An outage is any answer of Redis that says "not now" rather than "this item is
wrong": a lost connection or a timeout, and every error reply a server gives
while it cannot serve (``OOM``, ``BUSY``, ``LOADING``, ``READONLY``,
``MASTERDOWN``, ``NOSCRIPT``, ``TRYAGAIN``, ``CLUSTERDOWN``, ``MISCONF``,
``NOREPLICAS``, ``NOPERM``, …; a refusal of the ACL, a script's command
included, arrives as a ``MissingPermission`` naming the rule to grant, and its
WARNING says so), and a write the replicas did not acknowledge
(``NotAcknowledged``). `is_outage` tells the two apart. A loop that
runs for the life of a listener meets an outage through an `Outage`: it backs
off with jitter, counts every failed attempt, logs one WARNING when the outage
starts and one when it ends, and tells the listener, which shows it in
``live`` and its metrics. Anything else is a failure of the one item at hand.
`keep_trying` is that loop, written once: the heartbeat, the flag keeper, the
notification subscription, the outbox scan and the sweeper each run their step
through it.

A refusal for want of a right (`refused_permission`: ``NOPERM``, a script
refused a command, ``NOAUTH``, ``WRONGPASS``) is retried like any other failure
while a listener runs, since an ACL can be put right without a restart; at
start-up, before anything has worked, the listener takes it as permanent and
``run()`` raises it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis import exceptions as redis_errors
from redis.backoff import EqualJitterBackoff

from luminora_redis.core.errors import LuminoraRedisError, NotAcknowledged
from luminora_redis.core.scripts import Op
from luminora_redis.io.redis_internals import closed_under
from luminora_redis.io.store import SessionStore

__all__ = ["REFUSALS", "UNAVAILABLE", "Outage", "backoff", "call", "closed_under", "describe",
           "is_outage",
           "keep_trying", "refused_permission", "sleep_unless"]

T = TypeVar("T")

logger = logging.getLogger("luminora_redis.listener")

# redis-py raises its own ConnectionError and TimeoutError (BusyLoadingError, while a
# restarted server loads its data, is a ConnectionError); OSError is whatever the socket
# layer lets through unwrapped. During a cluster failover a primary's slots are unserved
# (CLUSTERDOWN, TRYAGAIN) and the client may find no node it can map the slots with
# (RedisClusterException, SlotNotCoveredError among them).
UNAVAILABLE = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError,
               redis_errors.ClusterDownError, redis_errors.TryAgainError,
               redis_errors.RedisClusterException)

#: Error replies a server gives while it cannot serve, whatever the command: the
#: first word of the reply. redis-py maps some to classes of their own (below).
REFUSALS = frozenset({"OOM", "BUSY", "LOADING", "READONLY", "MASTERDOWN", "NOSCRIPT",
                      "TRYAGAIN", "CLUSTERDOWN", "MISCONF", "NOREPLICAS", "NOPERM", "NOAUTH",
                      "WRONGPASS", "UNBLOCKED", "NOTBUSY"})
_REFUSAL_CLASSES = (redis_errors.OutOfMemoryError, redis_errors.ReadOnlyError,
                    redis_errors.NoScriptError, redis_errors.NoPermissionError,
                    redis_errors.ExecAbortError)


def is_outage(error: BaseException) -> bool:
    """Whether ``error`` says Redis cannot serve for now (a connection lost, a refusal),
    as opposed to a failure of the request itself. A library error raised for a
    refusal (its ``__cause__``) counts as the refusal; so does ``NotAcknowledged``
    (too few replicas, or a disk too slow, for the store's ``acknowledge``: the work
    is done again once they are back, and archiving is idempotent)."""
    if isinstance(error, UNAVAILABLE + _REFUSAL_CLASSES + (NotAcknowledged,)):
        return True
    if isinstance(error, redis_errors.ResponseError):
        return str(error).split(" ", 1)[0] in REFUSALS
    cause = error.__cause__
    return isinstance(error, LuminoraRedisError) and cause is not None and is_outage(cause)


_NO_RIGHT = frozenset({"NOPERM", "NOAUTH", "WRONGPASS"})
# How Redis 7 words a command a script ran that the user has no right to.
_SCRIPT_NO_RIGHT = "can't run this command"


def refused_permission(error: BaseException) -> bool:
    """Whether ``error`` is Redis refusing this user (a missing ACL right, a failed or
    missing authentication) rather than the state of the server; a library error
    raised for one (its ``__cause__``) counts too."""
    if isinstance(error, redis_errors.NoPermissionError | redis_errors.AuthenticationError):
        return True
    if isinstance(error, redis_errors.ResponseError):
        text = str(error)
        return text.split(" ", 1)[0] in _NO_RIGHT or _SCRIPT_NO_RIGHT in text
    cause = error.__cause__
    return isinstance(error, LuminoraRedisError) and cause is not None and \
        refused_permission(cause)


def backoff(cap: float = 5.0) -> EqualJitterBackoff:
    """Reconnect delays: 25-50 ms at first, doubling, bounded to ``cap`` / 2 to ``cap`` s."""
    return EqualJitterBackoff(cap=cap, base=0.05)


async def call(store: SessionStore, operation: Callable[..., Op[T]], *args: Any) -> T:
    """Run one store operation; a connection closed under it raises ConnectionError,
    whatever redis-py let through (see `closed_under`)."""
    try:
        return await store.run(operation, *args)
    except (AttributeError, TypeError) as error:
        if not closed_under(error):
            raise
        raise redis_errors.ConnectionError(
            f"the connection was closed under the command ({error!r})") from error


def describe(error: BaseException) -> str:
    """One line naming an error: its class and message."""
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


OnChange = Callable[[str, bool], None]


class Outage:
    """One loop's outages: what ``what`` does is retried with backoff while Redis cannot
    serve, every failed attempt is counted (``on_error``), and the start and the end
    of each outage are logged once and reported (``on_change(what, active)``).

    ``failed(error)`` returns the delay before the next attempt; ``recovered()``
    ends the outage, if one was going on. ``unexpected=True`` marks an error that
    is not an outage but a bug the loop contains: it is logged with its traceback
    once per run of failures, and retried the same way.
    """

    def __init__(self, what: str, *, on_error: Callable[[], None] = lambda: None,
                 on_change: OnChange = lambda what, active: None, cap: float = 5.0) -> None:
        self.what = what
        self._on_error = on_error
        self._on_change = on_change
        self._delays = backoff(cap)
        self.failures = 0
        self._since = 0.0

    @property
    def active(self) -> bool:
        """Whether the last attempt failed."""
        return self.failures > 0

    def failed(self, error: BaseException, *, unexpected: bool = False) -> float:
        """Count one failed attempt; the seconds to wait before the next."""
        self._on_error()
        if self.failures == 0:
            self._since = time.monotonic()
            if unexpected:
                logger.error("%s failed; retrying with backoff", self.what, exc_info=error)
            else:
                logger.warning("%s: Redis cannot serve (%s); retrying with backoff until it "
                               "does", self.what, describe(error))
            self._on_change(self.what, True)
        else:
            logger.debug("%s failed again (%s)", self.what, describe(error))
        delay = float(self._delays.compute(self.failures))
        self.failures += 1
        return delay

    def recovered(self) -> None:
        """The last attempt succeeded: end the outage, if there was one."""
        if self.failures == 0:
            return
        logger.warning("%s works again after %.1f s and %d failed attempts", self.what,
                       time.monotonic() - self._since, self.failures)
        self.failures = 0
        self._on_change(self.what, False)

    async def wait(self, error: BaseException, wake: asyncio.Event, *,
                   unexpected: bool = False) -> None:
        """`failed`, then sleep its delay; ``wake`` (a stop, say) ends the sleep early."""
        await sleep_unless(wake, self.failed(error, unexpected=unexpected))


async def sleep_unless(wake: asyncio.Event, seconds: float) -> None:
    """Sleep up to ``seconds``; ``wake`` being set ends the sleep early."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(wake.wait(), seconds)


async def keep_trying(outage: Outage, stop: asyncio.Event,
                      attempt: Callable[[], Awaitable[float | None]], *,
                      pause: Callable[[float], Awaitable[None]] | None = None,
                      on_failure: Callable[[], None] | None = None,
                      on_bug: Callable[[Exception], float] | None = None,
                      retry_after: float | None = None) -> bool:
    """Run ``attempt`` until ``stop`` is set or it returns None; whether it did (rather
    than being stopped).

    ``attempt()`` returns the seconds to pause before the next one. When it
    succeeds, the outage, if one was going on, ends (`Outage.recovered`). When it
    raises, ``on_failure()`` runs, the failure is counted and logged once per
    outage (`Outage.failed`), and the next attempt follows after the backoff
    delay (or ``retry_after`` seconds, when given). An error that is not an
    outage is a bug of the loop: logged with its traceback and retried the same
    way, unless ``on_bug(error)`` handles it (it returns the pause, or raises);
    then the outage is left as it is. ``pause(seconds)`` waits; by default up to
    ``seconds`` or until ``stop``.
    """
    async def stoppable(seconds: float) -> None:
        await sleep_unless(stop, seconds)

    wait = pause if pause is not None else stoppable
    while not stop.is_set():
        try:
            seconds = await attempt()
        except Exception as error:
            unavailable = is_outage(error)
            if on_bug is not None and not unavailable:
                await wait(on_bug(error))
                continue
            if on_failure is not None:
                on_failure()
            delay = outage.failed(error, unexpected=not unavailable)
            await wait(delay if retry_after is None else retry_after)
            continue
        outage.recovered()
        if seconds is None:
            return True
        await wait(seconds)
    return False
