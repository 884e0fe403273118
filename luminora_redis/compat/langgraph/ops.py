"""The checkpointer's operations, sans-IO: a LangGraph thread as a luminora session.

A thread's keys sit beside its session's, in the user's slot, and expire with it::

    lr:{b}:s:<sid>:lg:d   HASH  "c" NUL ns NUL checkpoint id -> checkpoint record;
                                "w" NUL ns NUL checkpoint id NUL task id NUL index
                                -> pending write record (msgpack); "r" NUL ns NUL
                                checkpoint id -> the checkpoint's run id
    lr:{b}:s:<sid>:lg:o   ZSET  the same names, score 0: lex order groups a namespace's
                                checkpoints, oldest first, and a checkpoint's writes
    lr:{b}:s:<sid>:lg:n   HASH  message id -> 1: the messages already appended to the
                                session's history (one small field per message)

Every put, put_writes and get slides the session's idle deadline and gives these
keys the same ``PEXPIREAT`` in one script (``lg_put``, ``lg_put_writes``,
``lg_get``). The caller-chosen thread id names its session through an alias
record, and a LangGraph run id names the threads it wrote, each hash-tagged by a
hash of the id (as the LuminoraCore adapter's aliases are), so either routes on
Redis Cluster without knowing the user::

    lr:{c<hhhh>}:lg:t:<thread id>   HASH  sid, user; expires after the session's ttl
                                          plus a grace
    lr:{c<hhhh>}:lg:r:<run id>      HASH  thread id -> 1; expires like the aliases
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from luminora_redis.core.context import Context
from luminora_redis.core.errors import InvalidInput, ReplyCode, raise_for_status
from luminora_redis.core.keys import SessionKeys
from luminora_redis.core.scripts import Call, Op
from luminora_redis.core.settings import parse_session_config
from luminora_redis.ops import archive, sessions
from luminora_redis.ops.adapter_keys import ThreadKeys, lg_tagged, lg_thread_keys
from luminora_redis.ops.segments import follow_up

__all__ = ["Owner", "Stored", "Thread", "ThreadKeys", "copy_thread", "delete_thread",
           "drop_checkpoints", "find_thread", "get_checkpoint", "list_page", "put_checkpoint",
           "put_writes", "thread_keys", "threads_of_run"]

OK = ReplyCode.OK
#: How long an alias or run record outlives its session's absolute deadline, ms.
GRACE_MS = 60_000


@dataclass(frozen=True, slots=True)
class Thread:
    """The session that holds a thread, and its user."""

    session_id: str
    user_id: str


@dataclass(frozen=True, slots=True)
class Owner:
    """Who a new session of a thread belongs to, and its settings."""

    user_id: str | None
    personality_name: str
    session_config: dict[str, Any]


class Stored(NamedTuple):
    """A record read back: its name and bytes, with a checkpoint's writes."""

    name: str
    record: bytes
    writes: list[tuple[str, bytes]]


def thread_keys(keys: SessionKeys) -> ThreadKeys:
    return lg_thread_keys(keys)


def _tagged(ctx: Context, kind: str, name: str) -> str:
    return lg_tagged(ctx, kind, name)


def _session_keys(ctx: Context, thread: Thread) -> SessionKeys:
    keys = ctx.session_keys(thread.session_id)
    if keys is None:
        raise InvalidInput(f"the alias of a thread names no session of ours: {thread.session_id!r}")
    return keys


def find_thread(ctx: Context, thread_id: str) -> Op[Thread | None]:
    """The session that holds a thread, or None (it may have ended since)."""
    reply = yield Call("read_hashes", (_tagged(ctx, "t", thread_id),), ())
    fields = dict(zip(reply[0][::2], reply[0][1::2]))
    if b"sid" not in fields:
        return None
    return Thread(fields[b"sid"].decode(), fields[b"user"].decode())


