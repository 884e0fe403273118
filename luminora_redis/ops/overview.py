"""What an operator asks about sessions: which are pending and when they end,
one session at a glance, and the deadline backlog (archiving the overdue ones
is ``archive.cleanup_expired_sessions``).

Every answer comes from the per-bucket deadline indexes and the per-user
session sets, in bounded reads (one pipelined round trip per node for all
buckets), never from a scan of the keyspace.

An index score is a lower bound of its session's deadline: chat turns slide
the deadline without rewriting the entry, which the sweeper raises to the
real expiry once it finds it due while the session is live (within one
``sweep_interval`` while a listener runs). So `list_sessions` and
`peek_session` show each live session's real deadline, read from its hash;
`deadline_stats` counts index entries by their scores, so its ``overdue``
and ``ending_soon`` may include live sessions whose entry awaits that raise.
"""

from __future__ import annotations

from typing import Any

from luminora_redis.core.codec import decode_messages, from_ms
from luminora_redis.core.context import Context
from luminora_redis.core.errors import ReplyCode, SessionNotFound
from luminora_redis.core.models import DeadlineStats, IndexedSession, SessionView
from luminora_redis.core.scripts import Batch, Call, Op
from luminora_redis.core.validation import check_number
from luminora_redis.ops.records import hash_fields, live_activity, owns_session, read_hashes
from luminora_redis.ops.segments import read_conversation
from luminora_redis.ops.sessions import user_session_ids

__all__ = ["MAX_LIST", "deadline_stats", "list_sessions", "peek_session"]

#: The most sessions one ``list_sessions`` call returns, and the most messages one
#: ``peek_session`` tail holds (``limit=None`` / ``last=None``: that many).
MAX_LIST = 10_000


def _window_ms(ctx: Context, seconds: object, what: str) -> int:
    return int(check_number(seconds, what, 0.0, 10 * 365 * 86400.0) * 1000)


def deadline_stats(ctx: Context, window: object = 60.0) -> Op[DeadlineStats]:
    """Index entries by their scores (lower bounds of the deadlines: see the module)."""
    span = _window_ms(ctx, window, "window")
    calls = [Call("bucket_stats", ctx.keys.index(bucket), (span,))
             for bucket in range(ctx.keys.buckets)]
    replies = yield Batch(calls)
    now = max(int(reply[0]) for reply in replies)
    oldest = [int(reply[4]) for reply in replies if int(reply[4]) >= 0]
    return DeadlineStats.model_construct(
        sessions=sum(int(reply[1]) for reply in replies),
        overdue=sum(int(reply[2]) for reply in replies),
        ending_soon=sum(int(reply[3]) for reply in replies),
        window_seconds=span / 1000,
        oldest_overdue_seconds=(now - min(oldest)) / 1000 if oldest else None,
        buckets=ctx.keys.buckets)


def _indexed(session_id: str, state: dict[str, bytes], meta: dict[str, bytes],
             deadline: int | None, now: int, auto: bool | None = None) -> IndexedSession:
    activity = live_activity(state, meta)
    live = activity is not None
    if activity:
        deadline = activity[1]
    owner = meta.get("user")
    personality = meta.get("pers")
    return IndexedSession.model_construct(
        session_id=session_id, user_id=None if owner is None else owner.decode(),
        personality_name=None if personality is None else personality.decode(),
        deadline=None if deadline is None else from_ms(deadline),
        expired=not live or (deadline is not None and deadline <= now),
        auto_cleanup=meta.get("auto", b"1" if auto else b"0") == b"1")


