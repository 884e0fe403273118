"""Migrating LuminoraCore's legacy Redis data into our per-user layout.

What becomes what (through the blocking store's public API):

- affinity ``(owner, personality)`` -> points added to the user's affinity
  (``update_affinity``, interaction ``luminoracore_migration``); several old
  ids of one user add up.
- facts and memories -> facts of the user (memories as category ``memory``);
  when several old ids hold the same ``(category, key)``, the newest
  (``updated_at``) wins.
- episodes -> episodes of the user, all kept; importance clamped to 0..10 and
  the free-form sentiment mapped to ours.
- ``conversation_history`` turns saved under a session id -> one archived
  conversation of that session in its user's archive (a session of ours is
  started, the turns appended in timestamp order, then ended). The messages
  carry the turn's original time and key in their metadata.
- moods -> skipped: a mood is state of a session, and the legacy sessions are
  over. Index sets -> skipped: our layout keeps its own. Session hashes ->
  read to map their session id to their ``user_id``.

Who is who: an old id maps to the user the user-map file names, else to the
``user_id`` of the legacy session hash of that id, else to itself.

Idempotent: every source key written is added to the marker set
``<target prefix>:migrated:luminoracore`` right after its write, and keys in
that set are never written again, so a second run changes nothing. A crash
between a write and its mark repeats that one write on the next run. With
``dry_run`` nothing is written anywhere. Source keys are kept unless
``delete_source``: then each migrated key is deleted once marked, and so is
each key an earlier run migrated (index sets, session hashes and skipped keys
are kept).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from luminora_redis.compat.lc_memory import sentiment_of
from luminora_redis.core.errors import LuminoraRedisError
from luminora_redis.io.sync_store import SyncSessionStore
from luminora_redis.migration.legacy import LegacyRecord, read_legacy

__all__ = ["MigrationReport", "migrate_luminoracore", "plain_value"]

HISTORY = "conversation_history"
INTERACTION = "luminoracore_migration"


@dataclass
class MigrationReport:
    """What a migration did (or, with ``dry_run``, would do)."""

    dry_run: bool
    #: source keys written, by kind
    migrated: Counter[str] = field(default_factory=Counter)
    #: old ids folded into another user id (user map or session hash)
    merged: Counter[str] = field(default_factory=Counter)
    #: source keys not written, by reason
    skipped: Counter[str] = field(default_factory=Counter)
    #: source keys already migrated by an earlier run
    already: int = 0
    #: archived conversations written from conversation turns
    conversations: int = 0
    deleted: int = 0
    examples: dict[str, str] = field(default_factory=dict)

    def skip(self, record: LegacyRecord, reason: str) -> None:
        self.skipped[reason] += 1
        self.examples.setdefault(reason, record.key.decode("utf-8", "replace"))

    def as_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "migrated": dict(self.migrated),
                "merged": dict(self.merged), "skipped": dict(self.skipped),
                "already_migrated": self.already, "conversations": self.conversations,
                "deleted": self.deleted, "examples": self.examples}


def plain_value(value: Any) -> Any:
    """A legacy value as plain data our store accepts: datetimes as ISO text, tuples and
    sets as lists, dict keys as text."""
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, complex):
        return str(value)
    if isinstance(value, dict):
        return {str(key): plain_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_value(item) for item in value]
    if isinstance(value, (set, frozenset)):
        return sorted((plain_value(item) for item in value), key=repr)
    if isinstance(value, bytearray):
        return bytes(value)
    return value


def _stamp(record: LegacyRecord) -> str:
    data = record.data or {}
    return str(plain_value(data.get("updated_at") or data.get("created_at") or ""))


def _number(value: Any, low: float, high: float, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return min(max(float(value), low), high)


class _Migration:
    def __init__(self, source: Any, target: SyncSessionStore, prefix: str,
                 user_map: Mapping[str, str], dry_run: bool, delete_source: bool,
                 progress: Callable[[str, int, int | None], None]) -> None:
        self.source, self.target, self.prefix = source, target, prefix
        self.user_map, self.dry_run, self.delete_source = user_map, dry_run, delete_source
        self.progress = progress
        self.report = MigrationReport(dry_run)
        self.marker = f"{target.settings.prefix}:migrated:luminoracore"
        self.done: set[bytes] = set(target.client.smembers(self.marker))

    def user(self, owner: str) -> str:
        return self.user_map.get(owner) or self.session_users.get(owner) or owner

    def run(self) -> MigrationReport:
        records = []
        total = self.source.dbsize()
        for n, record in enumerate(read_legacy(self.source, self.prefix), 1):
            records.append(record)
            self.progress("read", n, total)
        self.session_users = {
            r.owner: r.data["user_id"] for r in records
            if r.kind == "session" and r.owner and r.data and r.data.get("user_id")
            and r.data["user_id"] != r.owner}
        owners = {r.owner for r in records if r.owner and r.kind != "session"}
        self.report.merged["ids"] = sum(1 for owner in owners if self.user(owner) != owner)
        pending = []
        for record in records:
            if record.skip is not None:
                self.report.skip(record, record.skip)
            elif record.kind == "session":
                self.report.skip(record, "session hash (maps its session id to its user)")
            elif record.kind == "mood":
                self.report.skip(record, "mood (state of a legacy session that is over)")
            elif record.key in self.done:
                self.report.already += 1
                if self.delete_source and not self.dry_run:
                    self.report.deleted += int(self.source.delete(record.key))
            else:
                pending.append(record)
        groups = self._groups(pending)
        for n, (write, members) in enumerate(groups, 1):
            self._apply(write, members)
            self.progress("write", n, len(groups))
        return self.report

    def _groups(self, records: Iterable[LegacyRecord]) -> list[tuple[Callable[[], None],
                                                                     list[LegacyRecord]]]:
        affinity: dict[tuple[str, str], list[LegacyRecord]] = defaultdict(list)
        facts: dict[tuple[str, str, str], list[LegacyRecord]] = defaultdict(list)
        turns: dict[str, list[LegacyRecord]] = defaultdict(list)
        groups: list[tuple[Callable[[], None], list[LegacyRecord]]] = []
        for record in records:
            data, owner = record.data or {}, record.owner or ""
            if record.kind == "affinity":
                affinity[(self.user(owner), record.name or "")].append(record)
            elif record.kind == "fact" and data.get("category") == HISTORY:
                turns[owner].append(record)
            elif record.kind == "fact":
                facts[(self.user(owner), str(data["category"]), str(data["key"]))].append(record)
            elif record.kind == "memory":
                facts[(self.user(owner), "memory", str(data["memory_key"]))].append(record)
            else:
                groups.append((self._episode(record), [record]))
        for (user, personality), members in affinity.items():
            if len({m.owner for m in members}) > 1:
                self.report.merged["affinity"] += len(members) - 1
            groups.append((self._affinity(user, personality, members), members))
        for (user, category, key), members in facts.items():
            if len(members) > 1:
                self.report.merged["facts"] += len(members) - 1
            newest = max(members, key=_stamp)
            groups.append((self._fact(user, category, key, newest), members))
        for owner, members in turns.items():
            try:
                groups.append((self._conversation(owner, members), members))
            except (ValueError, TypeError, KeyError) as error:
                for member in members:
                    self.report.skip(member, f"conversation turn unreadable: {error}")
        return groups

    def _apply(self, write: Callable[[], None], members: list[LegacyRecord]) -> None:
        try:
            if not self.dry_run:
                write()
        except (LuminoraRedisError, ValueError, TypeError, KeyError) as error:
            for member in members:
                self.report.skip(member, f"{member.kind} refused: {error}")
            return
        for member in members:
            self.report.migrated[member.kind] += 1
        if (members[0].data or {}).get("category") == HISTORY and members[0].kind == "fact":
            self.report.conversations += 1
        if self.dry_run:
            return
        keys = [member.key for member in members]
        self.target.client.sadd(self.marker, *keys)
        if self.delete_source:
            self.report.deleted += int(self.source.delete(*keys))

    def _affinity(self, user: str, personality: str,
                  members: list[LegacyRecord]) -> Callable[[], None]:
        points = sum(int(_number((m.data or {}).get("affinity_points"), 0, 1e12, 0))
                     for m in members)

        def write() -> None:
            self.target.update_affinity(user, personality, points, INTERACTION)
        return write

    def _fact(self, user: str, category: str, key: str,
              record: LegacyRecord) -> Callable[[], None]:
        data = record.data or {}
        value = plain_value(data.get("memory_value") if record.kind == "memory"
                            else data.get("value"))
        confidence = _number(data.get("confidence"), 0.0, 1.0, 1.0)

        def write() -> None:
            self.target.save_fact(user, category, key, value, confidence)
        return write

    def _episode(self, record: LegacyRecord) -> Callable[[], None]:
        data = record.data or {}
        user = self.user(record.owner or "")

        def write() -> None:
            self.target.save_episode(
                user, str(data.get("episode_type") or "episode"), str(data.get("title") or ""),
                str(data.get("summary") or ""), _number(data.get("importance"), 0.0, 10.0, 5.0),
                sentiment_of(str(data.get("sentiment") or "neutral")))
        return write

    def _conversation(self, session_id: str,
                      members: list[LegacyRecord]) -> Callable[[], None]:
        user = self.user(session_id)
        turns = []
        for member in members:
            value = (member.data or {}).get("value")
            turn = json.loads(value) if isinstance(value, str) else value
            if not isinstance(turn, dict):
                raise TypeError(f"turn {member.key!r} is not a JSON object")
            turns.append((str(turn.get("timestamp", "")), str((member.data or {})["key"]), turn))
        turns.sort(key=lambda item: (item[0], item[1]))
        personality = str(turns[0][2].get("personality_name") or "default")
        messages = []
        for stamp, key, turn in turns:
            meta = {"legacy_timestamp": stamp, "legacy_key": key, "legacy_session": session_id}
            messages.append(("user", str(turn.get("user_message", "")), meta))
            messages.append(("assistant", str(turn.get("assistant_response", "")), meta))

        def write() -> None:
            sid = self.target.create_session(user, personality)
            self.target.append_messages(sid, messages)
            self.target.end_session(sid)
        return write


def migrate_luminoracore(source: Any, target: SyncSessionStore, *, prefix: str = "luminora",
                         user_map: Mapping[str, str] | None = None, dry_run: bool = False,
                         delete_source: bool = False,
                         progress: Callable[[str, int, int | None], None] | None = None,
                         ) -> MigrationReport:
    """Migrate LuminoraCore's legacy keys under ``prefix`` on ``source`` (a blocking
    redis-py client) into ``target``. ``progress(phase, done, total)`` is called as
    keys are read (phase ``read``) and written (``write``)."""
    return _Migration(source, target, prefix, user_map or {}, dry_run, delete_source,
                      progress or (lambda phase, done, total: None)).run()
