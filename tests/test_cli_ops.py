"""The operator commands against a real server (click's CliRunner): sessions,
users, stats and check, as tables and as JSON, with their exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner, Result

from luminora_redis import SessionStore, SyncSessionStore
from luminora_redis.cli import main
from luminora_redis.testing import LocalCluster, RedisServer

from conftest import snapshot, wait_until

NEEDS_OUTBOX = pytest.mark.skipif(
    not hasattr(SessionStore, "delivery_backlog"),
    reason="delivery_backlog() comes with the delivery outbox (contract 1), not in this build")
NEEDS_HEARTBEAT = pytest.mark.skipif(
    not hasattr(SessionStore, "live_listeners"),
    reason="live_listeners() comes with the listener heartbeat (contract 1), not in this build")
NEEDS_SERVER_CHECKS = pytest.mark.skipif(
    not hasattr(SessionStore, "check_server"),
    reason="check_server() comes with the server checks (contract 1), not in this build")


def cli(url: str, *argv: str, input: str | None = None, cluster: bool = False) -> Result:
    args = [*argv, "--url", url] + (["--cluster"] if cluster else [])
    return CliRunner().invoke(main, args, input=input, catch_exceptions=False)


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def store(redis_url: str) -> Iterator[SyncSessionStore]:
    with SyncSessionStore.from_url(redis_url, buckets=8) as opened:
        yield opened


@pytest.fixture
def people(store: SyncSessionStore) -> dict[str, str]:
    live = store.create_session("carlos", "alicia", {"ttl": 3600})
    store.chat_turn(live, [("user", "hola"), ("assistant", "¡hola Carlos!")])
    ended = store.create_session("carlos", "alicia")
    store.append_message(ended, "user", "adiós")
    store.end_session(ended)
    store.update_affinity("carlos", "alicia", 30, "chat")
    store.save_fact("carlos", "personal_info", "name", "Carlos")
    store.save_episode("carlos", "milestone", "first chat", "said hi", importance=8)
    store.record_trait("carlos", "alicia", "warmth", 0.5)
    dana = store.create_session("dana", "bruno", {"ttl": 30})
    return {"live": live, "ended": ended, "dana": dana}


# -- sessions ---------------------------------------------------------------------


def test_sessions_list_shows_deadlines_from_the_indexes(redis_url: str,
                                                        people: dict[str, str]) -> None:
    listed = as_json(cli(redis_url, "sessions", "list", "--json"))
    assert [entry["session_id"] for entry in listed] == [people["dana"], people["live"]]
    assert listed[0]["user_id"] == "dana" and listed[0]["expired"] is False
    soon = as_json(cli(redis_url, "sessions", "list", "--expiring-within", "60", "--json"))
    assert [entry["session_id"] for entry in soon] == [people["dana"]]
    mine = as_json(cli(redis_url, "sessions", "list", "--user", "carlos", "--json"))
    assert [entry["session_id"] for entry in mine] == [people["live"]]
    table = cli(redis_url, "sessions", "list")
    assert table.exit_code == 0 and people["dana"] in table.stdout and "2 session(s)" in table.stdout


def test_sessions_show_peeks_and_unknown_is_exit_4(redis_url: str, people: dict[str, str],
                                                   store: SyncSessionStore) -> None:
    before = store.get_session(people["live"])
    shown = as_json(cli(redis_url, "sessions", "show", people["live"], "--json"))
    assert [m["content"] for m in shown["tail"]] == ["hola", "¡hola Carlos!"]
    assert shown["session"]["user_id"] == "carlos" and shown["message_count"] == 2
    table = cli(redis_url, "sessions", "show", people["live"])
    assert table.exit_code == 0 and "¡hola Carlos!" in table.stdout
    assert store.get_session(people["live"]).last_activity == before.last_activity
    missing = cli(redis_url, "sessions", "show", people["ended"])
    assert missing.exit_code == 4 and missing.stderr.count("\n") == 1


def test_sessions_end_archives_now(redis_url: str, people: dict[str, str],
                                   store: SyncSessionStore) -> None:
    assert as_json(cli(redis_url, "sessions", "end", people["live"], "--json")) == {
        "session_id": people["live"], "archived": True}
    assert store.get_session(people["live"]) is None
    assert len(store.get_archived_conversations("carlos")) == 2
    again = cli(redis_url, "sessions", "end", people["live"])
    assert again.exit_code == 4 and "no session" in again.stderr


def test_sessions_cleanup_archives_every_overdue_session(redis_url: str,
                                                         store: SyncSessionStore) -> None:
    sids = [store.create_session(f"user{n}", "alicia", {"ttl": 0.2, "auto_cleanup": n % 2 == 0})
            for n in range(7)]
    wait_until(lambda: all(store.get_session(sid) is None for sid in sids))
    store.create_session("keeper", "alicia")
    result = cli(redis_url, "sessions", "cleanup", "--batch", "2")
    assert result.exit_code == 0 and "archived 7 overdue" in result.stdout
    assert store.deadline_stats().sessions == 1 and store.deadline_stats().overdue == 0
    for n in range(7):
        assert len(store.get_archived_conversations(f"user{n}")) == 1
    assert as_json(cli(redis_url, "sessions", "cleanup", "--json")) == {"archived": 0}


# -- users ------------------------------------------------------------------------


def test_users_show_and_an_unknown_user(redis_url: str, people: dict[str, str]) -> None:
    shown = as_json(cli(redis_url, "users", "show", "carlos", "--json"))
    assert shown["user"]["live_sessions"] == 1 and shown["user"]["archived_conversations"] == 1
    assert shown["affinities"][0]["points"] == 30 and shown["facts"][0]["value"] == "Carlos"
    assert shown["archive"][0]["session_id"] == people["ended"]
    assert [e["kind"] for e in shown["evolution"]] == ["affinity", "trait"]
    table = cli(redis_url, "users", "show", "carlos")
    assert table.exit_code == 0 and "acquaintance" in table.stdout and "first chat" in table.stdout
    for command in ("show", "export", "erase"):
        missing = cli(redis_url, "users", command, "nobody")
        assert missing.exit_code == 4, command
        assert "nobody" in missing.stderr and missing.stderr.count("\n") == 1


def test_users_export_to_stdout_and_to_a_file(redis_url: str, people: dict[str, str],
                                              tmp_path: Path) -> None:
    exported = as_json(cli(redis_url, "users", "export", "carlos"))
    assert exported["user_id"] == "carlos"
    assert [s["session_id"] for s in exported["sessions"]] == [people["live"]]
    assert [c["messages"][0]["content"] for c in exported["archived_conversations"]] == ["adiós"]
    out = tmp_path / "carlos.json"
    result = cli(redis_url, "users", "export", "carlos", "--out", str(out))
    assert result.exit_code == 0 and result.stdout == "" and str(out) in result.stderr
    assert json.loads(out.read_text())["facts"] == exported["facts"]


def test_users_erase_asks_first(redis_url: str, people: dict[str, str],
                                store: SyncSessionStore) -> None:
    client = redis.Redis.from_url(redis_url)
    before = snapshot(client)
    declined = cli(redis_url, "users", "erase", "carlos", input="n\n")
    assert declined.exit_code == 1 and "nothing was erased" in declined.stderr
    assert "Erase everything of user 'carlos'?" in declined.stderr
    assert snapshot(client) == before
    accepted = cli(redis_url, "users", "erase", "carlos", input="y\n")
    assert accepted.exit_code == 0 and "erased user 'carlos'" in accepted.stdout
    assert "1 session(s), 1 archived conversation(s)" in accepted.stdout
    assert store.get_user("carlos") is None and store.get_session(people["dana"]) is not None
    store.save_fact("carlos", "k", "v", 1)
    erased = as_json(cli(redis_url, "users", "erase", "carlos", "--yes", "--json"))
    assert erased["keys_removed"] == 1 and erased["erased"]["facts"] == 1
    client.close()


# -- stats and check ----------------------------------------------------------------


def test_stats_counts_from_indexes_and_one_scan(redis_url: str, people: dict[str, str],
                                                store: SyncSessionStore) -> None:
    stats = as_json(cli(redis_url, "stats", "--json"))
    assert (stats["live_sessions"], stats["overdue_sessions"], stats["ending_soon"]) == (2, 0, 1)
    assert (stats["users"], stats["archived_conversations"]) == (2, 1)
    assert stats["oldest_overdue_seconds"] is None and stats["buckets"] == 8
    assert stats["memory"]["used_bytes"] > 0
    fast = as_json(cli(redis_url, "stats", "--json", "--no-scan"))
    assert fast["users"] is None and fast["live_sessions"] == 2
    table = cli(redis_url, "stats")
    assert table.exit_code == 0 and "live sessions" in table.stdout


def test_a_prefix_with_no_data_is_not_found_and_nothing_is_written(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    for argv in (["stats"], ["sessions", "list"], ["users", "show", "carlos"]):
        result = cli(redis_url, *argv, "--prefix", "other")
        assert result.exit_code == 4 and "--prefix" in result.stderr
    assert client.dbsize() == 0
    client.close()


@pytest.fixture
def flags(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis_server.client()
    before = client.config_get("notify-keyspace-events")["notify-keyspace-events"]
    yield client
    client.config_set("notify-keyspace-events", before)
    client.close()


def _findings(result: Result) -> dict[str, dict[str, Any]]:
    return {item["check"]: item for item in json.loads(result.stdout)["findings"]}


def test_check_reports_what_to_change(redis_url: str, people: dict[str, str],
                                      flags: redis.Redis) -> None:
    flags.config_set("notify-keyspace-events", "")
    result = cli(redis_url, "check", "--json")
    found = _findings(result)
    assert result.exit_code == 1
    assert found["notifications"]["status"] == "problem"
    assert "CONFIG SET notify-keyspace-events 'Ex'" in found["notifications"]["fix"]
    assert found["version"]["status"] == "ok" and found["layout"]["detail"].startswith(
        "prefix 'lr', 8 buckets")
    assert all(found[f"permission {name}"]["status"] == "ok"
               for name in ("CONFIG GET", "CONFIG SET", "SUBSCRIBE", "EVALSHA"))
    flags.config_set("notify-keyspace-events", "Kx$E")
    result = cli(redis_url, "check")
    assert "notify-keyspace-events='" in result.stdout
    if not hasattr(SessionStore, "live_listeners"):
        assert result.exit_code == 0 and "no problem found" in result.stdout
    missing = cli(redis_url, "check", "--prefix", "other", "--json")
    assert missing.exit_code == 1 and _findings(missing)["layout"]["status"] == "problem"


def test_check_finds_what_a_restricted_user_may_not_do(redis_url: str, people: dict[str, str],
                                                       flags: redis.Redis) -> None:
    flags.config_set("notify-keyspace-events", "")
    flags.acl_setuser("app", enabled=True, passwords=["+secret"], keys=["*"],
                      channels=["other"], commands=["+@all", "-config"])
    try:
        url = redis_url.replace("redis://", "redis://app:secret@")
        result = cli(url, "check", "--json")
        found = _findings(result)
        assert result.exit_code == 1
        assert found["permission CONFIG SET"]["status"] == "problem"
        assert found["permission SUBSCRIBE"]["status"] == "problem"
        assert "&__keyevent@0__:expired" in found["permission SUBSCRIBE"]["fix"]
        assert found["permission EVALSHA"]["status"] == "ok"
        assert found["notifications"]["status"] == "unknown"
        wrong = cli(redis_url.replace("redis://", "redis://app:wrong@"), "check")
        assert wrong.exit_code == 3 and "credentials" in wrong.stderr
    finally:
        flags.acl_deluser("app")


@NEEDS_SERVER_CHECKS
def test_check_reports_an_eviction_policy_that_drops_user_data(redis_url: str,
                                                               people: dict[str, str],
                                                               flags: redis.Redis) -> None:
    before = flags.config_get("maxmemory-policy")["maxmemory-policy"]
    flags.config_set("maxmemory-policy", "allkeys-lru")
    try:
        result = cli(redis_url, "check", "--json")
        assert result.exit_code == 1
        assert any(item["check"].startswith("server:") and item["status"] == "problem"
                   for item in json.loads(result.stdout)["findings"])
    finally:
        flags.config_set("maxmemory-policy", before)


@NEEDS_OUTBOX
def test_stats_reports_pending_deliveries(redis_url: str, people: dict[str, str]) -> None:
    stats = as_json(cli(redis_url, "stats", "--json"))
    assert set(stats["deliveries"]) >= {"pending", "quarantined", "oldest_age_seconds"}


@NEEDS_HEARTBEAT
def test_check_and_stats_see_a_live_listener(redis_url: str, people: dict[str, str]) -> None:
    import asyncio

    from luminora_redis.listener import ExpiryListener

    async def scenario() -> tuple[Result, Result]:
        async with SessionStore.from_url(redis_url) as async_store:
            listener = ExpiryListener(async_store, name="probe")
            task = asyncio.create_task(listener.run())
            await asyncio.wait_for(listener.started.wait(), 30)
            loop = asyncio.get_running_loop()
            stats = await loop.run_in_executor(None, cli, redis_url, "stats", "--json")
            check = await loop.run_in_executor(None, cli, redis_url, "check", "--json")
            await listener.stop()
            await task
            return stats, check

    stats, check = asyncio.run(scenario())
    assert as_json(stats)["listeners"] == ["probe"]
    assert _findings(check)["listeners"]["status"] == "ok"


# -- cluster ------------------------------------------------------------------------


@pytest.mark.cluster
def test_the_commands_work_on_a_cluster(redis_cluster: LocalCluster) -> None:
    for server in redis_cluster.primaries():
        with server.client() as client:
            client.flushall()
    url = redis_cluster.url
    with SyncSessionStore.from_url(url, cluster=True, buckets=16) as store:
        for n in range(6):
            sid = store.create_session(f"user{n}", "alicia")
            store.append_message(sid, "user", "hola")
        store.end_session(sid)
    stats = as_json(cli(url, "stats", "--json", cluster=True))
    assert (stats["live_sessions"], stats["users"], stats["archived_conversations"]) == (5, 6, 1)
    assert len(as_json(cli(url, "sessions", "list", "--json", cluster=True))) == 5
    shown = as_json(cli(url, "users", "show", "user5", "--json", cluster=True))
    assert shown["user"]["archived_conversations"] == 1
    checked = cli(url, "check", "--json", cluster=True)
    versions = [c for c in _findings(checked) if c.startswith("version")]
    assert len(versions) == 3
    erased = as_json(cli(url, "users", "erase", "user5", "--yes", "--json", cluster=True))
    assert erased["keys_removed"] > 0
    assert cli(url, "users", "show", "user5", cluster=True).exit_code == 4
