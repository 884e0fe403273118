"""Erasing a user: every key of theirs, in bounded chunks, safe against racing writers.

Sessions go first, each in one atomic step with its session hash and meta
hash (so a racing ``chat_turn`` lands before or fails, and no listener can
archive it afterwards); then the archived conversations; then, once neither
is left, the user's memory. Every step is idempotent and the indexes that
find the rest are emptied only as what they list is erased, so running the
erase again after a crash completes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from luminora_redis.core.context import Context
from luminora_redis.core.errors import LuminoraRedisError, ReplyCode
from luminora_redis.core.keys import UserKeys
from luminora_redis.core.scripts import Call, Op
from luminora_redis.ops.records import owns_session

__all__ = ["bucket_side_keys", "erase_user"]

#: Sessions or conversations erased per script call, at most.
ERASE_CHUNK = 100
#: Keys declared per erase call, at most (segments count too), beyond the first item.
ERASE_KEYS = 1000
#: Rounds of "erase sessions, erase the archive, erase the memory" before giving up:
#: only a client that keeps starting sessions for the user could need a second one.
ERASE_ROUNDS = 100


def bucket_side_keys(ctx: Context, bucket: int) -> tuple[str, str, str, str, str]:
    """The bucket's sweep failures and quarantine, and its delivery outbox: bodies and dead."""
    tag = ctx.keys.tag(bucket)
    return (f"{tag}:failures", f"{tag}:quarantine", f"{tag}:outbox", f"{tag}:outbox:d",
            f"{tag}:outbox:dead")


def _chunks(items: list[tuple[str, int]], per_item: int) -> list[tuple[str, int]]:
    """The first items of a page that fit in one bounded erase call."""
    chosen: list[tuple[str, int]] = []
    keys = 0
    for session_id, segments in items[:ERASE_CHUNK]:
        cost = per_item + max(segments, 0)
        if chosen and keys + cost > ERASE_KEYS:
            break
        chosen.append((session_id, segments))
        keys += cost
    return chosen


def _erase_indexed(index: str, script: str, head: Sequence[str], lead: Sequence[Any],
                   per_item: int, item_keys: Callable[[str, int], list[str]],
                   first_guess: Callable[[str], int]) -> Op[int]:
    """Erase what ``index`` (a ZSET of session ids) lists, a bounded chunk per ``script`` call,
    until it is empty. A call leaves alone (and names) an item with more segments than
    declared; the next call declares them."""
    declared: dict[str, int] = {}
    removed = 0
    while True:
        reply = yield Call("range_zset", (index,), ("asc", ERASE_CHUNK, "", "", ""))
        page = [raw.decode() for raw in reply[3:]]
        if not page:
            return removed
        keys: list[str] = list(head)
        args: list[Any] = list(lead)
        items = [(sid, declared.get(sid, first_guess(sid))) for sid in page]
        for sid, segments in _chunks(items, per_item):
            keys += item_keys(sid, segments)
            args += [sid, segments]
        reply = yield Call(script, keys, args)
        removed += int(reply[0])
        for sid, segments in zip(reply[1::2], reply[2::2]):
            declared[sid.decode()] = int(segments)


def _erase_sessions(ctx: Context, user_id: str, user: UserKeys, bucket: int) -> Op[int]:
    deadlines, manual = ctx.keys.index(bucket)

    def keys_of(session_id: str, segments: int) -> list[str]:
        session = ctx.session_keys(session_id)
        if segments < 0 or session is None:
            return []
        return [session.session, session.meta, session.history, session.overflow,
                session.summary, *user.segments(session_id, segments)]

    # -1: not a session id of this user's bucket; only its index entry goes.
    return (yield from _erase_indexed(
        user.sessions, "erase_sessions",
        (user.sessions, deadlines, manual, *bucket_side_keys(ctx, bucket)), (user_id,), 5,
        keys_of, lambda sid: 0 if owns_session(ctx, user_id, sid) else -1))


def _erase_archive(ctx: Context, user: UserKeys, bucket: int) -> Op[int]:
    return (yield from _erase_indexed(
        user.archive, "erase_archived", (user.archive, *bucket_side_keys(ctx, bucket)), (), 3,
        lambda sid, segments: [*user.archived(sid), *user.segments(sid, segments)],
        lambda sid: 0))


def erase_user(ctx: Context, user_id: object) -> Op[int]:
    """Erase every key of one user (see ``SessionStore.erase_user``); the keys removed."""
    user_id = ctx.user_id(user_id)
    user = ctx.keys.user(user_id)
    bucket = ctx.keys.bucket_of_user(user_id)
    removed = 0
    for _ in range(ERASE_ROUNDS):
        removed += yield from _erase_sessions(ctx, user_id, user, bucket)
        removed += yield from _erase_archive(ctx, user, bucket)
        reply = yield Call("erase_memory", (user.sessions, user.archive, user.user, user.affinity,
                                            user.facts, user.episodes, user.episode_bodies,
                                            user.evolution), ())
        if reply[0] == ReplyCode.OK:
            return removed + int(reply[1])
    raise LuminoraRedisError(
        f"user {user_id!r} kept getting new sessions during {ERASE_ROUNDS} erase rounds; "
        f"stop the clients that start them and erase again (what was erased stays erased)")
