"""Erasing a user: every key of theirs, in bounded chunks, safe against racing writers.

Sessions go first, each in one atomic step with its session hash and meta
hash (so a racing ``chat_turn`` lands before or fails, and no listener can
archive it afterwards) and a LangGraph thread's checkpoint keys; then the
archived conversations; then the LangGraph store's items; then, once no
session and no archived conversation is left, the user's memory with the
LuminoraCore adapter's records beside it. Every step is idempotent and the
indexes that find the rest are emptied only as what they list is erased, so
running the erase again after a crash completes it.

The drop-in adapters keep records in slots of their own, hash-tagged by a
caller-chosen id (``adapter_keys``): the alias of a LuminoraCore session id or
of a LangGraph thread, and a LangGraph run's list of threads. A session's meta
hash names its caller-chosen id, and archiving copies it into the archived
record, so before a chunk of sessions or of archived conversations is erased
their aliases are removed (one call each, in that id's slot, only while the
alias still names that session of that user) and the user's threads leave the
records of the runs that wrote them; an archived thread's checkpoint keys, left
until its session's deadline when it was ended early, go next. Those calls are
not atomic with the chunk's erase; they run first, so a crash between them
leaves the session (or archived record) that names them, and a rerun finds the
rest. The run ids come from a thread's checkpoints: those of a thread archived
by expiry expired with it, so a run record naming such a thread is not found,
and expires on its own, at most the session's ttl plus a grace after the run
(``export_user`` and ``erase_user`` in the README).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from luminora_redis.core.context import Context
from luminora_redis.core.errors import LuminoraRedisError, ReplyCode
from luminora_redis.core.keys import UserKeys
from luminora_redis.core.scripts import Batch, Call, Op
from luminora_redis.ops.adapter_keys import (
    SessionRefs,
    archived_refs,
    lc_alias_keys,
    lc_record_keys,
    lg_tagged,
    lg_thread_keys,
    session_refs,
)
from luminora_redis.ops.records import owns_session
from luminora_redis.ops.store_items import erase_items

__all__ = ["bucket_side_keys", "erase_user"]

#: Sessions or conversations erased per script call, at most.
ERASE_CHUNK = 100
#: Keys declared per erase call, at most (segments count too), beyond the first item.
ERASE_KEYS = 1000
#: Rounds of "erase sessions, erase the archive, erase the memory" before giving up:
#: only a client that keeps starting sessions for the user could need a second one.
ERASE_ROUNDS = 100


def bucket_side_keys(ctx: Context, bucket: int) -> tuple[str, str, str, str, str]:
    """The bucket's sweep failures and quarantine, and its delivery outbox: bodies and dead."""
    tag = ctx.keys.tag(bucket)
    return (f"{tag}:failures", f"{tag}:quarantine", f"{tag}:outbox", f"{tag}:outbox:d",
            f"{tag}:outbox:dead")


def _chunks(items: list[tuple[str, int]], per_item: int) -> list[tuple[str, int]]:
    """The first items of a page that fit in one bounded erase call."""
    chosen: list[tuple[str, int]] = []
    keys = 0
    for session_id, segments in items[:ERASE_CHUNK]:
        cost = per_item + max(segments, 0)
        if chosen and keys + cost > ERASE_KEYS:
            break
        chosen.append((session_id, segments))
        keys += cost
    return chosen


def _erase_indexed(index: str, script: str, head: Sequence[str], lead: Sequence[Any],
                   per_item: int, item_keys: Callable[[str, int], list[str]],
                   first_guess: Callable[[str], int],
                   prepare: Callable[[list[str]], Op[int]] | None = None) -> Op[int]:
    """Erase what ``index`` (a ZSET of session ids) lists, a bounded chunk per ``script`` call,
    until it is empty. A call leaves alone (and names) an item with more segments than
    declared; the next call declares them. ``prepare`` runs on each chunk's ids first."""
    declared: dict[str, int] = {}
    removed = 0
    while True:
        reply = yield Call("range_zset", (index,), ("asc", ERASE_CHUNK, "", "", ""))
        page = [raw.decode() for raw in reply[3:]]
        if not page:
            return removed
        keys: list[str] = list(head)
        args: list[Any] = list(lead)
        items = [(sid, declared.get(sid, first_guess(sid))) for sid in page]
        chosen = _chunks(items, per_item)
        if prepare is not None:
            removed += yield from prepare([sid for sid, segments in chosen if segments >= 0])
        for sid, segments in chosen:
            keys += item_keys(sid, segments)
            args += [sid, segments]
        reply = yield Call(script, keys, args)
        removed += int(reply[0])
        for sid, segments in zip(reply[1::2], reply[2::2]):
            declared[sid.decode()] = int(segments)


