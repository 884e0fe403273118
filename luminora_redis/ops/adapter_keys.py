"""The drop-in adapters' keys that name a user, laid out once for the adapters and for
``export_user`` / ``erase_user``, which must find them without importing the adapters.

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

A session's meta hash names its caller-chosen id (``lcid``, ``lgid``), so that an
erase finds the alias records of the user's sessions from the user's own keys.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple
from urllib.parse import quote

from luminora_redis.core.context import Context
from luminora_redis.core.keys import SessionKeys, UserKeys

__all__ = ["ThreadKeys", "lc_alias_keys", "lc_record_keys", "lg_tagged", "lg_thread_keys"]


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

