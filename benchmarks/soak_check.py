"""The soak's invariant checker: reads the whole keyspace and the sink after the drain.

``check`` classifies every key by the layout of ``luminora_redis.core.keys`` (plus the
outbox and heartbeat keys of the delivery layout), follows every index entry, decodes
every stored message, and compares what is stored with what the clients were told
(``Ledger``) and what the sink received. Invariants that fail go to
``Report.problems``; deviations from the contract that break no invariant of the
soak go to ``Report.findings``.

With ``archive_retention``, a user's archive keeps only the newest conversations,
so an archive may be gone by the time of the check. Each sink record carries the
turn ids of the conversation it delivered, and each user hash counts the archives
ever made for that user (``archive_seq``, written in the archive's atomic step).
So a conversation that is neither in its user's archive nor in the sink is still
counted: the counter says how many archives were made, and the ones that are
neither kept nor delivered were trimmed before their delivery (or archived
twice). An archive that was trimmed after its delivery has its turns checked
from the sink's copy, so "turns lost" keeps its meaning.
"""

from __future__ import annotations

import json
import re
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import redis

from benchmarks._common import table
from luminora_redis.core.codec import decode_message
from luminora_redis.core.frames import unpack_frame

__all__ = ["ATTEMPTS", "SINK_KEY", "Ledger", "Report", "check", "hook_hangs", "outstanding"]

PREFIX = "lr"
#: The sink's list of deliveries: one JSON record per call of the hook that returned.
SINK_KEY = "deliveries"
#: The sink's count of the hook's attempts at a session ``hook_hangs`` picks (+ its id).
ATTEMPTS = "attempts:"


def hook_hangs(session_id: str) -> bool:
    """Whether the soak's hook hangs on its first attempt at this session: one session
    in ten, the same one in every process (``hash`` of a str differs per process)."""
    return zlib.crc32(session_id.encode()) % 10 == 0


@dataclass
class Ledger:
    """What the clients know happened."""

    sessions: set[str] = field(default_factory=set)
    #: Session id -> the user it was created for.
    owners: dict[str, str] = field(default_factory=dict)
    sessions_unknown: int = 0
    acked: set[str] = field(default_factory=set)
    unknown: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)
    #: Turns Redis refused before the script wrote anything (OOM, BUSY): stored nowhere.
    rejected: set[str] = field(default_factory=set)
    #: Refusals of calls that overlapped a connection-breaking fault (in ``unknown``).
    refused_in_fault: int = 0
    #: Turns acknowledged by calls that ran entirely inside an OOM window.
    acked_over_maxmemory: int = 0
    ended: int = 0
    errors: Counter[str] = field(default_factory=Counter)


