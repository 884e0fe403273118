"""LuminoraCore's session and mood calls as operations over caller-chosen ids.

``save_session`` starts a session of ours (native expiry: the absolute
deadline is the caller's ``expires_at``, the idle timeout the adapter's
``max_idle``) and records the caller's id as an alias of it. The alias and
the session live in different hash slots (the alias routes by the caller's
id, the session by its user), so no single script can write both on Redis
Cluster. The alias is written first: a crash before the session exists
leaves an alias naming no live session, which reads as "no session" and is
replaced by the next ``save_session`` of that id.
"""

from __future__ import annotations

from typing import Any

from luminora_redis.compat.lc_aliases import (
    Alias,
    alias_keys,
    live_session,
    local_iso,
    ms_until,
    pairs,
    parse_iso,
    plain,
    read_alias,
)
from luminora_redis.core.codec import pack, prefix, unpack
from luminora_redis.core.context import Context
from luminora_redis.core.errors import InvalidInput, ReplyCode, UnexpectedReply
from luminora_redis.core.ids import new_nonce
from luminora_redis.core.scripts import Batch, Call, Op
from luminora_redis.core.validation import check_number
from luminora_redis.ops import archive, scans, sessions

__all__ = [
    "delete_session",
    "get_expired_sessions",
    "get_mood",
    "get_session",
    "save_mood",
    "save_session",
    "update_session_activity",
]


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string, not {type(value).__name__}")
    return value


def save_session(ctx: Context, session_id: object, user_id: object, personality_name: object,
                 created_at: object, expires_at: object, last_activity: object, status: object,
                 provider_config: object, max_idle_ms: int, grace_ms: int) -> Op[bool]:
    caller_id = ctx.name(session_id, "session_id")
    user_id = ctx.user_id(user_id)
    personality = ctx.name(personality_name, "personality_name")
    fields = {"created_at": _text(created_at, "created_at"),
              "expires_at": _text(expires_at, "expires_at"),
              "last_activity": _text(last_activity, "last_activity"),
              "status": _text(status, "status")}
    provider_config = plain(provider_config)
    if provider_config is not None and not isinstance(provider_config, dict):
        raise InvalidInput("provider_config must be a dict, a dataclass or None")
    config = pack(provider_config)
    deadline = parse_iso(expires_at, "expires_at")
    parse_iso(created_at, "created_at")
    parse_iso(last_activity, "last_activity")
    ttl_ms = ms_until(deadline)
    alias_key = alias_keys(ctx, caller_id)[0]
    alias = yield from read_alias(ctx, caller_id)
    live = yield from live_session(ctx, alias)
    if alias is not None and live is not None and (
            alias.user_id, alias.personality_name) == (user_id, personality):
        # The same conversation saved again: record the caller's fields and count it
        # as activity. Its absolute deadline was fixed when it started.
        flat = [item for pair in fields.items() for item in pair]
        yield Call("compat_update_alias", (alias_key,), (*flat, "provider_config", config))
        yield from sessions.touch(ctx, alias.session_id)
        return True
    sid = ctx.keys.new_session_id(user_id)
    keys = ctx.session_keys(sid)
    assert keys is not None
    user = ctx.keys.user(user_id)
    flat = [item for pair in fields.items() for item in pair]
    yield Call("compat_put_alias", (alias_key,),
               (int(deadline * 1000) + grace_ms, "sid", sid, "user", user_id,
                "pers", personality, *flat, "provider_config", config))
    idle_ms = min(max_idle_ms, ttl_ms)
    bucket = ctx.keys.bucket_of_session(sid)
    assert bucket is not None
    # The sweeper's hint of the new deadline goes with it (see scans.create_hinted).
    reply = yield from scans.create_hinted(
        ctx, Call("create_session", (keys.session, keys.meta, keys.deadlines, user.sessions,
                                     user.user, user.archived(sid)[0]),
                  (sid, user_id, personality, ttl_ms, idle_ms, 1, new_nonce())),
        bucket, idle_ms)
    if reply[0] not in (ReplyCode.OK, ReplyCode.CREATED_BEFORE):
        raise UnexpectedReply(f"create_session replied {reply!r}")
    yield Call("compat_tag_session", (keys.meta,), (caller_id,))
    return True


