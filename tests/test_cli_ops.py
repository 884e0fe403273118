"""The operator commands against a real server (click's CliRunner): sessions,
users, stats and check, as tables and as JSON, with their exit codes."""

from __future__ import annotations

import asyncio
import importlib
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner, Result
from rich.console import Console

from luminora_redis import SessionStore, SyncSessionStore
from luminora_redis.cli import main
from luminora_redis.cli.common import dumps, literal
from luminora_redis.core.keys import KeySpace
from luminora_redis.listener.expiry_listener import ExpiryListener
from luminora_redis.testing import LocalCluster, RedisServer

from conftest import snapshot, wait_until
from listener_support import while_listening


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
    assert exported["archived_conversations"][0]["mood"] is None
    out = tmp_path / "carlos.json"
    result = cli(redis_url, "users", "export", "carlos", "--out", str(out))
    assert result.exit_code == 0 and result.stdout == "" and str(out) in result.stderr
    assert json.loads(out.read_text())["facts"] == exported["facts"]


def _undated(exported: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in exported.items() if name != "exported_at"}


def test_users_export_takes_json_and_keeps_moods_and_timeouts(redis_url: str,
                                                              store: SyncSessionStore) -> None:
    live = store.create_session("eve", "alicia", {"ttl": 3600, "max_idle": 600})
    store.save_mood(live, "curious", 0.25)
    ended = store.create_session("eve", "alicia")
    store.save_mood(ended, "happy", 0.75)
    expired = store.create_session("eve", "bruno", {"ttl": 0.2})
    store.save_mood(expired, "shy", 0.5)
    older = store.create_session("eve", "bruno")
    store.save_mood(older, "calm", 1.0)
    # a mood saved before the meta hash kept a copy: only the session hash has it
    raw = redis.Redis.from_url(redis_url)
    keys = KeySpace("lr", 8)
    raw.hdel(keys.session(older, keys.bucket_of_session(older)).meta, "mood")
    raw.close()
    store.end_session(ended)
    store.end_session(older)
    wait_until(lambda: store.get_session(expired) is None)
    assert store.cleanup_expired_sessions(10) == 1  # its session hash, mood and all, expired first

    exported = as_json(cli(redis_url, "users", "export", "eve"))
    assert _undated(as_json(cli(redis_url, "users", "export", "eve", "--json"))) == \
        _undated(exported)
    [session] = exported["sessions"]
    assert (session["session_id"], session["ttl"], session["max_idle"]) == (live, 3600.0, 600.0)
    assert session["has_mood"] is True
    assert (session["mood"]["mood"], session["mood"]["intensity"]) == ("curious", 0.25)
    moods = {item["session_id"]: (item["mood"]["mood"], item["mood"]["intensity"])
             for item in exported["archived_conversations"]}
    assert moods == {ended: ("happy", 0.75), expired: ("shy", 0.5), older: ("calm", 1.0)}
    assert {c.session_id: c.mood.mood for c in store.get_archived_conversations("eve")
            if c.mood is not None} == {ended: "happy", expired: "shy", older: "calm"}


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


# -- what users wrote ----------------------------------------------------------------

LINK, BOLD, RED = "[link=http://evil]click[/link]", "[bold]x[/bold]", "\x1b[31mred"
EVIL = f"{LINK} {BOLD} {RED}"
NAME = "[link=http://evil]u[/link]"  # ids and names may hold markup, not control characters


@pytest.fixture
def evil(store: SyncSessionStore) -> dict[str, str]:
    live = store.create_session(NAME, BOLD, {"ttl": 3600})
    store.chat_turn(live, [("user", EVIL)])
    store.save_mood(live, BOLD)
    store.save_fact(NAME, "personal_info", "name", EVIL)
    store.save_episode(NAME, "milestone", EVIL, EVIL, importance=8)
    ended = store.create_session(NAME, "alicia")
    store.append_message(ended, "user", EVIL)
    store.end_session(ended)
    return {"live": live, "ended": ended}


def _strings(data: Any) -> set[str]:
    """Every string value anywhere in parsed JSON."""
    if isinstance(data, str):
        return {data}
    values = data.values() if isinstance(data, dict) else data if isinstance(data, list) else []
    return set().union(*(_strings(value) for value in values))


def test_literal_shows_control_characters_and_parses_no_markup() -> None:
    text = literal("[b]x[/b] :smile: \x1b[31m \x9b1m \u202egnp.exe \r\x00\x7f one\ntwo\tthree")
    assert text.plain == ("[b]x[/b] :smile: \\x1b[31m \\x9b1m \\u202egnp.exe \\r\\x00\\x7f "
                          "one\ntwo\tthree")
    assert literal(None).plain == "-" and literal(3).plain == "3"
    data = {"text": "\x1b[31m \x9b \u202e \u2066 ¡hola!"}
    out = dumps(data)
    assert json.loads(out) == data and not re.search("[\x1b\x9b\u202e\u2066]", out)
    assert "¡hola!" in out


