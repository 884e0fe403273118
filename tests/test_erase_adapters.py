"""``export_user`` and ``erase_user`` cover what every writer keeps of a user: the store,
the LuminoraCore adapter, the LangChain history, the LangGraph checkpointer and store.

Two users are seeded through every writer; the first is exported, then erased. No key
may then hold the first user's id, session ids, caller-chosen ids, thread ids or run ids
(in its name or its content), and every key of the second user is byte-identical (DUMP).
On the cluster the adapters' alias and run records sit in slots of their own, so the
erase reaches them through calls of their own. A LuminoraCore session and a LangGraph
thread archived before the erase (one expired, one ended) are found through their
archived records. ``buckets`` 1 puts both users (and every
alias) in one bucket, so the erase works beside the neighbour's entries; 64 spreads them.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest

pytest.importorskip("langgraph.checkpoint.base", reason="langgraph is not installed "
                    "(pip install -e '.[langgraph]')")

from langchain_core.messages import AIMessage, HumanMessage  # noqa: E402
from langgraph.checkpoint.base import Checkpoint, empty_checkpoint  # noqa: E402
from langgraph.checkpoint.base.id import uuid6  # noqa: E402

from luminora_redis import SessionStore, SyncSessionStore  # noqa: E402
from luminora_redis.compat.langchain import LuminoraChatMessageHistory  # noqa: E402
from luminora_redis.compat.langgraph import LuminoraCheckpointSaver, LuminoraStore  # noqa: E402
from luminora_redis.compat.langgraph.ops import find_thread  # noqa: E402
from luminora_redis.compat.luminoracore import RedisStorageV11  # noqa: E402
from luminora_redis.core.context import Context  # noqa: E402
from luminora_redis.core.scripts import Batch, Call, Op  # noqa: E402
from luminora_redis.ops import archive, erasure  # noqa: E402
from luminora_redis.ops.adapter_keys import lc_alias_keys, lg_tagged  # noqa: E402

from conftest import snapshot as snapshot_all  # noqa: E402


def snapshot(raw: Any) -> dict[bytes, Any]:
    """Every key with its content, but the sweeper's due-bucket hints (``lr:{h<g>}:due``:
    bucket numbers and times, nobody's data): a new session lowers its bucket's hint, and
    an erase leaves it, a lower bound the next sweep raises."""
    return {key: value for key, value in snapshot_all(raw).items()
            if not re.fullmatch(rb"[^:]+:\{h[0-9a-f]+\}:due", key)}


@pytest.fixture(params=[1, 64], ids=["one-bucket", "64-buckets"])
async def stores(request: pytest.FixtureRequest, store_url: str,
                 topology: str) -> AsyncIterator[tuple[SessionStore, SyncSessionStore]]:
    cluster = topology == "cluster"
    sync_store = SyncSessionStore.from_url(store_url, cluster=cluster, buckets=request.param)
    store = SessionStore.from_url(store_url, cluster=cluster, buckets=request.param)
    yield store, sync_store
    sync_store.close()
    await store.aclose()


def _iso(seconds_from_now: float) -> str:
    return (datetime.now() + timedelta(seconds=seconds_from_now)).isoformat()


def _checkpoint(messages: list[Any]) -> Checkpoint:
    cp = empty_checkpoint()
    cp["id"] = str(uuid6(clock_seq=-1))
    cp["channel_values"] = {"messages": messages}
    cp["channel_versions"] = {"messages": 1}
    return cp


async def seed(store: SessionStore, sync_store: SyncSessionStore, user: str) -> dict[str, Any]:
    """Everything every writer keeps of ``user``; the ids that name it."""
    ids: dict[str, Any] = {"user": user}
    # The store itself: memory, a live conversation, an archived one, a mood.
    await store.update_affinity(user, "alicia", 30, "chat")
    await store.save_fact(user, "personal_info", "name", user.title())
    await store.save_episode(user, "milestone", "first chat", "said hi", importance=8.0)
    await store.record_trait(user, "alicia", "warmth", 0.7, "kind words")
    live = await store.create_session(user, "alicia")
    await store.chat_turn(live, [("user", f"{user} a"), ("assistant", "b")])
    await store.save_mood(live, "shy", 0.5)
    ended = await store.create_session(user, "bruno")
    await store.chat_turn(ended, [("user", f"{user} one")])
    assert await store.end_session(ended)
    # The LangChain history, on a session of the user.
    history = LuminoraChatMessageHistory(live, store=store)
    await history.aadd_messages([HumanMessage(f"{user} via langchain"), AIMessage("ok")])
    # The LuminoraCore adapter: a session under the caller's id, its memory records.
    adapter = RedisStorageV11(store)
    caller = f"lc-{user}-session"
    assert await adapter.save_session(caller, user, "alicia", _iso(0), _iso(3600), _iso(0),
                                      "active", {"name": "stub"})
    await adapter.save_fact(user, "interests", "hobby", "chess", confidence=0.9, source="chat")
    await adapter.save_fact(caller, "conversation_history", "turn-1",
                            json.dumps({"user_message": "hola", "assistant_response": "hey"}))
    await adapter.save_affinity(user, "alicia", 42, "friend", note="kept")
    await adapter.save_episode(user, "moment", "a joke", "laughed", 3.0, "very_positive",
                               personality_name="alicia")
    await adapter.save_mood(caller, user, "happy", 0.8)
    # The LangGraph checkpointer (two checkpoints of one run, a pending write) and store.
    saver = LuminoraCheckpointSaver(store, sync_store)
    thread, run = f"lg-{user}-thread", f"run-{user}"
    conf: Any = {"configurable": {"thread_id": thread, "checkpoint_ns": "", "user_id": user,
                                  "run_id": run}}
    first = await saver.aput(conf, _checkpoint([HumanMessage("hola", id=f"{user}-h1")]),
                             {"source": "loop", "step": 0}, {"messages": 1})
    second = await saver.aput(first, _checkpoint([HumanMessage("hola", id=f"{user}-h1"),
                                                  AIMessage("hey", id=f"{user}-a1")]),
                              {"source": "loop", "step": 1}, {"messages": 2})
    await saver.aput_writes(second, [("messages", "pending")], "task-1")
    memories = LuminoraStore(store, sync_store)
    await memories.aput((user, "memories"), "food", {"likes": "paella"})
    found = await store.run(find_thread, thread)
    assert found is not None
    ctx = await store.context()
    ids.update(live=live, ended=ended, caller=caller, thread=thread, run=run,
               thread_session=found.session_id,
               caller_session=(await adapter_session(store, caller)),
               alias_keys=[lc_alias_keys(ctx, caller)[0], lg_tagged(ctx, "t", thread),
                           lg_tagged(ctx, "r", run)])
    return ids


async def adapter_session(store: SessionStore, caller: str) -> str:
    ctx = await store.context()
    raw = await store.run(_alias_sid, lc_alias_keys(ctx, caller)[0])
    assert raw, "the adapter's alias names a session"
    return str(raw)


def _alias_sid(ctx: Context, key: str) -> Op[str]:
    reply = yield Call("read_hashes", (key,), ())
    return str(dict(zip(reply[0][::2], reply[0][1::2]))[b"sid"].decode())


async def seed_archived(store: SessionStore, sync_store: SyncSessionStore, raw: Any,
                        ids: dict[str, Any]) -> None:
    """A LuminoraCore session archived by expiry and a LangGraph thread ended by
    ``end_session`` (its checkpoints stay until its deadline), both before any erase."""
    user = ids["user"]
    ctx = await store.context()
    adapter = RedisStorageV11(store)
    caller = f"lc-{user}-gone"
    assert await adapter.save_session(caller, user, "bruno", _iso(0), _iso(3600), _iso(0),
                                      "active", {"name": "stub"})
    await adapter.save_mood(caller, user, "calm", 0.2)
    caller_session = await adapter_session(store, caller)
    keys = ctx.session_keys(caller_session)
    assert keys is not None
    raw.delete(keys.session)  # what its expiry does; then what the listener runs on it
    assert await store.run(archive.archive_session, caller_session, "cleanup") is not None
    saver = LuminoraCheckpointSaver(store, sync_store)
    thread, run = f"lg-{user}-gone", f"run-{user}-gone"
    conf: Any = {"configurable": {"thread_id": thread, "checkpoint_ns": "", "user_id": user,
                                  "run_id": run}}
    await saver.aput(conf, _checkpoint([HumanMessage("adios", id=f"{user}-g1")]),
                     {"source": "loop", "step": 0}, {"messages": 1})
    found = await store.run(find_thread, thread)
    assert found is not None
    assert await store.end_session(found.session_id)
    archive_index = ctx.keys.user(user).archive
    for sid in (caller_session, found.session_id):
        assert raw.zscore(archive_index, sid) is not None, "archived before the erase"
    ids.update(gone_caller=caller, gone_caller_session=caller_session, gone_thread=thread,
               gone_run=run, gone_thread_session=found.session_id)
    ids["alias_keys"] += [lc_alias_keys(ctx, caller)[0], lg_tagged(ctx, "t", thread),
                          lg_tagged(ctx, "r", run)]


def needles(ids: dict[str, Any]) -> list[bytes]:
    return [str(ids[name]).encode() for name in (
        "user", "live", "ended", "caller", "thread", "run", "thread_session", "caller_session",
        "gone_caller", "gone_caller_session", "gone_thread", "gone_run", "gone_thread_session")
        if name in ids]


def content(raw: Any, key: bytes) -> bytes:
    """A key's name and everything it holds, as one byte string to search."""
    kind = raw.type(key)
    parts: list[bytes] = [key]
    if kind == b"hash":
        parts += [item for pair in raw.hgetall(key).items() for item in pair]
    elif kind == b"list":
        parts += raw.lrange(key, 0, -1)
    elif kind == b"zset":
        parts += [member for member, _ in raw.zrange(key, 0, -1, withscores=True)]
    elif kind == b"set":
        parts += list(raw.smembers(key))
    elif kind == b"string":
        parts.append(raw.get(key))
    return b"\x00".join(parts)


