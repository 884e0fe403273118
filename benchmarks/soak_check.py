"""The soak's invariant checker: reads the whole keyspace and the sink after the drain.

``check`` classifies every key by the layout of ``luminora_redis.keys`` (plus the
outbox and heartbeat keys of the delivery layout), follows every index entry, decodes
every stored message, and compares what is stored with what the clients were told
(``Ledger``) and what the sink received. Invariants that fail go to
``Report.problems``; deviations from the contract that break no invariant of the
soak go to ``Report.findings``.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import redis

from benchmarks._common import table
from luminora_redis import ArchivedConversation
from luminora_redis.codec import decode_message
from luminora_redis.frames import unpack_frame

__all__ = ["Ledger", "Report", "check", "has_idempotency_key", "outstanding"]

PREFIX = "lr"
SINK_KEY = "deliveries"


def has_idempotency_key() -> bool:
    """Whether archives carry an idempotency key (and deliveries are at least once)."""
    return "idempotency_key" in ArchivedConversation.model_fields


@dataclass
class Ledger:
    """What the clients know happened."""

    sessions: set[str] = field(default_factory=set)
    sessions_unknown: int = 0
    acked: set[str] = field(default_factory=set)
    unknown: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)
    #: Refusals of calls that overlapped a connection-breaking fault (in ``unknown``).
    refused_in_fault: int = 0
    ended: int = 0
    errors: Counter[str] = field(default_factory=Counter)


TAG = r"\{b[0-9a-f]{4}\}"
SID = r"[0-9a-f]{4}-[0-9a-f]{32}"
LAYOUT = [
    ("layout", re.compile(rf"{PREFIX}:layout")),
    ("listeners", re.compile(rf"{PREFIX}:listeners")),
    ("sweep lease", re.compile(rf"{PREFIX}:sweeper")),
    ("bucket", re.compile(rf"{PREFIX}:{TAG}:(deadlines|manual|outbox|outbox:d|outbox:dead|"
                          rf"failures|quarantine)")),
    ("session", re.compile(rf"{PREFIX}:({TAG}):s:({SID})(:m|:h|:o)?")),
    ("archived", re.compile(rf"{PREFIX}:({TAG}):u:([^:]+):a:({SID})(:h|:o|:g:\d+)?")),
    ("user", re.compile(rf"{PREFIX}:({TAG}):u:([^:]+)(:sessions|:affinity|:facts|:episodes|"
                        rf":episodes:b|:evolution|:archive)?")),
]


@dataclass
class Report:
    """The soak's figures; ``problems`` lists every invariant that failed."""

    seconds: float = 0.0
    figures: dict[str, int] = field(default_factory=dict)
    faults: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    #: What deviates from the contract without breaking an invariant of the soak.
    findings: list[str] = field(default_factory=list)
    deliveries_asserted: bool = False
    log_dir: str = ""

    def count(self, name: str, value: int = 1) -> None:
        self.figures[name] = self.figures.get(name, 0) + value

    def table(self) -> str:
        rows = [(name, value) for name, value in self.figures.items()]
        rows += [(f"fault: {kind}", count) for kind, count in sorted(self.faults.items())]
        return table(["figure", "count"], rows)


def classify(keys: list[str]) -> tuple[dict[str, list[re.Match[str]]], list[str]]:
    by_kind: dict[str, list[re.Match[str]]] = defaultdict(list)
    unknown = []
    for key in keys:
        for kind, pattern in LAYOUT:
            match = pattern.fullmatch(key)
            if match:
                by_kind[kind].append(match)
                break
        else:
            unknown.append(key)
    return by_kind, unknown


def stored_messages(client: redis.Redis, record: str) -> int:
    """Messages held by an archived conversation's tail: lists, or one zstd frame."""
    if client.type(f"{record}:h") == b"string":
        return len(unpack_frame(client.get(f"{record}:h") or b"", record))
    return int(client.llen(f"{record}:h")) + int(client.llen(f"{record}:o"))



