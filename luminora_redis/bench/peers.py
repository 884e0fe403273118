"""The peer libraries, each doing the benchmark's turn through its own public API as its
documentation shows it: add the user and the assistant message, read the last 10.

Each needs its package from the ``bench`` extra; a missing one raises ``Unavailable``
with the install line. Where a library builds one object per conversation, the object is
built when the session is prepared (untimed), so the turn measures only the turn.
"""

from __future__ import annotations

import importlib
import uuid
import warnings
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from luminora_redis.bench import workload as w
from luminora_redis.bench.servers import JSON_MODULE, SEARCH_MODULE
from luminora_redis.bench.systems import Facts, System, Unavailable


def _require(module: str, package: str) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(module)
    except ImportError as missing:
        raise Unavailable(f"{package} is not installed ({missing}); "
                          "pip install 'luminora-redis[bench]'") from None


def _versions(*packages: str) -> dict[str, str]:
    out = {}
    for package in packages:
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            pass
    return out


class LangchainRedis(System):
    """langchain-redis ``RedisChatMessageHistory``: one RedisJSON document per message,
    indexed by RediSearch; reads sort the session's documents by timestamp."""

    name, label, api, floor = ("langchain-redis", "langchain-redis RedisChatMessageHistory",
                               "blocking", "floor-blocking")
    facts = Facts(
        "add_messages: one JSON.SET per message (pipelined) with EXPIRE when a ttl is set; "
        "messages: one FT.SEARCH of the session's documents sorted by timestamp (the whole "
        "conversation: there is no window), of which the last 10 are kept",
        "per message",
        "each message document expires on its own, ttl after it was written (writing does "
        "not refresh older ones): the conversation thins out from its oldest message; "
        "nothing is archived",
        (JSON_MODULE, SEARCH_MODULE))

    @classmethod
    def check(cls) -> None:
        _require("langchain_redis", "langchain-redis")

    def versions(self) -> dict[str, str]:
        return _versions("langchain-redis", "langchain-core", "redisvl")

    def open(self) -> None:
        import redis

        self.module = _require("langchain_redis", "langchain-redis")
        messages = _require("langchain_core.messages", "langchain-core")
        self.human, self.ai = messages.HumanMessage, messages.AIMessage
        # RESP2: with RESP3 replies, langchain-redis 0.2 fails to read an existing index's
        # FT.INFO (a map, where it expects a list) when a second history is built.
        self.client = redis.Redis.from_url(self.url, protocol=2)
        self.index = f"{self.prefix}:idx"

    def sessions(self, n: int) -> list[Any]:
        return [self.module.RedisChatMessageHistory(
            uuid.uuid4().hex, redis_client=self.client, key_prefix=f"{self.prefix}:",
            index_name=self.index, ttl=w.TTL_SECONDS) for _ in range(n)]

    def turn(self, history: Any, i: int) -> Any:
        history.add_messages([self.human(content=w.USER[i]), self.ai(content=w.ASSISTANT[i])])
        return history.messages[-w.LAST:]

    def close(self) -> None:
        try:
            self.client.execute_command("FT.DROPINDEX", self.index)
        except Exception:  # noqa: BLE001, S110 - the index may not exist
            pass
        self.client.close()


class RedisVL(System):
    """redisvl ``MessageHistory``: one hash per message, indexed by RediSearch;
    ``get_recent`` asks the index for the session's newest ``top_k``."""

    name, label, api, floor = ("redisvl", "redisvl MessageHistory", "blocking",
                               "floor-blocking")
    facts = Facts(
        "store(prompt, response): one pipelined HSET per message (2); get_recent(top_k=10): "
        "one FT.SEARCH of the session's newest 10 by timestamp",
        "none",
        "nothing expires: messages stay until clear() or delete() is called",
        (SEARCH_MODULE,))

    @classmethod
    def check(cls) -> None:
        _require("redisvl.extensions.message_history", "redisvl")

    def versions(self) -> dict[str, str]:
        return _versions("redisvl")

    def open(self) -> None:
        import redis

        module = _require("redisvl.extensions.message_history", "redisvl")
        self.client = redis.Redis.from_url(self.url)
        self.history = module.MessageHistory(f"{self.prefix}idx", prefix=self.prefix,
                                             redis_client=self.client)

    def sessions(self, n: int) -> list[str]:
        return [uuid.uuid4().hex for _ in range(n)]

    def turn(self, session: str, i: int) -> Any:
        self.history.store(w.USER[i], w.ASSISTANT[i], session_tag=session)
        return self.history.get_recent(top_k=w.LAST, session_tag=session)

    def close(self) -> None:
        try:
            self.history.delete()
        finally:
            self.client.close()


