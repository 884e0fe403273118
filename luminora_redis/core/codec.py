"""How records are stored: msgpack arrays whose tail the server appends.

The client packs what it knows as the start of a msgpack array whose header
already counts the elements the script will add; the script appends what only
the server knows (its clock, a counter, the new points) with ``cmsgpack.pack``.
Each payload is therefore encoded exactly once, timestamps come from the Redis
clock, and no script parses a caller's payload. Decoding builds models with
``model_construct``: the data was validated on the way in.

What ``pack`` accepts reads back equal (see ``validation.check_plain``); the
rest is refused with ``InvalidInput`` before anything is written. A record
that cannot be decoded anyway (written by hand, or by 0.1.0 with int map
keys) must not make the read of every other record raise: the ``decode_*s``
functions decode a whole reply, and only when that fails go record by
record, skipping each unreadable one with a warning (once per record and
process) and counting it in ``unreadable_records_total()``. Good replies pay
for one ``try`` around the whole list, nothing per record.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, TypeVar

import msgpack

from luminora_redis.core.context_messages import ROLES, ContextMessage
from luminora_redis.core.errors import InvalidInput, MessageTooLarge
from luminora_redis.core.models import (
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
from luminora_redis.core.tokens import estimate_tokens
from luminora_redis.core.validation import check_plain

__all__ = [
    "decode_context",
    "decode_context_message",
    "decode_episode",
    "decode_episodes",
    "decode_evolution",
    "decode_evolutions",
    "decode_fact",
    "decode_facts",
    "decode_message",
    "decode_messages",
    "decode_mood",
    "decode_stored_mood",
    "encode_message",
    "from_ms",
    "MAX_TOKENS",
    "pack",
    "prefix",
    "unpack",
    "unreadable_records",
    "unreadable_records_total",
]

log = logging.getLogger(__name__)
R = TypeVar("R")

_ROLES: Mapping[str, Role] = ROLES
# A role as a caller may give it (its value, or the member itself) -> its value.
_ROLE_VALUES: Mapping[object, str] = {**{role.value: role.value for role in Role},
                                      **{role: role.value for role in Role}}
_message = trusted(Message)
_packb = msgpack.packb
_packers = threading.local()
unpack = msgpack.unpackb
UTC = timezone.utc
_MAX_MS = 253_402_300_800_000  # 10000-01-01: datetime's range


def _packer() -> msgpack.Packer:
    """This thread's reusable packer (``packb`` builds a new one per call)."""
    try:
        packer: msgpack.Packer = _packers.packer
    except AttributeError:
        packer = _packers.packer = msgpack.Packer(use_bin_type=True, autoreset=True)
    return packer


def from_ms(ms: int | bytes) -> datetime:
    """An aware UTC datetime from Unix milliseconds."""
    return datetime.fromtimestamp(int(ms) / 1000, UTC)


def pack(value: Any, what: str = "value") -> bytes:
    """msgpack bytes of a caller's value; InvalidInput unless it reads back equal."""
    check_plain(value, what)
    try:
        packed: bytes = _packb(value, use_bin_type=True)
    except UnicodeEncodeError:
        check_plain(value, what, strict_text=True)  # names where the lone surrogate is
        raise InvalidInput(f"{what}: text is not valid unicode (lone surrogate)") from None
    except (TypeError, ValueError, OverflowError) as error:
        raise InvalidInput(f"{what}: cannot store {type(value).__name__}: {error}") from None
    return packed


def prefix(total: int, fields: Iterable[Any], what: str = "value") -> bytes:
    """The start of a msgpack array of ``total`` elements holding ``fields``."""
    return bytes((0x90 | total,)) + b"".join(pack(field, what) for field in fields)


#: The most tokens a message's count can hold (a msgpack uint32).
MAX_TOKENS = 0xFFFF_FFFF