TAG = r"\{b[0-9a-f]{4}\}"
SID = r"[0-9a-f]{4}-[0-9a-f]{32}"
LAYOUT = [
    ("layout", re.compile(rf"{PREFIX}:layout")),
    ("listeners", re.compile(rf"{PREFIX}:listeners")),
    ("deliverers", re.compile(rf"{PREFIX}:deliverers")),
    ("sweep lease", re.compile(rf"{PREFIX}:sweeper")),
    ("outbox scan lease", re.compile(rf"{PREFIX}:deliverer")),
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



def check(client: redis.Redis, sink: redis.Redis, ledger: Ledger, report: Report, *,
          retention: int | None = None) -> None:
    """Check the keyspace and the sink against the ledger; ``retention`` is the stores'
    ``archive_retention`` (None: every archive must still be in its user's archive)."""
    keys = sorted(key.decode() for key in client.scan_iter(count=1000))
    by_kind, unknown = classify(keys)
    existing = set(keys)
    for key in unknown:
        report.problems.append(f"key outside the layout: {key}")
    report.count("keys outside the layout", len(unknown))

    # The sink: every delivery, by session.
    delivered: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for raw in sink.lrange(SINK_KEY, 0, -1):
        record = json.loads(raw)
        delivered[record["session"]].append(record)

    # Archives: user archive ZSET -> record hash -> lists.
    archived: dict[str, str] = {}  # sid -> user key base
    known_of: dict[str, set[str]] = defaultdict(set)  # user id -> sessions kept or delivered
    twice = miscounted = 0
    for match in by_kind["user"]:
        if match.group(3) != ":archive":
            continue
        base = match.group(0)[: -len(":archive")]
        for sid in (raw.decode() for raw in client.zrange(match.group(0), 0, -1)):
            if sid in archived:
                twice += 1
            archived[sid] = base
            known_of[unquote(match.group(2))].add(sid)
            record = f"{base}:a:{sid}"
            if record not in existing:
                report.problems.append(f"archive entry without a record: {sid}")
                report.count("index entries pointing at nothing")
                continue
            stored = stored_messages(client, record)
            if int(client.hget(record, "count") or -1) < stored:
                miscounted += 1
    # With retention, a delivered conversation no longer in its user's archive was
    # trimmed after its delivery: the sink's copy stands for it.
    trimmed = ({sid: records[0] for sid, records in delivered.items() if sid not in archived}
               if retention is not None else {})
    for sid, record in trimmed.items():
        known_of[record["user"]].add(sid)
        if record.get("count", -1) < record["messages"]:
            miscounted += 1
    # Archives made, by each user's counter: those neither kept nor delivered are lost.
    made: dict[str, int] = {}
    for match in by_kind["user"]:
        if match.group(3) is None:
            made[unquote(match.group(2))] = int(client.hget(match.group(0), "archive_seq") or 0)
    lost_of = {uid: max(0, made.get(uid, 0) - len(known_of[uid])) for uid in made}
    beyond = sum(max(0, len(sids) - made.get(uid, 0)) for uid, sids in known_of.items())
    lost = sum(lost_of.values())
    all_archived = set(archived) | set(trimmed)
    report.count("sessions created (acknowledged)", len(ledger.sessions))
    report.count("sessions unknown (create raised)", ledger.sessions_unknown)
    report.count("sessions archived", len(all_archived))
    report.count("sessions archived twice", twice)
    report.count("archives whose count is short of their messages", miscounted)
    if twice or miscounted:
        report.problems.append(f"archives: {twice} twice, {miscounted} miscounted")
    report.count("archives made (the users' archive counters)", sum(made.values()))
    report.count("archives trimmed after their delivery (checked from the sink)", len(trimmed))
    report.count("archives neither kept nor delivered (trimmed first, or archived twice)", lost)
    if lost:  # counted among the archives never delivered too
        report.problems.append(f"{lost} archives made (by the users' archive counters) are "
                               f"neither in the archive nor in the sink, e.g. of users "
                               f"{sorted(uid for uid, n in lost_of.items() if n)[:3]}")
    if retention is not None:
        over = [uid for uid, sids in known_of.items()
                if len({sid for sid in sids if sid in archived}) > retention]
        report.count("users keeping more archives than archive_retention", len(over))
        if over:
            report.findings.append(f"{len(over)} users keep more than {retention} archives "
                                   f"after the drain, e.g. {sorted(over)[:3]}")
    # A create whose reply was lost and that redis-py retried made a session under an id
    # the caller never learned (the retry found its id taken and drew another one).
    nobody = len(all_archived - ledger.sessions)
    report.count("sessions archived that no caller got the id of", nobody)
    if nobody > ledger.sessions_unknown:
        report.findings.append(f"{nobody} sessions no caller got the id of, but only "
                               f"{ledger.sessions_unknown} creates raised")
    not_archived = sorted(ledger.sessions - all_archived)
    # With retention, a session in neither place may have been archived and trimmed
    # before its delivery: those are counted above, by user, and not again here.
    missing_of = Counter(ledger.owners.get(sid, "") for sid in not_archived)
    never = (len(not_archived) if retention is None else
             sum(max(0, n - lost_of.get(uid, 0)) for uid, n in missing_of.items()))
    report.count("sessions not archived", never)
    if never:
        for sid in not_archived[:5]:
            report.problems.append(f"session never archived: {sid}")

    # Messages: every archived list or zstd frame (segments and tails), every live history,
    # and the sink's copy of every conversation trimmed after its delivery.
    seen: Counter[str] = Counter()
    stored_turns: dict[str, Counter[str]] = defaultdict(Counter)
    undecodable = 0
    lists = [(m.group(0), m.group(3)) for m in by_kind["archived"] if m.group(4)]
    lists += [(m.group(0), None) for m in by_kind["session"] if m.group(3) in (":h", ":o")]
    for key, sid in lists:
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
                if sid is not None:
                    stored_turns[sid][content[:-2]] += 1
    for record in trimmed.values():
        seen.update(record["turns"])
    # Every delivery carries the conversation as archived: the archive's turns, or for a
    # trimmed archive those of its first delivery.
    differ = 0
    for sid, records in delivered.items():
        expected = stored_turns[sid] if sid in archived else Counter(records[0]["turns"])
        differ += sum(1 for record in records if Counter(record["turns"]) != expected)
    rejected = ledger.rejected
    report.count("turns acknowledged", len(ledger.acked))
    report.count("turns unknown (call raised, or refused in a fault)", len(ledger.unknown))
    report.count("turns refused (session expired)", len(ledger.refused))
    report.count("turns refused by Redis (OOM, BUSY)", len(rejected))
    report.count("turns refused during a connection fault (unknown)", ledger.refused_in_fault)
    lost_turns = [t for t in ledger.acked if seen[t] == 0]
    duplicated = [t for t, n in seen.items() if n > 1]
    phantom = [t for t in ledger.refused | rejected if seen[t]]
    strangers = [t for t in seen if t not in ledger.acked | ledger.unknown | ledger.refused | rejected]
    report.count("turns unknown that landed", sum(1 for t in ledger.unknown if seen[t]))
    report.count("turns lost", len(lost_turns))
    report.count("turns duplicated", len(duplicated))
    report.count("turns refused that landed", len(phantom))
    report.count("turns nobody sent", len(strangers))
    report.count("messages undecodable", undecodable)
    report.count("deliveries whose turns differ from the archive", differ)
    # A refusal outside a connection-breaking fault promises that nothing was written
    # (one during such a fault counts as unknown: see benchmarks.soak.FaultWindow).
    for name, found in (("lost", lost_turns), ("duplicated", duplicated),
                        ("never sent", strangers), ("refused but stored", phantom)):
        if found:
            report.problems.append(f"turns {name}: {len(found)}, e.g. {sorted(found)[:3]}")
    if undecodable:
        report.problems.append(f"{undecodable} stored messages cannot be decoded")
    if differ:
        report.problems.append(f"{differ} deliveries carry other turns than the archive")

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
    dangling = undelivered = 0
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
                undelivered += 1
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

    # Deliveries: at least once per archive, one key per archive, none left waiting.
    deliveries = sum(len(records) for records in delivered.values())
    missing = [sid for sid in archived if sid not in delivered]
    wrong_key = [sid for sid, records in delivered.items()
                 if {record["key"] for record in records} != {sid}]
    if retention is None:
        unarchived = [sid for sid in delivered if sid not in archived]
        no_archive = len(unarchived)
    else:  # a delivered session not kept was trimmed: only the counters bound those
        unarchived, no_archive = [], beyond
    report.count("deliveries", deliveries)
    report.count("deliveries repeated", deliveries - len(delivered))
    report.count("archives never delivered", len(missing) + lost)
    report.count("undelivered (left in an outbox after the drain)", undelivered)
    report.count("deliveries with another key", len(wrong_key))
    report.count("deliveries of no archive", no_archive)
    if missing:
        report.problems.append(f"{len(missing)} archives never delivered, e.g. {missing[:3]}")
    if undelivered:
        report.problems.append(f"{undelivered} deliveries still in an outbox after the drain")
    if wrong_key or no_archive:
        report.problems.append(f"deliveries: {len(wrong_key)} with another key, "
                               f"{no_archive} of no archive, e.g. {unarchived[:3]}")


def outstanding(client: redis.Redis) -> int:
    """Work not done yet: sessions not archived (meta hashes still in the keyspace) and
    deliveries still waiting in an outbox."""
    unarchived = sum(1 for _ in client.scan_iter(match=f"{PREFIX}:{{b*}}:s:*:m", count=1000))
    waiting = sum(client.zcard(key)
                  for key in client.scan_iter(match=f"{PREFIX}:{{b*}}:outbox", count=1000))
    return unarchived + waiting
