"""Archive operations: end, expire, clean up and delete (reads: ``archive_reads``;
finding what is due: ``scans``).

Archiving is not on the hot path, so it takes two steps: ``read_meta`` names
the session's user, then ``archive_session`` declares every key it touches
(the user's keys included) and re-checks what was read. The script is
idempotent, so any number of listeners, sweepers and cleanups may race for a
session and exactly one of them archives it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from luminora_redis.core.context import Context
from luminora_redis.core.errors import FOLLOW_UP_ERRORS, ReplyCode, UnexpectedReply
from luminora_redis.core.keys import SessionKeys, UserKeys
from luminora_redis.core.models import ArchivedConversation, ArchiveReason
from luminora_redis.core.scripts import Batch, Call, Op
from luminora_redis.ops.archive_reads import archived_conversation
from luminora_redis.ops.compaction import compact_quietly
from luminora_redis.ops.scans import SWEEP_BATCH, expired_sessions, read_meta

__all__ = [
    "MAX_EXPIRED",
    "Archived",
    "StillLive",
    "archive_due",
    "archive_session",
    "cleanup_expired_sessions",
    "compress",
    "delete_session",
    "end_session",
    "get_expired_sessions",
    "retain",
    "trim_to_retention",
]

#: The most sessions one ``get_expired_sessions`` call lists.
MAX_EXPIRED = 100_000

logger = logging.getLogger("luminora_redis.archive")


@dataclass(frozen=True, slots=True)
class Archived:
    """What one successful archive call did. ``conversation`` (with the messages as
    stored, ``stored``, overflow first): the conversation archived, when the caller
    asked for it and it was small enough to come back in the same reply."""

    session_id: str
    user_id: str
    reason: ArchiveReason
    ended_ms: int
    message_count: int
    conversation: ArchivedConversation | None = None
    stored: tuple[bytes, ...] | None = None
    #: When the delivery was recorded claimed by the caller (``lease_ms``): the end of
    #: that claim's lease (ms, server clock), the caller's token to extend or release it
    #: (``outbox.claim_delivery``, ``outbox.release_delivery``); else 0.
    claimed_until: int = 0


def _archive_keys(ctx: Context, keys: SessionKeys, user: UserKeys,
                  session_id: str) -> tuple[str, ...]:
    bucket = ctx.keys.bucket(ctx.keys.bucket_of_session(session_id) or 0)
    return (keys.session, keys.meta, keys.history, keys.overflow, keys.deadlines, keys.manual,
            user.sessions, user.archive, *user.archived(session_id), user.user,
            bucket.outbox, bucket.bodies, bucket.failures, keys.summary)


@dataclass(frozen=True, slots=True)
class StillLive:
    """An expired-session archive found the session live (its index score, a lower
    bound, had passed): its index entry now scores its real deadline."""

    deadline_ms: int


def _owner(keys: SessionKeys, session_id: str) -> Op[tuple[str | None, int | None]]:
    """The user a session belongs to, from its meta hash (None once archived or
    deleted), and, while the session hash is still there, its real deadline (ms), to
    which the same script raised its index entry."""
    meta = yield read_meta(keys, session_id)
    live = int(meta[5]) if len(meta) > 5 and meta[5] else None
    return (None if meta[0] is None else str(meta[0].decode())), live


def archive_session(ctx: Context, session_id: str, mode: str,
                    compact: bool = True) -> Op[Archived | None]:
    """Archive one session; None when this call did not archive it.

    ``mode`` is ``expire`` (listener and sweeper: expired auto_cleanup
    sessions only), ``cleanup`` (any expired session) or ``end`` (now). A
    session still live in ``expire`` or ``cleanup`` mode (its index score, a
    lower bound, had passed) is left alone, its index entry raised to its real
    deadline by ``read_meta`` (or by ``archive_session.lua`` in a race). The
    same atomic step records the delivery to the ``on_archived`` sink in the
    bucket's outbox. Retention trimming and compression (``compaction``) run
    after the commit and never raise: a failed trim is logged and re-run by
    the next archive of the user, or by the listener once it has delivered
    this conversation; a failed compression leaves the conversation readable,
    uncompressed, until ``luminora-redis migrate`` or ``compact_archives``.
    With ``compact`` False the caller compresses later (``compress``), e.g. the
    listener, once it has handed the delivery on.
    """
    found = yield from archive_due(ctx, session_id, mode, compact)
    return None if isinstance(found, StillLive) else found


def archive_due(ctx: Context, session_id: str, mode: str = "expire",
                compact: bool = False, returned: int = 0,
                lease_ms: int = 0) -> Op[Archived | StillLive | None]:
    """`archive_session`, for the listener: a session found still live is `StillLive`,
    with the real deadline its index entry now scores, so that a sweep knows the
    bucket's next score without asking again. With ``returned`` > 0, a conversation of
    at most that many messages (and no segment) comes back in the archive's own reply
    (``Archived.conversation``): the listener hands it to its sink and compresses it
    without reading it again. With ``lease_ms`` > 0 the delivery is recorded claimed by
    the caller for that long (``Archived.claimed_until``): it needs no claim of its own,
    and delivers it or lets it go (``outbox.release_delivery``)."""
    keys = ctx.session_keys(session_id)
    if keys is None:
        return None
    user_id, live = yield from _owner(keys, str(session_id))
    if user_id is None:
        return None
    if live is not None and mode != "end":
        return StillLive(live)
    user = ctx.keys.user(user_id)
    reply = yield Call("archive_session", _archive_keys(ctx, keys, user, session_id),
                       (session_id, user_id, mode, 1 if ctx.settings.deliveries else 0,
                        returned, max(0, lease_ms)))
    if reply[0] != ReplyCode.OK:
        if reply[0] in (ReplyCode.NOT_FOUND, ReplyCode.ALIVE, ReplyCode.MANUAL):
            return None
        raise UnexpectedReply(f"archive_session replied {reply!r}")
    _, ended, reason, count, size, claimed_until, *held = reply
    retention = ctx.settings.archive_retention
    if retention is not None and size > retention:
        yield from retain(ctx, user_id)
    conversation = stored = None
    if held:
        record, messages = held
        stored = tuple(messages)
        conversation = archived_conversation(user_id, session_id, record, messages)
    archived = Archived(session_id, user_id, ArchiveReason(reason.decode()), ended, count,
                        conversation, stored, int(claimed_until))
    if compact:
        yield from compress(ctx, archived)
    return archived


def compress(ctx: Context, archived: Archived) -> Op[bool]:
    """Compress a conversation just archived (when ``compress_archives`` is on); False
    (logged) when Redis or the library failed it, which is not raised: the archive
    committed and stays readable. A bug (any other exception) propagates."""
    if not ctx.settings.compress_archives:
        return True
    return (yield from compact_quietly(ctx.keys.user(archived.user_id), archived.user_id,
                                       archived.session_id, ctx.settings.page_size,
                                       archived.stored))


def retain(ctx: Context, user_id: str) -> Op[bool]:
    """Trim the user's archive to ``archive_retention``; False (logged) when it failed.

    It runs after an archive committed, so it never raises: the archive
    stands, and the next archive of the user or the listener runs it again.
    """
    retention = ctx.settings.archive_retention
    if retention is None:
        return True
    try:
        yield from trim_to_retention(ctx, user_id)
    except FOLLOW_UP_ERRORS as error:  # the archive committed: see the docstring
        logger.warning("trimming the archive of user %r to %d conversations failed (%r); "
                       "it is retried later", user_id, retention, error)
        return False
    return True


def trim_to_retention(ctx: Context, user_id: str) -> Op[None]:
    """Trim the user's archive to its newest ``archive_retention`` conversations (nothing
    when that is None); raises on failure.

    An archive whose delivery to ``on_archived`` is pending or quarantined is
    never trimmed, so the sink gets every archive: it goes once the delivery is
    acknowledged (the listener trims again then). Until then the archive may
    hold more than the retention.
    """
    retention = ctx.settings.archive_retention
    if retention is None:
        return
    bucket = ctx.keys.bucket(ctx.keys.bucket_of_user(user_id))
    yield from _trim(ctx.keys.user(user_id), bucket.outbox, bucket.dead, retention)


def _trim(user: UserKeys, outbox: str, dead: str, keep: int) -> Op[None]:
    victims: list[str] = []
    for _ in range(10):
        segments = yield from _segments_of(user, victims)
        keys = [key for sid in victims for key in user.archived(sid)]
        reply = yield Call("trim_archive", (user.archive, outbox, dead, *keys), (keep, *victims))
        if segments:
            yield Batch([Call("drop_segments", (user.archived(sid)[0], *user.segments(sid, segs)),
                              ()) for sid, segs in segments])
        if not reply:
            return
        victims = [raw.decode() for raw in reply]


def _segments_of(user: UserKeys, session_ids: list[str]) -> Op[list[tuple[str, int]]]:
    """The archived conversations among ``session_ids`` that have segments, with their count."""
    if not session_ids:
        return []
    records = yield Batch([Call("read_archived", (user.archived(sid)[0],), (0, 0, 0))
                           for sid in session_ids])
    counts = [(sid, int(reply[0][5] or 0)) for sid, reply in zip(session_ids, records)]
    return [(sid, segs) for sid, segs in counts if segs]


def end_session(ctx: Context, session_id: object) -> Op[bool]:
    keys = ctx.session_keys(session_id)
    if keys is None:
        return False
    archived = yield from archive_session(ctx, str(session_id), "end")
    return archived is not None


def delete_session(ctx: Context, session_id: object) -> Op[bool]:
    keys = ctx.session_keys(session_id)
    if keys is None:
        return False
    user_id, _ = yield from _owner(keys, str(session_id))
    if user_id is None:
        return False
    user = ctx.keys.user(user_id)
    segs = 0
    for _ in range(3):
        reply = yield Call("delete_session",
                           (*keys, user.sessions, keys.summary,
                            *user.segments(str(session_id), segs)),
                           (session_id, user_id, segs))
        if reply[0] != ReplyCode.STALE:
            return bool(reply[0] == ReplyCode.OK)
        segs = reply[1]
    raise UnexpectedReply(f"the segment count of session {session_id} kept changing")


def get_expired_sessions(ctx: Context, limit: object = 1000) -> Op[list[str]]:
    """Expired sessions not archived yet, earliest deadline first per bucket: at most
    ``limit``, itself at most ``MAX_EXPIRED`` (None: that many), and one script reply per
    bucket of at most that many. A session still live is never listed, whatever its
    index says."""
    count = ctx.capped(limit, MAX_EXPIRED)
    if count == 0:
        return []
    due, _ = yield from expired_sessions(ctx, manual=True, batch=count, limit=count)
    return due


def cleanup_expired_sessions(ctx: Context, limit: object = None) -> Op[int]:
    """Archive expired sessions (auto_cleanup or not): every one when ``limit`` is None,
    else at most ``limit``, in steps of at most ``SWEEP_BATCH``; how many this call
    archived (a session another process archived meanwhile is not counted)."""
    wanted = ctx.limit(limit)
    archived = 0
    while wanted != archived:
        step = None if wanted < 0 else min(wanted - archived, SWEEP_BATCH)
        due, more = yield from expired_sessions(ctx, manual=True, batch=step or SWEEP_BATCH,
                                                limit=step)
        done = 0
        for session_id in due:
            if (yield from archive_session(ctx, session_id, "cleanup")) is not None:
                done += 1
        archived += done
        if done == 0 or (not more and (step is None or len(due) < step)):
            break
    return archived
