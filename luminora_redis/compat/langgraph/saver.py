"""``LuminoraCheckpointSaver``: a LangGraph checkpointer whose threads are luminora sessions.

A thread is a session of ``config["configurable"]["user_id"]`` (a thread id is
never taken for a user id). Without one, a thread that exists keeps its owner, a
new one belongs to the saver's ``default_user_id``, and with none set the put
raises ``InvalidInput`` and writes nothing. The thread id is caller-chosen and
names its session through an alias record (``ops``), on Redis Cluster too.

Each ``put``, ``put_writes`` and ``get_tuple`` slides the session's idle
deadline and gives the thread's checkpoint keys the same expiry, in one script,
so the thread expires as a session does (``ttl``, ``max_idle``: the saver's, or
a thread's own from ``configurable`` at its first put). On each put, the new
messages of the root namespace's ``messages`` channel (new by message id) are
appended to the session's history in the same script, as role/content records:
human -> user, ai -> assistant, system -> system, tool (and function) -> tool;
each keeps LangChain's serialization of the rest (tool_calls, tool_call_id,
name, id) in its metadata under ``langchain``, as ``LuminoraChatMessageHistory``
stores it. So when the session expires the ``ExpiryListener`` archives the
conversation into the user's archive exactly once and delivers it to
``on_archived``, like any session; the checkpoints expire with it.
``delete_thread`` drops the checkpoints and archives the conversation at once
(the same archive and delivery, made now instead of at the deadline) and forgets
the thread id; ``store.end_session(sid)`` archives likewise, and the thread's
keys go at its next access or its deadline.

Values go through ``self.serde`` (LangGraph's ``SerializerProtocol``); pickle
never: a serializer with ``pickle_fallback`` is refused, and a stored record
typed ``pickle`` is refused on read. ``list`` reads pages of a thread and needs
its ``thread_id``; at most ``max_checkpoints`` checkpoints per thread and
namespace are kept (older ones are dropped, their messages stay in the history).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from luminora_redis.compat.langchain import _encode
from luminora_redis.compat.langgraph import ops
from luminora_redis.core.codec import pack, unpack
from luminora_redis.core.errors import ConfigurationError, InvalidInput
from luminora_redis.io.store import SessionStore
from luminora_redis.io.sync_store import SyncSessionStore

__all__ = ["LuminoraCheckpointSaver"]

_NUL = "\x00"
_PAGE = 50
_MESSAGES = "messages"


def _refuse_pickle(serde: object) -> None:
    for candidate in (serde, getattr(serde, "serde", None)):
        if getattr(candidate, "pickle_fallback", False):
            raise ConfigurationError("a serializer with pickle_fallback is refused: luminora-redis "
                                     "never stores pickles")


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or _NUL in value:
        raise InvalidInput(f"{what} must be a string without NUL characters, not {value!r:.60}")
    return value


def _seconds(value: object, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"{what} must be a number of seconds, not {value!r:.60}")
    return float(value)


class LuminoraCheckpointSaver(BaseCheckpointSaver[str]):
    """LangGraph's checkpointer on luminora-redis sessions (see the module docstring).

    ``store``: the ``SessionStore`` the async methods run on; ``sync_store``: the
    ``SyncSessionStore`` of the sync ones (either may be None, then those methods
    raise ``ConfigurationError``). ``ttl``/``max_idle``: a new thread's session
    settings, seconds (the store's defaults when None). ``default_user_id``: who
    owns a new thread whose config names no ``user_id``. ``personality_name``: the
    sessions' personality. ``max_checkpoints``: kept per thread and namespace.
    """

    def __init__(self, store: SessionStore | None = None, sync_store: SyncSessionStore | None = None,
                 *, ttl: float | None = None, max_idle: float | None = None,
                 default_user_id: str | None = None, personality_name: str = "langgraph",
                 max_checkpoints: int = 100, serde: SerializerProtocol | None = None) -> None:
        if store is None and sync_store is None:
            raise ConfigurationError("give store= (a SessionStore), sync_store= "
                                     "(a SyncSessionStore), or both")
        if store is not None and not isinstance(store, SessionStore):
            raise ConfigurationError("store must be a SessionStore (sync_store takes the "
                                     "SyncSessionStore)")
        if sync_store is not None and not isinstance(sync_store, SyncSessionStore):
            raise ConfigurationError("sync_store must be a SyncSessionStore")
        if isinstance(max_checkpoints, bool) or not isinstance(max_checkpoints, int) \
                or max_checkpoints < 1:
            raise ConfigurationError(f"max_checkpoints must be a positive int, not {max_checkpoints!r}")
        _refuse_pickle(serde)
        super().__init__(serde=serde)
        _refuse_pickle(self.serde)
        self.store = store
        self.sync_store = sync_store
        self.ttl = _seconds(ttl, "ttl")
        self.max_idle = _seconds(max_idle, "max_idle")
        self.default_user_id = default_user_id
        self.personality_name = personality_name
        self.max_checkpoints = max_checkpoints
        self._owned: list[SessionStore | SyncSessionStore] = []
        self._noted: tuple[str, str] | None = None

    @classmethod
    def from_url(cls, url: str, *, ttl: float | None = None, max_idle: float | None = None,
                 cluster: bool = False, default_user_id: str | None = None,
                 personality_name: str = "langgraph", max_checkpoints: int = 100,
                 serde: SerializerProtocol | None = None,
                 **store_settings: Any) -> LuminoraCheckpointSaver:
        """A saver with both stores of its own for ``url`` (``store_settings`` go to both);
        ``aclose()`` closes them (``close()`` the blocking one)."""
        sync_store = SyncSessionStore.from_url(url, cluster=cluster, **store_settings)
        store = SessionStore.from_url(url, cluster=cluster, **store_settings)
        saver = cls(store, sync_store, ttl=ttl, max_idle=max_idle, default_user_id=default_user_id,
                    personality_name=personality_name, max_checkpoints=max_checkpoints, serde=serde)
        saver._owned = [store, sync_store]
        return saver

    def close(self) -> None:
        """Close the blocking store if ``from_url`` made it."""
        for owned in self._owned:
            if isinstance(owned, SyncSessionStore):
                owned.close()

    async def aclose(self) -> None:
        """Close both stores if ``from_url`` made them."""
        for owned in self._owned:
            if isinstance(owned, SessionStore):
                await owned.aclose()
            else:
                owned.close()

    # -- shells -------------------------------------------------------------------

    def _sync(self) -> SyncSessionStore:
        if self.sync_store is None:
            raise ConfigurationError("this saver has no sync_store; use the async methods")
        return self.sync_store

    def _async(self) -> SessionStore:
        if self.store is None:
            raise ConfigurationError("this saver has no asyncio store; use the sync methods")
        return self.store

    # -- encoding -----------------------------------------------------------------

    def _dumps(self, value: Any) -> tuple[str, bytes]:
        return self.serde.dumps_typed(value)

    def _loads(self, kind: str, data: bytes) -> Any:
        if kind == "pickle":
            raise InvalidInput("a stored record is a pickle; luminora-redis never loads pickles")
        return self.serde.loads_typed((kind, data))

    @staticmethod
    def _where(config: RunnableConfig) -> tuple[str, str, str | None]:
        configurable = config.get("configurable") or {}
        if "thread_id" not in configurable:
            raise InvalidInput("config['configurable'] needs a thread_id")
        thread_id = _text(str(configurable["thread_id"]), "thread_id")
        ns = _text(configurable.get("checkpoint_ns", "") or "", "checkpoint_ns")
        checkpoint_id = get_checkpoint_id(config)
        if checkpoint_id is not None:
            _text(checkpoint_id, "checkpoint_id")
        return thread_id, ns, checkpoint_id

    def _owner(self, config: RunnableConfig) -> ops.Owner:
        configurable = config.get("configurable") or {}
        user_id = configurable.get("user_id", self.default_user_id)
        session_config: dict[str, Any] = {}
        for key, default in (("ttl", self.ttl), ("max_idle", self.max_idle)):
            value = _seconds(configurable.get(key, default), key)
            if value is not None:
                session_config[key] = value
        return ops.Owner(None if user_id is None else str(user_id), self.personality_name,
                         session_config)

    @staticmethod
    def _messages(values: Any) -> list[tuple[str, Any]]:
        if not isinstance(values, list):
            return []
        found = []
        for message in values:
            if not isinstance(message, BaseMessage):
                continue
            role, content, metadata = _encode(message)
            message_id = message.id or "h:" + hashlib.blake2b(
                pack([role, content, metadata], "message"), digest_size=16).hexdigest()
            found.append((message_id, (role, content, metadata)))
        return found

    def _put_args(self, config: RunnableConfig, checkpoint: Checkpoint,
                  metadata: CheckpointMetadata) -> tuple[Any, ...]:
        thread_id, ns, parent = self._where(config)
        checkpoint_id = _text(checkpoint["id"], "checkpoint id")
        full = get_checkpoint_metadata(config, metadata)
        run_id = full.get("run_id")
        ctype, cdata = self._dumps(checkpoint)
        mtype, mdata = self._dumps(full)
        record = pack([ctype, cdata, mtype, mdata, parent or ""], "checkpoint")
        messages = self._messages(checkpoint["channel_values"].get(_MESSAGES)) if ns == "" else []
        return (thread_id, self._owner(config), f"c{_NUL}{ns}{_NUL}{checkpoint_id}", record,
                f"c{_NUL}{ns}{_NUL}", self.max_checkpoints, messages,
                None if run_id is None else str(run_id))

    @staticmethod
    def _stored_config(config: RunnableConfig, checkpoint: Checkpoint) -> RunnableConfig:
        configurable = config["configurable"]
        return {"configurable": {"thread_id": configurable["thread_id"],
                                 "checkpoint_ns": configurable.get("checkpoint_ns", "") or "",
                                 "checkpoint_id": checkpoint["id"]}}

    def _writes_args(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]],
                     task_id: str, task_path: str
                     ) -> tuple[str, ops.Owner, list[tuple[str, bytes, bool]]]:
        thread_id, ns, checkpoint_id = self._where(config)
        if checkpoint_id is None:
            raise InvalidInput("put_writes needs config['configurable']['checkpoint_id']")
        _text(task_id, "task_id")
        triples = []
        for position, (channel, value) in enumerate(writes):
            index = WRITES_IDX_MAP.get(channel, position)
            kind, data = self._dumps(value)
            name = f"w{_NUL}{ns}{_NUL}{checkpoint_id}{_NUL}{task_id}{_NUL}{index}"
            triples.append((name, pack([channel, kind, data, task_path], "write"), index < 0))
        return thread_id, self._owner(config), triples

    def _tuple(self, thread_id: str, stored: ops.Stored) -> CheckpointTuple:
        _, ns, checkpoint_id = stored.name.split(_NUL, 2)
        ctype, cdata, mtype, mdata, parent = unpack(stored.record)
        checkpoint: Checkpoint = self._loads(ctype, cdata)
        versions = checkpoint.get("channel_versions", {})
        checkpoint = {**checkpoint, "channel_values": {
            key: value for key, value in checkpoint.get("channel_values", {}).items()
            if key in versions}}
        writes = []
        for name, record in stored.writes:
            _, _, _, task_id, index = name.split(_NUL, 4)
            channel, kind, data, task_path = unpack(record)
            writes.append((writes_sort_key(task_path, task_id, int(index)),
                           (task_id, channel, self._loads(kind, data))))
        writes.sort(key=lambda item: item[0])
        where = {"thread_id": thread_id, "checkpoint_ns": ns}
        return CheckpointTuple(
            config={"configurable": {**where, "checkpoint_id": checkpoint_id}},
            checkpoint=checkpoint, metadata=self._loads(mtype, mdata),
            parent_config={"configurable": {**where, "checkpoint_id": parent}} if parent else None,
            pending_writes=[write for _, write in writes])

    def _get_args(self, config: RunnableConfig) -> tuple[str, str, str]:
        thread_id, ns, checkpoint_id = self._where(config)
        name = "" if checkpoint_id is None else f"c{_NUL}{ns}{_NUL}{checkpoint_id}"
        return thread_id, name, f"c{_NUL}{ns}{_NUL}"

    def _list_plan(self, config: RunnableConfig | None,
                   before: RunnableConfig | None) -> tuple[str, bytes, bytes, str | None, str | None]:
        if config is None:
            raise InvalidInput("list reads one thread: give a config with its thread_id")
        thread_id, _, only = self._where(config)
        ns = (config.get("configurable") or {}).get("checkpoint_ns")
        before_id = None if before is None else get_checkpoint_id(before)
        if ns is None:
            return thread_id, b"(c\x00\xff", b"[c\x00", before_id, only
        head = f"c{_NUL}{_text(ns, 'checkpoint_ns')}{_NUL}".encode()
        upper = b"(" + head + (_text(before_id, "before").encode() if before_id else b"\xff")
        return thread_id, upper, b"[" + head, None, only

    @staticmethod
    def _keeps(item: CheckpointTuple, filter: dict[str, Any] | None, before_id: str | None,
               only: str | None) -> bool:
        checkpoint_id = item.checkpoint["id"]
        if only is not None and checkpoint_id != only:
            return False
        if before_id is not None and checkpoint_id >= before_id:
            return False
        return not filter or all(item.metadata.get(k) == v for k, v in filter.items())

    def _copy_messages(self, target_id: str, latest: ops.Stored | None, owner: ops.Owner
                       ) -> tuple[Any, ...] | None:
        if latest is None:
            return None
        values = self._tuple(target_id, latest).checkpoint["channel_values"]
        return (target_id, owner, "", b"", f"c{_NUL}{_NUL}", self.max_checkpoints,
                self._messages(values.get(_MESSAGES)), None)

    def _run_note(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        # A run writes many checkpoints to one thread: note it once per (run, thread).
        run_id = args[-1]
        if run_id is None or self._noted == (run_id, args[0]):
            return (*args, False)
        self._noted = (run_id, args[0])
        return (*args, True)

    # -- sync ---------------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        thread_id, name, prefix = self._get_args(config)
        stored = self._sync().run(ops.get_checkpoint, thread_id, name, prefix)
        return None if stored is None else self._tuple(thread_id, stored)

    def list(self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,
             before: RunnableConfig | None = None, limit: int | None = None
             ) -> Iterator[CheckpointTuple]:
        thread_id, upper, lower, before_id, only = self._list_plan(config, before)
        store = self._sync()
        thread = store.run(ops.find_thread, thread_id)
        if thread is None or limit == 0:
            return
        count = 0
        while True:
            page = store.run(ops.list_page, thread, upper, lower, _PAGE)
            for stored in page:
                item = self._tuple(thread_id, stored)
                if self._keeps(item, filter, before_id, only):
                    yield item
                    count += 1
                    if limit is not None and count >= limit:
                        return
            if len(page) < _PAGE:
                return
            upper = b"(" + page[-1].name.encode()

    def put(self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
            new_versions: ChannelVersions) -> RunnableConfig:
        self._sync().run(ops.put_checkpoint, *self._run_note(self._put_args(config, checkpoint,
                                                                            metadata)))
        return self._stored_config(config, checkpoint)

    def put_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str,
                   task_path: str = "") -> None:
        self._sync().run(ops.put_writes, *self._writes_args(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        self._sync().run(ops.delete_thread, _text(str(thread_id), "thread_id"))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        store = self._sync()
        for run_id in run_ids:
            for thread_id in store.run(ops.threads_of_run, _text(str(run_id), "run_id")):
                store.run(ops.drop_checkpoints, thread_id, "runs", [str(r) for r in run_ids])

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        store, owner = self._sync(), self._owner({})
        target = store.run(ops.copy_thread, _text(str(source_thread_id), "thread_id"),
                           _text(str(target_thread_id), "thread_id"), owner)
        if target is not None:
            latest = store.run(ops.get_checkpoint, str(target_thread_id), "", f"c{_NUL}{_NUL}")
            args = self._copy_messages(str(target_thread_id), latest, owner)
            if args is not None:
                store.run(ops.put_checkpoint, *args)

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        mode = self._prune_mode(strategy)
        for thread_id in thread_ids:
            self._sync().run(ops.drop_checkpoints, _text(str(thread_id), "thread_id"), mode)

    @staticmethod
    def _prune_mode(strategy: str) -> str:
        if strategy == "keep_latest":
            return "keep_latest"
        if strategy == "delete":
            return "all"
        raise InvalidInput(f"prune strategy must be 'keep_latest' or 'delete', not {strategy!r}")

    # -- async --------------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        thread_id, name, prefix = self._get_args(config)
        stored = await self._async().run(ops.get_checkpoint, thread_id, name, prefix)
        return None if stored is None else self._tuple(thread_id, stored)

    async def alist(self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,
                    before: RunnableConfig | None = None, limit: int | None = None
                    ) -> AsyncIterator[CheckpointTuple]:
        thread_id, upper, lower, before_id, only = self._list_plan(config, before)
        store = self._async()
        thread = await store.run(ops.find_thread, thread_id)
        if thread is None or limit == 0:
            return
        count = 0
        while True:
            page = await store.run(ops.list_page, thread, upper, lower, _PAGE)
            for stored in page:
                item = self._tuple(thread_id, stored)
                if self._keeps(item, filter, before_id, only):
                    yield item
                    count += 1
                    if limit is not None and count >= limit:
                        return
            if len(page) < _PAGE:
                return
            upper = b"(" + page[-1].name.encode()

    async def aput(self, config: RunnableConfig, checkpoint: Checkpoint,
                   metadata: CheckpointMetadata, new_versions: ChannelVersions) -> RunnableConfig:
        await self._async().run(ops.put_checkpoint,
                                *self._run_note(self._put_args(config, checkpoint, metadata)))
        return self._stored_config(config, checkpoint)

    async def aput_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]],
                          task_id: str, task_path: str = "") -> None:
        await self._async().run(ops.put_writes,
                                *self._writes_args(config, writes, task_id, task_path))

    async def adelete_thread(self, thread_id: str) -> None:
        await self._async().run(ops.delete_thread, _text(str(thread_id), "thread_id"))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        store = self._async()
        for run_id in run_ids:
            for thread_id in await store.run(ops.threads_of_run, _text(str(run_id), "run_id")):
                await store.run(ops.drop_checkpoints, thread_id, "runs", [str(r) for r in run_ids])

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        store, owner = self._async(), self._owner({})
        target = await store.run(ops.copy_thread, _text(str(source_thread_id), "thread_id"),
                                 _text(str(target_thread_id), "thread_id"), owner)
        if target is not None:
            latest = await store.run(ops.get_checkpoint, str(target_thread_id), "",
                                     f"c{_NUL}{_NUL}")
            args = self._copy_messages(str(target_thread_id), latest, owner)
            if args is not None:
                await store.run(ops.put_checkpoint, *args)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        mode = self._prune_mode(strategy)
        for thread_id in thread_ids:
            await self._async().run(ops.drop_checkpoints, _text(str(thread_id), "thread_id"), mode)
