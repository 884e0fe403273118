"""The drop-in adapters' keys that name a user, laid out once for the adapters and for
``export_user`` / ``erase_user``, which must find them without importing the adapters;
and ``session_refs()`` / ``archived_refs()``, which read from a user's sessions and
archived conversations where those keys are.

Among the user's keys (the user's hash slot)::

    lr:{b}:u:<uid>:lc:a|f|e   the LuminoraCore adapter's affinity, fact and episode
                              records (``compat.lc_aliases``)
    lr:{b}:s:<sid>:lg:d|o|n   a LangGraph thread's checkpoints, their order and the ids
                              of the messages appended (``compat.langgraph.ops``)

and in slots of their own, hash-tagged by a hash of a caller-chosen id::

    lr:{c<hhhh>}:lc:s:<caller id>   alias of a LuminoraCore session id: sid, user
    lr:{c<hhhh>}:lc:m:<caller id>   mood saved under an id the store does not know
    lr:{c<hhhh>}:lg:t:<thread id>   alias of a LangGraph thread: sid, user
    lr:{c<hhhh>}:lg:r:<run id>      thread ids a LangGraph run wrote to

A session's meta hash names its caller-chosen id (``lcid``, ``lgid``), and archiving
copies both into the archived record (``lr:{b}:u:<uid>:a:<sid>``), so that an erase
finds the alias records of the user's sessions, live or archived, from the user's own
keys.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import NamedTuple
from urllib.parse import quote

from luminora_redis.core.context import Context
from luminora_redis.core.keys import SessionKeys, UserKeys
from luminora_redis.core.scripts import Call, Op

__all__ = ["SessionRefs", "ThreadKeys", "lc_alias_keys", "lc_record_keys", "lg_tagged",
           "archived_refs", "lg_thread_keys", "session_refs"]


class ThreadKeys(NamedTuple):
    """The checkpointer's keys of one session."""

    data: str
    order: str
    ids: str


def lc_record_keys(user: UserKeys) -> tuple[str, str, str]:
    """The LuminoraCore adapter's affinity, fact and episode record hashes of one user."""
    return f"{user.user}:lc:a", f"{user.user}:lc:f", f"{user.user}:lc:e"


def _caller_tag(ctx: Context, name: str) -> str:
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest()
    return f"{ctx.keys.prefix}:{{c{int.from_bytes(digest, 'big') % ctx.keys.buckets:04x}}}"


def lc_alias_keys(ctx: Context, caller_id: str) -> tuple[str, str]:
    """The alias record and the standalone mood key of a LuminoraCore session id."""
    base = f"{_caller_tag(ctx, caller_id)}:lc:"
    name = quote(caller_id, safe="")
    return f"{base}s:{name}", f"{base}m:{name}"


def lg_tagged(ctx: Context, kind: str, name: str) -> str:
    """A LangGraph thread's alias (``kind`` "t") or a run's record (``kind`` "r")."""
    return f"{_caller_tag(ctx, name)}:lg:{kind}:{quote(name, safe='')}"


def lg_thread_keys(keys: SessionKeys) -> ThreadKeys:
    """The LangGraph checkpointer's keys of one session."""
    base = f"{keys.session}:lg"
    return ThreadKeys(f"{base}:d", f"{base}:o", f"{base}:n")


class SessionRefs(NamedTuple):
    """What of the adapters' keys one session of a user leads to."""

    session_id: str
    caller_id: str | None
    thread_id: str | None
    run_ids: list[str]


def _run_ids(ctx: Context, keys: SessionKeys) -> Op[list[str]]:
    """The run ids a thread's checkpoints were written by, in HSCAN steps, each once."""
    found: dict[str, None] = {}
    cursor: bytes | str = "0"
    while True:
        reply = yield Call("lg_run_ids", (lg_thread_keys(keys).data,),
                           (cursor, ctx.settings.page_size))
        cursor = reply[0]
        found.update(dict.fromkeys(raw.decode() for raw in reply[1:]))
        if cursor in (b"0", "0"):
            return list(found)


def _refs(ctx: Context, sid: str, keys: SessionKeys, fields: dict[bytes, bytes]) -> Op[
        SessionRefs | None]:
    caller, thread = fields.get(b"lcid"), fields.get(b"lgid")
    if caller is None and thread is None:
        return None
    runs = (yield from _run_ids(ctx, keys)) if thread is not None else []
    return SessionRefs(sid, None if caller is None else caller.decode(),
                       None if thread is None else thread.decode(), runs)


def session_refs(ctx: Context, user_id: str, session_ids: Sequence[str]) -> Op[list[SessionRefs]]:
    """The caller-chosen ids (and a thread's run ids) of those of ``session_ids`` whose
    meta hash names ``user_id``: a page of at most ``page_size`` meta hashes per call."""
    refs: list[SessionRefs] = []
    page = ctx.settings.page_size
    for start in range(0, len(session_ids), page):
        chunk = [(sid, keys) for sid in session_ids[start:start + page]
                 if (keys := ctx.session_keys(sid)) is not None]
        if not chunk:
            continue
        metas = yield Call("read_hashes", [keys.meta for _, keys in chunk], ())
        for (sid, keys), flat in zip(chunk, metas):
            meta = dict(zip(flat[::2], flat[1::2]))
            if meta.get(b"user") != user_id.encode("utf-8"):
                continue
            ref = yield from _refs(ctx, sid, keys, meta)
            if ref is not None:
                refs.append(ref)
    return refs


def archived_refs(ctx: Context, user: UserKeys,
                  session_ids: Sequence[str]) -> Op[list[SessionRefs]]:
    """The caller-chosen ids the archived records of ``session_ids`` (conversations in
    ``user``'s archive) name, a page of at most ``page_size`` records per call. A thread's
    run ids come from its checkpoints, which stay until the session's own deadline when it
    was ended early (an expired thread's checkpoints expired with it)."""
    refs: list[SessionRefs] = []
    page = ctx.settings.page_size
    for start in range(0, len(session_ids), page):
        chunk = [(sid, keys) for sid in session_ids[start:start + page]
                 if (keys := ctx.session_keys(sid)) is not None]
        if not chunk:
            continue
        records = yield Call("read_hashes", [user.archived(sid)[0] for sid, _ in chunk], ())
        for (sid, keys), flat in zip(chunk, records):
            ref = yield from _refs(ctx, sid, keys, dict(zip(flat[::2], flat[1::2])))
            if ref is not None:
                refs.append(ref)
    return refs
