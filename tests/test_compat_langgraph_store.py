"""LuminoraStore: LangGraph's BaseStore as a user's memory, on a single server and on the
cluster. LangGraph's own store tests run in test_langgraph_upstream_store.py."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("langgraph.store.base", reason="langgraph is not installed "
                                                   "(pip install 'luminora-redis[langgraph]')")

from langgraph.store.base import (  # noqa: E402
    GetOp,
    InvalidNamespaceError,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchOp,
)

from luminora_redis import SessionStore, SyncSessionStore  # noqa: E402
from luminora_redis.compat.langgraph import LuminoraStore  # noqa: E402
from luminora_redis.compat.langgraph.store import SemanticSearchUnsupported  # noqa: E402
from luminora_redis.compat.langgraph.store_ops import MAX_LIMIT, MAX_OFFSET  # noqa: E402
from luminora_redis.core.errors import ConfigurationError, InvalidInput  # noqa: E402
from luminora_redis.ops.store_items import encode_field, item_keys  # noqa: E402
from tests.conftest import server_ms, snapshot, user_keys  # noqa: E402

MINUTE_MS = 60_000


@pytest.fixture
def lg(store_url: str, topology: str) -> Iterator[LuminoraStore]:
    store = LuminoraStore.from_url(store_url, cluster=topology == "cluster")
    yield store
    store.close()


def keys_of(user_id: str) -> Any:
    return item_keys(user_keys(user_id))


def test_put_get_delete_round_trip(lg: LuminoraStore) -> None:
    value = {"text": "le gusta el café ☕", "n": 3, "nested": {"list": [1, 2.5, None, True]}}
    lg.put(("carlos", "memories"), "food", value)
    first = lg.get(("carlos", "memories"), "food")
    assert first is not None
    assert (first.namespace, first.key, first.value) == (("carlos", "memories"), "food", value)
    lg.put(("carlos", "memories"), "food", {"text": "té"})
    second = lg.get(("carlos", "memories"), "food")
    assert second is not None and second.value == {"text": "té"}
    assert second.created_at == first.created_at and second.updated_at >= first.updated_at
    assert lg.get(("carlos", "other"), "food") is None
    assert lg.get(("carlos",), "food") is None
    lg.delete(("carlos", "memories"), "food")
    assert lg.get(("carlos", "memories"), "food") is None
    assert lg.search(("carlos",)) == []
    assert lg.list_namespaces(prefix=("carlos",)) == []


def test_items_live_among_the_users_keys(lg: LuminoraStore, raw: Any) -> None:
    lg.put(("carlos", "memories"), "food", {"a": 1})
    lg.put(("carlos",), "root", {"b": 2})
    keys = keys_of("carlos")
    assert keys.items.startswith(user_keys("carlos").user + ":")
    stored = raw.hgetall(keys.items)
    assert set(stored) == {encode_field(["memories"], "food"), encode_field([], "root")}
    assert all(value.split(b" ", 2)[2] in (b'{"a":1}', b'{"b":2}') for value in stored.values())
    assert {key.decode() for key in raw.scan_iter(count=1000)} - {"lr:layout"} == {
        keys.items, keys.fields, keys.namespaces}


def test_a_namespace_must_start_with_a_valid_user_and_nothing_is_written(
        lg: LuminoraStore, raw: Any) -> None:
    lg.put(("carlos",), "k", {"v": 1})
    before = snapshot(raw)
    for namespace in [(), ("bad\nuser",), ("carlos", "a.b"), ("carlos", ""), ("x" * 10_000,)]:
        with pytest.raises((InvalidNamespaceError, InvalidInput)):
            lg.batch([PutOp(namespace, "k", {"v": 2})])
    with pytest.raises((InvalidNamespaceError, InvalidInput)):
        lg.search(())
    with pytest.raises(InvalidInput, match="prefix=\\(user_id"):
        lg.list_namespaces()
    with pytest.raises(InvalidInput, match="prefix=\\(user_id"):
        lg.list_namespaces(prefix=("*", "memories"))
    with pytest.raises(InvalidInput, match="JSON"):
        lg.put(("carlos",), "k", {"v": object()})
    with pytest.raises(InvalidInput, match="JSON"):
        lg.put(("carlos",), "k", {"v": float("nan")})
    # A batch is checked as a whole: its good first put is not written either.
    with pytest.raises(InvalidNamespaceError):
        lg.batch([PutOp(("carlos",), "k2", {"v": 3}), PutOp(("carlos", "a.b"), "k", {"v": 3})])
    assert snapshot(raw) == before


def test_no_label_reaches_beside_its_namespace_or_user(lg: LuminoraStore) -> None:
    for namespace in [("carlos",), ("carlos", "foo"), ("carlos", "foo", "deep"),
                      ("carlos", "foobar"), ("carlos}", "foo"), ("carl",), ("carlos2",),
                      ("carlos", "f*"), ("carlos", "fo\x01o")]:
        lg.put(namespace, "k", {"ns": list(namespace)})

    def namespaces(prefix: tuple[str, ...]) -> set[tuple[str, ...]]:
        return {item.namespace for item in lg.search(prefix, limit=100)}

    assert namespaces(("carlos", "foo")) == {("carlos", "foo"), ("carlos", "foo", "deep")}
    assert namespaces(("carlos", "fo")) == set()
    assert namespaces(("carlos", "f*")) == {("carlos", "f*")}
    assert namespaces(("carl",)) == {("carl",)}
    assert len(namespaces(("carlos",))) == 6
    assert lg.list_namespaces(prefix=("carlos", "foo")) == [("carlos", "foo"),
                                                            ("carlos", "foo", "deep")]


def test_search_filters_pages_and_bounds(store_url: str, topology: str) -> None:
    lg = LuminoraStore.from_url(store_url, cluster=topology == "cluster", page_size=3)
    try:
        for number in range(12):
            lg.put(("carlos", "notes", f"n{number % 3}"), f"k{number:02d}",
                   {"n": number, "even": number % 2 == 0, "meta": {"tag": f"t{number % 4}"},
                    "tags": ["a", "b"] if number == 5 else ["a"]})
        everything = lg.search(("carlos",), limit=100)
        assert len(everything) == 12
        assert [(i.namespace, i.key) for i in everything] == sorted(
            (i.namespace, i.key) for i in everything)
        evens = lg.search(("carlos", "notes"), filter={"even": True}, limit=100)
        assert sorted(i.value["n"] for i in evens) == [0, 2, 4, 6, 8, 10]
        # offset and limit count matches, across pages of 3 fields per script call
        window = lg.search(("carlos",), filter={"even": True}, offset=2, limit=3)
        assert [i.key for i in window] == [i.key for i in evens][2:5]
        assert sorted(i.value["n"] for i in lg.search(
            ("carlos",), filter={"n": {"$gte": 3, "$lt": 6}})) == [3, 4, 5]
        assert [i.value["n"] for i in lg.search(("carlos",), filter={"n": {"$ne": 0}},
                                                limit=100)].count(0) == 0
        assert {i.value["n"] for i in lg.search(("carlos",), filter={"meta": {"tag": "t1"}})} \
            == {1, 5, 9}
        assert {i.value["n"] for i in lg.search(("carlos",), filter={"meta.tag": "t2"})} \
            == {2, 6, 10}
        assert [i.value["n"] for i in lg.search(("carlos",), filter={"tags": ["a", "b"]})] == [5]
        assert [i.value["n"] for i in lg.search(("carlos", "notes", "n1"), limit=2)] == [1, 4]
        assert lg.search(("carlos",), filter={"n": {"$gt": "x"}}) == []
        with pytest.raises(InvalidInput, match="operator"):
            lg.search(("carlos",), filter={"n": {"$regex": "."}})
        with pytest.raises(InvalidInput, match="offset"):
            lg.search(("carlos",), offset=MAX_OFFSET + 1)
        with pytest.raises(InvalidInput):
            lg.search(("carlos",), limit=-1)
    finally:
        lg.close()


def test_search_limit_is_capped(lg: LuminoraStore) -> None:
    lg.batch([PutOp(("carlos",), f"k{n:04d}", {"n": n}) for n in range(MAX_LIMIT + 5)])
    assert len(lg.search(("carlos",), limit=MAX_LIMIT + 5)) == MAX_LIMIT


def test_list_namespaces_prefix_suffix_wildcards_depth_and_pages(lg: LuminoraStore) -> None:
    spaces = [("carlos", "docs", "public"), ("carlos", "docs", "private"),
              ("carlos", "images", "public"), ("carlos", "a", "b", "public"), ("carlos",),
              ("ana", "docs", "public")]
    for namespace in spaces:
        lg.put(namespace, "k", {})
    mine = sorted(ns for ns in spaces if ns[0] == "carlos")
    assert lg.list_namespaces(prefix=("carlos",)) == mine
    assert lg.list_namespaces(prefix=("carlos",), suffix=("public",)) == [
        ("carlos", "a", "b", "public"), ("carlos", "docs", "public"),
        ("carlos", "images", "public")]
    assert lg.list_namespaces(prefix=("carlos", "*", "public")) == [
        ("carlos", "docs", "public"), ("carlos", "images", "public")]
    assert lg.list_namespaces(prefix=("carlos",), max_depth=2) == [
        ("carlos",), ("carlos", "a"), ("carlos", "docs"), ("carlos", "images")]
    assert lg.list_namespaces(prefix=("carlos",), limit=2, offset=1) == mine[1:3]
    assert lg.list_namespaces(prefix=("ana",)) == [("ana", "docs", "public")]
    lg.delete(("carlos", "docs", "public"), "k")
    assert ("carlos", "docs", "public") not in lg.list_namespaces(prefix=("carlos",))


def _expire_now(raw: Any, user_id: str, labels: list[str], key: str) -> None:
    """Move an item's deadline into the past, as the passing of its TTL would."""
    raw.zadd(keys_of(user_id).expiries, {encode_field(labels, key): server_ms(raw) - 1})


