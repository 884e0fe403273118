"""``LuminoraCheckpointSaver``: a LangGraph checkpointer whose threads are luminora sessions.

A thread is a session of ``config["configurable"]["user_id"]`` (a thread id is
never taken for a user id); a config naming another user than the thread's is
refused. Without one, a thread that exists keeps its owner, a new one belongs
to the saver's ``default_user_id``, and with none set the put raises
``InvalidInput`` and writes nothing. The thread id is caller-chosen and
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

Records are encoded in ``records``, through ``self.serde`` (LangGraph's
``SerializerProtocol``); pickle never: a serializer with ``pickle_fallback`` is
refused, and a stored record typed ``pickle`` is refused on read. ``list``
reads pages of a thread and needs its ``thread_id``; at most ``max_checkpoints`` checkpoints per thread and
namespace are kept (older ones are dropped, their messages stay in the history).
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from luminora_redis.compat.langgraph import ops
from luminora_redis.compat.langgraph.records import (
    MESSAGES,
    Records,
    checkpoint_name,
    conversation,
    keeps,
    list_plan,
    namespace_prefix,
    refuse_pickle,
    seconds,
    stored_config,
    text,
    where,
)
from luminora_redis.compat.store_pair import StorePair, open_stores
from luminora_redis.core.errors import ConfigurationError, InvalidInput
from luminora_redis.io.store import SessionStore
from luminora_redis.io.sync_store import SyncSessionStore

__all__ = ["LuminoraCheckpointSaver"]

#: Checkpoints per script reply of ``list``.
_PAGE = 50
_ROOT = namespace_prefix("")
#: Threads whose appended message ids a saver remembers, at most.
_REMEMBERED = 256


class LuminoraCheckpointSaver(StorePair, BaseCheckpointSaver[str]):
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
        self._use_stores(store, sync_store)
        if isinstance(max_checkpoints, bool) or not isinstance(max_checkpoints, int) \
                or max_checkpoints < 1:
            raise ConfigurationError(f"max_checkpoints must be a positive int, not {max_checkpoints!r}")
        refuse_pickle(serde)
        super().__init__(serde=serde)
        self._records = Records(self.serde)
        self.ttl = seconds(ttl, "ttl")
        self.max_idle = seconds(max_idle, "max_idle")
        self.default_user_id = default_user_id
        self.personality_name = personality_name
        self.max_checkpoints = max_checkpoints
        self._noted: tuple[str, str] | None = None
        # thread id -> (session id, ids of messages appended to it): a put leaves these
        # out, so that its script loops over the new messages only. Most recent last.
        self._appended: dict[str, tuple[str, frozenset[str]]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, *, ttl: float | None = None, max_idle: float | None = None,
                 cluster: bool = False, default_user_id: str | None = None,
                 personality_name: str = "langgraph", max_checkpoints: int = 100,
                 serde: SerializerProtocol | None = None,
                 **store_settings: Any) -> LuminoraCheckpointSaver:
        """A saver with both stores of its own for ``url`` (``store_settings`` go to both);
        ``aclose()`` closes them (``close()`` the blocking one)."""
        store, sync_store = open_stores(url, cluster=cluster, **store_settings)
        try:
            saver = cls(store, sync_store, ttl=ttl, max_idle=max_idle,
                        default_user_id=default_user_id, personality_name=personality_name,
                        max_checkpoints=max_checkpoints, serde=serde)
        except BaseException:
            sync_store.close()  # the asyncio store has opened no connection yet
            raise
        saver._use_stores(store, sync_store, owned=True)
        return saver

    # -- shells -------------------------------------------------------------------

    def _owner(self, config: RunnableConfig) -> ops.Owner:
        configurable = config.get("configurable") or {}
        user_id = configurable.get("user_id", self.default_user_id)
        session_config: dict[str, Any] = {}
        for key, default in (("ttl", self.ttl), ("max_idle", self.max_idle)):
            value = seconds(configurable.get(key, default), key)
            if value is not None:
                session_config[key] = value
        return ops.Owner(None if user_id is None else str(user_id), self.personality_name,
                         session_config)

    def _put_args(self, config: RunnableConfig, checkpoint: Checkpoint,
                  metadata: CheckpointMetadata) -> tuple[Any, ...]:
        plan = self._records.checkpoint(config, checkpoint, metadata)
        # A run writes many checkpoints to one thread: its thread is noted once (_noted is
        # set once a put with the note succeeded, by _remember).
        note = plan.run_id is not None and self._noted != (plan.run_id, plan.thread_id)
        known = self._appended.get(plan.thread_id) if plan.messages else None
        return (plan.thread_id, self._owner(config), plan.name, plan.record, plan.prefix,
                self.max_checkpoints, plan.messages, plan.run_id, note, known)

    def _remember(self, args: tuple[Any, ...], thread: ops.Thread) -> None:
        """After a put succeeded: its run is noted, its messages are in the session."""
        thread_id, messages, run_id, known = args[0], args[6], args[7], args[9]
        if run_id is not None:
            self._noted = (run_id, thread_id)
        if not messages:
            return
        before = known[1] if known is not None and known[0] == thread.session_id else frozenset()
        with self._lock:
            self._appended.pop(thread_id, None)
            self._appended[thread_id] = (thread.session_id,
                                         before | {message_id for message_id, _ in messages})
            if len(self._appended) > _REMEMBERED:
                del self._appended[next(iter(self._appended))]

    def _writes_args(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]],
                     task_id: str, task_path: str) -> tuple[Any, ...]:
        thread_id, triples = self._records.writes(config, writes, task_id, task_path)
        return thread_id, self._owner(config), triples

    @staticmethod
    def _get_args(config: RunnableConfig) -> tuple[str, str, str]:
        thread_id, ns, checkpoint_id = where(config)
        return (thread_id, "" if checkpoint_id is None else checkpoint_name(ns, checkpoint_id),
                namespace_prefix(ns))

    def _copy_messages(self, target_id: str, latest: ops.Stored | None, owner: ops.Owner
                       ) -> tuple[Any, ...] | None:
        if latest is None:
            return None
        values = self._records.to_tuple(target_id, latest).checkpoint["channel_values"]
        return (target_id, owner, "", b"", _ROOT, self.max_checkpoints,
                conversation(values.get(MESSAGES)), None)

    # -- sync ---------------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        thread_id, name, prefix = self._get_args(config)
        stored = self._sync().run(ops.get_checkpoint, thread_id, name, prefix)
        return None if stored is None else self._records.to_tuple(thread_id, stored)

    def list(self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,
             before: RunnableConfig | None = None, limit: int | None = None
             ) -> Iterator[CheckpointTuple]:
        thread_id, upper, lower, before_id, only = list_plan(config, before)
        store = self._sync()
        thread = store.run(ops.find_thread, thread_id)
        if thread is None or limit == 0:
            return
        count = 0
        while True:
            page = store.run(ops.list_page, thread, upper, lower, _PAGE)
            for stored in page:
                item = self._records.to_tuple(thread_id, stored)
                if keeps(item, filter, before_id, only):
                    yield item
                    count += 1
                    if limit is not None and count >= limit:
                        return
            if len(page) < _PAGE:
                return
            upper = b"(" + page[-1].name.encode()

    def put(self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
            new_versions: ChannelVersions) -> RunnableConfig:
        args = self._put_args(config, checkpoint, metadata)
        self._remember(args, self._sync().run(ops.put_checkpoint, *args))
        return stored_config(config, checkpoint)

    def put_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str,
                   task_path: str = "") -> None:
        self._sync().run(ops.put_writes, *self._writes_args(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        self._sync().run(ops.delete_thread, text(str(thread_id), "thread_id"))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        store = self._sync()
        for run_id in run_ids:
            for thread_id in store.run(ops.threads_of_run, text(str(run_id), "run_id")):
                store.run(ops.drop_checkpoints, thread_id, "runs", [str(r) for r in run_ids])

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        store, owner = self._sync(), self._owner({})
        target = store.run(ops.copy_thread, text(str(source_thread_id), "thread_id"),
                           text(str(target_thread_id), "thread_id"), owner)
        if target is not None:
            latest = store.run(ops.get_checkpoint, str(target_thread_id), "", _ROOT)
            args = self._copy_messages(str(target_thread_id), latest, owner)
            if args is not None:
                store.run(ops.put_checkpoint, *args)

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        mode = self._prune_mode(strategy)
        for thread_id in thread_ids:
            self._sync().run(ops.drop_checkpoints, text(str(thread_id), "thread_id"), mode)

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
        return None if stored is None else self._records.to_tuple(thread_id, stored)

    async def alist(self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,
                    before: RunnableConfig | None = None, limit: int | None = None
                    ) -> AsyncIterator[CheckpointTuple]:
        thread_id, upper, lower, before_id, only = list_plan(config, before)
        store = self._async()
        thread = await store.run(ops.find_thread, thread_id)
        if thread is None or limit == 0:
            return
        count = 0
        while True:
            page = await store.run(ops.list_page, thread, upper, lower, _PAGE)
            for stored in page:
                item = self._records.to_tuple(thread_id, stored)
                if keeps(item, filter, before_id, only):
                    yield item
                    count += 1
                    if limit is not None and count >= limit:
                        return
            if len(page) < _PAGE:
                return
            upper = b"(" + page[-1].name.encode()

    async def aput(self, config: RunnableConfig, checkpoint: Checkpoint,
                   metadata: CheckpointMetadata, new_versions: ChannelVersions) -> RunnableConfig:
        args = self._put_args(config, checkpoint, metadata)
        self._remember(args, await self._async().run(ops.put_checkpoint, *args))
        return stored_config(config, checkpoint)

    async def aput_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]],
                          task_id: str, task_path: str = "") -> None:
        await self._async().run(ops.put_writes,
                                *self._writes_args(config, writes, task_id, task_path))

    async def adelete_thread(self, thread_id: str) -> None:
        await self._async().run(ops.delete_thread, text(str(thread_id), "thread_id"))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        store = self._async()
        for run_id in run_ids:
            for thread_id in await store.run(ops.threads_of_run, text(str(run_id), "run_id")):
                await store.run(ops.drop_checkpoints, thread_id, "runs", [str(r) for r in run_ids])

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        store, owner = self._async(), self._owner({})
        target = await store.run(ops.copy_thread, text(str(source_thread_id), "thread_id"),
                                 text(str(target_thread_id), "thread_id"), owner)
        if target is not None:
            latest = await store.run(ops.get_checkpoint, str(target_thread_id), "",
                                     _ROOT)
            args = self._copy_messages(str(target_thread_id), latest, owner)
            if args is not None:
                await store.run(ops.put_checkpoint, *args)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        mode = self._prune_mode(strategy)
        for thread_id in thread_ids:
            await self._async().run(ops.drop_checkpoints, text(str(thread_id), "thread_id"), mode)
