"""Reading the archive: a user's archived conversations, newest first, in pages.

An archived conversation's messages lie in its segments 1..segs, then its
archived overflow, then its archived history; archived lists never change,
so a (list, offset) cursor is stable and each script call reads one page of
at most ``page_size`` messages (``read_archived.lua``). Compaction
(``compaction``) replaces those lists, one unit at a time, with zstd frames;
a page returns a frame whole and the reader decompresses it. A cursor is
valid while the record's segment and frame counts stay as read: when
compaction moves on in the middle of a read, the read starts over (at most
once per unit). Listing the archive pages too: ``before`` is the session id
of the last conversation of the previous page.

A conversation that cannot be read whole says so: records that do not
decode, and a frame that does not decompress, are skipped (logged, and
counted by ``codec.unreadable_records_total``), and the conversation's
``unreadable_messages`` counts the messages it lacks, which its record's
message count tells for a frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from luminora_redis.core.codec import decode_messages, decode_stored_mood, from_ms
from luminora_redis.core.context import Context
from luminora_redis.core.errors import InvalidInput, UnexpectedReply
from luminora_redis.core.frames import read_frame
from luminora_redis.core.keys import UserKeys
from luminora_redis.core.models import ArchivedConversation, ArchiveReason
from luminora_redis.core.scripts import Batch, Call, Op

__all__ = [
    "MAX_LIST",
    "archived_conversation",
    "get_archived_conversations",
    "read_archived_conversation",
]

#: The most archived conversations one listing returns (also when ``limit`` is None).
MAX_LIST = 100
#: How many of a conversation's lists one page may run across.
WINDOW = 8


class _Reader:
    """The cursor of one archived conversation: which list, where in it."""

    __slots__ = ("frames", "list_index", "lists", "lost_frames", "messages", "offset", "owner",
                 "record", "segs")

    def __init__(self, user: UserKeys, session_id: str, segs: int, frames: int = -1) -> None:
        record, history, overflow = user.archived(session_id)
        self.record = record
        self.segs = segs
        #: how many units are zstd frames; -1 until a reply said so
        self.frames = frames
        self.lists = [*user.segments(session_id, segs), overflow, history]
        self.list_index = 0
        self.offset = 0
        self.messages: list[bytes] = []
        #: frames that could not be read (their messages are missing from ``messages``)
        self.lost_frames = 0
        self.owner = f"archived session {session_id}"

    @property
    def done(self) -> bool:
        return self.list_index >= len(self.lists)

    def call(self, page: int) -> Call:
        window = self.lists[self.list_index:self.list_index + WINDOW]
        return Call("read_archived", (self.record, *window),
                    (self.offset, page, self.segs, self.frames))

    def fits(self, record: Sequence[Any]) -> bool:
        """Whether a reply's record is the state this cursor assumed (then it read)."""
        frames = int(record[6] or 0)
        return int(record[5] or 0) == self.segs and self.frames in (-1, frames)

    def take(self, reply: Sequence[Any]) -> None:
        record, messages, done, offset, frames = reply
        self.frames = int(record[6] or 0)
        if frames:
            before, frame = frames
            self.messages.extend(messages[:before])
            rows = read_frame(frame, self.owner)
            if rows is None:
                self.lost_frames += 1
            else:
                self.messages.extend(rows)
            messages = messages[before:]
        self.messages.extend(messages)
        self.list_index += done
        self.offset = offset


def _reread(user: UserKeys, session_id: str, record: Sequence[Any]) -> _Reader:
    return _Reader(user, session_id, int(record[5] or 0))


def archived_conversation(user_id: str, session_id: str, record: Sequence[Any],
                          messages: list[bytes], lost_frames: int = 0) -> ArchivedConversation:
    """The conversation from its record (as ``read_archived.lua`` replies it) and its
    messages as stored, in order."""
    personality, created, ended, reason, count = record[:5]
    mood = record[7] if len(record) > 7 else None
    summary = decode_messages([record[8]], f"archived session {session_id}") if (
        len(record) > 8 and record[8]) else []
    decoded = decode_messages(messages, f"archived session {session_id}")
    # Records that do not decode, and what the record counts that no list or frame gave
    # back (a lost frame held one message at least: an empty unit has no frame).
    missing = max(0, int(count) - len(messages), lost_frames)
    unreadable = len(messages) - len(decoded) + missing
    return ArchivedConversation.model_construct(
        session_id=session_id, user_id=user_id, personality_name=personality.decode(),
        started_at=from_ms(created), ended_at=from_ms(ended),
        reason=ArchiveReason(reason.decode()), message_count=int(count),
        unreadable_messages=unreadable, messages=decoded,
        mood=decode_stored_mood(mood, f"archived session {session_id}"),
        summary=summary[0] if summary else None,
    )


def _read_many(ctx: Context, user: UserKeys, user_id: str,
               session_ids: list[str]) -> Op[list[ArchivedConversation]]:
    """Conversations by id, in that order (those gone are left out). The first page
    of every conversation is one round trip; longer ones continue page by page."""
    if not session_ids:
        return []
    page = ctx.settings.page_size
    readers = [_Reader(user, sid, 0) for sid in session_ids]
    replies = yield Batch([reader.call(page) for reader in readers])
    found = []
    for session_id, reader, reply in zip(session_ids, readers, replies):
        record = reply[0]
        if record[0] is None:
            continue
        if reader.fits(record):
            reader.take(reply)
        else:
            reader = _reread(user, session_id, record)
        restarts = 0
        while not reader.done:
            reply = yield reader.call(page)
            record = reply[0]
            if record[0] is None:
                break
            if not reader.fits(record):
                # Compaction moved on (a frame replaced a list): read it all again.
                restarts += 1
                if restarts > reader.segs + 2 or int(record[5] or 0) != reader.segs:
                    raise UnexpectedReply(
                        f"archived conversation {session_id} changed while read")
                reader = _reread(user, session_id, record)
                continue
            reader.take(reply)
        else:
            found.append(archived_conversation(user_id, session_id, record, reader.messages,
                                               reader.lost_frames))
    return found


def read_archived_conversation(ctx: Context, user_id: object,
                               session_id: object) -> Op[ArchivedConversation | None]:
    """One archived conversation, all its messages read in pages; None when there is none."""
    user_id = ctx.user_id(user_id)
    if ctx.session_keys(session_id) is None:
        return None
    found = yield from _read_many(ctx, ctx.keys.user(user_id), user_id, [str(session_id)])
    return found[0] if found else None


def get_archived_conversations(ctx: Context, user_id: object, limit: object = 20,
                               before: object = None) -> Op[list[ArchivedConversation]]:
    """The user's archived conversations, newest first: at most ``limit`` (at most
    ``MAX_LIST``, also when None), starting after the conversation ``before`` (a
    session id: the last one of the previous page)."""
    user_id = ctx.user_id(user_id)
    count = ctx.limit(limit)
    count = MAX_LIST if count < 0 else min(count, MAX_LIST)
    if before is not None and ctx.session_keys(before) is None:
        raise InvalidInput(f"before must be a session id from a previous page, not {before!r}")
    if count == 0:
        return []
    user = ctx.keys.user(user_id)
    ids = yield Call("list_archive", (user.archive,), (count, before or ""))
    return (yield from _read_many(ctx, user, user_id, [raw.decode() for raw in ids]))
