"""Compressing archived conversations into zstd frames, after the archive committed.

Archiving itself stays one O(1) RENAME step (``archive_session.lua``): Lua has
no zstd, and the expiry path must not wait for compression. Afterwards the
client reads each unit of the archived conversation (its segments 1..segs,
then its tail: the overflow followed by the history), compresses it into one
zstd frame (``frames``) and swaps it in with ``compact_archive.lua``, which
writes only if the record and the lists are still what was read. Units go in
order and the record's ``zstd`` field counts the frames, so every reader knows
which keys hold frames; an interrupted compaction leaves a readable archive
that is part frames, part lists, and the next compaction goes on from there.

``compact_quietly`` is the follow-up of an archive: a Redis or library error
in it is logged, never raised, and leaves the conversation readable,
uncompressed; any other exception is a bug and propagates. ``compact_user``
compacts a user's whole archive (the layout upgrade runs it for every user).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from luminora_redis.core.context import Context
from luminora_redis.core.errors import FOLLOW_UP_ERRORS, ReplyCode, UnexpectedReply
from luminora_redis.core.frames import pack_frame
from luminora_redis.core.keys import UserKeys
from luminora_redis.core.scripts import Call, Op
from luminora_redis.core.settings import StoreSettings

__all__ = ["compact_archives", "compact_conversation", "compact_held", "compact_quietly",
           "compact_user"]

logger = logging.getLogger("luminora_redis.archive")

#: Messages per script reply, at most, when no store's ``page_size`` applies.
PAGE = StoreSettings.model_fields["page_size"].default

#: Archived conversations listed per page by ``compact_user``.
LISTED = 100


def _read_unit(record: str, lists: tuple[str, ...], segs: int, frames: int,
               page: int) -> Op[tuple[Any, list[bytes]] | None]:
    """Every message of one unit's lists, in pages of ``page`` (``read_archived.lua``), with the record
    as of the first page; None when the record is gone or its counts are not ``segs`` and
    ``frames`` (-1: any, learned from the first page)."""
    messages: list[bytes] = []
    index, offset, first = 0, 0, None
    while index < len(lists):
        reply = yield Call("read_archived", (record, *lists[index:]),
                           (offset, page, segs, frames))
        found, messages_read, done, offset, frame = reply
        now = int(found[6] or 0)
        if found[0] is None or int(found[5] or 0) != segs or frame or frames not in (-1, now):
            return None  # gone, other counts, or a frame already (someone compacts it)
        first, frames = first or found, now
        messages.extend(messages_read)
        index += done
    return first, messages


def compact_conversation(user: UserKeys, session_id: str, page: int = PAGE) -> Op[int]:
    """Turn every list of one archived conversation into a zstd frame; how many units
    this call compacted (0 when it is gone, or compact already).

    The first read guesses no segment and no frame, the common case: then reading
    the tail and swapping it in are the only two round trips."""
    record, history, overflow = user.archived(session_id)
    segs, frames, compacted = 0, -1, 0
    for _ in range(3):
        while True:
            unit = max(frames, 0) + 1
            if unit > segs + 1:
                return compacted
            lists = (overflow, history) if unit == segs + 1 else (
                user.segment(session_id, unit),)
            read = yield from _read_unit(record, lists, segs, frames, page)
            if read is None:
                break
            frames = int(read[0][6] or 0)
            if frames != unit - 1:
                break  # the guess was wrong: read the record's counts
            reply = yield Call("compact_archive", (record, lists[-1], overflow),
                               (unit, segs, len(read[1]), pack_frame(read[1]) if read[1] else b""))
            if reply[0] != ReplyCode.OK:
                break  # gone, compacted meanwhile, or changed: read the counts again
            compacted, frames = compacted + 1, unit
        state = yield from _state(user, session_id)
        if state is None:
            return compacted
        segs, frames = state
    raise UnexpectedReply(f"archived conversation {session_id} kept changing while compacted")


def _state(user: UserKeys, session_id: str) -> Op[tuple[int, int] | None]:
    """(segs, frames) of an archived record, None when it is gone."""
    reply = yield Call("read_archived", (user.archived(session_id)[0],), (0, 0, 0))
    record = reply[0]
    if record[0] is None:
        return None
    return int(record[5] or 0), int(record[6] or 0)


def compact_held(user: UserKeys, session_id: str, stored: Sequence[bytes],
                 page: int = PAGE) -> Op[int]:
    """`compact_conversation` of a conversation whose messages the caller holds as the
    archive stored them (its tail, no segment: ``archive_session.lua`` returned them),
    so that the swap is the only round trip. When the archive is not what the caller
    holds anymore, it is read as usual."""
    record, history, overflow = user.archived(session_id)
    reply = yield Call("compact_archive", (record, history, overflow),
                       (1, 0, len(stored), pack_frame(stored) if stored else b""))
    if reply[0] == ReplyCode.OK:
        return 1
    return (yield from compact_conversation(user, session_id, page))


def compact_quietly(user: UserKeys, user_id: str, session_id: str, page: int = PAGE,
                    stored: Sequence[bytes] | None = None) -> Op[bool]:
    """Compact a just-archived conversation (held: ``stored``, see `compact_held`); False
    (logged) when Redis or the library failed it. It runs after the archive committed,
    so such errors are not raised: the archive stays readable. Any other exception is a
    bug and propagates."""
    try:
        if stored is None:
            yield from compact_conversation(user, session_id, page)
        else:
            yield from compact_held(user, session_id, stored, page)
    except FOLLOW_UP_ERRORS as error:
        logger.warning("compressing archived session %s of user %r failed (%r); it stays "
                       "readable uncompressed", session_id, user_id, error)
        return False
    return True


def compact_user(user: UserKeys, page: int = PAGE) -> Op[int]:
    """Compact every archived conversation of one user, oldest first, in pages from a
    cursor (``range_zset.lua``: retention trimming meanwhile shifts no page); how many
    units were compacted."""
    compacted = 0
    score: bytes | str = ""
    last: bytes | str = ""
    while True:
        more, score, last, *ids = yield Call("range_zset", (user.archive,),
                                             ("asc", LISTED, score, last, ""))
        for session_id in ids:
            compacted += yield from compact_conversation(user, session_id.decode(), page)
        if not more:
            return compacted


def compact_archives(ctx: Context, user_id: object) -> Op[int]:
    """Compress every archived conversation of a user that is not compressed yet (archived
    with ``compress_archives`` off, or before it existed); how many units were compacted."""
    return (yield from compact_user(ctx.user_keys(user_id), ctx.settings.page_size))
