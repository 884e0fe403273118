"""The LangGraph store's operations, sans-IO: LangGraph's ``GetOp``, ``PutOp``,
``SearchOp`` and ``ListNamespacesOp`` on a user's items (``ops.store_items``).

Every namespace is checked before anything is sent: its first label is the
user id (checked like any user id), the others follow LangGraph's rules
(non-empty strings, no ``.``, no NUL). A search or a namespace listing must
name the user in its first label: nothing here reads across users.

Reads are bounded: a search returns at most ``MAX_LIMIT`` items and skips at
most ``MAX_OFFSET``; a namespace listing the same. Each script reply holds at
most ``page_size`` items (a search with a selective filter reads further pages,
each its own call, until it has ``offset + limit`` matches or the namespace
ends). Results come in (namespace, key) order, labels compared as text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from langgraph.store.base import (
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)

from luminora_redis.core.codec import from_ms
from luminora_redis.core.context import Context
from luminora_redis.core.errors import InvalidInput
from luminora_redis.core.scripts import Call, Op
from luminora_redis.ops.store_items import (
    TOP,
    StoredItem,
    decode_field,
    decode_member,
    encode_field,
    item_keys,
    namespace_member,
    namespace_prefix,
    parse_record,
    scan_items,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_LIMIT",
    "MAX_OFFSET",
    "SemanticSearchUnsupported",
    "run_batch",
]

#: The most items a search, or namespaces a listing, returns; a larger limit is clipped.
MAX_LIMIT = 1000
#: The most items a search, or namespaces a listing, may skip (``offset``).
MAX_OFFSET = 10_000
#: The most labels a namespace may have, the user id included.
MAX_DEPTH = 64


class SemanticSearchUnsupported(NotImplementedError):
    """A search with a natural-language ``query``: ``LuminoraStore`` keeps no embeddings."""


# -- checks ---------------------------------------------------------------------------


def _labels(ctx: Context, namespace: object, what: str) -> tuple[str, list[str]]:
    """The user id and the labels below it of a namespace, checked."""
    if isinstance(namespace, str) or not isinstance(namespace, Sequence):
        raise InvalidNamespaceError(f"{what} must be a tuple of strings, not {namespace!r:.80}")
    labels = list(namespace)
    if not labels:
        raise InvalidNamespaceError(
            f"{what} is empty; its first label must be the user id (LuminoraStore keeps "
            f"each user's items among that user's keys)")
    if len(labels) > MAX_DEPTH:
        raise InvalidNamespaceError(f"{what} has {len(labels)} labels; the limit is {MAX_DEPTH}")
    for label in labels:
        if not isinstance(label, str):
            raise InvalidNamespaceError(f"{what} labels must be strings, not "
                                        f"{type(label).__name__}")
        if not label or "." in label or "\0" in label:
            raise InvalidNamespaceError(f"namespace label {label!r:.80} is empty or contains "
                                        f"'.' or NUL")
        if len(label.encode("utf-8", "surrogatepass")) > ctx.settings.max_id_bytes:
            raise InvalidNamespaceError(f"namespace label {label[:40]!r} is longer than "
                                        f"{ctx.settings.max_id_bytes} bytes (max_id_bytes)")
    user_id = ctx.user_id(labels[0])
    return user_id, labels[1:]


def _key(ctx: Context, key: object) -> str:
    if not isinstance(key, str):
        raise InvalidInput(f"an item key must be a string, not {type(key).__name__}")
    if len(key.encode("utf-8", "surrogatepass")) > ctx.settings.max_id_bytes:
        raise InvalidInput(f"item key {key[:40]!r} is longer than {ctx.settings.max_id_bytes} "
                           f"bytes (max_id_bytes)")
    return key


def _window(limit: object, offset: object) -> tuple[int, int]:
    """A read's limit (clipped to MAX_LIMIT) and offset (at most MAX_OFFSET)."""
    for value, what in ((limit, "limit"), (offset, "offset")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidInput(f"{what} must be a non-negative integer, not {value!r:.40}")
    assert isinstance(limit, int) and isinstance(offset, int)
    if offset > MAX_OFFSET:
        raise InvalidInput(f"offset {offset} is over {MAX_OFFSET}: narrow the namespace "
                           f"prefix or the filter instead of skipping further")
    return min(limit, MAX_LIMIT), offset


def _ttl_ms(ttl: object) -> str:
    """A PutOp's TTL (minutes, or None) as the script's argument."""
    if ttl is None:
        return ""
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not math.isfinite(ttl) \
            or ttl <= 0:
        raise InvalidInput(f"ttl must be a positive number of minutes or None, not {ttl!r:.40}")
    return str(max(1, round(ttl * 60_000)))


def _value_json(ctx: Context, value: object) -> bytes:
    if not isinstance(value, Mapping):
        raise InvalidInput(f"an item value must be a mapping, not {type(value).__name__}")
    try:
        body = json.dumps(dict(value), ensure_ascii=False, allow_nan=False,
                          separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError) as error:
        raise InvalidInput(f"an item value must be JSON (LuminoraStore never pickles): "
                           f"{error}") from None
    if len(body) > ctx.settings.max_message_bytes:
        raise InvalidInput(f"the item value is {len(body)} bytes of JSON; the limit is "
                           f"{ctx.settings.max_message_bytes} (max_message_bytes)")
    return body


# -- filters, as LangGraph's InMemoryStore reads them -----------------------------------


def _path(value: Mapping[str, Any], key: str) -> Any:
    """A filter key's value: the key itself, else a dotted path into nested objects."""
    if key in value or "." not in key:
        return value.get(key)
    found: Any = value
    for part in key.split("."):
        if not isinstance(found, Mapping):
            return None
        found = found.get(part)
    return found


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _operator(value: Any, operator: str, operand: Any) -> bool:
    if operator == "$eq":
        return bool(value == operand)
    if operator == "$ne":
        return bool(value != operand)
    left, right = _number(value), _number(operand)
    if operator not in ("$gt", "$gte", "$lt", "$lte"):
        raise InvalidInput(f"unknown filter operator {operator!r}; use $eq, $ne, $gt, $gte, "
                           f"$lt or $lte")
    if left is None or right is None:
        return False
    if operator == "$gt":
        return left > right
    if operator == "$gte":
        return left >= right
    if operator == "$lt":
        return left < right
    return left <= right


def _compare(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, Mapping):
        if any(isinstance(key, str) and key.startswith("$") for key in wanted):
            return all(_operator(value, op, operand) for op, operand in wanted.items())
        return isinstance(value, Mapping) and all(
            _compare(value.get(key), part) for key, part in wanted.items())
    if isinstance(wanted, (list, tuple)):
        return (isinstance(value, list) and len(value) == len(wanted)
                and all(_compare(a, b) for a, b in zip(value, wanted)))
    return bool(value == wanted)


def _matches(value: Mapping[str, Any], filters: Mapping[str, Any] | None) -> bool:
    return not filters or all(_compare(_path(value, key), wanted)
                              for key, wanted in filters.items())


def _namespace_matches(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    if condition.match_type == "prefix":
        pairs = zip(namespace, path)
    elif condition.match_type == "suffix":
        pairs = zip(reversed(namespace), reversed(path))
    else:
        raise InvalidInput(f"unknown match type {condition.match_type!r}; use prefix or suffix")
    return all(wanted == "*" or label == wanted for label, wanted in pairs)


# -- the operations ---------------------------------------------------------------------


def _item(item: StoredItem, kind: type[Item] = Item) -> Item:
    return kind(namespace=item.namespace, key=item.key, value=item.value,
                created_at=from_ms(item.created_ms), updated_at=from_ms(item.updated_ms))


def get(ctx: Context, op: GetOp) -> Op[Item | None]:
    user_id, labels = _labels(ctx, op.namespace, "namespace")
    field = encode_field(labels, _key(ctx, op.key))
    keys = item_keys(ctx.keys.user(user_id))
    record, _ = yield Call("lg_store_get", keys, ("1" if op.refresh_ttl else "0", field))
    if record is None:
        return None
    created, updated, value = parse_record(record)
    namespace, key = decode_field(user_id, field)
    return _item(StoredItem(namespace, key, value, created, updated, None))


def put(ctx: Context, op: PutOp) -> Op[None]:
    user_id, labels = _labels(ctx, op.namespace, "namespace")
    field = encode_field(labels, _key(ctx, op.key))
    keys = item_keys(ctx.keys.user(user_id))
    if op.value is None:
        yield Call("lg_store_delete", keys, (field,))
        return None
    body = _value_json(ctx, op.value)
    ttl = _ttl_ms(op.ttl)
    yield Call("lg_store_put", keys, (field, namespace_member(labels), body, ttl))
    return None


def _refuse_query(op: SearchOp) -> None:
    if op.query:
        raise SemanticSearchUnsupported(
            "LuminoraStore does not serve semantic search (query=...): it keeps no "
            "embeddings. Search by namespace and filter= instead, or keep a vector store "
            "beside it for similarity search (see the README, 'LangGraph store')")


def search(ctx: Context, op: SearchOp) -> Op[list[SearchItem]]:
    _refuse_query(op)
    user_id, labels = _labels(ctx, op.namespace_prefix, "namespace_prefix")
    if op.filter is not None and not isinstance(op.filter, Mapping):
        raise InvalidInput(f"filter must be a mapping or None, not {type(op.filter).__name__}")
    limit, offset = _window(op.limit, op.offset)
    keys = item_keys(ctx.keys.user(user_id))
    low = namespace_prefix(labels)
    wanted = offset + limit
    matched: list[StoredItem] = []
    after: bytes | None = None
    while len(matched) < wanted:
        page = ctx.settings.page_size if op.filter else min(ctx.settings.page_size,
                                                            wanted - len(matched))
        found, after = yield from scan_items(ctx, user_id, keys, low, low + TOP, page, after)
        matched.extend(item for item in found if _matches(item.value, op.filter))
        if after is None:
            break
    chosen = matched[offset:wanted]
    refresh = [encode_field(item.namespace[1:], item.key) for item in chosen
               if item.expires_ms is not None]
    if op.refresh_ttl and refresh:
        yield Call("lg_store_get", keys, ("1", *refresh))
    return [_item(item, SearchItem) for item in chosen]  # type: ignore[misc]


def _listing_user(ctx: Context, conditions: Sequence[MatchCondition]) -> tuple[str, list[str]]:
    """The user and the literal labels below it that a listing's prefix condition names."""
    for condition in conditions:
        if condition.match_type == "prefix" and condition.path and condition.path[0] != "*":
            path = list(condition.path)
            literal = path[:path.index("*")] if "*" in path else path
            return _labels(ctx, literal, "prefix")
    raise InvalidInput(
        "list_namespaces needs prefix=(user_id, ...): LuminoraStore lists the namespaces of "
        "one user, the first label, and never across users")


def list_namespaces(ctx: Context, op: ListNamespacesOp) -> Op[list[tuple[str, ...]]]:
    conditions = tuple(op.match_conditions or ())
    user_id, labels = _listing_user(ctx, conditions)
    for condition in conditions:
        for label in condition.path:
            if not isinstance(label, str):
                raise InvalidNamespaceError("namespace path labels must be strings")
    if op.max_depth is not None and (isinstance(op.max_depth, bool)
                                     or not isinstance(op.max_depth, int) or op.max_depth < 1):
        raise InvalidInput(f"max_depth must be a positive integer or None, not {op.max_depth!r}")
    limit, offset = _window(op.limit, op.offset)
    keys = item_keys(ctx.keys.user(user_id))
    low = namespace_prefix(labels)
    wanted = offset + limit
    found: list[tuple[str, ...]] = []
    start = b"[" + low
    while len(found) < wanted:
        more, *members = yield Call("lg_store_namespaces", keys,
                                    (start, b"(" + low + TOP, ctx.settings.page_size))
        for member in members:
            namespace = decode_member(user_id, member)
            if not all(_namespace_matches(condition, namespace) for condition in conditions):
                continue
            if op.max_depth is not None:
                namespace = namespace[:op.max_depth]
            # Members come in byte order, so the cuts of one prefix are adjacent.
            if not found or found[-1] != namespace:
                found.append(namespace)
        if not int(more) or not members:
            break
        start = b"(" + members[-1]
    return found[offset:wanted]


def _check(ctx: Context, op: object) -> None:
    """Refuse a bad op before anything of its batch runs."""
    if isinstance(op, (GetOp, PutOp)):
        _labels(ctx, op.namespace, "namespace")
        _key(ctx, op.key)
        if isinstance(op, PutOp) and op.value is not None:
            _value_json(ctx, op.value)
            _ttl_ms(op.ttl)
    elif isinstance(op, SearchOp):
        _refuse_query(op)
        _labels(ctx, op.namespace_prefix, "namespace_prefix")
        _window(op.limit, op.offset)
    elif isinstance(op, ListNamespacesOp):
        _listing_user(ctx, tuple(op.match_conditions or ()))
        _window(op.limit, op.offset)
    else:
        raise InvalidInput(f"unknown store operation {type(op).__name__}")


def run_batch(ctx: Context, ops: Iterable[Any]) -> Op[list[Result]]:
    """LangGraph's ``batch``: each op in order, its result at its place. Every op is
    checked first, so a batch with a bad op writes nothing."""
    ops = list(ops)
    for op in ops:
        _check(ctx, op)
    results: list[Result] = []
    for op in ops:
        if isinstance(op, GetOp):
            results.append((yield from get(ctx, op)))
        elif isinstance(op, PutOp):
            yield from put(ctx, op)
            results.append(None)
        elif isinstance(op, SearchOp):
            results.append((yield from search(ctx, op)))
        elif isinstance(op, ListNamespacesOp):
            results.append((yield from list_namespaces(ctx, op)))
        else:
            raise InvalidInput(f"unknown store operation {type(op).__name__}")
    return results