def test_an_expired_item_is_never_returned_and_is_dropped(lg: LuminoraStore, raw: Any) -> None:
    lg.put(("carlos", "m"), "short", {"v": 1}, ttl=1)
    lg.put(("carlos", "m"), "keep", {"v": 2})
    lg.put(("carlos", "gone"), "short", {"v": 3}, ttl=1)
    keys = keys_of("carlos")
    deadline = raw.zscore(keys.expiries, encode_field(["m"], "short"))
    assert abs(deadline - (server_ms(raw) + MINUTE_MS)) < 5_000
    assert raw.hget(keys.ttls, encode_field(["m"], "short")) == b"60000"
    _expire_now(raw, "carlos", ["m"], "short")
    assert [i.key for i in lg.search(("carlos", "m"))] == ["keep"]
    assert lg.get(("carlos", "m"), "short") is None
    assert raw.hget(keys.items, encode_field(["m"], "short")) is None
    _expire_now(raw, "carlos", ["gone"], "short")
    assert lg.list_namespaces(prefix=("carlos",)) == [("carlos", "m")]
    assert raw.zcard(keys.expiries) == 0 and raw.hlen(keys.ttls) == 0
    # a put after expiry creates the item anew; a put without ttl clears the old one
    lg.put(("carlos", "m"), "keep", {"v": 4}, ttl=1)
    lg.put(("carlos", "m"), "keep", {"v": 5})
    assert raw.zcard(keys.expiries) == 0


