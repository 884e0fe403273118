"""A user's rights and an operator's view of one user: summary, export, erase,
one archived conversation, forgetting an episode.

Everything here works in bounded steps. Lists, sorted sets and hashes that grow
with a user's lifetime (histories, segments, the archive, the evolution log,
facts, episodes) are read one page per script call, and an erase removes a
chunk of sessions or conversations per call, so a heavy user never holds
Redis up for long. The price of paging is that an export taken while the user
is active is not one atomic snapshot: each page is consistent, the whole is
as of the moment each page was read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from luminora_redis.codec import decode_episode, decode_evolution, decode_fact, decode_message, from_ms
from luminora_redis.context import Context
from luminora_redis.errors import LuminoraRedisError
from luminora_redis.keys import UserKeys
from luminora_redis.memory import get_affinities
from luminora_redis.models import (
    ArchivedConversation,
    ArchiveReason,
    ArchiveSummary,
    Message,
    UserSummary,
)
from luminora_redis.scripts import Call, Op

__all__ = [
    "archive_summaries",
    "bucket_side_keys",
    "decode_messages",
    "delete_episode",
    "erase_user",
    "export_user",
    "get_archived_conversation",
    "get_user",
    "hash_fields",
    "list_items",
    "owns_session",
]

logger = logging.getLogger(__name__)

#: Items per page read (messages, members, fields).
PAGE = 500
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


def _segments(user: UserKeys, session_id: str, count: int) -> list[str]:
    """Archived segments 1..count of a session (moved out of its overflow while it lived)."""
    record = user.archived(session_id)[0]
    return [f"{record}:g:{n}" for n in range(1, count + 1)]


def hash_fields(flat: Sequence[Any]) -> dict[str, bytes]:
    """An HGETALL reply as a dict of field name to raw value."""
    return {field.decode(): value for field, value in zip(flat[::2], flat[1::2])}


def decode_messages(raws: Sequence[bytes]) -> list[Message]:
    """Decode many messages; a record that cannot be decoded is logged and skipped, so one
    damaged record never makes the rest of a conversation unreadable."""
    messages = []
    for raw in raws:
        try:
            messages.append(decode_message(raw))
        except Exception:  # any malformed msgpack: skip it, say so
            logger.warning("skipped an undecodable message record (%d bytes)", len(raw))
    return messages


def owns_session(ctx: Context, user_id: str, session_id: object) -> bool:
    """Whether a session id routes to the user's bucket (a precondition of being theirs)."""
    bucket = ctx.keys.bucket_of_session(session_id)
    return bucket is not None and bucket == ctx.keys.bucket_of_user(user_id)


# -- paged reads ------------------------------------------------------------------


def list_items(key: str) -> Op[list[bytes]]:
    """Every item of a list, oldest first, a page per call."""
    items: list[bytes] = []
    while True:
        reply = yield Call("range_list", (key,), (len(items), len(items) + PAGE - 1))
        page = reply[1:]
        items.extend(page)
        if not page or len(items) >= int(reply[0]):
            return items


def _zset_members(key: str, newest_first: bool = False) -> Op[list[bytes]]:
    members: list[bytes] = []
    start = 0
    while True:
        reply = yield Call("range_zset", (key,), (start, start + PAGE - 1,
                                                  1 if newest_first else 0))
        page = reply[1::2]
        members.extend(page)
        start += PAGE
        if not page or start >= int(reply[0]):
            return members


def _conversation(user: UserKeys, session_id: str, segments: int, overflow: str,
                  history: str) -> Op[list[Message]]:
    """Every message of a conversation, oldest first: its segments, overflow, history."""
    raws: list[bytes] = []
    for key in (*_segments(user, session_id, segments), overflow, history):
        raws.extend((yield from list_items(key)))
    return decode_messages(raws)


# -- one user ---------------------------------------------------------------------


