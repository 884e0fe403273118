"""A live session's bounded conversation: segments, and reading it in pages.

A session keeps at most ``max_history`` messages in its live history; older
ones move to its overflow list. When a chat turn's reply shows the overflow
at ``max_overflow`` messages or more, the turn's operation follows up (off
the hot path, only on those turns) by RENAMEing the overflow, in O(1), into
the user's archive area as the session's next segment. A session's keys so
stay bounded by settings, and no message is dropped: the conversation is its
segments 1..segs, then its overflow, then its history.

That follow-up runs after the turn committed, so a Redis or library error in
it never reaches the turn's caller: it is logged, and the next turn retries
it, since the overflow is still over the bound. Any other exception is a bug
and propagates.

Reads page by absolute position (see ``read_history.lua``): no script reply
carries more than ``page_size`` messages, and a reader sees every message
once, in order, while turns move messages between the lists.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from luminora_redis.core.context import Context
from luminora_redis.core.errors import FOLLOW_UP_ERRORS, ReplyCode, UnexpectedReply, raise_for_status
from luminora_redis.core.keys import SessionKeys, UserKeys
from luminora_redis.core.scripts import Call, Op

__all__ = ["archive_segment", "follow_up", "read_conversation"]

logger = logging.getLogger("luminora_redis.segments")


def archive_segment(ctx: Context, keys: SessionKeys, session_id: str) -> Op[int | None]:
    """Move the session's overflow into its next segment when it holds at least
    ``max_overflow`` messages; the new segment's number, or None when nothing moved."""
    owner, segs, _ = yield Call("read_segments", (keys.meta,), ())
    if owner is None:
        return None
    user = ctx.keys.user(owner.decode())
    for _ in range(3):
        number = int(segs) + 1
        reply = yield Call("archive_segment",
                           (keys.meta, keys.overflow, user.segment(session_id, number)),
                           (owner, number, ctx.settings.max_overflow))
        if reply[0] == ReplyCode.OK:
            return number
        if reply[0] != ReplyCode.STALE:
            return None
        segs = reply[1]
    raise UnexpectedReply(f"the segment count of session {session_id} kept changing")


def follow_up(ctx: Context, keys: SessionKeys, session_id: str, overflow_len: int) -> Op[None]:
    """After a committed turn: archive a full overflow as a segment. A Redis or library
    error is logged (the next turn retries), never raised; a bug propagates."""
    if overflow_len < ctx.settings.max_overflow:
        return
    try:
        yield from archive_segment(ctx, keys, session_id)
    except FOLLOW_UP_ERRORS:
        logger.warning("could not move the overflow of session %s (%d messages) into a "
                       "segment; the next turn retries", session_id, overflow_len, exc_info=True)


def read_conversation(ctx: Context, keys: SessionKeys, session_id: str, first: Sequence[Any],
                      last: int, start: int = 0) -> Op[list[bytes]]:
    """The conversation (its last ``last`` messages; all when negative) from position
    ``start`` on (a running summary's ``through``) as of the chat_turn reply ``first``
    (made with a negative want: its first page), in pages."""
    base, overflow_len, history_len = first[4], first[3], first[5]
    known: Sequence[bytes] = first[7:]
    end = base + overflow_len + history_len
    position = max(start, 0 if last < 0 else end - last)
    page = ctx.settings.page_size
    user: UserKeys | None = None
    number, segment_start = 1, 0
    out: list[bytes] = []
    while position < end:
        if base <= position < base + len(known):
            chunk = known[position - base:end - base]
            out.extend(chunk)
            position += len(chunk)
            continue
        call_keys: tuple[str, ...] = (keys.meta, keys.overflow, keys.history)
        if user is not None:
            call_keys += (user.segment(session_id, number),)
        reply = yield Call("read_history", call_keys,
                           (position, min(page, end - position), segment_start))
        if reply[0] == ReplyCode.SEGMENT_NEEDED:
            owner, _, _ = yield Call("read_segments", (keys.meta,), ())
            if owner is None:
                raise_for_status(ReplyCode.NOT_FOUND, session_id)
            user = ctx.keys.user(owner.decode())
            continue
        if reply[0] != ReplyCode.OK:
            raise_for_status(reply[0], session_id)
        length, chunk = reply[2], reply[3:]
        out.extend(chunk)
        position += len(chunk)
        if length >= 0 and position >= segment_start + length:
            number, segment_start = number + 1, segment_start + length
            if length == 0:
                raise UnexpectedReply(f"segment {number - 1} of session {session_id} is empty")
        elif not chunk:
            raise UnexpectedReply(f"session {session_id} holds fewer messages than it counts")
    return out
