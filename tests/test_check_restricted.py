"""``check`` and ``stats`` where the server or the user allows less, on private servers:
``CONFIG`` renamed away as managed services do (the flags preset, or not), and an ACL
user without ``@dangerous``. Neither command fails whole; each says what it could not
read, why, and which right to grant, and codes print as words."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result

from luminora_redis import FindingCode, SyncSessionStore
from luminora_redis.cli import main
from luminora_redis.testing import RedisServer

from conftest import require_redis_server
from listener_support import while_listening

#: The rights the store and the listener need under the default prefix, and nothing
#: of @dangerous: no INFO, no CONFIG, no ACL.
RESTRICTED = ("~lr:* resetchannels &__keyevent@0__:expired -@all +@read +@write +@scripting "
              "+time +ping +subscribe")


def cli(url: str, *argv: str) -> Result:
    return CliRunner().invoke(main, [*argv, "--url", url], catch_exceptions=False)


def findings(result: Result) -> dict[str, dict[str, Any]]:
    return {item["check"]: item for item in json.loads(result.stdout)["findings"]}


def problems(result: Result) -> set[str]:
    return {name for name, item in findings(result).items() if item["status"] == "problem"}



def without_config(flags: str) -> Iterator[RedisServer]:
    require_redis_server()
    with RedisServer(config={"rename-command": 'CONFIG ""', "notify-keyspace-events": flags,
                             "appendonly": "yes"}) as server:
        with SyncSessionStore.from_url(server.url) as store:
            store.create_session("carlos", "alicia", {"ttl": 3600})
        yield server


@pytest.fixture
def managed_with_flags() -> Iterator[RedisServer]:
    """CONFIG renamed away, ``notify-keyspace-events Ex`` preset in the server's config."""
    yield from without_config("Ex")


@pytest.fixture
def managed_without_flags() -> Iterator[RedisServer]:
    """CONFIG renamed away, and no notification flags."""
    yield from without_config("")


def no_probe_left(server: RedisServer) -> bool:
    with server.client() as client:
        return not list(client.scan_iter(match="lr:check-probe:*"))


def test_check_is_ok_without_config_when_the_flags_are_preset(
        managed_with_flags: RedisServer) -> None:
    url = managed_with_flags.url
    as_data, table = while_listening(url, lambda: (cli(url, "check", "--json"),
                                                   cli(url, "check")), name="probe")
    assert as_data.exit_code == 0, as_data.stdout
    assert json.loads(as_data.stdout)["ok"] is True
    found = findings(as_data)
    assert found["notifications"]["status"] == "ok"
    assert "expired events are published" in found["notifications"]["detail"]
    assert "CONFIG GET is refused" in found["notifications"]["detail"]
    for name in ("permission CONFIG GET", "permission CONFIG SET"):
        assert found[name]["status"] == "warning", found[name]
        assert "no such command" in found[name]["detail"]
        assert "the flags are set already" in found[name]["fix"]
    policy = found["maxmemory-policy"]
    assert policy["status"] == "unknown" and "unknown command 'CONFIG'" in policy["detail"]
    assert found["listeners"]["status"] == "ok"
    assert table.exit_code == 0 and table.stdout.rstrip().endswith("no problem found")
    for output in (as_data.stdout, table.stdout):
        assert "FindingCode" not in output and "CONFIG_UNAVAILABLE" not in output
    assert no_probe_left(managed_with_flags)


def test_check_without_config_or_flags_says_only_the_sweeper_archives(
        managed_without_flags: RedisServer) -> None:
    url = managed_without_flags.url
    result = cli(url, "check", "--json")
    assert result.exit_code == 1
    # No listener runs here; the missing flags are the one other problem, not also
    # each CONFIG right, which no grant could give.
    assert problems(result) == {"notifications", "listeners"}
    notifications = findings(result)["notifications"]
    assert "expired events are off" in notifications["detail"]
    assert "neither check nor the listener can verify or turn them on" in \
        notifications["detail"]
    assert "sweeper only" in notifications["detail"]
    assert "notify-keyspace-events to include 'Ex'" in notifications["fix"]
    assert "provider's settings" in notifications["fix"]
    assert findings(result)["permission CONFIG SET"]["status"] == "warning"
    table = cli(url, "check")
    assert "sweeper only" in table.stdout and "FindingCode" not in table.stdout
    assert no_probe_left(managed_without_flags)


