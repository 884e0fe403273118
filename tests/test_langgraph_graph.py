"""A real LangGraph graph on the checkpointer: a StateGraph with MessagesState and a
fake model node. Its thread goes idle, a running ExpiryListener archives it, and
then its checkpoint is gone while its conversation is in the user's archive and
reached on_archived, once. On one server and on the cluster."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("langgraph.graph", reason="langgraph is not installed "
                                              "(pip install 'luminora-redis[langgraph]')")

from langchain_core.messages import AIMessage, HumanMessage  # noqa: E402
from langgraph.graph import START, MessagesState, StateGraph  # noqa: E402

from luminora_redis import ArchivedConversation, ArchiveReason, SessionStore  # noqa: E402
from luminora_redis.compat.langgraph import LuminoraCheckpointSaver  # noqa: E402
from luminora_redis.compat.langgraph.ops import find_thread, thread_keys  # noqa: E402
from luminora_redis.listener.expiry_listener import ExpiryListener  # noqa: E402

from conftest import session_keys, until  # noqa: E402
from listener_support import running  # noqa: E402


def fake_model(state: MessagesState) -> dict[str, Any]:
    """Answers every question with its length: a model whose replies a test can predict."""
    question = state["messages"][-1].content
    return {"messages": [AIMessage(f"{len(str(question))} letters")]}


def chat_graph(saver: LuminoraCheckpointSaver) -> Any:
    builder = StateGraph(MessagesState)
    builder.add_node("model", fake_model)
    builder.add_edge(START, "model")
    return builder.compile(checkpointer=saver)


async def test_an_idle_graph_thread_is_archived_and_delivered_with_its_conversation(
        store_url: str, topology: str, raw: Any) -> None:
    saver = LuminoraCheckpointSaver.from_url(store_url, cluster=topology == "cluster",
                                             max_idle=1.5)
    store = saver.store
    assert isinstance(store, SessionStore)
    delivered: list[ArchivedConversation] = []
    listener = ExpiryListener(store, sweep_interval=0.1, on_archived=delivered.append)
    graph = chat_graph(saver)
    config = {"configurable": {"thread_id": "support-42", "user_id": "carlos"}}
    try:
        async with running(listener):
            await graph.ainvoke({"messages": [HumanMessage("hola")]}, config)
            state = await graph.ainvoke({"messages": [HumanMessage("¿qué tal?")]}, config)
            assert [m.content for m in state["messages"]] == [
                "hola", "4 letters", "¿qué tal?", "9 letters"]
            thread = await store.run(find_thread, "support-42")
            assert thread is not None and thread.user_id == "carlos"
            assert await saver.aget_tuple(config) is not None
            await until(lambda: delivered, timeout=30, what="the idle thread was delivered")
        assert [c.session_id for c in delivered] == [thread.session_id]
        conversation = delivered[0]
        assert conversation.user_id == "carlos" and conversation.reason is ArchiveReason.IDLE
        assert [(m.role.value, m.content) for m in conversation.messages] == [
            ("user", "hola"), ("assistant", "4 letters"), ("user", "¿qué tal?"),
            ("assistant", "9 letters")]
        archived = await store.get_archived_conversation("carlos", thread.session_id)
        assert archived is not None
        assert [m.content for m in archived.messages] == [m.content for m in conversation.messages]
        assert await saver.aget_tuple(config) is None
        assert not any(raw.exists(key) for key in thread_keys(session_keys(thread.session_id)))
        # The thread id goes on: a new turn is a new session of the same user.
        state = await graph.ainvoke({"messages": [HumanMessage("otra vez")]}, config)
        assert [m.content for m in state["messages"]] == ["otra vez", "8 letters"]
        again = await store.run(find_thread, "support-42")
        assert again is not None and again.session_id != thread.session_id
    finally:
        await saver.aclose()