def _erase_sessions(ctx: Context, user_id: str, user: UserKeys, bucket: int) -> Op[int]:
    deadlines, manual = ctx.keys.index(bucket)

    def keys_of(session_id: str, segments: int) -> list[str]:
        session = ctx.session_keys(session_id)
        if segments < 0 or session is None:
            return []
        return [session.session, session.meta, session.history, session.overflow,
                session.summary, *lg_thread_keys(session), *user.segments(session_id, segments)]

    def refs(session_ids: list[str]) -> Op[int]:
        return (yield from _erase_refs(ctx, user_id, session_ids))

    # -1: not a session id of this user's bucket; only its index entry goes.
    return (yield from _erase_indexed(
        user.sessions, "erase_sessions",
        (user.sessions, deadlines, manual, *bucket_side_keys(ctx, bucket)), (user_id,), 8,
        keys_of, lambda sid: 0 if owns_session(ctx, user_id, sid) else -1, refs))


def _erase_refs(ctx: Context, user_id: str, session_ids: list[str]) -> Op[int]:
    """Remove the aliases of these sessions of the user, and their threads from the records
    of runs, each in its own slot (one pipeline per node): the keys removed."""
    return (yield from _erase_aliases(ctx, user_id,
                                      (yield from session_refs(ctx, user_id, session_ids))))


def _erase_aliases(ctx: Context, user_id: str, refs: list[SessionRefs]) -> Op[int]:
    calls: list[Call] = []
    for ref in refs:
        if ref.caller_id is not None:
            calls.append(Call("erase_alias", lc_alias_keys(ctx, ref.caller_id),
                              (ref.session_id, user_id)))
        if ref.thread_id is not None:
            calls.append(Call("erase_alias", (lg_tagged(ctx, "t", ref.thread_id),),
                              (ref.session_id, user_id)))
            calls.extend(Call("erase_run_threads", (lg_tagged(ctx, "r", run_id),),
                              (ref.thread_id,)) for run_id in ref.run_ids)
    if not calls:
        return 0
    return sum(int(reply) for reply in (yield Batch(calls)))


def _erase_archive(ctx: Context, user_id: str, user: UserKeys, bucket: int) -> Op[int]:
    def refs(session_ids: list[str]) -> Op[int]:
        found = yield from archived_refs(ctx, user, session_ids)
        removed = yield from _erase_aliases(ctx, user_id, found)
        # Only once the run records have forgotten the threads: their ids are read here.
        calls = [Call("erase_thread_keys", lg_thread_keys(keys), ())
                 for ref in found
                 if ref.thread_id is not None
                 and (keys := ctx.session_keys(ref.session_id)) is not None]
        if calls:
            removed += sum(int(reply) for reply in (yield Batch(calls)))
        return removed

    return (yield from _erase_indexed(
        user.archive, "erase_archived", (user.archive, *bucket_side_keys(ctx, bucket)), (), 3,
        lambda sid, segments: [*user.archived(sid), *user.segments(sid, segments)],
        lambda sid: 0, refs))


def erase_user(ctx: Context, user_id: object) -> Op[int]:
    """Erase every key of one user (see ``SessionStore.erase_user``); the keys removed."""
    user_id = ctx.user_id(user_id)
    user = ctx.keys.user(user_id)
    bucket = ctx.keys.bucket_of_user(user_id)
    removed = 0
    for _ in range(ERASE_ROUNDS):
        removed += yield from _erase_sessions(ctx, user_id, user, bucket)
        removed += yield from _erase_archive(ctx, user_id, user, bucket)
        removed += yield from erase_items(ctx, user_id)
        reply = yield Call("erase_memory", (user.sessions, user.archive, user.user, user.affinity,
                                            user.facts, user.episodes, user.episode_bodies,
                                            user.evolution, *lc_record_keys(user)), ())
        if reply[0] == ReplyCode.OK:
            return removed + int(reply[1])
    raise LuminoraRedisError(
        f"user {user_id!r} kept getting new sessions during {ERASE_ROUNDS} erase rounds; "
        f"stop the clients that start them and erase again (what was erased stays erased)")