def holding(raw: Any, marks: list[bytes]) -> dict[bytes, list[bytes]]:
    """Every key whose name or content holds one of ``marks``, with the marks found."""
    found = {}
    for key in raw.scan_iter(count=1000):
        text = content(raw, key)
        hits = [mark for mark in marks if mark in text]
        if hits:
            found[key] = hits
    return found


async def test_erase_leaves_nothing_of_the_user_from_any_writer_and_nothing_else_changes(
        stores: tuple[SessionStore, SyncSessionStore], raw: Any) -> None:
    store, sync_store = stores
    dana = await seed(store, sync_store, "dana")
    await seed_archived(store, sync_store, raw, dana)
    before = snapshot(raw)
    carlos = await seed(store, sync_store, "carlos")
    await seed_archived(store, sync_store, raw, carlos)
    marks = needles(carlos)
    seeded = holding(raw, marks)
    for key in (b"lc:a", b"lc:f", b"lc:e", b"lg:d", b"lg:o", b"lg:n", b"lg:i"):
        assert any(key in name for name in seeded), f"the writers keep {key!r} records"
    for key in carlos["alias_keys"]:
        assert raw.exists(key), key
    middle = snapshot(raw)
    removed = await store.erase_user("carlos")
    after = snapshot(raw)
    assert holding(raw, marks) == {}, "no key names the user or holds their ids"
    assert after == before, "every key of the neighbour is byte-identical"
    assert removed == len(middle) - len(after)
    assert await store.erase_user("carlos") == 0
    # The neighbour's adapters still find everything.
    assert await RedisStorageV11(store).get_session(dana["caller"]) is not None
    assert await store.run(find_thread, dana["thread"]) is not None
    assert [s.session_id for s in await store.list_user_sessions("dana")] != []


