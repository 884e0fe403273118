"""Deliveries to the ``on_archived`` sink, and quarantined entries: the pure operations.

Every archive records its delivery in its bucket's outbox in the archive's
own atomic step (``archive_session.lua``). A listener finds due deliveries
with `scan_due_deliveries`, takes the lease on one with `claim_delivery`,
calls the sink, then `ack_delivery` or `retry_delivery`. The delivery id is
the session id, which is also the sink's idempotency key. Sweep entries that
keep failing are counted with `sweep_failed` and quarantined at a limit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgpack

from luminora_redis.core.codec import from_ms
from luminora_redis.core.context import Context
from luminora_redis.core.errors import InvalidInput, ReplyCode
from luminora_redis.core.models import (
    ArchivedConversation,
    DeliveryBacklog,
    QuarantinedEntry,
    QuarantineKind,
)
from luminora_redis.core.scripts import Batch, Call, Op, alongside
from luminora_redis.ops.archive_reads import read_archived_conversation
from luminora_redis.ops.scans import DueScan, scan_sets

__all__ = [
    "Delivery",
    "ack_delivery",
    "claim_and_read",
    "claim_delivery",
    "delivery_backlog",
    "list_quarantined",
    "read_delivered",
    "release_delivery",
    "retry_delivery",
    "scan_due_deliveries",
    "sweep_failed",
]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One claimed delivery: which archived conversation, and its attempt number.
    ``unreadable``: its body could not be read, and the claim quarantined it."""

    session_id: str
    user_id: str
    attempts: int
    created_ms: int
    unreadable: bool = False


def _body(raw: bytes) -> dict[str, Any]:
    """A delivery's body; empty when it cannot be read (such a body is quarantined at its
    claim, and listed with what is known: its session id)."""
    try:
        body = msgpack.unpackb(raw, raw=False, strict_map_key=False)
    except (ValueError, msgpack.UnpackException):
        return {}
    return body if isinstance(body, dict) else {}


def scan_due_deliveries(ctx: Context, buckets: Iterable[int] | None = None,
                        batch: int = 100) -> Op[DueScan]:
    """Due deliveries of the given buckets (all when None), with each bucket's next
    delivery time: like ``scans.scan_due``, a scan of many buckets first asks each
    node for their earliest scores in one call, then only the due ones. Most outboxes
    are empty at any time: that call asks whether each exists first."""
    chosen = range(ctx.keys.buckets) if buckets is None else buckets
    return (yield from scan_sets(ctx, [(bucket, ctx.keys.bucket(bucket).outbox)
                                       for bucket in chosen], batch, sparse=True))


def _bucket_of(ctx: Context, session_id: str) -> Any:
    bucket = ctx.keys.bucket_of_session(session_id)
    if bucket is None:
        raise InvalidInput(f"not a session id of this store: {session_id!r}")
    return ctx.keys.bucket(bucket)


def claim_delivery(ctx: Context, session_id: str, lease_ms: int,
                   own_until: int = 0) -> Op[Delivery | None]:
    """Take the lease on one due delivery; None when it is not due (anymore). With
    ``own_until`` (the end of the caller's own claim, from its archive): while that claim
    stands it is extended, no attempt counted."""
    keys = _bucket_of(ctx, session_id)
    reply = yield Call("claim_delivery", (keys.outbox, keys.bodies, keys.dead),
                       (session_id, lease_ms, own_until))
    if reply[0] == ReplyCode.QUARANTINED:
        return Delivery(session_id, "", 0, 0, unreadable=True)
    if reply[0] != ReplyCode.OK:
        return None
    body = _body(reply[1])
    return Delivery(session_id, str(body.get("user", "")), int(body.get("attempts", 1)),
                    int(body.get("created", 0)))


def read_delivered(ctx: Context, user_id: str,
                   session_id: str) -> Op[ArchivedConversation | None]:
    """The archived conversation a delivery hands on, or None when it is gone."""
    found: ArchivedConversation | None = yield from read_archived_conversation(
        ctx, user_id, session_id)
    return found


def _read_caught(ctx: Context, user_id: str,
                 session_id: str) -> Op[ArchivedConversation | None | Exception]:
    """`read_delivered`, its failure returned rather than raised (so that the claim beside
    it is not lost); a failed round trip still raises."""
    try:
        return (yield from read_delivered(ctx, user_id, session_id))
    except Exception as error:
        return error


def claim_and_read(ctx: Context, session_id: str, lease_ms: int, user_id: str
                   ) -> Op[tuple[Delivery | None, ArchivedConversation | None | Exception]]:
    """`claim_delivery` and the read of ``user_id``'s conversation (the user the caller
    expects; the claim's body names the real one), in one round trip: the listener that
    just archived a session knows whose it is. The read is wasted when the claim finds
    the delivery not due; a failure of the read is returned, not raised."""
    return (yield from alongside(claim_delivery(ctx, session_id, lease_ms),
                                 _read_caught(ctx, user_id, session_id)))


