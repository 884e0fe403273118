"""LuminoraChatMessageHistory: LangChain's chat history over a session, both ways, in a
RunnableWithMessageHistory with a fake chat model. langchain-tests has no standard
suite for chat histories, so this is ours."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("langchain_core", reason="langchain-core is not installed "
                                             "(pip install 'luminora-redis[langchain]')")

from langchain_core.language_models.fake_chat_models import FakeListChatModel  # noqa: E402
from langchain_core.messages import (  # noqa: E402
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder  # noqa: E402
from langchain_core.runnables import RunnableLambda  # noqa: E402
from langchain_core.runnables.history import RunnableWithMessageHistory  # noqa: E402

from luminora_redis import SessionNotFound, SessionStore, SyncSessionStore  # noqa: E402
from luminora_redis.compat.langchain import LuminoraChatMessageHistory  # noqa: E402
from luminora_redis.core.errors import ConfigurationError  # noqa: E402

MESSAGES: list[BaseMessage] = [
    SystemMessage("be kind", id="m0"),
    HumanMessage("hola", additional_kwargs={"lang": "es", "nested": {"n": [1, 2]}}, name="carlos"),
    AIMessage("¡hola!", additional_kwargs={"mood": "happy"}, response_metadata={"model": "x"},
              tool_calls=[{"name": "lookup", "args": {"q": "a"}, "id": "call1"}]),
    ToolMessage("42", tool_call_id="call1"),
    FunctionMessage("7", name="calc"),
    ChatMessage(role="assistant", content="as a chat message"),
    ChatMessage(role="narrator", content="a custom role"),
    HumanMessage([{"type": "text", "text": "look"}, {"type": "text", "text": " here"}]),
]
STORED_ROLES = ["system", "user", "assistant", "tool", "tool", "assistant", "user", "user"]


@pytest.fixture
def sync_store(store_url: str, topology: str) -> Iterator[SyncSessionStore]:
    store = SyncSessionStore.from_url(store_url, cluster=topology == "cluster")
    yield store
    store.close()


def test_messages_round_trip_with_roles_and_kwargs(sync_store: SyncSessionStore) -> None:
    sid = sync_store.create_session("carlos", "alicia")
    history = LuminoraChatMessageHistory(sid, sync_store=sync_store)
    assert history.messages == []
    history.add_messages(MESSAGES)
    assert history.messages == MESSAGES
    assert [m.role.value for m in sync_store.get_history(sid)] == STORED_ROLES
    assert sync_store.get_history(sid)[7].content == "look here"
    assert LuminoraChatMessageHistory(sid, sync_store=sync_store, last=2).messages == MESSAGES[-2:]


def test_messages_written_natively_read_by_role(sync_store: SyncSessionStore) -> None:
    sid = sync_store.create_session("carlos", "alicia")
    sync_store.chat_turn(sid, [("system", "s"), ("user", "u", {"k": 1}), ("assistant", "a"),
                               ("tool", "t")])
    assert LuminoraChatMessageHistory(sid, sync_store=sync_store).messages == [
        SystemMessage("s"), HumanMessage("u", additional_kwargs={"k": 1}), AIMessage("a"),
        ChatMessage(role="tool", content="t")]


def test_clear_keeps_the_session(sync_store: SyncSessionStore) -> None:
    sid = sync_store.create_session("carlos", "alicia")
    history = LuminoraChatMessageHistory(sid, sync_store=sync_store)
    history.add_user_message("hola")
    history.clear()
    assert history.messages == [] and sync_store.get_session(sid) is not None
    history.add_ai_message("again")
    assert history.messages == [AIMessage("again")]
    sync_store.end_session(sid)
    history.clear()  # nothing to do once the session has ended
    with pytest.raises(SessionNotFound):
        history.add_user_message("late")
    [archived] = sync_store.get_archived_conversations("carlos")
    assert [m.content for m in archived.messages] == ["again"]


async def test_async_methods(store_url: str, topology: str) -> None:
    store = SessionStore.from_url(store_url, cluster=topology == "cluster")
    try:
        sid = await store.create_session("carlos", "alicia")
        history = LuminoraChatMessageHistory(sid, store=store)
        await history.aadd_messages(MESSAGES[:3])
        assert await history.aget_messages() == MESSAGES[:3]
        await history.aclear()
        assert await history.aget_messages() == []
        with pytest.raises(ConfigurationError):
            history.messages  # noqa: B018 - no blocking store was given
    finally:
        await store.aclose()


# langchain-core 1.x deprecates RunnableWithMessageHistory (for LangGraph); it still
# ships and is what this history plugs into.
@pytest.mark.filterwarnings("ignore:RunnableWithMessageHistory is deprecated")
def test_runnable_with_message_history(sync_store: SyncSessionStore) -> None:
    sid = sync_store.create_session("carlos", "alicia")
    seen: list[int] = []

    def record(prompt: Any) -> Any:
        seen.append(len(prompt.to_messages()))
        return prompt

    prompt = ChatPromptTemplate.from_messages(
        [MessagesPlaceholder("history"), ("human", "{input}")])
    model = FakeListChatModel(responses=["¡hola, Carlos!", "muy bien"])
    chain = RunnableWithMessageHistory(
        prompt | RunnableLambda(record) | model,
        lambda session_id: LuminoraChatMessageHistory(session_id, sync_store=sync_store),
        input_messages_key="input", history_messages_key="history")
    config: Any = {"configurable": {"session_id": sid}}
    assert chain.invoke({"input": "hola"}, config=config).content == "¡hola, Carlos!"
    assert chain.invoke({"input": "¿qué tal?"}, config=config).content == "muy bien"
    assert seen == [1, 3]  # the second call saw the first turn
    assert [(m.role.value, m.content) for m in sync_store.get_history(sid)] == [
        ("user", "hola"), ("assistant", "¡hola, Carlos!"), ("user", "¿qué tal?"),
        ("assistant", "muy bien")]


def test_needs_a_store() -> None:
    with pytest.raises(ConfigurationError):
        LuminoraChatMessageHistory("0000-" + "0" * 32)