def test_what_users_wrote_is_printed_literally(redis_url: str, evil: dict[str, str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)
    tables = {argv: cli(redis_url, *argv) for argv in (
        ("users", "show", NAME), ("sessions", "show", evil["live"]), ("sessions", "list"))}
    for argv, result in tables.items():
        assert result.exit_code == 0, argv
        assert "\x1b" not in result.stdout and NAME in result.stdout, argv
    for argv in (("users", "show", NAME), ("sessions", "show", evil["live"])):
        out = tables[argv].stdout
        assert LINK in out and BOLD in out and "\\x1b[31mred" in out, argv
    assert BOLD in tables[("sessions", "list")].stdout  # the personality
    listed = cli(redis_url, "sessions", "list", "--json")
    assert {NAME, BOLD} <= _strings(json.loads(listed.stdout))
    for argv in (("users", "show", NAME, "--json"), ("sessions", "show", evil["live"], "--json"),
                 ("users", "export", NAME), ("users", "export", NAME, "--json")):
        result = cli(redis_url, *argv)
        assert result.exit_code == 0 and "\x1b" not in result.stdout, argv
        assert LINK in result.stdout and "\\u001b[31mred" in result.stdout, argv
        assert EVIL in _strings(json.loads(result.stdout)), argv
    erased = cli(redis_url, "users", "erase", NAME, "--yes")
    assert erased.exit_code == 0 and f"erased user {NAME!r}" in erased.stdout


def test_a_color_terminal_gets_no_link_and_no_escape_from_users(
        redis_url: str, evil: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    probe = Console(file=io.StringIO())
    probe.print("[link=http://probe]p[/link] [bold]b[/bold]")
    assert "\x1b]8;" in probe.file.getvalue()  # in this environment rich renders links
    for argv in (("users", "show", NAME), ("sessions", "show", evil["live"]),
                 ("sessions", "list")):
        result = cli(redis_url, *argv)
        assert result.exit_code == 0, argv
        out = result.stdout
        assert "\x1b]8;" not in out and "\x1b[31m" not in out and NAME in out, argv
    out = cli(redis_url, "sessions", "show", evil["live"]).stdout
    assert LINK in out and BOLD in out and "\\x1b[31mred" in out


# -- invalid input and not found -------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ("sessions", "show", "not-a-session"), ("sessions", "end", "xyz"),
    ("sessions", "show", "ffff-" + "0" * 32),  # well formed, but beyond the 8 buckets
    ("stats", "--prefix", "bad:prefix"), ("sessions", "list", "--prefix", "bad:prefix"),
    ("check", "--prefix", "bad:prefix"), ("users", "show", "carlos", "--prefix", ""),
    ("users", "export", "carlos", "--prefix", "x" * 33)])
def test_an_invalid_id_or_prefix_is_a_usage_error(redis_url: str, people: dict[str, str],
                                                  argv: tuple[str, ...]) -> None:
    result = cli(redis_url, *argv)
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith("luminora-redis: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_a_well_formed_id_of_no_session_is_not_found(redis_url: str,
                                                     people: dict[str, str]) -> None:
    unknown = people["live"][:5] + "0" * 32  # a bucket of this store, no session
    for command in ("show", "end"):
        result = cli(redis_url, "sessions", command, unknown)
        assert result.exit_code == 4 and "no session" in result.stderr, command
        assert result.stderr.count("\n") == 1


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
    # reset_channels: Redis 6.2 gives a new user every channel (acl-pubsub-default)
    flags.acl_setuser("app", enabled=True, passwords=["+secret"], keys=["*"],
                      reset_channels=True, channels=["other"], commands=["+@all", "-config"])
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
        assert found["persistence"]["status"] == "unknown"  # AOF is off, save unreadable
        assert "could not read" in found["persistence"]["detail"]
        wrong = cli(redis_url.replace("redis://", "redis://app:wrong@"), "check")
        assert wrong.exit_code == 3 and "credentials" in wrong.stderr
    finally:
        flags.acl_deluser("app")


def test_check_reports_an_eviction_policy_that_drops_user_data(redis_url: str,
                                                               people: dict[str, str],
                                                               flags: redis.Redis) -> None:
    before = flags.config_get("maxmemory-policy")["maxmemory-policy"]
    flags.config_set("maxmemory-policy", "allkeys-lru")
    try:
        result = cli(redis_url, "check", "--json")
        assert result.exit_code == 1
        assert _findings(result)["server: evicts user data"]["status"] == "problem"
        table = cli(redis_url, "check")
        assert "server: evicts user data" in table.stdout and "FindingCode" not in table.stdout
    finally:
        flags.config_set("maxmemory-policy", before)


