"""LuminoraCore's user-memory calls as operations: affinity, facts, episodes.

Each writes our native record (so ``SessionStore.get_affinity`` and friends
see the same data) and, in the same script, what LuminoraCore stores beyond
our models (see ``lc_aliases``); reads join the two. Every operation first
resolves a ``user_id`` that names a known session to that session's user.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import Any

from luminora_redis.compat.lc_aliases import (
    Alias,
    local_iso,
    plain,
    record_keys,
    resolve_user,
)
from luminora_redis.core.codec import decode_episode, decode_fact, pack, prefix, unpack
from luminora_redis.core.context import Context
from luminora_redis.core.errors import InvalidInput, ReplyCode, SessionNotFound
from luminora_redis.core.models import EvolutionKind, Message, Sentiment
from luminora_redis.core.scripts import Call, Op
from luminora_redis.core.validation import check_integer, check_number
from luminora_redis.ops import memory, sessions
from luminora_redis.ops.memory import MAX_IMPORTANCE

__all__ = [
    "HISTORY",
    "delete_fact",
    "get_affinity",
    "get_episodes",
    "get_facts",
    "save_affinity",
    "save_episode",
    "save_fact",
    "scan_with_records",
    "sentiment_of",
]

#: The fact category LuminoraCore stores conversation turns in.
HISTORY = "conversation_history"
_TURN_TAG = "luminoracore"


def _check_size(ctx: Context, body: bytes, what: str) -> bytes:
    if len(body) > ctx.settings.max_message_bytes:
        raise InvalidInput(f"{what} is {len(body)} bytes; the limit is "
                           f"{ctx.settings.max_message_bytes} (max_message_bytes)")
    return body


# -- affinity -------------------------------------------------------------------


def save_affinity(ctx: Context, user_id: object, personality_name: object, points: object,
                  level: object, extra: Mapping[str, Any]) -> Op[bool]:
    user_id, _ = yield from resolve_user(ctx, user_id)
    personality = ctx.name(personality_name, "personality_name")
    amount = check_integer(points, "affinity_points")
    if amount < 0:
        raise InvalidInput("affinity_points must not be negative")
    level_name = ctx.name(level, "current_level")
    record = _check_size(ctx, prefix(2, ({"points": amount, "current_level": level_name,
                                          "extra": plain(dict(extra))},)), "affinity record")
    user = ctx.keys.user(user_id)
    yield Call("compat_save_affinity",
               (user.affinity, user.evolution, user.user, record_keys(user)[0]),
               (personality, amount, prefix(8, (EvolutionKind.AFFINITY.value, personality)),
                pack(None), level_name, record))
    return True


def get_affinity(ctx: Context, user_id: object,
                 personality_name: object) -> Op[dict[str, Any] | None]:
    user_id, _ = yield from resolve_user(ctx, user_id)
    personality = ctx.name(personality_name, "personality_name")
    user = ctx.keys.user(user_id)
    raw_points, raw_record = yield Call("compat_get_affinity",
                                        (user.affinity, record_keys(user)[0]), (personality,))
    if raw_points is None:
        return None
    points = int(raw_points)
    result: dict[str, Any] = {"user_id": user_id, "personality_name": personality,
                              "affinity_points": points,
                              "current_level": ctx.settings.level_for(points)}
    if raw_record is not None:
        record, stamp = unpack(raw_record)
        # Points changed natively since (SessionStore.update_affinity): the caller's
        # level name no longer describes them.
        if record["points"] == points:
            result["current_level"] = record["current_level"]
        result["updated_at"] = local_iso(stamp)
        result.update(record["extra"])
    return result


# -- facts --------------------------------------------------------------------------


def save_fact(ctx: Context, user_id: object, category: object, key: object, value: object,
              extra: Mapping[str, Any]) -> Op[bool]:
    user_id, alias = yield from resolve_user(ctx, user_id)
    category = ctx.name(category, "category")
    key = ctx.name(key, "key")
    value = plain(value)
    fields: dict[str, Any] = plain(dict(extra))
    confidence = check_number(fields.pop("confidence", 1.0), "confidence", 0.0, 1.0)
    if category == HISTORY and alias is not None:
        turn = _turn_messages(key, value, fields)
        if turn is not None:
            yield from sessions.append_messages(ctx, alias.session_id, turn)
            return True
    user = ctx.keys.user(user_id)
    body = _check_size(ctx, memory.fact_body(ctx, category, key, value, confidence),
                       "fact value")
    record = _check_size(ctx, prefix(2, (fields,)), "fact fields")
    yield Call("compat_save_fact", (user.facts, record_keys(user)[1], user.user),
               (pack([category, key]), body, record))
    return True


def scan_with_records(ctx: Context, scanned: str,
                      records: str) -> Op[dict[bytes, tuple[bytes, bytes | None]]]:
    """Every field of a hash that grows with the user's lifetime (facts, episode bodies)
    with its value and the adapter's record beside it (None when there is none), read by
    ``compat_scan`` steps of about ``page_size`` fields, so no reply holds the whole hash."""
    found: dict[bytes, tuple[bytes, bytes | None]] = {}
    cursor: bytes | str = "0"
    while True:
        reply = yield Call("compat_scan", (scanned, records), (cursor, ctx.settings.page_size))
        cursor = reply[0]
        for field, value, record in zip(reply[1::3], reply[2::3], reply[3::3]):
            found[field] = (value, record)
        if cursor in (b"0", "0"):
            return found


def get_facts(ctx: Context, user_id: object, category: object = None) -> Op[list[dict[str, Any]]]:
    """The user's facts in save order, all or of one category, read in pages (see
    ``scan_with_records``)."""
    asked = ctx.user_id(user_id)
    user_id, alias = yield from resolve_user(ctx, asked)
    wanted = ctx.name(category, "category") if category else None
    user = ctx.keys.user(user_id)
    scanned = yield from scan_with_records(ctx, user.facts, record_keys(user)[1])
    rows = []
    for field, (raw, record) in scanned.items():
        fact = decode_fact(field, raw)
        if wanted is not None and fact.category != wanted:
            continue
        extra, sequence = unpack(record) if record is not None else ({}, 0)
        row = {"user_id": user_id, "category": fact.category, "key": fact.key,
               "value": fact.value, "confidence": fact.confidence,
               "updated_at": local_iso(fact.updated_at), **extra}
        rows.append((sequence, fact.updated_at, row))
    rows.sort(key=lambda item: (item[0], item[1]))
    facts = [row for _, _, row in rows]
    if alias is not None and wanted in (None, HISTORY):
        facts.extend((yield from _turn_facts(ctx, alias)))
    return facts


def delete_fact(ctx: Context, user_id: object, category: object, key: object) -> Op[bool]:
    user_id, _ = yield from resolve_user(ctx, user_id)
    field = pack([ctx.name(category, "category"), ctx.name(key, "key")])
    user = ctx.keys.user(user_id)
    reply = yield Call("compat_delete_fact", (user.facts, record_keys(user)[1]), (field,))
    return bool(reply[0] == ReplyCode.OK)


# -- conversation turns: LuminoraCore's history facts, kept as session messages ----------


def _turn_messages(key: str, value: object,
                   extra: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]] | None:
    """The two messages of a LuminoraCore conversation turn, or None when ``value`` is
    not one (a JSON object with string ``user_message`` and ``assistant_response``)."""
    turn = value
    if isinstance(value, str):
        try:
            turn = json.loads(value)
        except ValueError:
            return None
    if not isinstance(turn, dict):
        return None
    asked, answered = turn.get("user_message"), turn.get("assistant_response")
    if not isinstance(asked, str) or not isinstance(answered, str):
        return None
    rest = {name: item for name, item in turn.items()
            if name not in ("user_message", "assistant_response")}
    return [("user", asked, {_TURN_TAG: {"key": key, "turn": rest, "extra": extra}}),
            ("assistant", answered, {_TURN_TAG: {"key": key}})]


def _turn_facts(ctx: Context, alias: Alias) -> Op[list[dict[str, Any]]]:
    """The session's turns in LuminoraCore's fact shape; [] once the session has ended
    (its conversation is then in the user's archive)."""
    try:
        messages = yield from sessions.get_history(ctx, alias.session_id, None)
    except SessionNotFound:
        return []
    facts = []
    pending: tuple[Message, dict[str, Any]] | None = None
    for message in messages:
        tag = (message.metadata or {}).get(_TURN_TAG)
        if not isinstance(tag, dict):
            continue
        if "turn" in tag:
            pending = (message, tag)
        elif pending is not None and pending[1]["key"] == tag.get("key"):
            asked, opened = pending
            value = {"user_message": asked.content, "assistant_response": message.content,
                     **opened["turn"]}
            assert asked.timestamp is not None
            facts.append({"user_id": alias.caller_id, "category": HISTORY, "key": opened["key"],
                          "value": json.dumps(value), "updated_at": local_iso(asked.timestamp),
                          **opened["extra"]})
            pending = None
    return facts


# -- episodes ---------------------------------------------------------------------------


def sentiment_of(value: object) -> Sentiment:
    """Our sentiment for LuminoraCore's free-form one (``very_negative`` is negative)."""
    if not isinstance(value, str):
        raise InvalidInput(f"sentiment must be a string, not {type(value).__name__}")
    for sentiment in (Sentiment.MIXED, Sentiment.NEGATIVE, Sentiment.POSITIVE):
        if sentiment.value in value.lower():
            return sentiment
    return Sentiment.NEUTRAL


def save_episode(ctx: Context, user_id: object, episode_type: object, title: object,
                 summary: object, importance: object, sentiment: object,
                 extra: Mapping[str, Any]) -> Op[bool]:
    user_id, _ = yield from resolve_user(ctx, user_id)
    kind = ctx.name(episode_type, "episode_type")
    if not isinstance(title, str) or not isinstance(summary, str):
        raise InvalidInput("title and summary must be strings")
    weight = check_number(importance, "importance", 0.0, MAX_IMPORTANCE)
    mood = sentiment_of(sentiment)
    personality = extra.get("personality_name")
    if personality is not None:
        personality = ctx.name(personality, "personality_name")
    episode_id = secrets.token_hex(8)
    body = _check_size(ctx, memory.episode_body(ctx, episode_id, kind, title, summary, weight,
                                                mood, personality), "episode")
    record = _check_size(ctx, prefix(2, ({"sentiment": sentiment, "extra": plain(dict(extra))},)),
                         "episode fields")
    user = ctx.keys.user(user_id)
    yield Call("compat_save_episode",
               (user.episodes, user.episode_bodies, record_keys(user)[2], user.user),
               (episode_id, repr(weight), body, record))
    return True


def get_episodes(ctx: Context, user_id: object,
                 min_importance: object = None) -> Op[list[dict[str, Any]]]:
    """The user's episodes in save order, those with ``importance >= min_importance`` when
    given, read in pages (see ``scan_with_records``)."""
    user_id, _ = yield from resolve_user(ctx, user_id)
    floor = None if min_importance is None else check_number(
        min_importance, "min_importance", -1e15, 1e15)
    user = ctx.keys.user(user_id)
    scanned = yield from scan_with_records(ctx, user.episode_bodies, record_keys(user)[2])
    rows = []
    for raw, stored in scanned.values():
        episode = decode_episode(raw)
        if floor is not None and episode.importance < floor:
            continue
        record, sequence = unpack(stored) if stored is not None else (
            {"sentiment": episode.sentiment.value, "extra": {}}, 0)
        row = {"user_id": user_id, "episode_type": episode.episode_type, "title": episode.title,
               "summary": episode.summary, "importance": episode.importance,
               "sentiment": record["sentiment"],
               "timestamp": record["extra"].get("timestamp", local_iso(episode.created_at)),
               **record["extra"]}
        rows.append((sequence, episode.created_at, row))
    rows.sort(key=lambda item: (item[0], item[1]))
    return [row for _, _, row in rows]