def ack_delivery(ctx: Context, session_id: str) -> Op[bool]:
    """The delivery is done: remove it. False when it was gone already."""
    keys = _bucket_of(ctx, session_id)
    reply = yield Call("ack_delivery", (keys.outbox, keys.bodies, keys.dead), (session_id,))
    return bool(reply[0] == ReplyCode.OK)


def retry_delivery(ctx: Context, session_id: str, delay_ms: int,
                   max_attempts: int | None) -> Op[str]:
    """Reschedule a failed delivery; ``"retry"``, ``"quarantined"`` or ``"gone"``."""
    keys = _bucket_of(ctx, session_id)
    reply = yield Call("retry_delivery", (keys.outbox, keys.bodies, keys.dead),
                       (session_id, max(0, int(delay_ms)), max_attempts or 0))
    return {ReplyCode.OK: "retry", ReplyCode.QUARANTINED: "quarantined"}.get(reply[0], "gone")


def release_delivery(ctx: Context, session_id: str, own_until: int) -> Op[bool]:
    """Let the caller's own claim (its lease ends at ``own_until``, from its archive) go
    unused: due now for any listener, its attempt uncounted (the listener that archived
    it stopped, or had no room for it). False, and nothing written, when the delivery is
    gone or the claim is not the caller's anymore."""
    keys = _bucket_of(ctx, session_id)
    reply = yield Call("retry_delivery", (keys.outbox, keys.bodies, keys.dead),
                       (session_id, 0, 0, own_until))
    return bool(reply[0] == ReplyCode.OK)


def sweep_failed(ctx: Context, session_id: str, max_failures: int) -> Op[tuple[bool, int]]:
    """Count a failed archive of an index entry: (quarantined by this call, failures)."""
    keys = _bucket_of(ctx, session_id)
    reply = yield Call("sweep_failed", (keys.failures, keys.quarantine, keys.deadlines,
                                        keys.manual), (session_id, max_failures))
    return reply[0] == ReplyCode.QUARANTINED, int(reply[1])


def delivery_backlog(ctx: Context) -> Op[DeliveryBacklog]:
    """Pending and quarantined deliveries of every bucket, in one round trip per node."""
    calls = []
    for bucket in range(ctx.keys.buckets):
        keys = ctx.keys.bucket(bucket)
        calls.append(Call("delivery_backlog",
                          (keys.outbox, keys.bodies, keys.dead, keys.quarantine), ()))
    replies = yield Batch(calls)
    pending = dead = sessions = 0
    oldest: float | None = None
    for now, waiting, created, quarantined, stuck in replies:
        pending += waiting
        dead += quarantined
        sessions += stuck
        if created >= 0:
            age = max(0.0, (now - created) / 1000)
            oldest = age if oldest is None else max(oldest, age)
    return DeliveryBacklog(pending=pending, oldest_age_seconds=oldest, quarantined=dead,
                           quarantined_sessions=sessions)


#: The most entries one ``list_quarantined`` call returns (``limit=None`` too).
MAX_QUARANTINED = 10_000


def list_quarantined(ctx: Context, limit: object = 100) -> Op[list[QuarantinedEntry]]:
    """Quarantined deliveries and sweep entries, earliest quarantined first: at most
    ``limit``, itself at most ``MAX_QUARANTINED`` (None: that many)."""
    limit = ctx.capped(limit, MAX_QUARANTINED)
    if limit == 0:
        return []
    calls = []
    for bucket in range(ctx.keys.buckets):
        keys = ctx.keys.bucket(bucket)
        calls.append(Call("list_quarantined",
                          (keys.dead, keys.bodies, keys.quarantine, keys.failures), (limit,)))
    replies = yield Batch(calls)
    entries = []
    for dead, stuck in replies:
        for i in range(0, len(dead), 3):
            body = _body(dead[i + 2]) if dead[i + 2] else {}
            entries.append(QuarantinedEntry(
                kind=QuarantineKind.DELIVERY, session_id=dead[i].decode(),
                user_id=body.get("user"), attempts=int(body.get("attempts", 0)),
                quarantined_at=from_ms(int(float(dead[i + 1])))))
        for i in range(0, len(stuck), 3):
            entries.append(QuarantinedEntry(
                kind=QuarantineKind.SESSION, session_id=stuck[i].decode(), user_id=None,
                attempts=int(stuck[i + 2] or 0), quarantined_at=from_ms(int(float(stuck[i + 1])))))
    entries.sort(key=lambda entry: entry.quarantined_at)
    return entries[:limit]