def test_reads_refresh_the_ttl_as_ttl_config_says(store_url: str, topology: str,
                                                  raw: Any) -> None:
    lg = LuminoraStore.from_url(store_url, cluster=topology == "cluster",
                                ttl={"default_ttl": 2, "refresh_on_read": False})
    field = encode_field(["m"], "k")
    keys = keys_of("carlos")
    try:
        lg.put(("carlos", "m"), "k", {"v": 1})
        assert raw.hget(keys.ttls, field) == b"120000"
        soon = server_ms(raw) + 1_000
        raw.zadd(keys.expiries, {field: soon})
        assert lg.get(("carlos", "m"), "k") is not None
        lg.search(("carlos",))
        assert raw.zscore(keys.expiries, field) == soon  # refresh_on_read False
        assert lg.get(("carlos", "m"), "k", refresh_ttl=True) is not None
        assert raw.zscore(keys.expiries, field) > soon + 100_000
        raw.zadd(keys.expiries, {field: soon})
        assert len(lg.search(("carlos",), refresh_ttl=True)) == 1
        assert raw.zscore(keys.expiries, field) > soon + 100_000
        lg.put(("carlos", "m"), "forever", {"v": 1}, ttl=None)
        assert raw.zscore(keys.expiries, encode_field(["m"], "forever")) is None
    finally:
        lg.close()
    default = LuminoraStore.from_url(store_url, cluster=topology == "cluster")
    try:
        raw.zadd(keys.expiries, {field: soon})
        assert default.get(("carlos", "m"), "k") is not None  # refresh_on_read defaults to True
        assert raw.zscore(keys.expiries, field) > soon + 100_000
    finally:
        default.close()