class LlamaIndex(System):
    """llama-index ``RedisChatStore`` (llama-index-storage-chat-store-redis): one list of
    JSON messages per chat key; its asyncio API."""

    name, label, api, floor = ("llama-index", "llama-index RedisChatStore", "asyncio",
                               "floor-async")
    facts = Facts(
        "async_add_message twice: RPUSH + EXPIRE each; aget_messages: LRANGE 0 -1 (the "
        "whole conversation: there is no window), of which the last 10 are kept",
        "native",
        "the list expires ttl after the last message: the conversation is gone, nothing "
        "is archived")

    @classmethod
    def check(cls) -> None:
        _require("llama_index.storage.chat_store.redis", "llama-index-storage-chat-store-redis")

    def versions(self) -> dict[str, str]:
        return _versions("llama-index-storage-chat-store-redis", "llama-index-core")

    async def open(self) -> None:
        module = _require("llama_index.storage.chat_store.redis",
                          "llama-index-storage-chat-store-redis")
        llms = _require("llama_index.core.llms", "llama-index-core")
        self.message = llms.ChatMessage
        self.store = module.RedisChatStore(redis_url=self.url, ttl=w.TTL_SECONDS)

    async def sessions(self, n: int) -> list[str]:
        return [f"{self.prefix}:{uuid.uuid4().hex}" for _ in range(n)]

    async def turn(self, key: str, i: int) -> Any:
        await self.store.async_add_message(key, self.message(role="user", content=w.USER[i]))
        await self.store.async_add_message(key, self.message(role="assistant",
                                                             content=w.ASSISTANT[i]))
        return (await self.store.aget_messages(key))[-w.LAST:]

    async def close(self) -> None:
        client = getattr(self.store, "_aredis_client", None)
        if client is not None:
            await client.aclose()
        sync = getattr(self.store, "_redis_client", None)
        if sync is not None:
            sync.close()


class LangchainCommunity(System):
    """langchain-community ``RedisChatMessageHistory``: one list of JSON messages per
    session, newest first."""

    name, label, api, floor = ("langchain-community",
                               "langchain-community RedisChatMessageHistory", "blocking",
                               "floor-blocking")
    facts = Facts(
        "add_messages: LPUSH + EXPIRE per message (4 round trips); messages: LRANGE 0 -1 "
        "(the whole conversation), of which the last 10 are kept",
        "native",
        "the list expires ttl after the last message: the conversation is gone, nothing "
        "is archived")

    @classmethod
    def check(cls) -> None:
        _require("langchain_community.chat_message_histories", "langchain-community")

    def versions(self) -> dict[str, str]:
        return _versions("langchain-community", "langchain-core")

    def open(self) -> None:
        import redis

        self.module = _require("langchain_community.chat_message_histories",
                               "langchain-community")
        messages = _require("langchain_core.messages", "langchain-core")
        self.human, self.ai = messages.HumanMessage, messages.AIMessage
        self.client = redis.Redis.from_url(self.url)

    def sessions(self, n: int) -> list[Any]:
        histories = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(n):
                history = self.module.RedisChatMessageHistory(
                    uuid.uuid4().hex, url=self.url, key_prefix=f"{self.prefix}:",
                    ttl=w.TTL_SECONDS)
                # One shared client: each history would otherwise hold a pool of its own.
                history.redis_client.close()
                history.redis_client = self.client
                histories.append(history)
        return histories

    def turn(self, history: Any, i: int) -> Any:
        history.add_messages([self.human(content=w.USER[i]), self.ai(content=w.ASSISTANT[i])])
        return history.messages[-w.LAST:]

    def close(self) -> None:
        self.client.close()
