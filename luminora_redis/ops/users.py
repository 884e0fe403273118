"""A user's data as a whole: summary, export, one archived conversation, the
archive's summaries.

Everything here reads in bounded steps: lists, sorted sets and hashes that
grow with a user's lifetime (histories, segments, the archive, the evolution
log, facts, episodes) are read one page per script call, so a heavy user never
holds Redis up for long. The price of paging is that an export taken while
the user is active is not one atomic snapshot: each page is consistent, the
whole is as of the moment each page was read. Erasing a user is ``erasure``.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from luminora_redis.core.codec import (
    decode_evolutions,
    decode_messages,
    decode_stored_mood,
    from_ms,
)
from luminora_redis.core.context import Context
from luminora_redis.core.errors import InvalidInput
from luminora_redis.core.keys import UserKeys
from luminora_redis.core.models import (
    ArchivedConversation,
    ArchiveReason,
    ArchiveSummary,
    Message,
    UserSummary,
)
from luminora_redis.core.scripts import Call, Op
from luminora_redis.ops.adapter_export import export_langgraph_threads, export_luminoracore
from luminora_redis.ops.adapter_keys import session_refs
from luminora_redis.ops.archive_reads import read_archived_conversation
from luminora_redis.ops.memory import get_affinities, get_episodes, get_facts
from luminora_redis.ops.records import hash_fields, live_activity, owns_session
from luminora_redis.ops.sessions import user_session_ids
from luminora_redis.ops.store_items import export_items

__all__ = [
    "archive_summaries",
    "export_user",
    "get_archived_conversation",
    "get_user",
    "list_items",
]

logger = logging.getLogger(__name__)

#: Items per page read (messages, members, fields).
PAGE = 500


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


def _evolution(user: UserKeys) -> Op[list[bytes]]:
    """Every record of the user's evolution log, oldest first, in ``get_evolution`` pages
    walked by sequence number."""
    records: list[bytes] = []
    cursor: bytes | str = "-inf"
    while True:
        last, more, *found = yield Call("get_evolution", (user.evolution,),
                                        ("up", cursor, PAGE, "", PAGE))
        records.extend(found)
        if not more:
            return records
        cursor = b"(" + last


def _archived_ids(ctx: Context, user: UserKeys) -> Op[list[str]]:
    """The ids of the user's archived conversations, oldest first, read newest first in
    ``list_archive`` pages of at most ``page_size`` from the last id read: retention,
    which trims the oldest, shifts no page, and a conversation archived meanwhile is
    left out."""
    ids: list[str] = []
    page, before = ctx.settings.page_size, ""
    while True:
        found = yield Call("list_archive", (user.archive,), (page, before))
        ids.extend(raw.decode() for raw in found)
        if len(found) < page:
            ids.reverse()
            return ids
        before = ids[-1]


def _conversation(user: UserKeys, session_id: str, segments: int, overflow: str,
                  history: str) -> Op[list[Message]]:
    """Every message of a conversation, oldest first: its segments, overflow, history."""
    raws: list[bytes] = []
    for key in (*user.segments(session_id, segments), overflow, history):
        raws.extend((yield from list_items(key)))
    return decode_messages(raws, f"session {session_id}")


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


def archive_summaries(ctx: Context, user_id: object, limit: object = 20,
                      before: object = None) -> Op[list[ArchiveSummary]]:
    """The user's archived conversations without their messages, newest first: the newest
    ``limit`` (all when None) after the conversation ``before`` (a session id, the last
    of the previous page), in pages of at most ``page_size`` (``list_archive`` from the
    previous page's last conversation, then that page's records)."""
    user_id = ctx.user_id(user_id)
    user = ctx.keys.user(user_id)
    count = ctx.limit(limit)
    if before is not None and ctx.session_keys(before) is None:
        raise InvalidInput(f"before must be a session id from a previous page, not {before!r:.60}")
    found: list[ArchiveSummary] = []
    listed, cursor = 0, "" if before is None else str(before)
    while count < 0 or listed < count:
        asked = ctx.settings.page_size if count < 0 else min(ctx.settings.page_size,
                                                             count - listed)
        ids = [raw.decode() for raw in (yield Call("list_archive", (user.archive,),
                                                   (asked, cursor)))]
        if not ids:
            break
        listed += len(ids)
        records = yield Call("read_hashes", [user.archived(sid)[0] for sid in ids], ())
        summaries = (_summary(sid, hash_fields(record)) for sid, record in zip(ids, records))
        found.extend(summary for summary in summaries if summary is not None)
        if len(ids) < asked:
            break
        cursor = ids[-1]
    return found


def get_archived_conversation(ctx: Context, user_id: object,
                              session_id: object) -> Op[ArchivedConversation | None]:
    user_id = ctx.user_id(user_id)
    if ctx.session_keys(session_id) is None or not owns_session(ctx, user_id, session_id):
        return None
    return (yield from read_archived_conversation(ctx, user_id, session_id))


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
    activity = live_activity(state, meta)
    live = activity is not None
    deadline = activity[1] if activity else None
    messages = yield from _conversation(user, session_id, int(meta.get("segs", b"0")),
                                        keys.overflow, keys.history)
    # The session hash holds the current mood; the meta hash a copy that outlives it.
    mood = decode_stored_mood(state.get("mood") or meta.get("mood"), keys.session)
    idle = meta.get("idle") or state.get("idle")
    return {
        "session_id": session_id,
        "personality_name": meta["pers"].decode(),
        "created_at": from_ms(meta["created"]).isoformat(),
        "expires_at": from_ms(absolute).isoformat(),
        "last_activity": from_ms(activity[0]).isoformat() if activity else None,
        "effective_expires_at": None if deadline is None else from_ms(deadline).isoformat(),
        "ttl": (absolute - int(meta["created"])) / 1000,
        "max_idle": None if idle is None else int(idle) / 1000,
        "live": live,
        "auto_cleanup": meta.get("auto") == b"1",
        "has_mood": mood is not None,
        "mood": None if mood is None else _json(mood),
        "messages": [_json(message) for message in messages],
    }


def export_user(ctx: Context, user_id: object) -> Op[dict[str, Any]]:
    """Everything kept about one user, as plain JSON-ready data (see ``SessionStore.export_user``)."""
    user_id = ctx.user_id(user_id)
    user = ctx.keys.user(user_id)
    summary = yield from get_user(ctx, user_id)
    affinities = yield from get_affinities(ctx, user_id)
    facts = [_json(fact) for fact in (yield from get_facts(ctx, user_id))]
    episodes = [_json(episode) for episode in (yield from get_episodes(ctx, user_id))]
    evolution = [_json(event) for event in decode_evolutions(
        (yield from _evolution(user)), user.evolution)]
    sessions = []
    session_ids = yield from user_session_ids(ctx, user)
    for session_id in session_ids:
        if owns_session(ctx, user_id, session_id):
            live = yield from _live_session(ctx, user, session_id)
            if live is not None:
                sessions.append(live)
    refs = yield from session_refs(ctx, user_id, [sid for sid in session_ids
                                                  if owns_session(ctx, user_id, sid)])
    archived = []
    for session_id in (yield from _archived_ids(ctx, user)):
        if owns_session(ctx, user_id, session_id):
            conversation = yield from read_archived_conversation(ctx, user_id, session_id)
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
        # The items of the LangGraph store (compat.langgraph.LuminoraStore) under this user.
        "store_items": (yield from export_items(ctx, user_id)),
        # What the drop-in adapters keep beside our records (see ops.adapter_export).
        "luminoracore": (yield from export_luminoracore(ctx, user, refs)),
        "langgraph_threads": (yield from export_langgraph_threads(ctx, refs)),
    }
