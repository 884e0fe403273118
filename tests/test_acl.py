"""The least-privilege ACL: the store, the listener and the drop-in adapters run under
exactly the rules `acl_rules` returns, on a real redis-server; each rule is needed; a
missing right is a `MissingPermission` that names the command and the rule to add."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from luminora_redis import ExpiryListener, MissingPermission, SessionStore, SyncSessionStore
from luminora_redis.cli import main
from luminora_redis.compat.luminoracore import RedisStorageV11
from luminora_redis.core import acl
from luminora_redis.core.errors import missing_permission
from luminora_redis.core.scripts import script_sources
from luminora_redis.testing import LocalCluster, RedisServer

from conftest import require_redis_server, until

README = Path(__file__).resolve().parents[1] / "README.md"
PASSWORD = "s3cret-acl"
CREATE_SHA = hashlib.sha1(script_sources()["create_session"].encode()).hexdigest()


def _line_of(script: str, command: str) -> int:
    lines = script_sources()[script].split("\n")
    return next(n for n, line in enumerate(lines, 1) if f"redis.call('{command}'" in line)


# -- the rules themselves --------------------------------------------------------------


def test_script_commands_are_exactly_what_the_scripts_call() -> None:
    called = {command for source in script_sources().values()
              for command in acl.scripts_commands(source)}
    assert called == set(acl.SCRIPT_COMMANDS)


def test_rules_for_a_prefix_and_the_optional_rights() -> None:
    rules = acl.acl_rules("lr", 0, False, False)
    assert rules[:5] == ["resetkeys", "~lr:*", "resetchannels", "&__keyevent@0__:expired",
                         "-@all"]
    assert {"+evalsha", "+script|load", "+subscribe", "+ping", "+time"} <= set(rules)
    assert not {"+config|get", "+config|set", "+info", "+eval", "+@all"} & set(rules)
    assert not [rule for rule in rules if rule.startswith("+@")]  # no category: no FLUSHALL
    both = acl.acl_rules("app.v2", 3, True, True)
    assert both[1] == "~app.v2:*" and both[3] == "&__keyevent@3__:expired"
    assert both[-3:] == ["+config|get", "+config|set", "+info"]
    cluster = acl.acl_rules("lr", 5, False, False, cluster=True)
    assert cluster[3] == "&__keyevent@0__:expired"
    assert {"+cluster|slots", "+command"} <= set(cluster)


def test_cli_prints_the_rules_and_json() -> None:
    runner = CliRunner()
    shown = runner.invoke(main, ["acl", "--prefix", "chat", "--user", "bot", "--info"])
    assert shown.exit_code == 0, shown.output
    first = shown.output.splitlines()[0]
    assert first == "ACL SETUSER bot " + " ".join(
        f"'{rule}'" if re.search(r"[|&*~]", rule) else rule
        for rule in acl.acl_rules("chat", 0, False, True))
    data = json.loads(runner.invoke(main, ["acl", "--json", "--config", "--db", "2"]).output)
    assert data["rules"] == acl.acl_rules("lr", 2, True, False)
    assert data["user"] == "luminora" and data["command"].startswith("ACL SETUSER luminora ")
    for argv in (["acl", "--user", "two words"], ["acl", "--prefix", "a*"], ["acl", "--db", "-1"]):
        assert runner.invoke(main, argv).exit_code == 2, argv


def test_the_readme_shows_the_rules_of_the_default_prefix() -> None:
    printed = CliRunner().invoke(main, ["acl"]).output.splitlines()[0]
    assert printed in README.read_text("utf-8")


# -- what a refusal says ---------------------------------------------------------------


@pytest.mark.parametrize(("message", "command", "rule"), [
    # Redis 7.0, in a script: the command is traced to the script's line
    (f"The user executing the script can't run this command or subcommand script: "
     f"{CREATE_SHA}, on @user_script:{_line_of('create_session', 'TIME')}.", "time", "+time"),
    # Redis 6.2, in a script
    (f"Error running script (call to f_{CREATE_SHA}): @user_script:"
     f"{_line_of('create_session', 'TIME')}: @user_script: "
     f"{_line_of('create_session', 'TIME')}: The user executing the script can't run this "
     f"command or subcommand", "time", "+time"),
    # Redis 7.2+ and Valkey, in a script
    (f"ACL failure in script: User app has no permissions to run the 'time' command script: "
     f"{CREATE_SHA}, on @user_script:50.", "time", "+time"),
    ("this user has no permissions to run the 'config|get' command", "config|get", "+config|get"),
    ("User app has no permissions to run the 'evalsha' command", "evalsha", "+evalsha"),
    ("this user has no permissions to run the 'script' command or its subcommand",
     "script|load", "+script|load"),
    ("this user has no permissions to access one of the keys used as arguments", None, "~lr:*"),
    ("No permissions to access a key", None, "~lr:*"),
    ("No permissions to access a channel", None, "&__keyevent@0__:expired"),
])
def test_refusals_of_every_wording_name_the_rule(message: str, command: str | None,
                                                 rule: str) -> None:
    refused = missing_permission(redis.exceptions.NoPermissionError(message), prefix="lr", db=0)
    assert refused is not None
    assert (refused.command, refused.rule) == (command, rule)
    assert rule in str(refused) and "luminora-redis acl --prefix lr" in str(refused)
    if command is not None:
        assert command.upper().replace("|", " ") in str(refused)
    assert isinstance(refused, redis.exceptions.NoPermissionError)
    assert isinstance(refused.__cause__, redis.exceptions.NoPermissionError)


def test_other_errors_are_no_missing_permission() -> None:
    for error in (redis.exceptions.ResponseError("WRONGTYPE Operation against a key"),
                  redis.exceptions.ResponseError("user_script:1: Script attempted to access "
                                                 "nonexistent global variable 'x'")):
        assert missing_permission(error, prefix="lr") is None


# -- on a real server, as a restricted user ----------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    require_redis_server()
    with RedisServer() as private:
        yield private


@pytest.fixture
def admin(server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(server.url)
    client.flushall()
    client.script_flush()
    # The administrator presets the notification flags: the user has no CONFIG.
    client.config_set("notify-keyspace-events", "Ex")
    client.execute_command("ACL", "LOG", "RESET")
    client.config_resetstat()
    yield client
    for user in client.acl_users():
        if user.startswith("acl-"):
            client.acl_deluser(user)
    client.close()


def _user(admin: redis.Redis, server: RedisServer, rules: list[str]) -> str:
    name = f"acl-{uuid.uuid4().hex[:8]}"
    admin.execute_command("ACL", "SETUSER", name, "on", f">{PASSWORD}", *rules)
    return server.url.replace("redis://", f"redis://{name}:{PASSWORD}@")


def _acl_log(admin: redis.Redis) -> list[str]:
    return [entry[b"object"].decode() for entry in admin.execute_command("ACL", "LOG")]


async def _everything(url: str) -> dict[str, int]:
    """The store, two listeners (one archiving an idle session by notification and
    delivering it, one finding the sweep lease taken) and the LuminoraCore adapter, as the
    user of ``url``, touching every script command: a short history bound (LTRIM),
    one-item pages (the paging cursor), archive retention; the first listener's archives
    by path, of both."""
    store = SessionStore.from_url(url, max_history=2, page_size=1, archive_retention=1)
    sink: list[str] = []
    listener = ExpiryListener(store, sweep_interval=3600.0,  # no sweep in time: notifications
                              on_archived=lambda conversation: sink.append(conversation.session_id))
    second = ExpiryListener(store, sweep_interval=3600.0)
    running = [asyncio.create_task(listener.run())]
    try:
        await asyncio.wait_for(listener.started.wait(), 30)
        running.append(asyncio.create_task(second.run()))
        await asyncio.wait_for(second.started.wait(), 30)
        sid = await store.create_session("carlos", "alicia")
        turn = [("user", "a"), ("assistant", "b"), ("user", "c")]
        assert [m.content for m in await store.chat_turn(sid, turn, last=3)] == ["a", "b", "c"]
        assert [m.content for m in await store.get_history(sid, last=3)] == ["a", "b", "c"]
        # A caller's retry of a turn (turn_id): stored once, answered from the history.
        for _ in range(2):
            await store.chat_turn(sid, [("user", "d")], turn_id="t-1")
        assert [m.content for m in await store.get_history(sid, last=2)] == ["c", "d"]
        other = await store.create_session("carlos", "bruno")
        assert len(await store.list_user_sessions("carlos")) == 2
        assert (await store.deadline_stats()).sessions == 2
        await store.delete_session(other)
        await store.save_fact("carlos", "personal_info", "name", "Carlos")
        assert [f.value for f in await store.get_facts("carlos")] == ["Carlos"]
        assert (await store.update_affinity("carlos", "alicia", 30)).points == 30
        assert len(await store.get_evolution("carlos")) == 1
        for importance in (8.0, 9.0):
            await store.save_episode("carlos", "milestone", "t", "s", importance, "positive")
        assert [e.importance for e in await store.get_episodes("carlos")] == [9.0, 8.0]
        assert await store.end_session(sid)
        idle = await store.create_session("carlos", "alicia", {"ttl": 3600, "max_idle": 0.2})
        await store.chat_turn(idle, [("user", "hola"), ("assistant", "¡hola!")])
        await until(lambda: listener.archived_by_path["notification"]
                    + second.archived_by_path["notification"] >= 1, timeout=20,
                    what="the idle session archived by notification")
        await until(lambda: {sid, idle} <= set(sink), timeout=20,
                    what="both archives delivered to the sink")

        async def retained() -> bool:  # an archive is trimmed once its delivery is acked
            return len(await store.get_archived_conversations("carlos", limit=None)) == 1

        await until(retained, timeout=20, what="retention keeping the newest archive only")
        [newest] = await store.get_archived_conversations("carlos", limit=1)
        assert newest.session_id == idle
        assert await store.get_archived_conversations("carlos", before=idle) == []
        exported = await store.export_user("carlos")
        assert exported["facts"] and len(exported["archived_conversations"]) == 1

        storage = RedisStorageV11.from_url(url)
        try:
            now = datetime.now()
            assert await storage.save_session("session_x", "ana", "alicia", now.isoformat(),
                                              (now + timedelta(hours=1)).isoformat(),
                                              now.isoformat(), "active", {})
            assert (await storage.get_session("session_x") or {})["user_id"] == "ana"
            assert await storage.save_affinity("ana", "alicia", 5, "stranger")
            await storage.save_fact("ana", "c", "k", "v")
            assert [f["value"] for f in await storage.get_facts("ana")] == ["v"]
            assert await storage.save_mood("not-a-session", "ana", "shy")
            assert (await storage.get_mood("not-a-session") or {})["current_mood"] == "shy"
        finally:
            await storage.aclose()

        assert await store.erase_user("carlos") > 0
        assert await store.get_facts("carlos") == []
        return {path: listener.archived_by_path[path] + second.archived_by_path[path]
                for path in listener.archived_by_path}
    finally:
        await second.stop()
        await listener.stop()
        await asyncio.gather(*running)
        await store.aclose()


def _blocking_and_langchain(url: str) -> None:
    store = SyncSessionStore.from_url(url)
    try:
        sid = store.create_session("bob", "alicia")
        store.chat_turn(sid, [("user", "hi")])
        try:
            from luminora_redis.compat.langchain import LuminoraChatMessageHistory
        except ImportError:
            pass
        else:
            history = LuminoraChatMessageHistory(sid, sync_store=store)
            history.add_user_message("again")
            assert [m.content for m in history.messages][-1] == "again"
        assert store.end_session(sid)
    finally:
        store.close()


def test_everything_runs_under_exactly_the_rules_and_uses_each(
        admin: redis.Redis, server: RedisServer) -> None:
    rules = acl.acl_rules("lr", 0, False, False)
    url = _user(admin, server, rules)
    archived = asyncio.run(_everything(url))
    assert archived["notification"] >= 1
    _blocking_and_langchain(url)
    # The CLI pings first, then reads as the same user.
    shown = CliRunner().invoke(main, ["sessions", "list", "--url", url, "--json"])
    assert shown.exit_code == 0, shown.output
    # Nothing was refused but what the code asks and goes on without: the optional CONFIG
    # reads, the listener's CLIENT NO-EVICT and (Redis 7.2+) redis-py's CLIENT SETINFO;
    # not even a PEXPIRETIME inside a pcall.
    assert set(_acl_log(admin)) <= {"config|get", "client|no-evict", "client|setinfo"}
    used = {name.removeprefix("cmdstat_") for name in admin.info("commandstats")}
    granted = {rule[1:] for rule in rules if rule.startswith("+")}
    # Each command the client sends itself was needed; each script command is needed by
    # some script (test_script_commands_are_exactly_what_the_scripts_call).
    assert set(acl.CLIENT_COMMANDS) <= used
    assert granted - used <= set(acl.SCRIPT_COMMANDS), sorted(granted - used)
    assert not granted - used, " ".join(sorted(granted - used))


def test_without_ping_the_cli_names_the_rule(admin: redis.Redis, server: RedisServer) -> None:
    url = _user(admin, server, [r for r in acl.acl_rules() if r != "+ping"])
    shown = CliRunner().invoke(main, ["sessions", "list", "--url", url])
    assert shown.exit_code == 1
    assert "+ping" in shown.output and "luminora-redis acl" in shown.output


@pytest.mark.parametrize(("dropped", "command"), [
    ("+time", "time"), ("+hset", "hset"), ("+evalsha", "evalsha"),
    ("+script|load", "script|load"), ("~lr:*", None)])
def test_a_missing_right_names_the_command_and_the_rule(
        admin: redis.Redis, server: RedisServer, dropped: str, command: str | None) -> None:
    url = _user(admin, server, [rule for rule in acl.acl_rules() if rule != dropped])

    async def create() -> None:
        store = SessionStore.from_url(url)
        try:
            await store.create_session("carlos", "alicia")
        finally:
            await store.aclose()

    with pytest.raises(MissingPermission) as refused:
        asyncio.run(create())
    assert (refused.value.command, refused.value.rule) == (command, dropped)
    assert dropped in str(refused.value)
    if command is not None:
        assert command.upper().replace("|", " ") in str(refused.value)
    # A script refused part-way keeps what it wrote before (claim_layout's first fields).
    admin.flushall()
    blocking = SyncSessionStore.from_url(url)
    try:
        with pytest.raises(MissingPermission) as again:
            blocking.create_session("carlos", "alicia")
        assert again.value.rule == dropped
    finally:
        blocking.close()


def test_the_listener_logs_the_rule_it_lacks(admin: redis.Redis, server: RedisServer,
                                              caplog: pytest.LogCaptureFixture) -> None:
    channel = acl.channel_rule(0)
    url = _user(admin, server, [rule for rule in acl.acl_rules() if rule not in (channel, "+time")])
    admin_store = SyncSessionStore.from_url(server.url)
    admin_store.create_session("carlos", "alicia", {"ttl": 3600, "max_idle": 0.05})
    admin_store.close()

    async def listen() -> None:
        store = SessionStore.from_url(url)
        listener = ExpiryListener(store, sweep_interval=0.05)
        running = asyncio.create_task(listener.run())
        try:
            await until(lambda: "+time" in caplog.text and channel in caplog.text, timeout=20,
                        what="warnings naming &__keyevent@0__:expired and +time")
        finally:
            await listener.stop()
            await running
            await store.aclose()

    with caplog.at_level(logging.WARNING):
        asyncio.run(listen())
    assert "MissingPermission" in caplog.text and "TIME" in caplog.text
    assert "Traceback" not in caplog.text  # an outage waited out, not a bug
    still = SyncSessionStore.from_url(server.url)
    try:  # nothing was archived: the user could not run the scripts
        assert still.get_archived_conversations("carlos") == []
    finally:
        still.close()


def test_the_demo_runs_for_a_user_restricted_to_its_prefix(admin: redis.Redis,
                                                           server: RedisServer) -> None:
    url = _user(admin, server, acl.acl_rules("lr"))
    runner = CliRunner()
    refused = runner.invoke(main, ["demo", "--url", url])  # its keys default to demo:*
    assert refused.exit_code == 1
    assert "~demo:*" in refused.output and "MissingPermission" not in refused.output
    admin.flushall()
    shown = runner.invoke(main, ["demo", "--url", url, "--prefix", "lr"])
    assert shown.exit_code == 0, shown.output
    assert "expired and archived after" in shown.output and shown.output.endswith("done.\n")
    keys = [key.decode() for key in admin.scan_iter(count=1000)]
    assert keys and all(key.startswith("lr:") for key in keys)


@pytest.mark.cluster
def test_the_cluster_rules_run_the_store_and_the_listener(redis_cluster: LocalCluster) -> None:
    redis_cluster.flushall()
    name = f"acl-{uuid.uuid4().hex[:8]}"
    # With --config the listener merges the flags on every primary itself.
    rules = acl.acl_rules("lr", 0, True, False, cluster=True)
    nodes = [server for server in redis_cluster.servers if server.running]
    for server in nodes:  # each node has its own ACL
        with server.client() as admin:
            admin.execute_command("ACL", "SETUSER", name, "on", f">{PASSWORD}", *rules)
            admin.execute_command("ACL", "LOG", "RESET")
    url = redis_cluster.url.replace("redis://", f"redis://{name}:{PASSWORD}@")

    async def run() -> None:
        store = SessionStore.from_url(url, cluster=True)
        listener = ExpiryListener(store, sweep_interval=3600.0)
        running = asyncio.create_task(listener.run())
        try:
            await asyncio.wait_for(listener.started.wait(), 30)
            users = [f"user{n}" for n in range(6)]  # over several slots, so several nodes
            for user in users:
                sid = await store.create_session(user, "alicia", {"ttl": 3600, "max_idle": 0.2})
                await store.chat_turn(sid, [("user", "hola")])
                await store.save_fact(user, "c", "k", "v")
            await until(lambda: listener.archived_by_path["notification"] == len(users),
                        timeout=30, what="every idle session archived by notification")
            for user in users:
                assert len(await store.get_archived_conversations(user)) == 1
        finally:
            await listener.stop()
            await running
            await store.aclose()

    try:
        asyncio.run(run())
        refused: set[str] = set()
        for server in nodes:
            with server.client() as admin:
                refused |= {entry[b"object"].decode()
                            for entry in admin.execute_command("ACL", "LOG")}
        assert refused <= {"client|no-evict", "client|setinfo"}, refused
    finally:
        for server in nodes:
            with server.client() as admin:
                admin.execute_command("ACL", "DELUSER", name)