def test_check_flags_a_server_that_persists_nothing(redis_url: str, people: dict[str, str],
                                                    flags: redis.Redis) -> None:
    assert flags.config_get("save")["save"] == "" and flags.config_get("appendonly")[
        "appendonly"] == "no"  # how the shared server runs
    result = cli(redis_url, "check", "--json")
    found = _findings(result)["persistence"]
    assert result.exit_code == 1 and found["status"] == "problem"
    assert "appendonly no and save ''" in found["detail"] and "appendonly yes" in found["fix"]
    flags.config_set("save", "3600 1")
    try:
        found = _findings(cli(redis_url, "check", "--json"))["persistence"]
        assert found["status"] == "ok" and "RDB snapshots" in found["detail"]
    finally:
        flags.config_set("save", "")



def test_check_flags_deliveries_nobody_makes(redis_url: str, people: dict[str, str],
                                             store: SyncSessionStore,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    check_module = importlib.import_module("luminora_redis.cli.check")  # the package's
    # attribute of that name is the command
    assert store.delivery_backlog().pending == 1  # the session people ended
    found = _findings(cli(redis_url, "check", "--json"))["deliveries"]
    assert found["status"] == "problem" and "no listener with an on_archived hook" in \
        found["detail"]
    assert "--hook" in found["fix"] and "deliveries=False" in found["fix"]

    def without_a_hook() -> tuple[dict[str, Any], dict[str, Any]]:
        deliveries = _findings(cli(redis_url, "check", "--json"))["deliveries"]
        return deliveries, _findings(cli(redis_url, "check", "--json"))["listeners"]

    hookless, listeners = while_listening(redis_url, without_a_hook, name="hookless")
    assert listeners["status"] == "ok" and "hookless" in listeners["detail"]
    assert hookless["status"] == "problem" and "no listener with an on_archived hook" in \
        hookless["detail"]
    assert store.delivery_backlog().pending == 1

    stale_after = check_module.STALE_DELIVERY

    def failing() -> tuple[dict[str, Any], dict[str, Any]]:
        fresh = _findings(cli(redis_url, "check", "--json"))["deliveries"]
        monkeypatch.setattr(check_module, "STALE_DELIVERY", 0.0)
        wait_until(lambda: (store.delivery_backlog().oldest_age_seconds or 0) > 0)
        stale = _findings(cli(redis_url, "check", "--json"))["deliveries"]
        monkeypatch.setattr(check_module, "STALE_DELIVERY", stale_after)
        return fresh, stale

    def refuse(conversation: Any) -> None:
        raise RuntimeError("the sink is down")

    fresh, stale = while_listening(redis_url, failing, on_archived=refuse)
    assert fresh["status"] == "ok" and "1 listener(s) with a hook" in fresh["detail"]
    assert stale["status"] == "problem" and "the hook keeps failing" in stale["detail"]
    assert store.delivery_backlog().pending == 1

    delivered: list[str] = []

    def with_a_hook() -> dict[str, Any]:
        wait_until(lambda: store.delivery_backlog().pending == 0, timeout=30)
        return _findings(cli(redis_url, "check", "--json"))["deliveries"]

    found = while_listening(redis_url, with_a_hook,
                            on_archived=lambda conversation: delivered.append(
                                conversation.session_id))
    assert delivered == [people["ended"]]
    assert found["status"] == "ok" and found["detail"].startswith("none pending")


def test_check_passes_on_a_ready_server(redis_server: RedisServer) -> None:
    with RedisServer(config={"appendonly": "yes"}) as server:
        with SyncSessionStore.from_url(server.url) as ready:
            ended = ready.create_session("carlos", "alicia")
            ready.end_session(ended)

            def check() -> tuple[Result, Result]:
                wait_until(lambda: ready.delivery_backlog().pending == 0, timeout=30)
                return cli(server.url, "check", "--json"), cli(server.url, "check")

            as_data, table = while_listening(server.url, check, on_archived=lambda _: None)
    assert as_data.exit_code == 0, as_data.stdout
    found = _findings(as_data)
    assert found["persistence"]["status"] == "ok" and "appendonly yes" in found["persistence"][
        "detail"]
    assert found["deliveries"]["status"] == "ok" and found["listeners"]["status"] == "ok"
    assert table.exit_code == 0 and table.stdout.rstrip().endswith("no problem found")


def test_stats_reports_pending_deliveries(redis_url: str, people: dict[str, str]) -> None:
    stats = as_json(cli(redis_url, "stats", "--json"))
    assert set(stats["deliveries"]) >= {"pending", "quarantined", "oldest_age_seconds"}


def test_check_and_stats_see_a_live_listener(redis_url: str, people: dict[str, str]) -> None:


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