def _new_session(ctx: Context, thread_id: str, user_id: str, owner: Owner,
                 replaces: str) -> Op[Thread]:
    """A fresh session for a thread, named by its alias unless a racing call named one
    first (then that one, and ours is deleted unseen)."""
    config = parse_session_config(ctx.settings, owner.session_config)
    session_id = yield from sessions.create_session(ctx, user_id, owner.personality_name, config)
    keys = ctx.session_keys(session_id)
    assert keys is not None
    # Before the alias names it, so that erase_user finds every alias of a live session.
    yield Call("lg_tag_session", (keys.meta,), (thread_id,))
    reply = yield Call("lg_alias", (_tagged(ctx, "t", thread_id),),
                       (session_id, user_id, config.ttl_ms + GRACE_MS, replaces))
    if reply[0] == OK:
        return Thread(session_id, user_id)
    yield from archive.delete_session(ctx, session_id)
    winner = Thread(reply[1].decode(), reply[2].decode())
    if winner.user_id != user_id:
        raise InvalidInput(f"thread {thread_id!r} belongs to another user")
    return winner


def _owner_of(ctx: Context, thread_id: str, thread: Thread | None, owner: Owner) -> str:
    """The user a thread's next session belongs to: checked before anything is written."""
    if owner.user_id is not None:
        user_id = ctx.user_id(owner.user_id)
        if thread is not None and thread.user_id != user_id:
            raise InvalidInput(f"thread {thread_id!r} belongs to another user")
        return user_id
    if thread is not None:
        return thread.user_id
    raise InvalidInput("a new thread needs its user: set config['configurable']['user_id'] "
                       "(or the saver's default_user_id)")


def _in_session(ctx: Context, thread_id: str, thread: Thread | None, user_id: str, owner: Owner,
                call: Callable[[Thread, SessionKeys], Call]
                ) -> Op[tuple[Thread, SessionKeys, Any]]:
    """Run ``call`` on the thread's live session (``thread``: as found); a thread without
    one (none yet, or ended) gets a new session of ``user_id`` first. LangGraph may send a
    step's writes before its checkpoint, so either may be a thread's first call."""
    replaces = ""
    for _ in range(3):
        if thread is None:
            thread = yield from _new_session(ctx, thread_id, user_id, owner, replaces)
        keys = _session_keys(ctx, thread)
        reply = yield call(thread, keys)
        if reply[0] == OK:
            return thread, keys, reply
        replaces, thread = thread.session_id, None
    raise_for_status(ReplyCode.EXPIRED, thread_id)


def put_checkpoint(ctx: Context, thread_id: str, owner: Owner, name: str, record: bytes,
                   prefix: str, keep: int, messages: Sequence[tuple[str, Any]],
                   run_id: str | None, note_run: bool = True,
                   known: tuple[str, frozenset[str]] | None = None) -> Op[Thread]:
    """Store a checkpoint (none when ``name`` is empty) and append the messages whose
    ids are new to the thread, in one script. ``messages``: (id, (role, content,
    metadata)) pairs. ``note_run``: record the run's thread for ``delete_for_runs``.
    ``known``: a session id and ids of messages already appended to it, left out of the
    call when the thread is still that session (the script skips known ids anyway; this
    keeps its loop to the new messages)."""
    encoded = list(zip([message_id for message_id, _ in messages],
                       sessions.encode_messages(ctx, [message for _, message in messages])))
    thread = yield from find_thread(ctx, thread_id)
    user_id = _owner_of(ctx, thread_id, thread, owner)
    if run_id is not None and note_run:
        config = parse_session_config(ctx.settings, owner.session_config)
        yield Call("lg_note_run", (_tagged(ctx, "r", run_id),),
                   (thread_id, config.ttl_ms + GRACE_MS))
    head: list[Any] = [ctx.settings.max_history, name, record, prefix, keep, run_id or ""]

    def call(current: Thread, keys: SessionKeys) -> Call:
        skip = known[1] if known is not None and known[0] == current.session_id else frozenset()
        args = head + [part for message_id, entry in encoded if message_id not in skip
                       for part in (message_id, entry)]
        return Call("lg_put", (*keys[:4], *thread_keys(keys)), args)

    thread, keys, reply = yield from _in_session(ctx, thread_id, thread, user_id, owner, call)
    yield from follow_up(ctx, keys, thread.session_id, reply[2])
    return thread


def put_writes(ctx: Context, thread_id: str, owner: Owner,
               writes: Sequence[tuple[str, bytes, bool]]) -> Op[None]:
    """Store pending writes: (name, record, replace) triples."""
    args = [part for write in writes for part in (write[0], write[1], "1" if write[2] else "0")]
    thread = yield from find_thread(ctx, thread_id)
    user_id = _owner_of(ctx, thread_id, thread, owner)
    yield from _in_session(ctx, thread_id, thread, user_id, owner,
                           lambda _, keys: Call("lg_put_writes", (*keys[:2], *thread_keys(keys)),
                                                args))


