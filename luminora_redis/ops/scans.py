"""Scanning the deadline indexes (and the outboxes): what is due, and when the rest is.

Every bucket keeps its sessions' deadlines in sorted sets (``lr:{b}:deadlines``
for auto_cleanup sessions, ``lr:{b}:manual`` for the others) and its pending
deliveries in another (``lr:{b}:outbox``). The sweeper, ``get_expired_sessions``,
``cleanup_expired_sessions``, the operator's overview and the delivery loop all
ask the same two questions of them, answered here: which entries' scores have
passed on the server clock, and when each bucket's earliest remaining entry is
due. Archiving what was found is ``archive``; delivering it is ``outbox``.

A deadline index score is a lower bound of its session's deadline (a chat turn
slides the deadline without touching the index), so a due entry may be a
session still live: ``expired_sessions`` checks each with ``read_meta.lua``,
which raises a live session's entry to its real deadline.

So that a sweep need not ask every bucket, each bucket's earliest deadline also
has a hint (a lower bound) in a due-bucket hint key: writers that add a deadline
lower it (`create_hinted`), the sweeper takes the passed ones (`take_hints`) and
puts back each bucket's next score (`lower_hints`). See
``luminora_redis.listener.sweeper`` for why this order loses no deadline. Which
keys is the context's (``ctx.hints``, ``core.keys.HintKeys``): on a single
server the 16 group keys ``<prefix>:{h<g>}:due`` (g = bucket mod 16), all taken
in one call; on a cluster one key per primary node (``io/hint_slots.py``), so a
take is one call per node, and a bucket's hint goes to the key of the node
serving the bucket. The sweeper's full scan (every bucket) also empties the
hint keys no longer read (`scan_due`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from luminora_redis.core.context import Context
from luminora_redis.core.keys import SessionKeys
from luminora_redis.core.scripts import Batch, Call, Op, alongside

__all__ = [
    "HINT_MARGIN_MS",
    "MAX_ROUNDS",
    "PROBE_FROM",
    "SCAN_CHUNK",
    "SWEEP_BATCH",
    "COMING",
    "DueBuckets",
    "DueScan",
    "earliest_scores",
    "expired_sessions",
    "create_hinted",
    "lower_hints",
    "read_meta",
    "scan_due",
    "scan_sets",
    "take_and_scan",
    "take_hints",
]

#: Index entries asked of one bucket per scan, at most.
SWEEP_BATCH = 500


def read_meta(keys: SessionKeys, session_id: str) -> Call:
    """The call that names a session's owner from its meta hash, drops an index entry
    whose meta hash is gone, and raises a live session's entry to its real deadline
    (``read_meta.lua``): the first step of every archive path."""
    return Call("read_meta", (keys.meta, keys.deadlines, keys.manual, keys.session),
                (session_id,))


@dataclass(frozen=True, slots=True)
class DueScan:
    """What one scan of the deadline indexes (or outboxes) found."""

    session_ids: list[str]
    #: Some index held more than the batch of due sessions: scan again.
    more: bool
    #: The server clock (ms) at the scan.
    now_ms: int
    #: Bucket -> its earliest score (ms) still ahead, for buckets that have one (the
    #: auto_cleanup index only: it is what the sweeper archives). A deadline index
    #: score is a lower bound of the session's deadline (see ``expired_sessions``).
    next_deadlines: dict[int, int]


#: Scans of more buckets than this first ask for every bucket's earliest score in one
#: script call (``scan_buckets.lua``; a single server), then call
#: ``due_sessions`` only on the buckets that have something due; scans of fewer
#: buckets (the schedule's, which knows them to be due) call it on each at once.
PROBE_FROM = 16
#: Keys per ``scan_buckets`` call: bounds the time one call holds the server.
SCAN_CHUNK = 1024


def earliest_scores(ctx: Context, keys: Sequence[str],
                    sparse: bool = False) -> Op[tuple[int, list[int]] | None]:
    """The server clock and each sorted set's earliest score (-1 when empty), in one
    ``scan_buckets`` call per 1024 keys; None on a cluster, where that cannot run, for
    the caller to ask each bucket instead. ``sparse``: most keys are missing (the
    outboxes), so each is asked whether it exists first (``scan_buckets.lua``).

    On a cluster Redis refuses a script whose declared keys span hash slots
    (CROSSSLOT), even with ``allow-cross-slot-keys``, which lifts the check only for
    keys a script reaches without declaring them; every key a script touches is
    declared, so a cluster keeps one call per bucket, pipelined per node."""
    if not ctx.scan_scripts or not keys:
        return None
    calls, parts = [], []
    for start in range(0, len(keys), SCAN_CHUNK):
        parts.append(range(start, min(len(keys), start + SCAN_CHUNK)))
        calls.append(Call("scan_buckets", keys[start:start + SCAN_CHUNK],
                          ("sparse",) if sparse else ()))
    replies = yield Batch(calls)
    earliest = [-1] * len(keys)
    now = 0
    for part, reply in zip(parts, replies):
        now = max(now, int(reply[0]))
        for index, score in zip(part, reply[1:]):
            earliest[index] = int(score)
    return now, earliest


def scan_due(ctx: Context, buckets: Iterable[int] | None = None, manual: bool = False,
             batch: int = SWEEP_BATCH) -> Op[DueScan]:
    """Index entries whose score has passed, from the given buckets' indexes (all when
    None), in one round trip per node (two when more than ``PROBE_FROM`` buckets are
    asked: their earliest scores first). With ``manual`` the auto_cleanup=False index
    is read too. Scores are lower bounds: an entry may be a session still live.

    A scan of every bucket's auto_cleanup index (``manual`` False: the sweeper's full
    sweep) also takes the passed entries of the hint keys no longer read
    (``HintKeys.retired``: on a cluster, keys a reshard or the 16-key layout left
    behind), in the same round trip: it has seen each of their buckets itself, and
    so they empty as their entries pass. ``get_expired_sessions`` (``manual``) stays
    a read, which Redis serves over ``maxmemory`` and to a read-only user."""
    chosen = list(range(ctx.keys.buckets) if buckets is None else buckets)
    every = (not manual and len(chosen) >= ctx.keys.buckets
             and len(set(chosen)) == ctx.keys.buckets)
    return (yield from scan_sets(ctx, [(bucket, key) for bucket in chosen
                                       for key in ctx.keys.index(bucket)[:2 if manual else 1]],
                                 batch, ctx.hints.retired() if every else ()))


def scan_sets(ctx: Context, targets: Sequence[tuple[int, str]], batch: int,
              retired: Sequence[str] = (), sparse: bool = False) -> Op[DueScan]:
    """``scan_due`` over (bucket, sorted set) pairs: the first set named for a bucket is
    the one whose next score the scan reports. ``retired`` hint keys have their passed
    entries taken in the same round trip as the scan; ``sparse`` as `earliest_scores`."""
    ahead: dict[int, int] = {}
    first: set[int] = set()
    owned = []
    for bucket, key in targets:
        owned.append((bucket if bucket not in first else -1, key))
        first.add(bucket)
    now = 0
    if len(owned) > PROBE_FROM:
        found = yield from earliest_scores(ctx, [key for _, key in owned], sparse)
        if found is not None:
            now, earliest = found
            due = []
            for (owner, key), score in zip(owned, earliest):
                if 0 <= score < now:
                    due.append((owner, key))
                elif score >= 0 and owner >= 0:
                    ahead[owner] = score
            owned = due
    calls = [Call("due_sessions", (key,), (batch,)) for _, key in owned]
    calls.extend(Call("take_hints", (key,), (ctx.keys.buckets, 0, 0)) for key in retired)
    replies = (yield Batch(calls)) if calls else []
    found_ids: list[str] = []
    more = False
    for (owner, _), reply in zip(owned, replies):
        now = max(now, reply[0])
        if owner >= 0 and reply[1] >= 0:
            ahead[owner] = reply[1]
        more = more or len(reply) - 2 >= batch
        found_ids.extend(raw.decode() for raw in reply[2:])
    return DueScan(found_ids, more, now, ahead)


#: Rounds of `expired_sessions` that may each find only sessions still live.
MAX_ROUNDS = 100


def expired_sessions(ctx: Context, manual: bool = True, batch: int = SWEEP_BATCH,
                     limit: int | None = None) -> Op[tuple[list[str], bool]]:
    """Expired sessions not archived yet (their session hash is gone), from every bucket,
    earliest first per bucket, and whether more may wait (at most ``limit`` of them).

    An index score is a lower bound of its session's deadline (a chat turn slides
    the deadline without touching the index), so each entry whose score has passed
    is checked by ``read_meta``: a live session's entry is raised to its real
    deadline there, and an entry without a session is dropped. Both leave the due
    range, so the scan is repeated while it found such entries and more wait."""
    found: dict[str, None] = {}
    for _ in range(MAX_ROUNDS):
        scan = yield from scan_due(ctx, None, manual, batch)
        checked = [(sid, keys) for sid in scan.session_ids
                   if (keys := ctx.session_keys(sid)) is not None]
        metas = (yield Batch([read_meta(keys, sid) for sid, keys in checked])
                 ) if checked else []
        settled = len(scan.session_ids)
        for (sid, _), meta in zip(checked, metas):
            if meta[0] is not None and not meta[5]:
                found[sid] = None
                settled -= 1
        if not scan.more or settled == 0 or (limit is not None and len(found) >= limit):
            return list(found)[:limit], scan.more
    return list(found)[:limit], True


# --------------------------------------------------------------------------- #
# The due-bucket hints
# --------------------------------------------------------------------------- #

#: How far below a new deadline its hint goes on a cluster: the hint is computed on the
#: clock of the hint key's node, after the deadline was indexed on another node (whose
#: clock may differ). An early hint costs one look at the bucket, which then learns the
#: exact score. On a single server the hint is the index entry's own score.
HINT_MARGIN_MS = 1000


def create_hinted(ctx: Context, create: Call, bucket: int, in_ms: int) -> Op[Any]:
    """Run ``create`` (a ``create_session`` call that adds a deadline ``in_ms`` from now
    to ``bucket``'s index) and lower the bucket's hint; ``create``'s reply. On a single
    server the script lowers the hint itself (its key declared with the others: one
    atomic call, the exact deadline); on a cluster, where the hint key is of another
    slot (on the same node: the key of the node serving the bucket), a ``lower_hints``
    call rides in the same round trip, right after it, with ``in_ms`` from its node's
    clock less `HINT_MARGIN_MS`."""
    hint = ctx.hints.of_bucket(bucket)
    if ctx.scan_scripts:
        return (yield Call(create.script, (*create.keys, hint), (*create.args, bucket)))
    replies = yield Batch([create, Call("lower_hints", (hint,),
                                        ("rel", in_ms - HINT_MARGIN_MS, bucket))])
    return replies[0]


def lower_hints(ctx: Context, scores: dict[int, int]) -> Op[None]:
    """Lower the hints of the given buckets to the given absolute scores (ms, server
    clock; never raised), one ``lower_hints`` call per hint key: on a cluster at most
    one per node, in one round trip per node."""
    groups: dict[str, list[int]] = {}
    of_bucket = ctx.hints.of_bucket
    for bucket, score in sorted(scores.items()):
        groups.setdefault(of_bucket(bucket), []).extend((score, bucket))
    if groups:
        yield Batch([Call("lower_hints", (key,), ("abs", *pairs))
                     for key, pairs in groups.items()])


@dataclass(frozen=True, slots=True)
class DueBuckets:
    """What one `take_hints` found: the buckets whose hint had passed (their hints are
    gone now), the earliest hint still ahead, and the earliest hints coming soon."""

    buckets: list[int]
    #: The server clock (ms) at the take (on a cluster, the latest node's).
    now_ms: int
    #: The earliest hint left (ms, server clock; with a horizon, within it), or None when
    #: there is none.
    next_ms: int | None
    #: Bucket -> its hint (ms, server clock), of the earliest hints within the horizon
    #: the take was asked for (they are left in place): the earliest few of each hint
    #: key, the earliest of all among them.
    coming: dict[int, int] = field(default_factory=dict)


#: How many of the hints coming a take reports, at most: the earliest of each hint key's
#: share (``take_hints.lua``), then the earliest of those.
COMING = 32


def take_hints(ctx: Context, horizon_ms: int = 0) -> Op[DueBuckets]:
    """Take every passed hint, and read up to `COMING` of the earliest hints within
    ``horizon_ms`` (nothing beyond it: the caller takes again before it passes):
    one ``take_hints`` call over all the hint keys on a single server; on a cluster one
    call per node, on that node's hint key. The calls per sweep depend on the number of
    nodes, not of buckets."""
    keys = ctx.hints.to_take()
    args = (ctx.keys.buckets, max(0, horizon_ms), COMING if horizon_ms > 0 else 0)
    calls = ([Call("take_hints", keys, args)] if ctx.scan_scripts
             else [Call("take_hints", (key,), args) for key in keys])
    replies = (yield Batch(calls)) if calls else []
    buckets: list[int] = []
    coming: list[tuple[int, int]] = []
    now, ahead = 0, -1
    for reply in replies:
        now = max(now, int(reply[0]))
        if int(reply[1]) >= 0 and (ahead < 0 or int(reply[1]) < ahead):
            ahead = int(reply[1])
        taken = 3 + int(reply[2])
        buckets.extend(int(bucket) for bucket in reply[3:taken])
        coming.extend((int(reply[i + 1]), int(reply[i])) for i in range(taken, len(reply), 2))
    coming.sort()
    known = {bucket: score for score, bucket in coming[:COMING] if bucket < ctx.keys.buckets}
    return DueBuckets(sorted({bucket for bucket in buckets if bucket < ctx.keys.buckets}),
                      now, ahead if ahead >= 0 else None, known)


def take_and_scan(ctx: Context, buckets: Sequence[int], horizon_ms: int,
                  batch: int = SWEEP_BATCH) -> Op[tuple[DueBuckets, DueScan | None]]:
    """`take_hints`, and on a single server `scan_due` of ``buckets`` (known to have a
    hint passed) in the same round trip, after the take (one connection runs them in
    order, which is what keeps a deadline from falling between them; see
    ``luminora_redis.listener.sweeper``). On a cluster the take and a scan run on
    different nodes in no set order: the scan waits for the take (None here)."""
    if not ctx.scan_scripts or not buckets:
        return (yield from take_hints(ctx, horizon_ms)), None
    return (yield from alongside(take_hints(ctx, horizon_ms),
                                 scan_due(ctx, buckets, False, batch)))
