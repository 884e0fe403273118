"""The drop-in adapters' records of one user, for ``export_user``.

The LuminoraCore adapter keeps what LuminoraCore stores beyond our models
(the caller's level name, extra fields, the original sentiment, the save
order) in three hashes beside the user's memory; they are exported as stored,
each hash read in HSCAN steps, with the caller's session ids of the user's live
sessions and of the archived ones (their archived records keep the id). A live
LangGraph thread is exported by what says what it is (its thread id, its
session, the run ids that wrote it, each checkpoint's namespace and id, how
many pending writes it holds), not by its checkpoints' serialized bytes: those
are the application's serializer's encoding of state whose conversation is
already exported as the session's messages, and only that serializer can read
them.
"""

from __future__ import annotations

from typing import Any

from luminora_redis.core.codec import from_ms, unpack
from luminora_redis.core.context import Context
from luminora_redis.core.keys import UserKeys
from luminora_redis.core.scripts import Call, Op
from luminora_redis.ops.adapter_keys import (
    SessionRefs,
    archived_refs,
    lc_record_keys,
    lg_thread_keys,
)

__all__ = ["export_langgraph_threads", "export_luminoracore", "jsonable"]


def jsonable(value: Any) -> Any:
    """``value`` as JSON-ready data: bytes as text (undecodable bytes escaped), tuples as
    lists, mapping keys as strings."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, dict):
        return {str(jsonable(key)): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    return value


def _scan(ctx: Context, key: str) -> Op[dict[bytes, bytes]]:
    """Every field of a hash that grows with use, in ``scan_hash`` steps, each once."""
    found: dict[bytes, bytes] = {}
    cursor: bytes | str = "0"
    while True:
        reply = yield Call("scan_hash", (key,), (cursor, ctx.settings.page_size))
        cursor = reply[0]
        found.update(zip(reply[1::2], reply[2::2]))
        if cursor in (b"0", "0"):
            return found


def _archived_ids(ctx: Context, user: UserKeys) -> Op[list[str]]:
    """The ids of the user's archived conversations, newest first, in ``list_archive``
    pages of at most ``page_size`` from the last id read."""
    ids: list[str] = []
    page, before = ctx.settings.page_size, ""
    while True:
        found = yield Call("list_archive", (user.archive,), (page, before))
        ids.extend(raw.decode() for raw in found)
        if len(found) < page:
            return ids
        before = ids[-1]


def export_luminoracore(ctx: Context, user: UserKeys,
                        refs: list[SessionRefs]) -> Op[dict[str, Any]]:
    """The LuminoraCore adapter's records of the user, and the caller's ids of its live
    sessions (``refs``) and of its archived ones."""
    affinity_key, facts_key, episodes_key = lc_record_keys(user)
    affinity = []
    for personality, raw in sorted((yield from _scan(ctx, affinity_key)).items()):
        record, stamp = unpack(raw)
        affinity.append({"personality_name": personality.decode(), "record": jsonable(record),
                         "updated_at": from_ms(stamp).isoformat()})
    facts = []
    for field, raw in (yield from _scan(ctx, facts_key)).items():
        category, key = unpack(field)
        fields, sequence = unpack(raw)
        facts.append({"category": category, "key": key, "fields": jsonable(fields),
                      "sequence": sequence})
    episodes = []
    for field, raw in (yield from _scan(ctx, episodes_key)).items():
        fields, sequence = unpack(raw)
        episodes.append({"episode_id": field.decode(), "fields": jsonable(fields),
                         "sequence": sequence})
    gone = yield from archived_refs(ctx, user, list(reversed((yield from _archived_ids(ctx, user)))))
    return {"affinity": affinity,
            "facts": sorted(facts, key=lambda row: row["sequence"]),
            "episodes": sorted(episodes, key=lambda row: row["sequence"]),
            "session_ids": [
                {"session_id": ref.caller_id, "native_session_id": ref.session_id,
                 "archived": archived}
                for refs_of, archived in ((refs, False), (gone, True)) for ref in refs_of
                if ref.caller_id is not None]}


def _thread(ctx: Context, ref: SessionRefs) -> Op[dict[str, Any]]:
    keys = ctx.session_keys(ref.session_id)
    assert keys is not None
    order = lg_thread_keys(keys).order
    checkpoints: list[dict[str, str]] = []
    writes = 0
    score: bytes | str = ""
    last: bytes | str = ""
    while True:
        more, score, last, *names = yield Call("range_zset", (order,),
                                               ("asc", ctx.settings.page_size, score, last, ""))
        for name in names:
            kind, namespace, checkpoint_id = name.split(b"\0")[:3]
            if kind == b"c":
                checkpoints.append({"checkpoint_ns": namespace.decode(),
                                    "checkpoint_id": checkpoint_id.decode()})
            else:
                writes += 1
        if not more:
            break
    return {"thread_id": ref.thread_id, "session_id": ref.session_id, "run_ids": ref.run_ids,
            "checkpoint_count": len(checkpoints), "checkpoints": checkpoints,
            "pending_writes": writes}


def export_langgraph_threads(ctx: Context, refs: list[SessionRefs]) -> Op[list[dict[str, Any]]]:
    """The user's live LangGraph threads: ids, runs and checkpoint ids, oldest name first."""
    threads = []
    for ref in refs:
        if ref.thread_id is not None:
            threads.append((yield from _thread(ctx, ref)))
    return threads