def encode_message(role: object, content: object, metadata: object, limit: int,
                   tokens: int | None = None) -> bytes:
    """A message as stored, lacking its timestamp: [role, content, metadata, tokens, ts].

    One ``packb`` of [role, content, metadata] whose array header is then made to
    count the token count and the timestamp the script appends (a fixarray header
    is one byte). ``tokens`` is always a msgpack uint32 (5 bytes), so that a script
    finds it at a fixed distance from the record's end (just before the 9-byte
    timestamp) and sums a budget without decoding the record; records written
    before counts were stored are [role, content, metadata, ts]. ``tokens`` None: the
    ``estimate_tokens`` of the content (the stores pass their counter's count)."""
    try:
        role_value = _ROLE_VALUES[role]
    except (KeyError, TypeError):
        raise InvalidInput(f"role must be one of {sorted(_ROLES)}, not {role!r}") from None
    if not isinstance(content, str):
        raise InvalidInput(f"message content must be a string, not {type(content).__name__}")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise InvalidInput(
                f"message metadata must be a dict or None, not {type(metadata).__name__}")
        check_plain(metadata, "message metadata")
    try:
        packed: bytes = _packer().pack([role_value, content, metadata])
    except UnicodeEncodeError:
        pack(content, "message content")  # says which part holds the lone surrogate
        pack(metadata, "message metadata")
        raise InvalidInput("message: text is not valid unicode (lone surrogate)") from None
    except (TypeError, ValueError, OverflowError) as error:
        raise InvalidInput(f"message metadata: cannot store it: {error}") from None
    size = len(packed) - 2 - len(role_value)  # content and metadata (roles are short ASCII)
    if size > limit:
        raise MessageTooLarge(f"message is {size} bytes; the limit is {limit} (max_message_bytes)")
    if tokens is None:
        tokens = estimate_tokens(content)
    if not 0 <= tokens <= MAX_TOKENS:
        raise InvalidInput(f"a message's token count must lie in 0..{MAX_TOKENS}, not {tokens}")
    return b"\x95" + packed[1:] + b"\xce" + tokens.to_bytes(4, "big")


def decode_message(raw: bytes) -> Message:
    record = unpack(raw)
    if len(record) == 5:
        role, content, metadata, tokens, ts = record
        if type(tokens) is not int:
            raise ValueError(f"token count {tokens!r:.40} is not an int")
    else:
        (role, content, metadata, ts), tokens = record, None
    return _message(role=_ROLES[role], content=content, timestamp=from_ms(ts), metadata=metadata,
                    tokens=tokens)


def decode_context_message(raw: bytes) -> ContextMessage:
    record = unpack(raw)
    if not _is_message(record):
        raise ValueError(f"not a message record: {record!r:.80}")
    return _context(ContextMessage, record)


def _is_message(record: Any) -> bool:
    """Whether an unpacked record is a message ContextMessage can hold as it is."""
    return (type(record) is list and (len(record) == 5 and type(record[3]) is int
                                      or len(record) == 4)
            and record[0] in _ROLES and type(record[-1]) is int and 0 <= record[-1] < _MAX_MS)


def decode_mood(raw: bytes) -> Mood:
    mood, intensity, ts = unpack(raw)
    return Mood.model_construct(mood=mood, intensity=intensity, updated_at=from_ms(ts))


def decode_fact(field: bytes, raw: bytes) -> Fact:
    category, key = unpack(field)
    # [value, confidence, ts], or with its token count [value, confidence, tokens, ts]
    record = unpack(raw)
    if len(record) not in (3, 4):
        raise ValueError(f"a fact record has 3 or 4 elements, not {len(record)}")
    value, confidence, ts = record[0], record[1], record[-1]
    return Fact.model_construct(category=category, key=key, value=value, confidence=confidence,
                                updated_at=from_ms(ts))


def decode_episode(raw: bytes) -> Episode:
    record = unpack(raw)  # 8 elements, or 9 with the token count before the timestamp
    if len(record) not in (8, 9):
        raise ValueError(f"an episode record has 8 or 9 elements, not {len(record)}")
    episode_id, episode_type, title, summary, importance, sentiment, personality = record[:7]
    ts = record[-1]
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


# -- reading many records, skipping the unreadable ones ----------------------------------

_SEEN_LIMIT = 4096