def get_user(ctx: Context, user_id: object) -> Op[UserSummary | None]:
    user_id = ctx.user_id(user_id)
    user = ctx.keys.user(user_id)
    reply = yield Call("user_summary", (user.user, user.sessions, user.archive, user.affinity,
                                        user.facts, user.episodes, user.evolution), ())
    first, last, sessions, archived, personalities, facts, episodes, evolution = reply
    if first is None and last is None and not any(reply[2:]):
        return None
    return UserSummary.model_construct(
        user_id=user_id, first_seen=None if first is None else from_ms(first),
        last_seen=None if last is None else from_ms(last), live_sessions=sessions,
        archived_conversations=archived, personalities=personalities, facts=facts,
        episodes=episodes, evolution_records=evolution)


def _summary(session_id: str, record: dict[str, bytes]) -> ArchiveSummary | None:
    if "pers" not in record:
        return None
    return ArchiveSummary.model_construct(
        session_id=session_id, personality_name=record["pers"].decode(),
        started_at=from_ms(record["created"]), ended_at=from_ms(record["ended"]),
        reason=ArchiveReason(record["reason"].decode()), message_count=int(record["count"]))


def archive_summaries(ctx: Context, user_id: object, limit: object = 20) -> Op[list[ArchiveSummary]]:
    """The user's newest archived conversations without their messages, newest first."""
    user_id = ctx.user_id(user_id)
    user = ctx.keys.user(user_id)
    count = ctx.limit(limit)
    if count == 0:
        return []
    reply = yield Call("range_zset", (user.archive,), (0, count - 1 if count > 0 else -1, 1))
    ids = [raw.decode() for raw in reply[1::2]]
    if not ids:
        return []
    records = yield Call("read_hashes", [user.archived(sid)[0] for sid in ids], ())
    found = (_summary(sid, hash_fields(record)) for sid, record in zip(ids, records))
    return [summary for summary in found if summary is not None]


def _archived(ctx: Context, user_id: str, user: UserKeys,
              session_id: str) -> Op[ArchivedConversation | None]:
    record_key, history, overflow = user.archived(session_id)
    reply = yield Call("read_hashes", (record_key,), ())
    record = hash_fields(reply[0])
    summary = _summary(session_id, record)
    if summary is None:
        return None
    segments = int(record.get("segs", b"0"))
    messages = yield from _conversation(user, session_id, segments, overflow, history)
    return ArchivedConversation.model_construct(user_id=user_id, messages=messages,
                                                **summary.__dict__)


def get_archived_conversation(ctx: Context, user_id: object,
                              session_id: object) -> Op[ArchivedConversation | None]:
    user_id = ctx.user_id(user_id)
    if not owns_session(ctx, user_id, session_id):
        return None
    assert isinstance(session_id, str)
    return (yield from _archived(ctx, user_id, ctx.keys.user(user_id), session_id))


def delete_episode(ctx: Context, user_id: object, episode_id: object) -> Op[bool]:
    user = ctx.user_keys(user_id)
    episode = ctx.name(episode_id, "episode_id")
    reply = yield Call("delete_episode", (user.episodes, user.episode_bodies), (episode,))
    return bool(reply[0] == 1)


# -- export -----------------------------------------------------------------------


def _json(model: Any) -> dict[str, Any]:
    return dict(model.model_dump(mode="json"))


def _live_session(ctx: Context, user: UserKeys, session_id: str) -> Op[dict[str, Any] | None]:
    keys = ctx.session_keys(session_id)
    if keys is None:
        return None
    state, meta = (hash_fields(flat) for flat in (yield Call("read_hashes",
                                                          (keys.session, keys.meta), ())))
    if "user" not in meta:
        return None
    absolute = int(meta["abs"])
    live = "last" in state
    deadline = min(int(state["last"]) + int(state["idle"]), absolute) if live else None
    messages = yield from _conversation(user, session_id, int(meta.get("segs", b"0")),
                                        keys.overflow, keys.history)
    mood = state.get("mood")
    return {
        "session_id": session_id,
        "personality_name": meta["pers"].decode(),
        "created_at": from_ms(meta["created"]).isoformat(),
        "expires_at": from_ms(absolute).isoformat(),
        "last_activity": from_ms(state["last"]).isoformat() if live else None,
        "effective_expires_at": None if deadline is None else from_ms(deadline).isoformat(),
        "live": live,
        "auto_cleanup": meta.get("auto") == b"1",
        "has_mood": mood is not None,
        "messages": [_json(message) for message in messages],
    }


