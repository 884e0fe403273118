"""One attempt at a delivery to ``summarize`` and the ``on_archived`` sink.

`Deliveries` finds what is due and runs these attempts in its workers; an
attempt claims the delivery (unless the archive claimed it for this listener,
``archive_session.lua`` with a lease), reads the conversation (unless the
archive returned it), runs ``summarize`` then the hook, then acknowledges it
and applies the user's retention, or reschedules it with capped exponential
backoff, quarantining it after ``max_attempts`` when that is set. The rules
of each step are in ``deliveries``'s docstring.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from luminora_redis.core.models import ArchivedConversation
from luminora_redis.core.scripts import Op
from luminora_redis.io.store import SessionStore
from luminora_redis.listener.hooks import (
    HookFailed,
    Hooks,
    HookTimeout,
    InvalidSummary,
    OnArchived,
    Summarize,
    check_summary,
)
from luminora_redis.listener.outages import backoff, call, is_outage
from luminora_redis.ops import archive, memory, outbox

__all__ = ["FRESH", "Attempts", "Claim", "retry_delay"]

logger = logging.getLogger("luminora_redis.listener")

#: A claim an archive made for this listener: (``time.monotonic()`` when it was offered,
#: the end of its lease in ms on the server clock, the token that proves it is ours).
Claim = tuple[float, int]

#: Seconds an offer claimed at its archive may wait for a worker and still go to the hook
#: with no round trip. Older, the worker first extends the claim (``claim_delivery`` with
#: its token), which also finds a delivery erased or taken over meanwhile.
FRESH = 0.5


def retry_delay(attempts: int, base: float, cap: float) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: doubling, capped."""
    return min(cap, base * 2.0 ** max(0, min(attempts - 1, 60)))