class _Unreadable:
    """How many records were skipped, and which were already logged (bounded)."""

    def __init__(self) -> None:
        self.count = 0
        self.seen: set[tuple[str, int]] = set()
        self.lock = threading.Lock()

    def skip(self, kind: str, owner: str, position: int, record: Any, error: Exception) -> None:
        mark = (owner, hash(record))
        with self.lock:
            self.count += 1
            first = mark not in self.seen
            if first:
                if len(self.seen) >= _SEEN_LIMIT:
                    self.seen.clear()
                self.seen.add(mark)
        if first:
            detail = (f"field {record[0]!r:.80}" if isinstance(record, tuple)
                      else f"{len(record)} bytes" if isinstance(record, bytes) else repr(record)[:80])
            log.warning("skipped an unreadable %s record in %s (record %d, %s): %s: %s",
                        kind, owner, position, detail, type(error).__name__, error)


_unreadable = _Unreadable()


def unreadable_records_total() -> int:
    """How many stored records this process has skipped as unreadable, since it started:
    each read that skips one counts it (a record read twice counts twice). A record is
    a message, fact, episode, evolution record or mood that does not decode, or an
    archived zstd frame that does not decompress (one, whatever it held: the
    ``ArchivedConversation`` read says how many messages it lost). A counter, for
    monitoring: a rise means stored data that reads leave out."""
    return _unreadable.count


#: The former name of ``unreadable_records_total``.
unreadable_records = unreadable_records_total


def _salvage(kind: str, owner: str, decode: Callable[[Any], R], records: Sequence[Any]) -> list[R]:
    decoded = []
    for position, record in enumerate(records):
        try:
            decoded.append(decode(record))
        except Exception as error:  # decoding is pure: whatever it raises, the record is unreadable
            _unreadable.skip(kind, owner, position, record, error)
    return decoded


def decode_messages(raws: Sequence[bytes], owner: str = "?") -> list[Message]:
    """Messages of a reply, in order, without the records that cannot be decoded."""
    try:
        return [decode_message(raw) for raw in raws]
    except Exception:
        return _salvage("message", owner, decode_message, raws)


def decode_context(raws: Sequence[bytes], owner: str = "?") -> list[ContextMessage]:
    """A chat turn's context in its light form, without the records that cannot be decoded.

    The records are unpacked as one msgpack array (one call instead of one per record)."""
    count = len(raws)
    try:
        records = unpack(b"\xdd" + count.to_bytes(4, "big") + b"".join(raws))
        # Each record becomes its message as it is; the role and the timestamp are only
        # turned into a Role and a datetime when asked for, so both are checked now.
        # (_is_message, inlined: this runs for every message of every turn)
        return [_context(ContextMessage, record)
                if (len(record) == 5 and type(record[3]) is int or len(record) == 4)
                and record[0] in _ROLES and 0 <= record[-1] < _MAX_MS
                else _unreadable_record(record)
                for record in records]
    except Exception:
        return _salvage("message", owner, decode_context_message, raws)


_context = tuple.__new__


def _unreadable_record(record: object) -> ContextMessage:
    raise ValueError(f"not a message record: {record!r:.80}")


def decode_facts(reply: Sequence[bytes], owner: str = "?") -> list[Fact]:
    """Facts of a flat HGETALL-style reply (field, value, ...), without unreadable ones."""
    pairs = list(zip(reply[::2], reply[1::2]))
    try:
        return [decode_fact(field, raw) for field, raw in pairs]
    except Exception:
        return _salvage("fact", owner, lambda pair: decode_fact(*pair), pairs)


def decode_episodes(raws: Sequence[bytes | None], owner: str = "?") -> list[Episode]:
    """Episodes of a reply, without missing (None) bodies and unreadable records."""
    present = [raw for raw in raws if raw is not None]
    try:
        return [decode_episode(raw) for raw in present]
    except Exception:
        return _salvage("episode", owner, decode_episode, present)


def decode_evolutions(raws: Sequence[bytes], owner: str = "?") -> list[EvolutionEvent]:
    """Evolution records of a reply, in order, without the unreadable ones."""
    try:
        return [decode_evolution(raw) for raw in raws]
    except Exception:
        return _salvage("evolution", owner, decode_evolution, raws)


def decode_stored_mood(raw: bytes | None, owner: str = "?") -> Mood | None:
    """A session's stored mood; None when there is none or it cannot be decoded."""
    if raw is None:
        return None
    found = _salvage("mood", owner, decode_mood, (raw,))
    return found[0] if found else None
