"""A user's items of the LangGraph store (``compat.langgraph.LuminoraStore``): their
keys, their encoding, and the reads and erasure that ``export_user`` and
``erase_user`` need.

The LangGraph store keeps an item under a namespace (a tuple of labels) and a
key; the first label is the user id, so every item lives among its user's keys
(one hash slot) and leaves with them. Per user::

    lr:{b}:u:<uid>:lg:i   HASH  field -> "<created ms> <updated ms> <value JSON>"
    lr:{b}:u:<uid>:lg:x   ZSET  field, score 0: the fields in byte order, so a namespace
                                prefix is one ZRANGE BYLEX range
    lr:{b}:u:<uid>:lg:n   ZSET  namespace member, score 0: the user's namespaces, for
                                listing them without reading every item
    lr:{b}:u:<uid>:lg:e   ZSET  field -> ms (server clock) when the item expires; only
                                items with a TTL
    lr:{b}:u:<uid>:lg:t   HASH  field -> the item's TTL in ms, by which a read refreshes it

A field is the namespace below the user (each label followed by a NUL byte),
one more NUL, then the key: ``("carlos", "memories", "food")`` and key ``k``
give ``memories\\0food\\0\\0k``. LangGraph refuses labels that are empty or
contain NUL, so the first double NUL ends the namespace, a namespace prefix is
a byte prefix of every field below it, and no label can reach beside its own
namespace. A namespace member is the field's part up to and including that
double NUL (``\\0`` alone for the user's root namespace). Expiry works on
Redis 6.2 (no per-field HEXPIRE): the scripts drop the items ``lg:e`` says are
due whenever they meet them, and never return one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, NamedTuple

from luminora_redis.core.codec import from_ms
from luminora_redis.core.context import Context
from luminora_redis.core.errors import InvalidInput
from luminora_redis.core.keys import UserKeys
from luminora_redis.core.scripts import Call, Op

__all__ = [
    "ItemKeys",
    "StoredItem",
    "decode_field",
    "encode_field",
    "erase_items",
    "export_items",
    "item_keys",
    "namespace_member",
    "parse_record",
    "scan_items",
]

#: The byte after every field and namespace member of the user: UTF-8 never holds it.
TOP = b"\xff"


class ItemKeys(NamedTuple):
    """The keys of one user's LangGraph store items (see the module docstring)."""

    items: str
    fields: str
    namespaces: str
    expiries: str
    ttls: str


class StoredItem(NamedTuple):
    """One item as read back: its namespace (user id first), key, value and times."""

    namespace: tuple[str, ...]
    key: str
    value: dict[str, Any]
    created_ms: int
    updated_ms: int
    expires_ms: int | None


def item_keys(user: UserKeys) -> ItemKeys:
    """The store's keys among one user's keys."""
    base = f"{user.user}:lg"
    return ItemKeys(f"{base}:i", f"{base}:x", f"{base}:n", f"{base}:e", f"{base}:t")


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{what} is not valid unicode (lone surrogate)") from None


def namespace_member(labels: Sequence[str]) -> bytes:
    """The namespace member of the labels below the user (already checked labels)."""
    return b"".join(_utf8(label, "a namespace label") + b"\0" for label in labels) + b"\0"


def namespace_prefix(labels: Sequence[str]) -> bytes:
    """The byte prefix of every field and namespace member at or below these labels."""
    return b"".join(_utf8(label, "a namespace label") + b"\0" for label in labels)


def encode_field(labels: Sequence[str], key: str) -> bytes:
    """The field of an item: the labels below the user, a NUL, the key."""
    return namespace_member(labels) + _utf8(key, "key")


def decode_field(user_id: str, field: bytes) -> tuple[tuple[str, ...], str]:
    """The namespace (user id first) and key of a field."""
    labels: list[str] = [user_id]
    position = 0
    while field[position:position + 1] != b"\0":
        end = field.index(b"\0", position)
        labels.append(field[position:end].decode("utf-8"))
        position = end + 1
    return tuple(labels), field[position + 1:].decode("utf-8")


def decode_member(user_id: str, member: bytes) -> tuple[str, ...]:
    """The namespace (user id first) of a namespace member."""
    return (user_id, *(label.decode("utf-8") for label in member[:-1].split(b"\0")[:-1]))


def parse_record(record: bytes) -> tuple[int, int, dict[str, Any]]:
    """Created ms, updated ms and value of a stored record."""
    created, updated, body = record.split(b" ", 2)
    value = json.loads(body)
    if not isinstance(value, dict):
        raise ValueError("a stored item's value is not a JSON object")
    return int(created), int(updated), value


def scan_items(ctx: Context, user_id: str, keys: ItemKeys, low: bytes, high: bytes,
               page: int, after: bytes | None) -> Op[tuple[list[StoredItem], bytes | None]]:
    """One page of the user's live items with fields in ``[low, high)``, after the field
    ``after`` when given: the items, and the last field examined (None at the end)."""
    start = b"(" + after if after is not None else b"[" + low
    reply = yield Call("lg_store_scan", keys, (start, b"(" + high, page))
    last, *flat = reply
    found = []
    for field, record, expires in zip(flat[0::3], flat[1::3], flat[2::3]):
        namespace, key = decode_field(user_id, field)
        created, updated, value = parse_record(record)
        found.append(StoredItem(namespace, key, value, created, updated,
                                None if expires is None else int(expires)))
    return found, (last or None)


def export_items(ctx: Context, user_id: object) -> Op[list[dict[str, Any]]]:
    """Every live item of the user's LangGraph store, in (namespace, key) byte order, as
    JSON-ready dicts, read a page of ``page_size`` per call."""
    user_id = ctx.user_id(user_id)
    keys = item_keys(ctx.keys.user(user_id))
    rows: list[dict[str, Any]] = []
    after: bytes | None = None
    while True:
        found, after = yield from scan_items(ctx, user_id, keys, b"", TOP,
                                             ctx.settings.page_size, after)
        rows.extend({"namespace": list(item.namespace), "key": item.key, "value": item.value,
                     "created_at": from_ms(item.created_ms).isoformat(),
                     "updated_at": from_ms(item.updated_ms).isoformat(),
                     "expires_at": None if item.expires_ms is None
                     else from_ms(item.expires_ms).isoformat()} for item in found)
        if after is None:
            return rows


def erase_items(ctx: Context, user_id: str) -> Op[int]:
    """Erase the user's LangGraph store items (part of ``erase_user``): the keys removed."""
    keys = item_keys(ctx.keys.user(user_id))
    reply = yield Call("lg_store_erase", keys, ())
    return int(reply)