def get_session(ctx: Context, session_id: object) -> Op[dict[str, Any] | None]:
    alias = yield from read_alias(ctx, session_id)
    live = yield from live_session(ctx, alias)
    if alias is None or live is None:
        return None
    return {"session_id": alias.caller_id, "user_id": alias.user_id,
            "personality_name": alias.personality_name, "created_at": alias.created_at,
            "expires_at": alias.expires_at, "last_activity": local_iso(live.last_activity),
            "status": alias.status, "provider_config": alias.provider_config}


def update_session_activity(ctx: Context, session_id: object, last_activity: object) -> Op[bool]:
    stamp = _text(last_activity, "last_activity")
    parse_iso(stamp, "last_activity")
    alias = yield from read_alias(ctx, session_id)
    if alias is None:
        return False
    touched = yield from sessions.touch(ctx, alias.session_id)
    if touched:
        yield Call("compat_update_alias", (alias_keys(ctx, alias.caller_id)[0],),
                   ("last_activity", stamp))
    return touched


def delete_session(ctx: Context, session_id: object) -> Op[bool]:
    alias = yield from read_alias(ctx, session_id)
    if alias is None:
        return False
    yield from archive.delete_session(ctx, alias.session_id)
    yield Call("compat_drop", alias_keys(ctx, alias.caller_id), ())
    return True


def get_expired_sessions(ctx: Context) -> Op[list[str]]:
    expired = yield from archive.get_expired_sessions(ctx)
    metas = []
    for sid in expired:
        keys = ctx.session_keys(sid)
        if keys is not None:
            metas.append(keys.meta)
    if not metas:
        return []
    replies = yield Batch([Call("read_hashes", (meta,), ()) for meta in metas])
    names = (pairs(reply[0]).get(b"lcid") for reply in replies)
    return [name.decode() for name in names if name is not None]


def save_mood(ctx: Context, session_id: object, user_id: object, current_mood: object,
              mood_intensity: object, fallback_ttl_ms: int) -> Op[bool]:
    caller_id = ctx.name(session_id, "session_id")
    user_id = ctx.user_id(user_id)
    mood = ctx.name(current_mood, "current_mood")
    alias = yield from read_alias(ctx, caller_id)
    live = yield from live_session(ctx, alias)
    if alias is not None and live is not None:
        yield from sessions.save_mood(ctx, alias.session_id, mood, mood_intensity)
        return True
    level = check_number(mood_intensity, "mood_intensity", 0.0, 1.0)
    yield Call("compat_put_mood", (alias_keys(ctx, caller_id)[1],),
               (fallback_ttl_ms, prefix(4, (user_id, mood, level))))
    return True


def get_mood(ctx: Context, session_id: object) -> Op[dict[str, Any] | None]:
    caller_id = ctx.name(session_id, "session_id")
    alias: Alias | None = yield from read_alias(ctx, caller_id)
    live = yield from live_session(ctx, alias)
    if alias is not None and live is not None:
        mood = yield from sessions.get_mood(ctx, alias.session_id)
        if mood is None:
            return None
        return {"session_id": caller_id, "user_id": alias.user_id, "current_mood": mood.mood,
                "mood_intensity": mood.intensity, "updated_at": local_iso(mood.updated_at)}
    reply = yield Call("read_hashes", (alias_keys(ctx, caller_id)[1],), ())
    raw = pairs(reply[0]).get(b"mood")
    if raw is None:
        return None
    user, mood_name, intensity, stamp = unpack(raw)
    return {"session_id": caller_id, "user_id": user, "current_mood": mood_name,
            "mood_intensity": intensity, "updated_at": local_iso(stamp)}
