"""How records are stored: msgpack arrays whose tail the server appends.

The client packs what it knows as the start of a msgpack array whose header
already counts the elements the script will add; the script appends what only
the server knows (its clock, a counter, the new points) with ``cmsgpack.pack``.
Each payload is therefore encoded exactly once, timestamps come from the Redis
clock, and no script parses a caller's payload. Decoding builds models with
``model_construct``: the data was validated on the way in.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

import msgpack

from luminora_redis.errors import InvalidInput, MessageTooLarge
from luminora_redis.models import (
    Episode,
    EvolutionEvent,
    EvolutionKind,
    Fact,
    Message,
    Mood,
    Role,
    Sentiment,
    trusted,
)

__all__ = [
    "decode_episode",
    "decode_evolution",
    "decode_fact",
    "decode_message",
    "decode_mood",
    "encode_message",
    "from_ms",
    "pack",
    "prefix",
    "unpack",
]

_ROLES: Mapping[str, Role] = {role.value: role for role in Role}
_message = trusted(Message)
_packb = msgpack.packb
unpack = msgpack.unpackb
UTC = timezone.utc


def from_ms(ms: int | bytes) -> datetime:
    """An aware UTC datetime from Unix milliseconds."""
    return datetime.fromtimestamp(int(ms) / 1000, UTC)


def pack(value: Any) -> bytes:
    """msgpack bytes of a caller's value; InvalidInput when it is not plain data."""
    try:
        return _packb(value, use_bin_type=True, strict_types=False)
    except (TypeError, ValueError, OverflowError) as error:
        raise InvalidInput(f"cannot store {type(value).__name__}: {error}") from None
    except UnicodeEncodeError:
        raise InvalidInput("text is not valid unicode (lone surrogate)") from None


def prefix(total: int, fields: Iterable[Any]) -> bytes:
    """The start of a msgpack array of ``total`` elements holding ``fields``."""
    return bytes((0x90 | total,)) + b"".join(pack(field) for field in fields)


def encode_message(role: object, content: object, metadata: object, limit: int) -> bytes:
    """A message as stored, lacking its timestamp: [role, content, metadata, ts]."""
    if isinstance(role, Role):
        role_value = role.value
    elif isinstance(role, str) and role in _ROLES:
        role_value = role
    else:
        raise InvalidInput(f"role must be one of {sorted(_ROLES)}, not {role!r}")
    if not isinstance(content, str):
        raise InvalidInput(f"message content must be a string, not {type(content).__name__}")
    if metadata is not None and not (
        isinstance(metadata, dict) and all(isinstance(key, str) for key in metadata)
    ):
        raise InvalidInput("message metadata must be a dict with string keys, or None")
    body = pack(content) + pack(metadata)
    if len(body) > limit:
        raise MessageTooLarge(f"message is {len(body)} bytes; the limit is {limit} (max_message_bytes)")
    return b"\x94" + pack(role_value) + body


def decode_message(raw: bytes) -> Message:
    role, content, metadata, ts = unpack(raw)
    return _message(role=_ROLES[role], content=content, timestamp=from_ms(ts), metadata=metadata)


def decode_mood(raw: bytes) -> Mood:
    mood, intensity, ts = unpack(raw)
    return Mood.model_construct(mood=mood, intensity=intensity, updated_at=from_ms(ts))


def decode_fact(field: bytes, raw: bytes) -> Fact:
    category, key = unpack(field)
    value, confidence, ts = unpack(raw)
    return Fact.model_construct(category=category, key=key, value=value, confidence=confidence,
                                updated_at=from_ms(ts))


def decode_episode(raw: bytes) -> Episode:
    episode_id, episode_type, title, summary, importance, sentiment, personality, ts = unpack(raw)
    return Episode.model_construct(
        episode_id=episode_id, episode_type=episode_type, title=title, summary=summary,
        importance=importance, sentiment=Sentiment(sentiment), personality_name=personality,
        created_at=from_ms(ts),
    )


def decode_evolution(raw: bytes) -> EvolutionEvent:
    record = unpack(raw)
    kind, personality, sequence, ts = record[0], record[1], record[-2], record[-1]
    common = {"kind": EvolutionKind(kind), "personality_name": personality,
              "sequence": sequence, "timestamp": from_ms(ts)}
    if kind == EvolutionKind.AFFINITY.value:
        delta, interaction, points, level = record[2:6]
        return EvolutionEvent.model_construct(points_delta=delta, interaction_type=interaction,
                                              points=points, level=level, **common)
    trait, value, reason = record[2:5]
    return EvolutionEvent.model_construct(trait=trait, value=value, reason=reason, **common)


_logger = logging.getLogger("luminora_redis.codec")


def decode_messages(raws: Iterable[bytes]) -> list[Message]:
    """Decode many stored messages, skipping (and logging) any that cannot be decoded,
    so one unreadable record never hides the others."""
    messages = []
    for raw in raws:
        try:
            messages.append(decode_message(raw))
        except Exception as error:  # noqa: BLE001 - any undecodable record is skipped alike
            _logger.error("skipped a stored message that cannot be decoded (%s): %r",
                          error, raw[:80])
    return messages
