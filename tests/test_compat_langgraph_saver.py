"""LuminoraCheckpointSaver beyond LangGraph's conformance suite: what makes a thread
a luminora session (its owner, its conversation in the history, its expiry and
archive), the bounds, and the refusals. On one server and on the cluster."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis.cluster

pytest.importorskip("langgraph.checkpoint.base", reason="langgraph is not installed "
                                                       "(pip install 'luminora-redis[langgraph]')")

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage  # noqa: E402
from langgraph.checkpoint.base import Checkpoint, empty_checkpoint  # noqa: E402
from langgraph.checkpoint.base.id import uuid6  # noqa: E402
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer  # noqa: E402

from luminora_redis import ArchiveReason, SessionStore, SyncSessionStore  # noqa: E402
from luminora_redis.compat.langgraph import LuminoraCheckpointSaver  # noqa: E402
from luminora_redis.compat.langgraph.ops import Thread, find_thread, thread_keys  # noqa: E402
from luminora_redis.core.codec import pack  # noqa: E402
from luminora_redis.core.errors import ConfigurationError, InvalidInput  # noqa: E402

from conftest import pexpiretime, server_ms, session_keys, user_keys, wait_until  # noqa: E402

CARLOS = {"user_id": "carlos"}


@pytest.fixture
def sync_store(store_url: str, topology: str) -> Iterator[SyncSessionStore]:
    store = SyncSessionStore.from_url(store_url, cluster=topology == "cluster")
    yield store
    store.close()


def config(thread_id: str, checkpoint_id: str | None = None, ns: str = "",
           **configurable: Any) -> Any:
    conf: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ns, **configurable}
    if checkpoint_id is not None:
        conf["checkpoint_id"] = checkpoint_id
    return {"configurable": conf}


def checkpoint(messages: list[Any] | None = None, **values: Any) -> Checkpoint:
    cp = empty_checkpoint()
    cp["id"] = str(uuid6(clock_seq=-1))
    cp["channel_values"] = {**values, **({"messages": messages} if messages is not None else {})}
    cp["channel_versions"] = {key: 1 for key in cp["channel_values"]}
    return cp


def thread_of(store: SyncSessionStore, thread_id: str) -> Thread:
    thread = store.run(find_thread, thread_id)
    assert thread is not None
    return thread


def put(saver: LuminoraCheckpointSaver, thread_id: str, cp: Checkpoint, parent: Any = None,
        **configurable: Any) -> Any:
    conf = config(thread_id, None if parent is None else parent["configurable"]["checkpoint_id"],
                  **configurable)
    return saver.put(conf, cp, {"source": "loop", "step": 0}, cp["channel_versions"])


TURN_1 = [SystemMessage("be kind", id="s"), HumanMessage("hola", id="h1")]
TURN_2 = [*TURN_1,
          AIMessage("", id="a1", tool_calls=[{"name": "clock", "args": {"tz": "CET"}, "id": "c1"}]),
          ToolMessage("10:00", id="t1", tool_call_id="c1"), AIMessage("son las diez", id="a2")]


def test_a_thread_is_a_session_of_its_user_and_its_messages_reach_the_history_once(
        sync_store: SyncSessionStore) -> None:
    saver = LuminoraCheckpointSaver(None, sync_store)
    first = put(saver, "chat-1", checkpoint(TURN_1), **CARLOS)
    put(saver, "chat-1", checkpoint(TURN_2), first, **CARLOS)
    put(saver, "chat-1", checkpoint(TURN_2), first, **CARLOS)  # nothing new
    thread = thread_of(sync_store, "chat-1")
    session = sync_store.get_session(thread.session_id)
    assert session is not None and session.user_id == "carlos" != "chat-1"
    assert [s.session_id for s in sync_store.list_user_sessions("carlos")] == [thread.session_id]
    history = sync_store.get_history(thread.session_id)
    assert [(m.role.value, m.content) for m in history] == [
        ("system", "be kind"), ("user", "hola"), ("assistant", ""), ("tool", "10:00"),
        ("assistant", "son las diez")]
    kept = [m.metadata["langchain"]["data"] for m in history]
    assert kept[2]["tool_calls"][0]["name"] == "clock" and kept[3]["tool_call_id"] == "c1"
    assert kept[1]["id"] == "h1"


def test_a_put_sends_only_messages_its_saver_has_not_appended_yet(
        sync_store: SyncSessionStore, raw: Any) -> None:
    # The script skips known ids anyway; the saver leaves them out so that its loop covers
    # the new messages only. Seen by forgetting an id behind the savers' backs: the saver
    # that appended it does not send it again, a fresh one sends all and it comes back.
    saver = LuminoraCheckpointSaver(None, sync_store)
    put(saver, "chat-c", checkpoint(TURN_1), **CARLOS)
    thread = thread_of(sync_store, "chat-c")
    ids_key = thread_keys(session_keys(thread.session_id)).ids
    assert raw.hdel(ids_key, "h1") == 1
    put(saver, "chat-c", checkpoint(TURN_2), **CARLOS)
    assert [m.content for m in sync_store.get_history(thread.session_id)] == \
        [m.content for m in TURN_2]
    put(LuminoraCheckpointSaver(None, sync_store), "chat-c", checkpoint(TURN_2), **CARLOS)
    assert [m.content for m in sync_store.get_history(thread.session_id)] == \
        [m.content for m in TURN_2] + ["hola"]


def test_messages_of_child_namespaces_stay_out_of_the_history(sync_store: SyncSessionStore) -> None:
    saver = LuminoraCheckpointSaver(None, sync_store)
    saver.put(config("chat-ns", ns="child:1", **CARLOS), checkpoint(TURN_1), {}, {})
    assert sync_store.get_history(thread_of(sync_store, "chat-ns").session_id) == []


def keys_everywhere(raw: Any) -> int:
    """The keys on every primary (a cluster client's DBSIZE asks one node by default)."""
    if isinstance(raw, redis.cluster.RedisCluster):
        return int(raw.dbsize(target_nodes=redis.cluster.RedisCluster.PRIMARIES))
    return int(raw.dbsize())


def test_without_a_user_a_new_thread_is_refused_and_nothing_is_written(
        sync_store: SyncSessionStore, raw: Any) -> None:
    saver = LuminoraCheckpointSaver(None, sync_store)
    sync_store.context()  # the store's first use records its layout
    before = keys_everywhere(raw)
    with pytest.raises(InvalidInput, match="user_id"):
        put(saver, "orphan", checkpoint(TURN_1))
    assert sync_store.run(find_thread, "orphan") is None
    with pytest.raises(InvalidInput):  # a bad user id, with a run to note: refused first
        saver.put(config("orphan", user_id=""), checkpoint(TURN_1), {"run_id": "r1"}, {})
    assert keys_everywhere(raw) == before
    defaulted = LuminoraCheckpointSaver(None, sync_store, default_user_id="guest")
    put(defaulted, "orphan", checkpoint(TURN_1))
    assert thread_of(sync_store, "orphan").user_id == "guest"
    # An existing thread keeps its owner; another user's config is refused.
    put(saver, "orphan", checkpoint(TURN_1))
    with pytest.raises(InvalidInput, match="another user"):
        put(saver, "orphan", checkpoint(TURN_1), user_id="mallory")


def test_put_writes_and_get_slide_the_session_and_the_thread_keys_together(
        sync_store: SyncSessionStore, raw: Any) -> None:
    saver = LuminoraCheckpointSaver(None, sync_store, ttl=600, max_idle=30)
    stored = put(saver, "chat-2", checkpoint(TURN_1), **CARLOS)
    keys = session_keys(thread_of(sync_store, "chat-2").session_id)
    data, order, ids = thread_keys(keys)
    for step in (lambda: saver.put_writes(stored, [("x", 1)], "task"),
                 lambda: saver.get_tuple(config("chat-2"))):
        before = pexpiretime(raw, keys.session)
        start = server_ms(raw)
        wait_until(lambda start=start: server_ms(raw) > start + 5, what="the server clock moved")
        step()
        deadline = pexpiretime(raw, keys.session)
        assert deadline > before
        assert pexpiretime(raw, data) == pexpiretime(raw, order) == pexpiretime(raw, ids) == deadline
    # The per-thread settings come from configurable at the thread's first put.
    put(saver, "chat-3", checkpoint(), **CARLOS, ttl=120, max_idle=60)
    session = sync_store.get_session(thread_of(sync_store, "chat-3").session_id)
    assert session is not None
    assert (session.expires_at - session.created_at).total_seconds() == pytest.approx(120, abs=1)


def test_an_idle_thread_expires_with_its_checkpoints_and_its_next_put_starts_afresh(
        sync_store: SyncSessionStore, raw: Any) -> None:
    saver = LuminoraCheckpointSaver(None, sync_store, max_idle=0.5)
    stored = put(saver, "chat-4", checkpoint(TURN_1), **CARLOS)
    saver.put_writes(stored, [("x", 1)], "task")
    old = thread_of(sync_store, "chat-4")
    keys = session_keys(old.session_id)
    wait_until(lambda: not raw.exists(keys.session), what="the session expired")
    wait_until(lambda: not any(raw.exists(key) for key in thread_keys(keys)),
               what="the thread's keys expired with it")
    assert saver.get_tuple(config("chat-4")) is None
    assert list(saver.list(config("chat-4"))) == []
    put(saver, "chat-4", checkpoint(TURN_1), **CARLOS)
    new = thread_of(sync_store, "chat-4")
    assert new.session_id != old.session_id
    assert [m.content for m in sync_store.get_history(new.session_id)] == ["be kind", "hola"]


def test_delete_thread_archives_the_conversation_now(sync_store: SyncSessionStore,
                                                      raw: Any) -> None:
    saver = LuminoraCheckpointSaver(None, sync_store)
    put(saver, "chat-5", checkpoint(TURN_2), **CARLOS)
    thread = thread_of(sync_store, "chat-5")
    saver.delete_thread("chat-5")
    assert saver.get_tuple(config("chat-5")) is None
    assert sync_store.run(find_thread, "chat-5") is None
    assert not any(raw.exists(key) for key in thread_keys(session_keys(thread.session_id)))
    archived = sync_store.get_archived_conversation("carlos", thread.session_id)
    assert archived is not None
    assert [m.content for m in archived.messages] == [m.content for m in TURN_2]
    assert archived.reason is ArchiveReason.ENDED
    assert raw.zscore(user_keys("carlos").archive, thread.session_id) is not None
    saver.delete_thread("chat-5")  # gone: nothing to do


def test_a_thread_ended_or_erased_through_the_store_reads_as_gone_and_leaves(
        sync_store: SyncSessionStore, raw: Any) -> None:
    saver = LuminoraCheckpointSaver(None, sync_store)
    for thread_id, end in (("chat-e", sync_store.end_session),
                           ("chat-x", lambda sid: sync_store.erase_user("xavier"))):
        put(saver, thread_id, checkpoint(TURN_1), user_id="xavier")
        thread = thread_of(sync_store, thread_id)
        keys = thread_keys(session_keys(thread.session_id))
        assert all(raw.exists(key) for key in keys)
        end(thread.session_id)
        assert saver.get_tuple(config(thread_id)) is None
        assert not any(raw.exists(key) for key in keys)


def test_the_checkpoint_history_is_capped_and_the_conversation_is_not(
        sync_store: SyncSessionStore) -> None:
    saver = LuminoraCheckpointSaver(None, sync_store, max_checkpoints=3)
    parent, ids, messages = None, [], []
    for turn in range(6):
        messages = [*messages, HumanMessage(f"m{turn}", id=f"m{turn}")]
        cp = checkpoint(messages)
        parent = put(saver, "chat-6", cp, parent, **CARLOS)
        saver.put_writes(parent, [("x", turn)], f"task{turn}")
        ids.append(cp["id"])
    listed = [t.checkpoint["id"] for t in saver.list(config("chat-6"))]
    assert listed == ids[:-4:-1]
    assert saver.get_tuple(config("chat-6", ids[0])) is None
    history = sync_store.get_history(thread_of(sync_store, "chat-6").session_id)
    assert [m.content for m in history] == [f"m{turn}" for turn in range(6)]


def test_list_pages_past_one_script_reply_with_before_and_limit(sync_store: SyncSessionStore) -> None:
    saver = LuminoraCheckpointSaver(None, sync_store, max_checkpoints=200)
    ids = []
    for step in range(120):
        cp = checkpoint(step=step)
        saver.put(config("chat-7", **CARLOS), cp, {"step": step, "even": step % 2 == 0}, {})
        ids.append(cp["id"])
    newest_first = ids[::-1]
    assert [t.checkpoint["id"] for t in saver.list(config("chat-7"))] == newest_first
    below = config("chat-7", ids[100])
    assert [t.checkpoint["id"] for t in saver.list(config("chat-7"), before=below, limit=70)] == \
        newest_first[20:90]
    evens = [t.metadata["step"] for t in saver.list(config("chat-7"), filter={"even": True},
                                                    limit=55)]
    assert evens == list(range(118, 8, -2))
    with pytest.raises(InvalidInput, match="thread_id"):
        list(saver.list(None))


def test_pickle_is_refused_both_ways(sync_store: SyncSessionStore, raw: Any) -> None:
    with pytest.raises(ConfigurationError, match="pickle"):
        LuminoraCheckpointSaver(None, sync_store, serde=JsonPlusSerializer(pickle_fallback=True))
    saver = LuminoraCheckpointSaver(None, sync_store)
    assert isinstance(saver.serde, JsonPlusSerializer) and not saver.serde.pickle_fallback
    # What msgpack cannot hold is refused, not pickled.
    with pytest.raises(TypeError, match="msgpack"):
        put(saver, "chat-8", checkpoint(lock=threading.Lock()), **CARLOS)
    assert sync_store.run(find_thread, "chat-8") is None
    stored = put(saver, "chat-8", checkpoint(), **CARLOS)
    keys = session_keys(thread_of(sync_store, "chat-8").session_id)
    name = f"c\x00\x00{stored['configurable']['checkpoint_id']}"
    raw.hset(thread_keys(keys).data, name,
             pack(["pickle", b"cos\nsystem\n.", "msgpack", b"\x80", ""]))
    with pytest.raises(InvalidInput, match="pickle"):
        saver.get_tuple(config("chat-8"))


def test_needs_a_store_of_the_right_kind(sync_store: SyncSessionStore) -> None:
    with pytest.raises(ConfigurationError):
        LuminoraCheckpointSaver()
    with pytest.raises(ConfigurationError):
        LuminoraCheckpointSaver(sync_store)  # type: ignore[arg-type]
    saver = LuminoraCheckpointSaver(None, sync_store)
    with pytest.raises(ConfigurationError, match="async"):
        saver._async()


async def test_the_async_methods_drive_the_same_operations(store_url: str, topology: str) -> None:
    saver = LuminoraCheckpointSaver.from_url(store_url, cluster=topology == "cluster")
    try:
        stored = await saver.aput(config("chat-9", **CARLOS), checkpoint(TURN_1), {}, {})
        await saver.aput_writes(stored, [("x", 1)], "task")
        got = await saver.aget_tuple(config("chat-9"))
        assert got is not None and got.pending_writes == [("task", "x", 1)]
        assert got.checkpoint["channel_values"]["messages"] == TURN_1
        store = saver.store
        assert isinstance(store, SessionStore)
        thread = await store.run(find_thread, "chat-9")
        assert thread is not None
        assert [m.content for m in await store.get_history(thread.session_id)] == ["be kind", "hola"]
        await saver.adelete_thread("chat-9")
        assert await saver.aget_tuple(config("chat-9")) is None
        assert await store.get_archived_conversation("carlos", thread.session_id) is not None
    finally:
        await saver.aclose()


async def test_racing_first_calls_of_a_thread_agree_on_one_session(store_url: str,
                                                                   topology: str) -> None:
    saver = LuminoraCheckpointSaver.from_url(store_url, cluster=topology == "cluster")
    store = saver.store
    assert isinstance(store, SessionStore)
    try:
        cps = [checkpoint(TURN_1) for _ in range(4)]
        await asyncio.gather(*(saver.aput(config(f"race-{i % 2}", **CARLOS), cp, {}, {})
                               for i, cp in enumerate(cps)),
                             *(saver.aput_writes(config(f"race-{i}", cps[i]["id"], **CARLOS),
                                                 [("x", i)], "task") for i in range(2)))
        threads = [await store.run(find_thread, f"race-{i}") for i in range(2)]
        live = {s.session_id for s in await store.list_user_sessions("carlos")}
        assert live == {t.session_id for t in threads if t is not None} and len(live) == 2
        for i, thread in enumerate(threads):
            assert thread is not None
            listed = [t async for t in saver.alist(config(f"race-{i}"))]
            assert {t.checkpoint["id"] for t in listed} == {cps[i]["id"], cps[i + 2]["id"]}
            assert [m.content for m in await store.get_history(thread.session_id)] == \
                ["be kind", "hola"]
    finally:
        await saver.aclose()