class Attempts:
    """Delivery attempts to ``summarize`` and one hook (either may be None), and their
    counts. ``hooks`` runs the calls (``hook_timeout``, ``workers`` threads for plain
    ``summarize``); ``reoffer(session_id)`` queues a retry again once it is due;
    ``observer`` gets ``delivered`` and ``delivery_failed`` when it has them."""

    def __init__(self, store: SessionStore, hook: OnArchived | None,
                 summarize: Summarize | None, *, lease: float, hook_timeout: float | None,
                 workers: int, backoff_base: float, backoff_cap: float,
                 max_attempts: int | None, observer: Any, on_error: Callable[[], None],
                 reoffer: Callable[[str], None]) -> None:
        self._store = store
        self._hook = hook
        self._summarize = summarize
        self._lease_ms = max(1, int(lease * 1000))
        self._base = backoff_base
        self._cap = backoff_cap
        self._max_attempts = max_attempts
        self._observer = observer
        self._on_error = on_error
        self._reoffer = reoffer
        self.hooks = Hooks(hook_timeout, workers)
        calls = 2 if hook is not None and summarize is not None else 1
        # An archive may claim its delivery for this listener ahead of a worker only when
        # the lease outlasts a fresh offer's wait and every hook call of the attempt at
        # their time limit.
        may_claim_ahead = hook_timeout is not None and FRESH + calls * hook_timeout < lease
        #: The lease (ms) an archive may record its delivery claimed for by this listener
        #: (0: it may not).
        self.claim_ahead_ms = self._lease_ms if may_claim_ahead else 0
        self.delivered = 0
        self.failed = 0
        self.quarantined = 0
        #: ``summarize`` calls that returned an episode which was then saved.
        self.summarized = 0

    def _report(self, name: str, *args: Any) -> None:
        method = getattr(self._observer, name, None)
        if method is not None:
            method(*args)

    async def deliver(self, session_id: str, user_id: str | None,
                      held: ArchivedConversation | None = None,
                      claim: Claim | None = None) -> None:
        """One attempt at the delivery of ``session_id`` (see the module docstring):
        ``user_id`` when known, ``held`` its conversation when the archive returned
        it, ``claim`` when the archive claimed it for this listener."""
        read: ArchivedConversation | None | Exception = held
        delivery: outbox.Delivery | None
        if claim is not None and user_id is not None and time.monotonic() - claim[0] <= FRESH:
            delivery = outbox.Delivery(session_id, user_id, 1, int(time.time() * 1000))
        elif claim is not None or user_id is None or held is not None:
            # A claim that waited a while is extended while it is still ours (gone, or taken
            # over after its lease lapsed: None, and whoever holds it delivers).
            delivery = await call(self._store, outbox.claim_delivery, session_id,
                                  self._lease_ms, claim[1] if claim is not None else 0)
        else:
            delivery, read = await call(self._store, outbox.claim_and_read, session_id,
                                        self._lease_ms, user_id)
        if delivery is None:
            return
        if delivery.unreadable:
            self.quarantined += 1
            self._on_error()
            logger.error("the outbox entry of session %s could not be read: quarantined "
                         "(list_quarantined() lists it)", session_id)
            return
        try:
            if delivery.user_id != user_id or (claim is not None and held is None):
                read = await call(self._store, outbox.read_delivered, delivery.user_id,
                                  session_id)
            elif isinstance(read, Exception):
                raise read
        except Exception as error:
            if is_outage(error):
                raise
            await self._retry(session_id, delivery.attempts, error,
                              "reading the archive to deliver failed")
            return
        conversation = read
        if conversation is None:
            logger.warning("session %s of user %r: its archive is gone (the user was erased); "
                           "delivery dropped", session_id, delivery.user_id)
            await self._settle(outbox.ack_delivery, session_id)
            return
        if self._summarize is not None \
                and not await self._summarize_one(conversation, delivery.attempts):
            return
        if self._hook is not None:
            try:
                await self.hooks.call("on_archived", self._hook, conversation)
            except (HookFailed, HookTimeout) as error:
                await self._retry(session_id, delivery.attempts, error, "on_archived failed")
                return
        await self._settle(outbox.ack_delivery, session_id)
        self.delivered += 1
        self._report("delivered", delivery.attempts)
        if self._store.settings.archive_retention is None:
            return
        # Retention waits for the sink: now this archive may go.
        try:
            await self._settle(archive.trim_to_retention, delivery.user_id)
        except Exception as error:
            logger.warning("trimming the archive of user %r to its retention failed (%r); "
                           "the next acknowledged delivery or archive of the user trims it",
                           delivery.user_id, error)

    async def _summarize_one(self, conversation: ArchivedConversation, attempts: int) -> bool:
        """Run ``summarize`` and save its episode; False when the attempt failed (and was
        rescheduled or quarantined). Outages propagate: the lease lapses."""
        session_id = conversation.session_id
        assert self._summarize is not None
        try:
            summary = check_summary(await self.hooks.call(
                "summarize", self._summarize, conversation, thread=True))
        except (HookFailed, HookTimeout, InvalidSummary) as error:
            await self._retry(session_id, attempts, error, "summarize failed")
            return False
        if summary is None:
            return True
        try:
            saved = await self._settle(memory.save_session_summary, conversation.user_id,
                                       session_id, conversation.personality_name, summary)
        except Exception as error:
            if is_outage(error):
                raise
            await self._retry(session_id, attempts, error, "saving the session's summary failed")
            return False
        if saved is None:
            logger.warning("session %s of user %r: its archive was erased while it was "
                           "summarized; the summary is not kept", session_id,
                           conversation.user_id)
        else:
            self.summarized += 1
        return True

    async def _settle(self, operation: Callable[..., Op[Any]], *args: Any) -> Any:
        """Run a write that follows a hook call, retrying outages for up to half the
        lease: a lost acknowledgement means a second delivery, a lost reschedule a
        wait for the lease. Raises the last outage after that."""
        delays, failures = backoff(cap=1.0), 0
        give_up = asyncio.get_running_loop().time() + self._lease_ms / 2000
        while True:
            try:
                return await call(self._store, operation, *args)
            except Exception as error:
                if not is_outage(error):
                    raise
                delay = delays.compute(failures)
                failures += 1
                if asyncio.get_running_loop().time() + delay > give_up:
                    raise
                await asyncio.sleep(delay)

    async def _retry(self, session_id: str, attempts: int, error: Exception, what: str) -> None:
        self.failed += 1
        self._on_error()
        self._report("delivery_failed")
        delay = retry_delay(attempts, self._base, self._cap)
        outcome = await self._settle(outbox.retry_delivery, session_id, int(delay * 1000),
                                     self._max_attempts)
        if outcome == "retry":
            # Offered again when due (a hair late: claiming early finds it not due).
            asyncio.get_running_loop().call_later(delay + 0.005, self._reoffer, session_id)
        cause = error.__cause__ if isinstance(error, HookFailed) else error
        if isinstance(error, (HookTimeout, InvalidSummary)):
            what = str(error)  # it names the hook, and what went wrong
        if outcome == "quarantined":
            self.quarantined += 1
            logger.error("%s for session %s, attempt %d of %d: delivery quarantined "
                         "(list_quarantined() lists it)", what, session_id, attempts,
                         self._max_attempts, exc_info=cause)
        else:
            logger.error("%s for session %s (attempt %d); retrying in %.2f s", what,
                         session_id, attempts, delay, exc_info=cause)