def check(client: redis.Redis, sink: redis.Redis, ledger: Ledger, report: Report) -> None:
    keys = sorted(key.decode() for key in client.scan_iter(count=1000))
    by_kind, unknown = classify(keys)
    existing = set(keys)
    for key in unknown:
        report.problems.append(f"key outside the layout: {key}")
    report.count("keys outside the layout", len(unknown))

    # Archives: user archive ZSET -> record hash -> lists.
    archived: dict[str, str] = {}  # sid -> user key base
    twice = miscounted = 0
    for match in by_kind["user"]:
        if match.group(3) != ":archive":
            continue
        base = match.group(0)[: -len(":archive")]
        for sid in (raw.decode() for raw in client.zrange(match.group(0), 0, -1)):
            if sid in archived:
                twice += 1
            archived[sid] = base
            record = f"{base}:a:{sid}"
            if record not in existing:
                report.problems.append(f"archive entry without a record: {sid}")
                report.count("index entries pointing at nothing")
                continue
            stored = stored_messages(client, record)
            if int(client.hget(record, "count") or -1) < stored:
                miscounted += 1
    report.count("sessions created (acknowledged)", len(ledger.sessions))
    report.count("sessions unknown (create raised)", ledger.sessions_unknown)
    report.count("sessions archived", len(archived))
    report.count("sessions archived twice", twice)
    report.count("archives whose count is short of their messages", miscounted)
    if twice or miscounted:
        report.problems.append(f"archives: {twice} twice, {miscounted} miscounted")
    # A create whose reply was lost and that redis-py retried made a session under an id
    # the caller never learned (the retry found its id taken and drew another one).
    nobody = len(set(archived) - ledger.sessions)
    report.count("sessions archived that no caller got the id of", nobody)
    if nobody > ledger.sessions_unknown:
        report.findings.append(f"{nobody} sessions no caller got the id of, but only "
                               f"{ledger.sessions_unknown} creates raised")
    not_archived = ledger.sessions - set(archived)
    report.count("sessions not archived", len(not_archived))
    for sid in sorted(not_archived)[:5]:
        report.problems.append(f"session never archived: {sid}")

    # Messages: every archived list or zstd frame (segments and tails), and every live history.
    seen: Counter[str] = Counter()
    undecodable = 0
    lists = [m.group(0) for m in by_kind["archived"] if m.group(4)]
    lists += [m.group(0) for m in by_kind["session"] if m.group(3) in (":h", ":o")]
    for key in lists:
        kind = client.type(key)
        raws = (unpack_frame(client.get(key) or b"", key) if kind == b"string"
                else client.lrange(key, 0, -1))
        for raw in raws:
            try:
                content = decode_message(raw).content
            except Exception:  # noqa: BLE001 - a record that cannot be read is a finding
                undecodable += 1
                continue
            if content.endswith(":q"):
                seen[content[:-2]] += 1
    report.count("turns acknowledged", len(ledger.acked))
    report.count("turns unknown (call raised, or refused in a fault)", len(ledger.unknown))
    report.count("turns refused (session expired)", len(ledger.refused))
    report.count("turns refused during a connection fault (unknown)", ledger.refused_in_fault)
    lost = [t for t in ledger.acked if seen[t] == 0]
    duplicated = [t for t, n in seen.items() if n > 1]
    phantom = [t for t in ledger.refused if seen[t]]
    strangers = [t for t in seen if t not in ledger.acked | ledger.unknown | ledger.refused]
    report.count("turns unknown that landed", sum(1 for t in ledger.unknown if seen[t]))
    report.count("turns lost", len(lost))
    report.count("turns duplicated", len(duplicated))
    report.count("turns refused that landed", len(phantom))
    report.count("turns nobody sent", len(strangers))
    report.count("messages undecodable", undecodable)
    # A refusal outside a connection-breaking fault promises that nothing was written
    # (one during such a fault counts as unknown: see benchmarks.soak.FaultWindow).
    for name, found in (("lost", lost), ("duplicated", duplicated), ("never sent", strangers),
                        ("refused as expired but stored", phantom)):
        if found:
            report.problems.append(f"turns {name}: {len(found)}, e.g. {sorted(found)[:3]}")
    if undecodable:
        report.problems.append(f"{undecodable} stored messages cannot be decoded")

    # Owners: session keys need their meta hash; archived keys their archive entry.
    orphans = []
    for match in by_kind["session"]:
        tag, sid, suffix = match.groups()
        if suffix != ":m" and f"{PREFIX}:{tag}:s:{sid}:m" not in existing:
            orphans.append(match.group(0))
    for match in by_kind["archived"]:
        tag, uid, sid, _ = match.groups()
        if archived.get(sid) != f"{PREFIX}:{tag}:u:{uid}":
            orphans.append(match.group(0))
    report.count("keys without an owner", len(orphans))
    for key in orphans[:5]:
        report.problems.append(f"key without an owner: {key}")

    # Indexes: every entry points at a session that can still be archived.
    dangling = 0
    indexed: set[str] = set()
    for match in by_kind["bucket"]:
        key = match.group(0)
        kind = match.group(1)
        tag = key[len(PREFIX) + 1: key.index("}") + 1]
        if kind in ("deadlines", "manual"):
            for sid in (raw.decode() for raw in client.zrange(key, 0, -1)):
                indexed.add(f"{PREFIX}:{tag}:s:{sid}:m")
                if f"{PREFIX}:{tag}:s:{sid}:m" not in existing:
                    dangling += 1
        elif kind in ("outbox", "outbox:dead"):
            body = f"{PREFIX}:{tag}:outbox:d"
            for member in client.zrange(key, 0, -1):
                if not client.hexists(body, member):
                    dangling += 1
    for match in by_kind["user"]:
        if match.group(3) == ":sessions":
            tag = match.group(1)
            for sid in (raw.decode() for raw in client.zrange(match.group(0), 0, -1)):
                if f"{PREFIX}:{tag}:s:{sid}:m" not in existing:
                    dangling += 1
    report.count("index entries pointing at nothing", dangling)
    metas = [m.group(0) for m in by_kind["session"] if m.group(3) == ":m"]
    report.count("sessions still live after the drain", len(metas))
    unindexed = [key for key in metas if key not in indexed]
    report.count("sessions in no deadline index (never archived)", len(unindexed))
    if unindexed:
        report.problems.append(f"{len(unindexed)} sessions in no index, e.g. {unindexed[:2]}")
    if dangling:
        report.problems.append(f"{dangling} index entries point at nothing")

    # Deliveries: at least once per archive, one key per archive.
    keys_of: dict[str, set[str]] = defaultdict(set)
    deliveries = 0
    for raw in sink.lrange(SINK_KEY, 0, -1):
        record = json.loads(raw)
        keys_of[record["session"]].add(record["key"])
        deliveries += 1
    missing = [sid for sid in archived if sid not in keys_of]
    wrong_key = [sid for sid, found in keys_of.items() if found != {sid}]
    unarchived = [sid for sid in keys_of if sid not in archived]
    report.count("deliveries", deliveries)
    report.count("deliveries repeated", deliveries - len(keys_of))
    report.count("archives never delivered", len(missing))
    report.count("deliveries with another key", len(wrong_key))
    report.count("deliveries of no archive", len(unarchived))
    report.deliveries_asserted = has_idempotency_key()
    delivery_problems = []
    if missing:
        delivery_problems.append(f"{len(missing)} archives never delivered, e.g. {missing[:3]}")
    if wrong_key or unarchived:
        delivery_problems.append(f"deliveries: {len(wrong_key)} with another key, "
                                 f"{len(unarchived)} of no archive")
    if report.deliveries_asserted:
        report.problems += delivery_problems
    else:
        report.findings += delivery_problems


def outstanding(client: redis.Redis) -> int:
    """Work not done yet: sessions not archived (meta hashes still in the keyspace) and
    deliveries still waiting in an outbox."""
    unarchived = sum(1 for _ in client.scan_iter(match=f"{PREFIX}:{{b*}}:s:*:m", count=1000))
    waiting = sum(client.zcard(key)
                  for key in client.scan_iter(match=f"{PREFIX}:{{b*}}:outbox", count=1000))
    return unarchived + waiting