@pytest.fixture
def restricted() -> Iterator[tuple[RedisServer, str]]:
    """A private server with the flags preset, and the URL of a user without @dangerous."""
    require_redis_server()
    with RedisServer(config={"notify-keyspace-events": "Ex"}) as server:
        with server.client() as admin:
            admin.execute_command("ACL", "SETUSER", "lim", "on", ">pw", *RESTRICTED.split())
        url = server.url.replace("redis://", "redis://lim:pw@")
        with SyncSessionStore.from_url(url) as store:  # the store works for this user
            store.create_session("carlos", "alicia", {"ttl": 3600})
        yield server, url


def test_check_runs_for_a_user_without_dangerous_rights(
        restricted: tuple[RedisServer, str]) -> None:
    server, url = restricted
    result = cli(url, "check", "--json")
    assert "Traceback" not in result.output
    found = findings(result)
    version = found["version"]
    # HELLO, which the ACL never refuses, names the server without +info.
    assert version["status"] == "ok" and version["detail"].startswith(("redis ", "valkey "))
    policy = found["maxmemory-policy"]
    assert policy["status"] == "unknown" and "'config|get'" in policy["detail"]
    assert "+config|get" in policy["fix"]
    persistence = found["persistence"]
    assert persistence["status"] == "unknown" and "+config|get or +info" in persistence["fix"]
    # What it could read is still reported: the flags by probe, the layout, the rights.
    assert found["notifications"]["status"] == "ok"
    assert found["layout"]["status"] == "ok" and "1024 buckets" in found["layout"]["detail"]
    assert found["permission SUBSCRIBE"]["status"] == "ok"
    assert found["permission EVALSHA"]["status"] == "ok"
    assert found["permission CONFIG GET"]["status"] == "warning"
    assert found["deliveries"]["status"] == "ok"
    assert problems(result) == {"listeners"} and result.exit_code == 1  # none runs here
    table = cli(url, "check")
    assert "grant this user +config|get" in table.stdout and "Traceback" not in table.output
    assert no_probe_left(server)


def test_stats_runs_for_a_user_without_dangerous_rights(
        restricted: tuple[RedisServer, str]) -> None:
    _, url = restricted
    result = cli(url, "stats", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["live_sessions"] == 1 and data["users"] == 1 and data["listeners"] == []
    assert data["memory"] is None
    memory = data["unreadable"]["memory"]
    assert memory["grant"] == "+info" and "'info'" in memory["reason"]
    assert memory["commands"] == "INFO memory"
    assert set(data["unreadable"]) == {"memory"}
    table = cli(url, "stats")
    assert table.exit_code == 0, table.output
    assert "grant this user +info" in table.stdout and "live sessions" in table.stdout


def test_finding_codes_print_as_words() -> None:
    require_redis_server()
    for code in FindingCode:
        assert str(code) == f"{code}" == "%s" % code == code.value  # noqa: UP031 (as logging)
    with RedisServer(config={"maxmemory-policy": "allkeys-lru"}) as server:
        with SyncSessionStore.from_url(server.url) as store:
            store.create_session("carlos", "alicia")
            assert [str(item.code) for item in store.check_server()] == ["evicts-user-data"]
        as_data, table = cli(server.url, "check", "--json"), cli(server.url, "check")
    assert findings(as_data)["server: evicts user data"]["status"] == "problem"
    assert "server: evicts user data" in table.stdout
    for output in (as_data.stdout, table.stdout):
        assert "FindingCode" not in output and "EVICTS_USER_DATA" not in output
