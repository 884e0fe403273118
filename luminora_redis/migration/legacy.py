"""Reading LuminoraCore's legacy Redis layout (``FlexibleRedisStorageV11``).

Keys under its ``key_prefix`` ``P`` (default ``luminora``)::

    P:affinity:{user}:{personality}         STRING  pickled record
    P:fact:{user}:{category}:{key}          STRING  pickled record (category, key, value, ...)
    P:episode:{user}:{type}_{%Y%m%d_%H%M%S} STRING  pickled record
    P:mood:{user}:{type}_{%Y%m%d_%H%M%S}    STRING  pickled record
    P:memory:{user}:{memory_key}            STRING  pickled record (memory_key, memory_value)
    P:user:{user}:{affinity|facts|...}      SET     index of full key names
    P:sessions:{session_id}                 HASH    session_id, user_id, personality_name, ...

``{user}`` is often a session id: LuminoraCore's chat path saved turns
(``conversation_history`` facts) and affinity under the session id. Values are
read as LuminoraCore reads them (pickle, then JSON, then UTF-8 text), except
that pickles go through ``unpickle.safe_loads``: one naming anything but plain
builtins is reported and skipped, never executed. Keys are found with
``SCAN``, never ``KEYS``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from luminora_redis.migration.unpickle import UnsafePickle, looks_pickled, safe_loads

__all__ = ["KINDS", "LegacyRecord", "decode_value", "read_legacy"]

KINDS = ("affinity", "fact", "episode", "mood", "memory")
_INDEXES = ("affinity", "facts", "episodes", "moods", "memories")


@dataclass(slots=True)
class LegacyRecord:
    """One legacy key: what it holds, whose it is, or why it cannot be read."""

    key: bytes
    kind: str  # one of KINDS, "session", "index" or "unknown"
    owner: str | None = None
    data: dict[str, Any] | None = None
    name: str | None = None  # the personality of an affinity record
    skip: str | None = None


class Unreadable(Exception):
    """A value that cannot be decoded; the message says why."""


def decode_value(raw: bytes) -> Any:
    """A legacy value as LuminoraCore reads it: pickle (restricted), JSON, then text."""
    if looks_pickled(raw):
        try:
            return safe_loads(raw)
        except UnsafePickle as refused:
            raise Unreadable(f"unsafe pickle ({refused.global_name}), not executed") from None
        except Exception:  # noqa: BLE001 - LuminoraCore falls back to JSON, then text
            pass
    try:
        return json.loads(raw)
    except ValueError:
        pass
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Unreadable("neither pickle, JSON nor UTF-8 text") from None


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _classify(prefix: str, key: bytes) -> LegacyRecord:
    text = key.decode("utf-8", "replace")
    rest = text[len(prefix) + 1:]
    kind, _, tail = rest.partition(":")
    if kind == "sessions" and tail:
        return LegacyRecord(key, "session", owner=tail)
    if kind == "user" and tail.rsplit(":", 1)[-1] in _INDEXES:
        return LegacyRecord(key, "index", skip="index set (our layout keeps its own indexes)")
    if kind in KINDS and ":" in tail:
        return LegacyRecord(key, kind, owner=tail)  # owner refined once the value is read
    return LegacyRecord(key, "unknown", skip="not a key of LuminoraCore's layout")


def _finish(record: LegacyRecord, value: Any) -> None:
    """Attach a decoded value and work out the owner from the key and the record."""
    if not isinstance(value, dict):
        record.skip = f"{record.kind} value is not a record ({type(value).__name__})"
        return
    record.data = value
    tail = record.owner or ""
    suffix = None
    if record.kind == "fact":
        suffix = f":{value.get('category')}:{value.get('key')}"
    elif record.kind == "memory":
        suffix = f":{value.get('memory_key')}"
    if suffix is not None:
        if not tail.endswith(suffix) or len(tail) == len(suffix):
            record.skip = f"{record.kind} key does not match its record"
            return
        record.owner = tail[: -len(suffix)]
    else:
        record.owner, record.name = tail.rsplit(":", 1)


def read_legacy(client: Any, prefix: str, batch: int = 500) -> Iterator[LegacyRecord]:
    """Every key under ``prefix``, decoded (a blocking redis-py client, one pipeline per batch)."""
    keys = client.scan_iter(match=f"{_glob_escape(prefix)}:*", count=batch)
    chunk: list[bytes] = []
    for key in keys:
        chunk.append(key)
        if len(chunk) >= batch:
            yield from _read_chunk(client, prefix, chunk)
            chunk = []
    if chunk:
        yield from _read_chunk(client, prefix, chunk)


def _read_chunk(client: Any, prefix: str, keys: list[bytes]) -> Iterator[LegacyRecord]:
    records = [_classify(prefix, key) for key in keys]
    wanted = [r for r in records if r.skip is None]
    with client.pipeline(transaction=False) as pipe:
        for record in wanted:
            if record.kind == "session":
                pipe.hgetall(record.key)
            else:
                pipe.get(record.key)
        values = pipe.execute(raise_on_error=False)
    for record, value in zip(wanted, values):
        if isinstance(value, Exception):
            record.skip = f"cannot read: {value}"
        elif record.kind == "session":
            fields = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
                      for k, v in value.items()}
            record.data = fields
        elif value is None:
            record.skip = "gone while reading"
        else:
            try:
                _finish(record, decode_value(value))
            except Unreadable as why:
                record.skip = str(why)
    yield from records
