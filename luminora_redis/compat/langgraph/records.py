"""How the checkpointer names and encodes a thread's records, and reads them back.

A checkpoint is stored as the msgpack array ``[checkpoint type, checkpoint bytes,
metadata type, metadata bytes, parent checkpoint id]``, a pending write as
``[channel, value type, value bytes, task path]``: the typed pairs are what
``serde.dumps_typed`` made (LangGraph's ``SerializerProtocol``). Their names in
the thread's keys (see ``ops``) carry the namespace, the checkpoint id and, for a
write, its task id and index, so none may contain NUL. Pickle is refused both
ways: a serializer with ``pickle_fallback`` cannot be used, and a record typed
``pickle`` is never loaded.

The conversation of a checkpoint is its ``messages`` channel in the root
namespace, as the role/content records ``LuminoraChatMessageHistory`` stores
(``luminora_redis.compat.langchain``): each keeps LangChain's serialization of
the rest of the message (tool calls, tool call id, name, id) in its metadata.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, NamedTuple

from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from luminora_redis.compat.langchain import _encode
from luminora_redis.compat.langgraph.ops import Stored
from luminora_redis.core.codec import pack, unpack
from luminora_redis.core.errors import ConfigurationError, InvalidInput

__all__ = ["CheckpointPlan", "ListPlan", "Records", "checkpoint_name", "conversation", "keeps",
           "list_plan", "namespace_prefix", "refuse_pickle", "seconds", "stored_config", "text",
           "where"]

NUL = "\x00"
MESSAGES = "messages"


class CheckpointPlan(NamedTuple):
    """A checkpoint encoded for ``ops.put_checkpoint``."""

    thread_id: str
    name: str
    record: bytes
    prefix: str
    messages: list[tuple[str, Any]]
    run_id: str | None


class ListPlan(NamedTuple):
    """What ``list`` reads: a thread, a lex range of names, and filters applied here."""

    thread_id: str
    upper: bytes
    lower: bytes
    before_id: str | None
    only: str | None


def refuse_pickle(serde: object) -> None:
    """A ``ConfigurationError`` for a serializer (or the one it wraps) that may pickle."""
    for candidate in (serde, getattr(serde, "serde", None)):
        if getattr(candidate, "pickle_fallback", False):
            raise ConfigurationError("a serializer with pickle_fallback is refused: luminora-redis "
                                     "never stores pickles")


def text(value: object, what: str) -> str:
    if not isinstance(value, str) or NUL in value:
        raise InvalidInput(f"{what} must be a string without NUL characters, not {value!r:.60}")
    return value


def seconds(value: object, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"{what} must be a number of seconds, not {value!r:.60}")
    return float(value)


def where(config: RunnableConfig) -> tuple[str, str, str | None]:
    """The thread id, namespace and checkpoint id (None: the latest) a config names."""
    configurable = config.get("configurable") or {}
    if "thread_id" not in configurable:
        raise InvalidInput("config['configurable'] needs a thread_id")
    thread_id = text(str(configurable["thread_id"]), "thread_id")
    ns = text(configurable.get("checkpoint_ns", "") or "", "checkpoint_ns")
    checkpoint_id = get_checkpoint_id(config)
    if checkpoint_id is not None:
        text(checkpoint_id, "checkpoint_id")
    return thread_id, ns, checkpoint_id


def namespace_prefix(ns: str) -> str:
    return f"c{NUL}{ns}{NUL}"


def checkpoint_name(ns: str, checkpoint_id: str) -> str:
    return f"c{NUL}{ns}{NUL}{checkpoint_id}"


def conversation(values: Any) -> list[tuple[str, Any]]:
    """The messages of a ``messages`` channel as (id, (role, content, metadata)). A message
    without an id (``add_messages`` gives each one) is named by its role and content."""
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


def stored_config(config: RunnableConfig, checkpoint: Checkpoint) -> RunnableConfig:
    configurable = config["configurable"]
    return {"configurable": {"thread_id": configurable["thread_id"],
                             "checkpoint_ns": configurable.get("checkpoint_ns", "") or "",
                             "checkpoint_id": checkpoint["id"]}}


def list_plan(config: RunnableConfig | None, before: RunnableConfig | None) -> ListPlan:
    """A thread's names to list, newest first: of its namespace when the config names one
    (``before`` then bounds the range), else of all (``before`` then filters)."""
    if config is None:
        raise InvalidInput("list reads one thread: give a config with its thread_id")
    thread_id, _, only = where(config)
    ns = (config.get("configurable") or {}).get("checkpoint_ns")
    before_id = None if before is None else get_checkpoint_id(before)
    if ns is None:
        return ListPlan(thread_id, b"(c\x00\xff", b"[c\x00", before_id, only)
    head = namespace_prefix(text(ns, "checkpoint_ns")).encode()
    upper = b"(" + head + (text(before_id, "before").encode() if before_id else b"\xff")
    return ListPlan(thread_id, upper, b"[" + head, None, only)


def keeps(item: CheckpointTuple, filter: dict[str, Any] | None, before_id: str | None,
          only: str | None) -> bool:
    """Whether a listed checkpoint passes ``list``'s filters."""
    checkpoint_id = item.checkpoint["id"]
    if only is not None and checkpoint_id != only:
        return False
    if before_id is not None and checkpoint_id >= before_id:
        return False
    return not filter or all(item.metadata.get(k) == v for k, v in filter.items())


