"""``LuminoraChatMessageHistory``: a LangChain chat history backed by a luminora-redis session.

Needs the ``luminora-redis[langchain]`` extra (``langchain-core``). Unlike
langchain-redis's deprecated ``RedisChatMessageHistory`` it needs plain Redis
(no Redis Stack), and the history is a session of ours: reading and adding
slide its idle deadline, it expires natively, and the ``ExpiryListener``
archives the conversation into its user's archive.

``session_id`` is a session of ours (``store.create_session(...)``). Sync
methods run on a ``SyncSessionStore`` and async ones on a ``SessionStore``;
give either or both (``from_url`` makes both). Each message is stored with
its role (human -> user, ai -> assistant, system -> system, tool and
function -> tool, a ``ChatMessage`` with one of those roles as itself, any
other as user) and, in its metadata under ``langchain``, LangChain's own
serialization of everything but the content (type, ``additional_kwargs``,
``response_metadata``, name, id, tool calls), so a message reads back as the
same LangChain message. Messages stored without it (by ``chat_turn``, say)
read back by role, their metadata as ``additional_kwargs``. A session that
is no longer live raises ``SessionNotFound``/``SessionExpired`` on reads and
adds, as the store does; ``clear`` empties a live session's conversation and
does nothing to one that has ended.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    message_to_dict,
    messages_from_dict,
)

from luminora_redis.compat.store_pair import StorePair, open_stores
from luminora_redis.core.context import Context
from luminora_redis.core.errors import ReplyCode
from luminora_redis.core.models import Message, Role
from luminora_redis.core.scripts import Call, Op
from luminora_redis.io.store import SessionStore
from luminora_redis.io.sync_store import SyncSessionStore

__all__ = ["LuminoraChatMessageHistory"]

_TAG = "langchain"
_ROLES = {role.value for role in Role}


def _role(message: BaseMessage) -> str:
    if isinstance(message, HumanMessage):
        return "user"
    if isinstance(message, AIMessage):
        return "assistant"
    if isinstance(message, SystemMessage):
        return "system"
    if isinstance(message, (ToolMessage, FunctionMessage)):
        return "tool"
    if isinstance(message, ChatMessage) and message.role in _ROLES:
        return message.role
    return "user"


def _encode(message: BaseMessage) -> tuple[str, str, dict[str, Any]]:
    """A LangChain message as (role, content, metadata) for the store."""
    data = dict(message_to_dict(message)["data"])
    content = data.pop("content")
    if not isinstance(content, str):
        data["content"] = content  # multimodal parts; the stored text is their text
        content = "".join(part if isinstance(part, str) else str(part.get("text", ""))
                          for part in content
                          if isinstance(part, str) or part.get("type") == "text")
    return _role(message), content, {_TAG: {"type": message.type, "data": data}}


_BY_ROLE: dict[Role, type[BaseMessage]] = {
    Role.USER: HumanMessage, Role.ASSISTANT: AIMessage, Role.SYSTEM: SystemMessage}


def _decode(message: Message) -> BaseMessage:
    stored = (message.metadata or {}).get(_TAG)
    if isinstance(stored, dict) and "type" in stored:
        data = {"content": message.content, **stored["data"]}
        return messages_from_dict([{"type": stored["type"], "data": data}])[0]
    extra = dict(message.metadata or {})
    if message.role in _BY_ROLE:
        return _BY_ROLE[message.role](content=message.content, additional_kwargs=extra)
    return ChatMessage(role=message.role.value, content=message.content, additional_kwargs=extra)


def clear_history(ctx: Context, session_id: object) -> Op[bool]:
    """Empty a live session's conversation; False when it is not live."""
    keys = ctx.session_keys(session_id)
    if keys is None:
        return False
    reply = yield Call("compat_clear_history", (keys.session, keys.history, keys.overflow,
                                                 keys.summary), ())
    return bool(reply[0] == ReplyCode.OK)


class LuminoraChatMessageHistory(StorePair, BaseChatMessageHistory):
    """The conversation of one luminora-redis session as a LangChain chat history.

    ``last``: how many of the newest messages ``messages`` returns (all live
    ones when None).
    """

    def __init__(self, session_id: str, *, sync_store: SyncSessionStore | None = None,
                 store: SessionStore | None = None, last: int | None = None) -> None:
        self._use_stores(store, sync_store)
        self.session_id = session_id
        self.last = last

    @classmethod
    def from_url(cls, url: str, session_id: str, *, cluster: bool = False,
                 last: int | None = None, **settings: Any) -> LuminoraChatMessageHistory:
        """A history with both stores of its own for ``url``; ``close``/``aclose`` them."""
        store, sync_store = open_stores(url, cluster=cluster, **settings)
        history = cls(session_id, sync_store=sync_store, store=store, last=last)
        history._use_stores(store, sync_store, owned=True)
        return history

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """The conversation, oldest first; reading it slides the idle deadline."""
        return [_decode(m) for m in self._sync().get_history(self.session_id, self.last)]

    async def aget_messages(self) -> list[BaseMessage]:
        return [_decode(m) for m in await self._async().get_history(self.session_id, self.last)]

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append the messages atomically (one round trip); slides the idle deadline."""
        if messages:
            self._sync().append_messages(self.session_id, [_encode(m) for m in messages])

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        if messages:
            await self._async().append_messages(self.session_id, [_encode(m) for m in messages])

    def clear(self) -> None:
        """Empty the conversation; the session stays live."""
        self._sync().run(clear_history, self.session_id)

    async def aclear(self) -> None:
        await self._async().run(clear_history, self.session_id)
