"""The rules of sending script calls, written once for both shells (no I/O here).

A call is one EVALSHA (`command`). A batch is several calls written as one
pipelined write per node (`split`), every reply then read; the asyncio shell
(``autopipeline``) and the blocking one (``sync_runner``) do the I/O, and follow
these rules, each pinned by a test:

- **Each reply is its own call's.** Replies come back in the order of the calls
  of their node's write; `merge` puts a batch's back in the order of the batch.
  A Redis error reply is the reply of its call only.
- **What is sent again** (`after_error`): a NOSCRIPT (after ``SCRIPT FLUSH``, a
  restart, on a new primary) means the script did not run: load it and send the
  call again, once (``RELOAD``). On a cluster, MOVED, ASK or TRYAGAIN means it
  did not run on that node: rerun the call alone through the cluster client,
  which follows the redirection (``REROUTE``). Anything else is the call's
  outcome (``RAISE``).
- **A write is never replayed.** When the connection fails part-way, the calls
  answered before keep their replies and the rest fail with the error
  (`unanswered`): they may or may not have run, and only the operation knows
  whether running one again is safe. redis-py's ``Pipeline`` would retry the whole
  write instead. On a cluster such a failure may mean a node is gone
  (`connection_lost`): the client maps its slots again.
- **A primary turned replica** answers ``READONLY`` (`demoted`): the connection
  is dropped so that the next one reaches the new primary.
- **What is raised**: after every reply of the batch has been read, its first
  error (`first_error`); the operation sees its step fail.
- **A single call** is an EVALSHA of the known sha; on NOSCRIPT it goes through
  redis-py's ``Script`` (which loads the script and runs it) up to
  `SCRIPT_LOADS` times: Redis may restart between that load and its EVALSHA.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, TypeVar

from redis.exceptions import (
    AskError,
    MovedError,
    NoScriptError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)

__all__ = ["SCRIPT_LOADS", "Resend", "after_error", "command", "connection_lost", "demoted",
           "first_error", "merge", "split", "unanswered"]

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)

#: How many times a single call that met NOSCRIPT goes through ``Script``.
SCRIPT_LOADS = 2

_REROUTE = (MovedError, AskError, TryAgainError)


class Resend(enum.Enum):
    """What becomes of a call whose reply is an error."""

    RELOAD = "reload"  # load the script, send the call again (once)
    REROUTE = "reroute"  # rerun the call alone through the cluster client
    RAISE = "raise"  # the error is the call's outcome


def command(sha: str, keys: Sequence[Any], args: Sequence[Any]) -> tuple[Any, ...]:
    """The EVALSHA that runs the script ``sha`` with ``keys`` and ``args``."""
    return ("EVALSHA", sha, len(keys), *keys, *args)


def after_error(error: BaseException, *, retried: bool, cluster: bool) -> Resend:
    """What to do with a call whose reply is ``error``: ``retried`` when it was already
    sent again after a NOSCRIPT, ``cluster`` on Redis Cluster."""
    if isinstance(error, NoScriptError):
        return Resend.RAISE if retried else Resend.RELOAD
    if cluster and isinstance(error, _REROUTE):
        return Resend.REROUTE
    return Resend.RAISE


def connection_lost(error: BaseException) -> bool:
    """Whether a call's error says the write or the read failed (rather than Redis
    answering with an error): the calls may or may not have run, and the connection,
    perhaps the node, is gone."""
    return not isinstance(error, ResponseError)


def demoted(replies: Iterable[Any]) -> bool:
    """Whether a reply says the server became a replica (``READONLY``): a failover
    demoted the primary this connection reached, and the connection must go, so that
    the next one reaches the new primary (a ``master_for`` client asks the sentinels
    on connect)."""
    return any(isinstance(reply, ReadOnlyError) for reply in replies)


def unanswered(replies: list[Any], count: int, error: BaseException) -> list[Any]:
    """``replies`` of the first calls of a write of ``count`` calls, completed with
    ``error`` for the calls left unanswered when the connection failed."""
    replies.extend([error] * (count - len(replies)))
    return replies


def split(items: Sequence[T], node_of: Callable[[T], K]) -> dict[K, list[int]]:
    """The positions of ``items`` grouped by the node ``node_of`` names, each group in
    the order of the batch: one write per node."""
    groups: dict[K, list[int]] = {}
    for index, item in enumerate(items):
        groups.setdefault(node_of(item), []).append(index)
    return groups


def merge(count: int, parts: Iterable[tuple[Sequence[int], Sequence[Any]]]) -> list[Any]:
    """A batch of ``count`` calls' replies in the order of the batch, from each node's
    (positions, replies)."""
    replies: list[Any] = [None] * count
    for indexes, answers in parts:
        for index, reply in zip(indexes, answers, strict=True):
            replies[index] = reply
    return replies


def first_error(replies: Iterable[Any]) -> BaseException | None:
    """The error a batch raises once every reply is read: its first, if any."""
    for reply in replies:
        if isinstance(reply, BaseException):
            return reply
    return None