def test_export_user_and_erase_user_cover_every_item(lg: LuminoraStore, raw: Any) -> None:
    sessions = lg.sync_store
    assert sessions is not None
    lg.put(("carlos", "memories"), "food", {"text": "café"})
    lg.put(("carlos",), "profile", {"name": "Carlos"}, ttl=5)
    lg.put(("ana", "memories"), "food", {"text": "té"})
    sessions.save_fact("carlos", category="personal_info", key="name", value="Carlos")
    exported = sessions.export_user("carlos")["store_items"]
    assert [(row["namespace"], row["key"], row["value"]) for row in exported] == [
        (["carlos"], "profile", {"name": "Carlos"}),
        (["carlos", "memories"], "food", {"text": "café"})]
    assert exported[0]["expires_at"] is not None and exported[1]["expires_at"] is None
    ana_before = {key: raw.dump(key) for key in keys_of("ana")}
    assert sessions.erase_user("carlos") >= 5
    assert not any(raw.exists(key) for key in keys_of("carlos"))
    assert sessions.export_user("carlos")["store_items"] == []
    assert {key: raw.dump(key) for key in keys_of("ana")} == ana_before
    assert lg.get(("ana", "memories"), "food") is not None


def test_semantic_query_is_refused_clearly(lg: LuminoraStore, store_url: str) -> None:
    lg.put(("carlos",), "k", {"text": "hola"})
    with pytest.raises(SemanticSearchUnsupported, match="filter="):
        lg.search(("carlos",), query="greetings")
    assert isinstance(SemanticSearchUnsupported(), NotImplementedError)
    with pytest.raises(SemanticSearchUnsupported):
        LuminoraStore(sync_store=lg.sync_store, index={"dims": 3, "embed": lambda x: x})


def test_batch_results_in_order(lg: LuminoraStore) -> None:
    lg.put(("carlos", "foo"), "key1", {"data": "value1"})
    results = lg.batch([
        GetOp(("carlos", "foo"), "key1"),
        PutOp(("carlos", "bar"), "key2", {"data": "value2"}),
        SearchOp(("carlos",), filter={"data": "value2"}),
        ListNamespacesOp(match_conditions=(MatchCondition("prefix", ("carlos",)),)),
        GetOp(("carlos",), "missing"),
        PutOp(("carlos", "foo"), "key1", None),
        GetOp(("carlos", "foo"), "key1"),
    ])
    assert results[0] is not None and results[0].value == {"data": "value1"}  # type: ignore[union-attr]
    assert results[1] is None
    assert [i.key for i in results[2]] == ["key2"]  # type: ignore[union-attr]
    assert results[3] == [("carlos", "bar"), ("carlos", "foo")]
    assert results[4] is None and results[5] is None and results[6] is None


def test_async_methods_run_on_the_asyncio_store(store_url: str, topology: str) -> None:
    async def main() -> None:
        lg = LuminoraStore(store=SessionStore.from_url(store_url, cluster=topology == "cluster"))
        try:
            await lg.aput(("carlos", "m"), "k", {"v": 1}, ttl=1)
            item = await lg.aget(("carlos", "m"), "k")
            assert item is not None and item.value == {"v": 1}
            assert [i.key for i in await lg.asearch(("carlos",), filter={"v": 1})] == ["k"]
            assert await lg.alist_namespaces(prefix=("carlos",)) == [("carlos", "m")]
            results = await lg.abatch([PutOp(("carlos",), "b", {"x": 1}), GetOp(("carlos",), "b")])
            assert results[1] is not None
            await lg.adelete(("carlos", "m"), "k")
            assert await lg.aget(("carlos", "m"), "k") is None
            with pytest.raises(ConfigurationError, match="sync_store"):
                lg.get(("carlos",), "b")
        finally:
            assert lg.store is not None
            await lg.store.aclose()

    asyncio.run(main())


def test_sync_only_store_refuses_async_calls_clearly(store_url: str, topology: str) -> None:
    sync = SyncSessionStore.from_url(store_url, cluster=topology == "cluster")
    try:
        lg = LuminoraStore(sync_store=sync)
        with pytest.raises(ConfigurationError, match="asyncio store"):
            asyncio.run(lg.aget(("carlos",), "k"))
    finally:
        sync.close()
    with pytest.raises(ConfigurationError):
        LuminoraStore()