def list_sessions(ctx: Context, user_id: object = None, expiring_within: object = None,
                  limit: object = 50) -> Op[list[IndexedSession]]:
    """Sessions not yet archived, earliest deadline first: the ``limit`` earliest index
    entries (or the user's sessions), each with its real deadline when live (an
    expired one shows its indexed deadline, a lower bound). ``limit`` is at most
    ``MAX_LIST`` (None: that many)."""
    count = ctx.capped(limit, MAX_LIST)
    if count == 0:
        return []
    span = -1 if expiring_within is None else _window_ms(ctx, expiring_within, "expiring_within")
    if user_id is not None:
        return (yield from _user_sessions(ctx, user_id, span, count))
    replies = yield Batch([Call("list_deadlines", ctx.keys.index(bucket), (span, count))
                           for bucket in range(ctx.keys.buckets)])
    now = max(int(reply[0]) for reply in replies)
    entries = sorted(((int(deadline), sid.decode(), auto == 1)
                      for reply in replies
                      for sid, deadline, auto in zip(reply[1::3], reply[2::3], reply[3::3])))
    entries = [entry for entry in entries if ctx.session_keys(entry[1]) is not None][:count]
    if not entries:
        return []
    calls = []
    for _, sid, _ in entries:
        keys = ctx.session_keys(sid)
        assert keys is not None
        calls.append(Call("read_hashes", (keys.session, keys.meta), ()))
    details = yield Batch(calls)
    found = [_indexed(sid, hash_fields(state), hash_fields(meta), deadline, now, auto)
             for (deadline, sid, auto), (state, meta) in zip(entries, details)]
    # The index chose them by lower bounds; a live session shows its real deadline.
    if span >= 0:
        horizon = from_ms(now + span)
        found = [entry for entry in found
                 if entry.expired or (entry.deadline is not None and entry.deadline <= horizon)]
    found.sort(key=lambda entry: entry.deadline or from_ms(0))
    return found


def _user_sessions(ctx: Context, user_id: object, span: int,
                   count: int) -> Op[list[IndexedSession]]:
    """The user's sessions (the oldest ``MAX_LIST`` of them), ids and hashes read in
    pages of at most ``page_size``."""
    user_id = ctx.user_id(user_id)
    user = ctx.keys.user(user_id)
    bucket = ctx.keys.bucket_of_user(user_id)
    ids = yield from user_session_ids(ctx, user, MAX_LIST)
    ids = [sid for sid in ids if owns_session(ctx, user_id, sid)]
    clock = yield Call("bucket_stats", ctx.keys.index(bucket), (0,))
    now = int(clock[0])
    if not ids:
        return []
    keys: list[str] = []
    for sid in ids:
        session = ctx.session_keys(sid)
        assert session is not None
        keys += [session.session, session.meta]
    hashes = yield from read_hashes(ctx, keys)
    found = [_indexed(sid, state, meta, None, now)
             for sid, state, meta in zip(ids, hashes[::2], hashes[1::2])]
    found = [entry for entry in found if entry.user_id is not None]
    if span >= 0:
        horizon = from_ms(now + span)
        found = [entry for entry in found
                 if entry.expired or (entry.deadline is not None and entry.deadline <= horizon)]
    found.sort(key=lambda entry: (not entry.expired, entry.deadline or from_ms(0)))
    return found[:count]


def peek_session(ctx: Context, session_id: object, last: object = 10) -> Op[SessionView | None]:
    """A session not yet archived with its newest ``last`` messages, without sliding its
    idle deadline. ``message_count`` counts the whole conversation (segments, overflow and
    history, as of one atomic read); the tail is one script call when it lies in the
    overflow and history and fits a page, else it is read by pages like ``get_history``."""
    want = ctx.capped(last, MAX_LIST, "last")
    keys = ctx.session_keys(session_id)
    if keys is None:
        return None
    assert isinstance(session_id, str)
    state, meta = yield from read_hashes(ctx, (keys.session, keys.meta))
    if "user" not in meta:
        return None
    clock = yield Call("bucket_stats", (keys.deadlines, keys.manual), (0,))
    reply: list[Any] = yield Call("peek_history", (keys.meta, keys.overflow, keys.history),
                                  (min(want, ctx.settings.page_size),))
    if reply[0] != ReplyCode.OK:
        return None
    _, base, overflow_len, history_len = reply[:4]
    total = int(base) + int(overflow_len) + int(history_len)
    raws = reply[4:]
    if len(raws) < min(want, total):
        try:
            raws = yield from read_conversation(
                ctx, keys, session_id, (ReplyCode.OK, 0, 0, overflow_len, base, history_len), want)
        except SessionNotFound:  # archived or deleted meanwhile
            return None
    entry = _indexed(session_id, state, meta, None, int(clock[0]))
    return SessionView.model_construct(
        session=entry, created_at=from_ms(meta["created"]), expires_at=from_ms(meta["abs"]),
        last_activity=from_ms(activity[0]) if (activity := live_activity(state, meta)) else None,
        message_count=total, tail=decode_messages(raws, f"session {session_id}"))

