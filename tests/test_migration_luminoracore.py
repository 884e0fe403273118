"""Migrating LuminoraCore's legacy Redis layout: written here the way its
FlexibleRedisStorageV11 writes it (pickled records included), then migrated into
our layout on a server and on the cluster."""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from luminora_redis import SyncSessionStore
from luminora_redis.cli import main
from luminora_redis.migration.luminoracore import migrate_luminoracore
from luminora_redis.migration.unpickle import UnsafePickle, safe_loads
from luminora_redis.migration.user_map import load_user_map

from conftest import snapshot

P = "luminora"


class Evil:
    """A pickle that would create a file when loaded by ``pickle.loads``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.path}",))


def _put(source: redis.Redis, key: str, record: Any, *, as_json: bool = False) -> None:
    source.set(key, json.dumps(record) if as_json else pickle.dumps(record))
    kind, user = key.split(":")[1:3]
    index = {"affinity": "affinity", "fact": "facts", "episode": "episodes", "mood": "moods",
             "memory": "memories"}[kind]
    source.sadd(f"{P}:user:{user}:{index}", key)


def _turn(text: str, stamp: str) -> str:
    return json.dumps({"user_message": text, "assistant_response": f"re: {text}",
                       "personality_name": "alicia", "timestamp": stamp, "facts_learned": []})


def write_legacy(source: redis.Redis, evil_file: Path) -> None:
    """What two LuminoraCore sessions of one user leave behind, plus a planted pickle."""
    source.hset(f"{P}:sessions:session_a", mapping={
        "session_id": "session_a", "user_id": "carlos", "personality_name": "alicia",
        "created_at": "2025-01-01T10:00:00", "ttl": "1767225600"})
    early, late = datetime(2025, 1, 1, 10), datetime(2025, 6, 1, 10)
    for owner, points in (("session_a", 12), ("session_b", 5), ("carlos", 3)):
        _put(source, f"{P}:affinity:{owner}:alicia", {
            "affinity_points": points, "current_level": "stranger", "total_interactions": 1,
            "positive_interactions": 1, "session_id": owner, "created_at": early,
            "updated_at": early})
    _put(source, f"{P}:fact:carlos:personal_info:name", {
        "category": "personal_info", "key": "name", "value": "Carlos", "confidence": 0.9,
        "session_id": "carlos", "created_at": early, "updated_at": early})
    _put(source, f"{P}:fact:session_b:personal_info:name", {
        "category": "personal_info", "key": "name", "value": "Carlos M.", "confidence": 0.95,
        "session_id": "session_b", "created_at": late, "updated_at": late})
    _put(source, f"{P}:fact:carlos:session_metadata:session_session_a", {
        "category": "session_metadata", "key": "session_session_a", "confidence": 1.0,
        "value": {"session_id": "session_a", "created_at": early, "tags": ("a", "b")},
        "updated_at": early}, )
    _put(source, f"{P}:fact:carlos:preferences:anime", {
        "category": "preferences", "key": "anime", "value": "Naruto", "confidence": 0.8,
        "updated_at": "2025-02-01T00:00:00"}, as_json=True)
    for n, (text, stamp) in enumerate((("¿y tú?", "2025-01-01T10:01:00"),
                                       ("hola", "2025-01-01T10:00:00"))):
        _put(source, f"{P}:fact:session_a:conversation_history:turn_{n}", {
            "category": "conversation_history", "key": f"turn_{n}", "value": _turn(text, stamp),
            "confidence": 1.0, "session_id": "session_a", "updated_at": stamp})
    for owner, title, importance, sentiment in (("carlos", "First chat", 7.0, "very_positive"),
                                                ("session_b", "Bad day", 12.0, "negative")):
        _put(source, f"{P}:episode:{owner}:milestone_20250101_100000", {
            "episode_type": "milestone", "title": title, "summary": "s",
            "importance": importance, "sentiment": sentiment, "session_id": owner,
            "created_at": early, "updated_at": early})
    _put(source, f"{P}:mood:carlos:happy_20250101_100000", {
        "mood_type": "happy", "intensity": 0.7, "context": {}, "updated_at": early})
    _put(source, f"{P}:memory:carlos:favorite_color", {
        "memory_key": "favorite_color", "memory_value": "blue", "updated_at": early})
    source.set(f"{P}:fact:carlos:evil:x", pickle.dumps(Evil(evil_file)))
    source.set(f"{P}:fact:carlos:odd:text", b"just some text")


@pytest.fixture
def source(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def target(store_url: str, topology: str) -> Iterator[SyncSessionStore]:
    store = SyncSessionStore.from_url(store_url, cluster=topology == "cluster")
    yield store
    store.close()


USER_MAP = {"session_b": "carlos"}


def test_the_restricted_unpickler_admits_plain_data_only(tmp_path: Path) -> None:
    plain = {"a": [1, 2.5, None, True], "b": (b"x", {1, 2}), "t": datetime(2025, 1, 1)}
    assert safe_loads(pickle.dumps(plain)) == plain
    for payload in (Evil(tmp_path / "pwned"), Path("/"), print):
        with pytest.raises(UnsafePickle):
            safe_loads(pickle.dumps(payload))
    assert not (tmp_path / "pwned").exists()


def test_migrates_merges_and_refuses_the_malicious_pickle(
        source: redis.Redis, target: SyncSessionStore, tmp_path: Path) -> None:
    evil_file = tmp_path / "pwned"
    write_legacy(source, evil_file)
    report = migrate_luminoracore(source, target, user_map=USER_MAP)
    assert not evil_file.exists(), "the malicious pickle ran"
    assert [reason for reason in report.skipped if "unsafe pickle" in reason] == [
        "unsafe pickle (posix.system), not executed"]
    affinity = target.get_affinity("carlos", "alicia")
    assert affinity is not None and affinity.points == 20  # 12 + 5 + 3
    assert target.get_affinity("session_a", "alicia") is None
    facts = {(f.category, f.key): f for f in target.get_facts("carlos")}
    assert facts[("personal_info", "name")].value == "Carlos M."  # the newest wins
    assert facts[("personal_info", "name")].confidence == 0.95
    assert facts[("preferences", "anime")].value == "Naruto"  # a JSON value
    assert facts[("memory", "favorite_color")].value == "blue"
    assert facts[("session_metadata", "session_session_a")].value == {
        "session_id": "session_a", "created_at": "2025-01-01T10:00:00", "tags": ["a", "b"]}
    assert ("conversation_history", "turn_0") not in facts
    episodes = target.get_episodes("carlos")
    assert sorted((e.title, e.importance, e.sentiment.value) for e in episodes) == [
        ("Bad day", 10.0, "negative"), ("First chat", 7.0, "positive")]
    [conversation] = target.get_archived_conversations("carlos")
    assert [m.content for m in conversation.messages] == [
        "hola", "re: hola", "¿y tú?", "re: ¿y tú?"]
    assert conversation.messages[0].metadata == {
        "legacy_timestamp": "2025-01-01T10:00:00", "legacy_key": "turn_1",
        "legacy_session": "session_a"}
    assert target.list_user_sessions("carlos") == []
    assert report.migrated == {"affinity": 3, "fact": 6, "episode": 2, "memory": 1}
    assert report.conversations == 1
    assert report.merged["ids"] == 2 and report.merged["affinity"] == 2
    assert report.merged["facts"] == 1
    assert report.skipped["mood (state of a legacy session that is over)"] == 1
    assert report.skipped["index set (our layout keeps its own indexes)"] == 10
    assert report.skipped["fact value is not a record (str)"] == 1
    assert source.exists(f"{P}:affinity:session_a:alicia")  # sources are kept


def test_a_second_run_changes_nothing(source: redis.Redis, target: SyncSessionStore,
                                      tmp_path: Path, topology: str, raw: Any) -> None:
    write_legacy(source, tmp_path / "pwned")
    first = migrate_luminoracore(source, target, user_map=USER_MAP)
    before = snapshot(raw) if topology == "single" else None
    second = migrate_luminoracore(source, target, user_map=USER_MAP)
    assert sum(second.migrated.values()) == 0 and second.conversations == 0
    assert second.already == sum(first.migrated.values())
    if before is not None:
        assert snapshot(raw) == before
    affinity = target.get_affinity("carlos", "alicia")
    assert affinity is not None and affinity.points == 20
    assert len(target.get_archived_conversations("carlos")) == 1


def test_a_dry_run_writes_nothing(source: redis.Redis, target: SyncSessionStore,
                                  tmp_path: Path, raw: Any, topology: str) -> None:
    write_legacy(source, tmp_path / "pwned")
    legacy = snapshot(source)
    report = migrate_luminoracore(source, target, user_map=USER_MAP, dry_run=True)
    assert report.migrated == {"affinity": 3, "fact": 6, "episode": 2, "memory": 1}
    assert snapshot(source) == legacy
    ours = [key for key in raw.scan_iter() if not key.startswith(P.encode())]
    assert ours == []


def test_delete_source_removes_only_what_was_migrated(
        source: redis.Redis, target: SyncSessionStore, tmp_path: Path) -> None:
    write_legacy(source, tmp_path / "pwned")
    first = migrate_luminoracore(source, target, user_map=USER_MAP)
    assert first.deleted == 0
    source.delete(f"{P}:affinity:carlos:alicia")
    _put(source, f"{P}:fact:carlos:personal_info:age", {
        "category": "personal_info", "key": "age", "value": 30, "updated_at": "2025-07-01"})
    report = migrate_luminoracore(source, target, user_map=USER_MAP, delete_source=True)
    assert report.migrated == {"fact": 1}
    assert report.deleted == sum(first.migrated.values()) - 1 + 1
    left = {key.decode() for key in source.scan_iter(match=f"{P}:*")}
    assert f"{P}:fact:carlos:evil:x" in left and f"{P}:sessions:session_a" in left
    assert not any(key.startswith(f"{P}:affinity:") for key in left)


def test_user_maps_in_csv_and_json(tmp_path: Path) -> None:
    csv_file = tmp_path / "map.csv"
    csv_file.write_text("old_id,user_id\nsession_a,carlos\nsession_b, carlos\n")
    json_file = tmp_path / "map.json"
    json_file.write_text(json.dumps([{"old_id": "session_a", "user_id": "carlos"}]))
    assert load_user_map(csv_file) == {"session_a": "carlos", "session_b": "carlos"}
    assert load_user_map(json_file) == {"session_a": "carlos"}
    clash = tmp_path / "clash.csv"
    clash.write_text("a,x\na,y\n")
    with pytest.raises(ValueError, match="two users"):
        load_user_map(clash)


@pytest.mark.single_server
def invoke(args: list[str]) -> int:
    """Run the console script's click group as the shell would; its exit code."""
    try:
        main(args)
    except SystemExit as done:
        return int(done.code or 0)
    return 0


def test_the_command(source: redis.Redis, redis_url: str, tmp_path: Path,
                     capsys: pytest.CaptureFixture[str]) -> None:
    write_legacy(source, tmp_path / "pwned")
    user_map = tmp_path / "map.csv"
    user_map.write_text("session_b,carlos\n")
    args = ["migrate", "--from-luminoracore", "--url", redis_url, "--user-map", str(user_map)]
    assert invoke([*args, "--dry-run", "--json"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["dry_run"] and dry["migrated"]["affinity"] == 3
    assert source.exists("lr:layout") == 0
    assert invoke([*args, "--yes"]) == 0
    out = capsys.readouterr().out
    assert "migrated: 12 keys" in out and "unsafe pickle" in out
    assert invoke([*args, "--yes", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["already_migrated"] == 12
    assert invoke(["migrate", "--url", redis_url]) == 0
    assert "current (version 2)" in capsys.readouterr().out
    assert invoke(["migrate", "--user-map", str(user_map), "--url", redis_url]) == 2
    assert not (tmp_path / "pwned").exists()