def _facts(user: UserKeys) -> Op[list[dict[str, Any]]]:
    facts = []
    cursor: bytes | str = "0"
    while True:
        reply = yield Call("scan_hash", (user.facts,), (cursor, PAGE))
        cursor = reply[0]
        facts.extend(decode_fact(field, raw) for field, raw in zip(reply[1::2], reply[2::2]))
        if cursor in (b"0", "0"):
            break
    facts.sort(key=lambda fact: (fact.category, fact.key))
    return [_json(fact) for fact in facts]


def _episodes(user: UserKeys) -> Op[list[dict[str, Any]]]:
    episodes = []
    start = 0
    while True:
        page = yield Call("page_episodes", (user.episodes, user.episode_bodies),
                          (start, start + PAGE - 1))
        episodes.extend(_json(decode_episode(raw)) for raw in page if raw is not None)
        start += PAGE
        if len(page) < PAGE:
            return episodes


def export_user(ctx: Context, user_id: object) -> Op[dict[str, Any]]:
    """Everything kept about one user, as plain JSON-ready data (see ``SessionStore.export_user``)."""
    user_id = ctx.user_id(user_id)
    user = ctx.keys.user(user_id)
    summary = yield from get_user(ctx, user_id)
    affinities = yield from get_affinities(ctx, user_id)
    facts = yield from _facts(user)
    episodes = yield from _episodes(user)
    evolution = [_json(decode_evolution(raw)) for raw in (yield from _zset_members(user.evolution))]
    sessions = []
    for raw in (yield from _zset_members(user.sessions)):
        session_id = raw.decode()
        if owns_session(ctx, user_id, session_id):
            live = yield from _live_session(ctx, user, session_id)
            if live is not None:
                sessions.append(live)
    archived = []
    for raw in (yield from _zset_members(user.archive)):
        session_id = raw.decode()
        if owns_session(ctx, user_id, session_id):
            conversation = yield from _archived(ctx, user_id, user, session_id)
            if conversation is not None:
                archived.append(_json(conversation))
    return {
        "user_id": user_id,
        "exported_at": datetime.now(timezone.utc).isoformat(),
        "user": None if summary is None else _json(summary),
        "affinities": [_json(affinity) for affinity in affinities],
        "facts": facts,
        "episodes": episodes,
        "evolution": evolution,
        "sessions": sessions,
        "archived_conversations": archived,
    }


# -- erase ------------------------------------------------------------------------


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
        reply = yield Call("range_zset", (index,), (0, ERASE_CHUNK - 1, 0))
        page = [raw.decode() for raw in reply[1::2]]
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
                *_segments(user, session_id, segments)]

    # -1: not a session id of this user's bucket; only its index entry goes.
    return (yield from _erase_indexed(
        user.sessions, "erase_sessions",
        (user.sessions, deadlines, manual, *bucket_side_keys(ctx, bucket)), (user_id,), 4,
        keys_of, lambda sid: 0 if owns_session(ctx, user_id, sid) else -1))


def _erase_archive(ctx: Context, user: UserKeys, bucket: int) -> Op[int]:
    return (yield from _erase_indexed(
        user.archive, "erase_archived", (user.archive, *bucket_side_keys(ctx, bucket)), (), 3,
        lambda sid, segments: [*user.archived(sid), *_segments(user, sid, segments)],
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
        if reply[0] == 1:
            return removed + int(reply[1])
    raise LuminoraRedisError(
        f"user {user_id!r} kept getting new sessions during {ERASE_ROUNDS} erase rounds; "
        f"stop the clients that start them and erase again (what was erased stays erased)")