def get_checkpoint(ctx: Context, thread_id: str, name: str, prefix: str) -> Op[Stored | None]:
    """A checkpoint (the latest of the namespace when ``name`` is empty) with its writes,
    sliding the thread's idle deadline; None when the thread or checkpoint is gone."""
    thread = yield from find_thread(ctx, thread_id)
    if thread is None:
        return None
    keys = _session_keys(ctx, thread)
    reply = yield Call("lg_get", (*keys[:2], *thread_keys(keys)), (name, prefix))
    if reply[0] != OK or len(reply) < 4:
        return None
    rest = reply[4:]
    return Stored(reply[2].decode(), reply[3],
                  [(rest[i].decode(), rest[i + 1]) for i in range(0, len(rest), 2)])


def list_page(ctx: Context, thread: Thread, upper: bytes, lower: bytes,
              count: int) -> Op[list[Stored]]:
    """One page of a thread's checkpoints below ``upper`` (exclusive), newest first."""
    keys = _session_keys(ctx, thread)
    tk = thread_keys(keys)
    reply = yield Call("lg_list", (keys.session, tk.data, tk.order), (upper, lower, count))
    if reply[0] != OK:
        return []
    page: list[Stored] = []
    i = 1
    while i < len(reply):
        name, record, n = reply[i].decode(), reply[i + 1], int(reply[i + 2])
        writes = [(reply[i + 3 + 2 * j].decode(), reply[i + 4 + 2 * j]) for j in range(n)]
        page.append(Stored(name, record, writes))
        i += 3 + 2 * n
    return page


def drop_checkpoints(ctx: Context, thread_id: str, mode: str, run_ids: Sequence[str] = ()) -> Op[int]:
    """Remove checkpoints of a thread: ``all``, ``keep_latest`` or those of ``runs``."""
    thread = yield from find_thread(ctx, thread_id)
    if thread is None:
        return 0
    keys = _session_keys(ctx, thread)
    reply = yield Call("lg_drop", thread_keys(keys), (mode, *run_ids))
    return int(reply[1])


def threads_of_run(ctx: Context, run_id: str) -> Op[list[str]]:
    """The threads a run wrote checkpoints to (as recorded at put)."""
    reply = yield Call("read_hashes", (_tagged(ctx, "r", run_id),), ())
    return [field.decode() for field in reply[0][::2]]


def delete_thread(ctx: Context, thread_id: str) -> Op[bool]:
    """Drop the thread's checkpoints and writes, archive its session now (the same
    archive an expiry makes, delivered to ``on_archived`` the same way) and forget the
    thread id. False when the thread has no session."""
    thread = yield from find_thread(ctx, thread_id)
    if thread is None:
        return False
    keys = _session_keys(ctx, thread)
    yield Call("lg_drop", thread_keys(keys), ("thread",))
    yield from archive.end_session(ctx, thread.session_id)
    yield Call("lg_unalias", (_tagged(ctx, "t", thread_id),), (thread.session_id,))
    return True


def copy_thread(ctx: Context, source_id: str, target_id: str, owner: Owner) -> Op[Thread | None]:
    """Copy a thread's checkpoints and writes into another thread of the same user
    (made when missing); None when the source has no session."""
    source = yield from find_thread(ctx, source_id)
    if source is None:
        return None
    target = yield from find_thread(ctx, target_id)
    if target is not None and target.user_id != source.user_id:
        raise InvalidInput(f"thread {target_id!r} belongs to another user than {source_id!r}")
    source_keys = _session_keys(ctx, source)
    source_thread = thread_keys(source_keys)
    replaces = ""
    for _ in range(3):
        if target is None:
            target = yield from _new_session(ctx, target_id, source.user_id, owner, replaces)
        keys = _session_keys(ctx, target)
        reply = yield Call("lg_copy", (source_keys.session, source_thread.data, source_thread.order,
                                       keys.session, keys.meta, *thread_keys(keys)), ())
        if reply[0] == OK:
            return target
        replaces, target = target.session_id, None
    raise_for_status(ReplyCode.EXPIRED, target_id)