async def test_export_holds_the_adapters_records_and_nobody_elses(
        stores: tuple[SessionStore, SyncSessionStore], raw: Any) -> None:
    store, sync_store = stores
    await seed_archived(store, sync_store, raw, await seed(store, sync_store, "dana"))
    carlos = await seed(store, sync_store, "carlos")
    await seed_archived(store, sync_store, raw, carlos)
    export = await store.export_user("carlos")
    text = json.dumps(export)
    assert "dana" not in text
    lc = export["luminoracore"]
    assert [(row["category"], row["key"], row["fields"]) for row in lc["facts"]] == [
        ("interests", "hobby", {"source": "chat"})]
    assert [(row["personality_name"], row["record"]["current_level"], row["record"]["extra"])
            for row in lc["affinity"]] == [("alicia", "friend", {"note": "kept"})]
    assert [row["fields"]["sentiment"] for row in lc["episodes"]] == ["very_positive"]
    assert lc["session_ids"] == [
        {"session_id": carlos["caller"], "native_session_id": carlos["caller_session"],
         "archived": False},
        {"session_id": carlos["gone_caller"],
         "native_session_id": carlos["gone_caller_session"], "archived": True}]
    [thread] = export["langgraph_threads"]
    assert (thread["thread_id"], thread["session_id"], thread["run_ids"]) == (
        carlos["thread"], carlos["thread_session"], [carlos["run"]])
    assert thread["checkpoint_count"] == len(thread["checkpoints"]) == 2
    assert thread["pending_writes"] == 1
    assert {row["checkpoint_ns"] for row in thread["checkpoints"]} == {""}
    assert [item["key"] for item in export["store_items"]] == ["food"]
    sessions = {row["session_id"]: row for row in export["sessions"]}
    assert "carlos via langchain" in [m["content"] for m in sessions[carlos["live"]]["messages"]]
    assert "hola" in [m["content"] for m in sessions[carlos["thread_session"]]["messages"]]
    await store.erase_user("carlos")
    empty = await store.export_user("carlos")
    assert empty["luminoracore"] == {"affinity": [], "facts": [], "episodes": [],
                                     "session_ids": []}
    assert empty["langgraph_threads"] == [] and empty["sessions"] == []


