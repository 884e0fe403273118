"""Caller-chosen session ids for the LuminoraCore adapter: alias records and times.

LuminoraCore picks its own session ids (``session_<uuid>`` and the like), but
a session of ours is named ``<bucket>-<32 hex>`` so that the id alone routes
to its user's hash slot. The adapter therefore keeps one alias record per
caller id, hash-tagged by a hash of that id (so it routes on Redis Cluster
without knowing the user)::

    lr:{c<hhhh>}:lc:s:<caller id>   HASH  sid, user, pers, created_at, expires_at,
                                          last_activity, status, provider_config.
                                          PEXPIREAT the session's absolute deadline
                                          plus a grace (``alias_grace``).
    lr:{c<hhhh>}:lc:m:<caller id>   HASH  mood of a session id the store does not know
                                          (LuminoraCore saves moods under any id);
                                          expires after the store's default ttl.

and, beside each user's native records, what LuminoraCore callers store that
our models have no field for (the caller's level name, extra keyword fields,
the original sentiment, the save order)::

    lr:{b}:u:<uid>:lc:a   HASH  personality -> [record, time ms]
    lr:{b}:u:<uid>:lc:f   HASH  msgpack [category, key] -> [extra fields, sequence]
    lr:{b}:u:<uid>:lc:e   HASH  episode id -> [extra fields, sequence]

``<hhhh>`` is BLAKE2b of the caller id modulo the bucket count, and the caller
id is percent-encoded like user ids, so no id can reach another's keys.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from luminora_redis.core.codec import unpack
from luminora_redis.core.context import Context
from luminora_redis.core.errors import InvalidInput
from luminora_redis.core.keys import UserKeys
from luminora_redis.core.models import Session
from luminora_redis.core.scripts import Call, Op
from luminora_redis.ops import sessions
from luminora_redis.ops.adapter_keys import lc_alias_keys, lc_record_keys

__all__ = [
    "Alias",
    "alias_keys",
    "local_iso",
    "pairs",
    "parse_iso",
    "plain",
    "read_alias",
    "record_keys",
    "resolve_user",
]

_TEN_YEARS_MS = 10 * 365 * 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class Alias:
    """What the alias record of one caller-chosen session id holds."""

    caller_id: str
    session_id: str
    user_id: str
    personality_name: str
    created_at: str
    expires_at: str
    last_activity: str
    status: str
    provider_config: dict[str, Any] | None


def alias_keys(ctx: Context, caller_id: str) -> tuple[str, str]:
    """The alias record and the standalone mood key of a caller-chosen session id."""
    return lc_alias_keys(ctx, caller_id)


def record_keys(user: UserKeys) -> tuple[str, str, str]:
    """The adapter's affinity, fact and episode record hashes of one user."""
    return lc_record_keys(user)


def plain(value: Any) -> Any:
    """``value`` with every dataclass instance in it turned into a dict of its fields:
    LuminoraCore passes its ``ProviderConfig`` inside values it saves."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def pairs(flat: Sequence[Any]) -> dict[bytes, bytes]:
    """A dict from a flat HGETALL reply."""
    return dict(zip(flat[::2], flat[1::2]))


def local_iso(moment: datetime | int) -> str:
    """A naive local-time ISO string, as LuminoraCore writes its times, from an aware
    datetime or Unix milliseconds."""
    if isinstance(moment, int):
        return datetime.fromtimestamp(moment / 1000).isoformat()
    return moment.astimezone().replace(tzinfo=None).isoformat()


def parse_iso(value: object, what: str) -> float:
    """Unix seconds of an ISO time; a naive one is local time, as LuminoraCore means it."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be an ISO time string, not {type(value).__name__}")
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise InvalidInput(f"{what} is not an ISO time: {value!r:.60}") from None


def ms_until(moment: float) -> int:
    """Milliseconds from now (this host's clock) until a Unix time, at least 1."""
    remaining = math.ceil((moment - time.time()) * 1000)
    if remaining > _TEN_YEARS_MS:
        raise InvalidInput("expires_at is more than ten years away")
    return max(1, remaining)


def read_alias(ctx: Context, caller_id: object) -> Op[Alias | None]:
    """The alias record of a caller-chosen session id, or None when it names no session."""
    name = ctx.name(caller_id, "session_id")
    reply = yield Call("read_hashes", (alias_keys(ctx, name)[0],), ())
    fields = {key.decode(): value for key, value in pairs(reply[0]).items()}
    if "sid" not in fields:
        return None
    text = {key: value.decode() for key, value in fields.items() if key != "provider_config"}
    config = fields.get("provider_config")
    return Alias(name, text["sid"], text["user"], text["pers"], text.get("created_at", ""),
                 text.get("expires_at", ""), text.get("last_activity", ""),
                 text.get("status", ""), None if config is None else unpack(config))


def live_session(ctx: Context, alias: Alias | None) -> Op[Session | None]:
    """The live session an alias names, or None."""
    if alias is None:
        return None
    return (yield from sessions.get_session(ctx, alias.session_id))


def resolve_user(ctx: Context, user_id: object) -> Op[tuple[str, Alias | None]]:
    """The persistent user a LuminoraCore ``user_id`` stands for, and the alias it named.

    LuminoraCore's chat path passes session ids as user ids; one that names a
    session this store knows stands for that session's user.
    """
    name = ctx.user_id(user_id)
    alias = yield from read_alias(ctx, name)
    return (name if alias is None else alias.user_id), alias