def test_a_new_thread_of_the_same_user_sees_the_stores_memories(store_url: str,
                                                                 topology: str) -> None:
    from langchain_core.messages import AIMessage, HumanMessage
    from langchain_core.runnables import RunnableConfig
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.runtime import Runtime

    from luminora_redis.compat.langgraph import LuminoraCheckpointSaver

    async def model(state: MessagesState, config: RunnableConfig,
                    runtime: Runtime[Any]) -> dict[str, Any]:
        """Remembers what a user says after "remember:", and lists what it remembers."""
        assert runtime.store is not None
        user = config["configurable"]["user_id"]
        said = str(state["messages"][-1].content)
        if said.startswith("remember:"):
            await runtime.store.aput((user, "memories"), str(len(state["messages"])),
                                     {"text": said.removeprefix("remember:").strip()})
            return {"messages": [AIMessage("noted")]}
        found = await runtime.store.asearch((user, "memories"))
        return {"messages": [AIMessage(", ".join(item.value["text"] for item in found))]}

    async def main() -> None:
        cluster = topology == "cluster"
        saver = LuminoraCheckpointSaver.from_url(store_url, cluster=cluster)
        store = LuminoraStore.from_url(store_url, cluster=cluster)
        builder = StateGraph(MessagesState)
        builder.add_node("model", model)
        builder.add_edge(START, "model")
        graph = builder.compile(checkpointer=saver, store=store)
        try:
            first = {"configurable": {"thread_id": "monday", "user_id": "carlos"}}
            await graph.ainvoke({"messages": [HumanMessage("remember: likes black coffee")]}, first)
            other = {"configurable": {"thread_id": "ana-1", "user_id": "ana"}}
            await graph.ainvoke({"messages": [HumanMessage("remember: likes tea")]}, other)
            second = {"configurable": {"thread_id": "tuesday", "user_id": "carlos"}}
            state = await graph.ainvoke({"messages": [HumanMessage("what do you know?")]},
                                        second)
            assert [m.content for m in state["messages"]] == ["what do you know?",
                                                              "likes black coffee"]
            assert store.sync_store is not None
            exported = store.sync_store.export_user("carlos")["store_items"]
            assert [row["value"] for row in exported] == [{"text": "likes black coffee"}]
        finally:
            await store.aclose()
            await saver.aclose()

    asyncio.run(main())


@pytest.mark.requires_redis((7, 0), "script flags, and so the refusal before a script runs")
def test_reads_keep_working_over_maxmemory_and_writes_are_refused(private_server: Any) -> None:
    from luminora_redis import OutOfMemory

    lg = LuminoraStore.from_url(private_server.url)
    client = private_server.client()
    try:
        lg.put(("carlos", "m"), "k", {"v": 1}, ttl=1)
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", int(client.info("memory")["used_memory"]) - 512 * 1024)
        item = lg.get(("carlos", "m"), "k")
        assert item is not None and item.value == {"v": 1}
        assert [i.key for i in lg.search(("carlos",))] == ["k"]
        assert lg.list_namespaces(prefix=("carlos",)) == [("carlos", "m")]
        with pytest.raises(OutOfMemory):
            lg.put(("carlos", "m"), "k2", {"v": 2})
    finally:
        client.config_set("maxmemory", 0)
        client.close()
        lg.close()


def test_hostile_user_ids_stay_in_their_own_keys(lg: LuminoraStore, raw: Any) -> None:
    users = ["carlos", "carlos}", "{carlos}", "carlos:x", "*", "cárlos", "c" * 200]
    for user in users:
        lg.put((user, "m"), "k", {"owner": user})
    for user in users:
        assert [i.value["owner"] for i in lg.search((user,), limit=100)] == [user]
        if user != "*":  # in a listing's prefix "*" is LangGraph's wildcard, refused first
            assert lg.list_namespaces(prefix=(user,)) == [(user, "m")]
        assert all("{" not in key.split("}", 1)[1] for key in keys_of(user))
    assert len({keys_of(user).items for user in users}) == len(users)


def test_redis_down_is_an_error_not_a_missing_item() -> None:
    import redis as redis_py

    lg = LuminoraStore.from_url("redis://127.0.0.1:1/0")
    try:
        with pytest.raises(redis_py.ConnectionError):
            lg.get(("carlos",), "k")
        with pytest.raises(redis_py.ConnectionError):
            lg.search(("carlos",))
    finally:
        lg.close()