class Records:
    """Encoding and decoding through one serializer."""

    def __init__(self, serde: SerializerProtocol) -> None:
        refuse_pickle(serde)
        self.serde = serde

    def loads(self, kind: str, data: bytes) -> Any:
        if kind == "pickle":
            raise InvalidInput("a stored record is a pickle; luminora-redis never loads pickles")
        return self.serde.loads_typed((kind, data))

    def checkpoint(self, config: RunnableConfig, checkpoint: Checkpoint,
                   metadata: CheckpointMetadata) -> CheckpointPlan:
        thread_id, ns, parent = where(config)
        checkpoint_id = text(checkpoint["id"], "checkpoint id")
        full = get_checkpoint_metadata(config, metadata)
        run_id = full.get("run_id")
        ctype, cdata = self.serde.dumps_typed(checkpoint)
        mtype, mdata = self.serde.dumps_typed(full)
        record = pack([ctype, cdata, mtype, mdata, parent or ""], "checkpoint")
        messages = conversation(checkpoint["channel_values"].get(MESSAGES)) if ns == "" else []
        return CheckpointPlan(thread_id, checkpoint_name(ns, checkpoint_id), record,
                              namespace_prefix(ns), messages,
                              None if run_id is None else str(run_id))

    def writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str,
               task_path: str) -> tuple[str, list[tuple[str, bytes, bool]]]:
        """The thread and (name, record, replace) of each write; a special channel's
        write (errors, interrupts: a negative index) replaces the stored one."""
        thread_id, ns, checkpoint_id = where(config)
        if checkpoint_id is None:
            raise InvalidInput("put_writes needs config['configurable']['checkpoint_id']")
        text(task_id, "task_id")
        triples = []
        for position, (channel, value) in enumerate(writes):
            index = WRITES_IDX_MAP.get(channel, position)
            kind, data = self.serde.dumps_typed(value)
            name = f"w{NUL}{ns}{NUL}{checkpoint_id}{NUL}{task_id}{NUL}{index}"
            triples.append((name, pack([channel, kind, data, task_path], "write"), index < 0))
        return thread_id, triples

    def to_tuple(self, thread_id: str, stored: Stored) -> CheckpointTuple:
        """A stored checkpoint and its writes as LangGraph reads them: channel values of
        the channels it versions, writes in the order a step applies them."""
        _, ns, checkpoint_id = stored.name.split(NUL, 2)
        ctype, cdata, mtype, mdata, parent = unpack(stored.record)
        checkpoint: Checkpoint = self.loads(ctype, cdata)
        versions = checkpoint.get("channel_versions", {})
        checkpoint = {**checkpoint, "channel_values": {
            key: value for key, value in checkpoint.get("channel_values", {}).items()
            if key in versions}}
        writes = []
        for name, record in stored.writes:
            _, _, _, task_id, index = name.split(NUL, 4)
            channel, kind, data, task_path = unpack(record)
            writes.append((writes_sort_key(task_path, task_id, int(index)),
                           (task_id, channel, self.loads(kind, data))))
        writes.sort(key=lambda item: item[0])
        at = {"thread_id": thread_id, "checkpoint_ns": ns}
        return CheckpointTuple(
            config={"configurable": {**at, "checkpoint_id": checkpoint_id}},
            checkpoint=checkpoint, metadata=self.loads(mtype, mdata),
            parent_config={"configurable": {**at, "checkpoint_id": parent}} if parent else None,
            pending_writes=[write for _, write in writes])