def _until(op: Op[int], script: str) -> Op[None]:
    """Drive ``op`` until it is about to call ``script``, then stop: a process that dies."""
    step = next(op)
    while not (isinstance(step, Call) and step.script == script):
        step = op.send((yield step))
    op.close()


async def test_a_rerun_completes_an_erase_that_died_between_the_aliases_and_the_sessions(
        stores: tuple[SessionStore, SyncSessionStore], raw: Any) -> None:
    store, sync_store = stores
    await seed(store, sync_store, "dana")
    before = snapshot(raw)
    carlos = await seed(store, sync_store, "carlos")
    batches: list[Batch] = []

    def dying(ctx: Context) -> Op[None]:
        inner = _until(erasure.erase_user(ctx, "carlos"), "erase_sessions")
        step = next(inner)
        try:
            while True:
                if isinstance(step, Batch):
                    batches.append(step)
                step = inner.send((yield step))
        except StopIteration:
            return

    await store.run(dying)
    assert [call.script for batch in batches for call in batch.calls] == [
        "erase_alias", "erase_alias", "erase_run_threads"]
    for key in carlos["alias_keys"]:
        assert not raw.exists(key), "the aliases and the run record went first"
    assert await store.get_session(carlos["live"]) is not None, "the sessions are still there"
    assert await store.erase_user("carlos") > 0
    assert holding(raw, needles(carlos)) == {}
    assert snapshot(raw) == before


async def test_a_rerun_completes_an_erase_that_died_before_the_archived_records_went(
        stores: tuple[SessionStore, SyncSessionStore], raw: Any) -> None:
    store, sync_store = stores
    dana = await seed(store, sync_store, "dana")
    await seed_archived(store, sync_store, raw, dana)
    before = snapshot(raw)
    carlos = await seed(store, sync_store, "carlos")
    await seed_archived(store, sync_store, raw, carlos)
    ctx = await store.context()
    archived_record = ctx.keys.user("carlos").archived(carlos["gone_thread_session"])[0]
    assert raw.hget(archived_record, "lgid") == carlos["gone_thread"].encode()
    assert raw.hget(ctx.keys.user("carlos").archived(carlos["gone_caller_session"])[0],
                    "lcid") == carlos["gone_caller"].encode()
    await store.run(lambda ctx: _until(erasure.erase_user(ctx, "carlos"), "erase_archived"))
    for key in carlos["alias_keys"]:
        assert not raw.exists(key), "the archived sessions' aliases and run records went first"
    assert raw.exists(archived_record), "the archived records are still there"
    assert await store.erase_user("carlos") > 0
    assert holding(raw, needles(carlos)) == {}
    assert snapshot(raw) == before
