"""TLS end to end: the stores, the listener and the CLI over ``rediss://`` with
verification on, against a redis-server that speaks only TLS (the plugin's
``luminora_redis_tls_server``, with a CA made at test time) and a TLS-only
cluster (``LocalCluster(tls=True)``).

The server has no plain port, so anything that works here went through TLS;
what must not work (a client that does not trust the CA, a host name the
certificate does not list) is refused at the handshake with an error that says
so, never as "not found".
"""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from click.testing import CliRunner, Result
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException
from redis.retry import Retry

import luminora_redis.testing.plugin as plugin
from luminora_redis import SessionStore, SyncSessionStore
from luminora_redis.cli import main
from luminora_redis.core.models import ArchivedConversation
from luminora_redis.listener.expiry_listener import NOTIFICATION, SWEEP, ExpiryListener
from luminora_redis.testing import LocalCluster, RedisServer, find_redis_server, make_tls_files
from luminora_redis.testing.tls import tls_problem

from conftest import open_store, require_redis_server, until, wait_until
from listener_support import MIN_TTL, NOTIFY, flags_restored, running


def binary_problem() -> str | None:
    """Why the redis-server the suite runs cannot serve TLS, or None."""
    executable = find_redis_server()
    return None if executable is None else tls_problem(executable)


#: A server built without TLS is a real build the suite may run on (CI runs parts of it on
#: other binaries): these tests skip with the reason there, even under CI.
BINARY_PROBLEM = binary_problem()
pytestmark = pytest.mark.skipif(BINARY_PROBLEM is not None, reason=f"{BINARY_PROBLEM}")


def url_of(server: RedisServer, host: str | None = None, ca: Path | None = None,
           **query: str) -> str:
    """``rediss://`` to ``server`` by ``host`` (its own by default), trusting ``ca`` (none:
    the system's store) with more query parameters."""
    params = {**({"ssl_ca_certs": str(ca)} if ca is not None else {}), **query}
    tail = "&".join(f"{name}={quote(value, safe='/')}" for name, value in params.items())
    return f"rediss://{host or server.host}:{server.port}/0" + (f"?{tail}" if tail else "")


def cli(url: str, *argv: str) -> Result:
    return CliRunner().invoke(main, [*argv, "--url", url], catch_exceptions=False)


@pytest.fixture
def tls_server(luminora_redis_tls_server: RedisServer, luminora_redis_tls_url: str) -> RedisServer:
    """The shared TLS server, flushed."""
    return luminora_redis_tls_server


@pytest.fixture
def stranger_ca(tmp_path: Path) -> Path:
    """A CA that signed nothing the server holds."""
    return make_tls_files(tmp_path / "stranger").ca_cert


# -- the stores ---------------------------------------------------------------------


def test_the_server_speaks_only_tls_and_its_url_trusts_its_ca(tls_server: RedisServer) -> None:
    assert tls_server.url.startswith(f"rediss://127.0.0.1:{tls_server.port}/0?ssl_ca_certs=/")
    with pytest.raises(redis.ConnectionError):  # no plain port to fall back on
        with redis.Redis(host=tls_server.host, port=tls_server.port, socket_timeout=5,
                         retry=Retry(NoBackoff(), 0)) as plain:
            plain.ping()


@pytest.mark.parametrize("shell", ["asyncio", "blocking"])
def test_a_conversation_over_verified_tls(tls_server: RedisServer, shell: str) -> None:
    url = url_of(tls_server, ca=tls_server.tls_files.ca_cert, ssl_cert_reqs="required",
                 ssl_check_hostname="true")
    store, close = open_store(shell, url)
    try:
        kwargs = store.client.connection_pool.connection_kwargs
        assert kwargs["ssl_ca_certs"] == str(tls_server.tls_files.ca_cert)
        assert kwargs["ssl_cert_reqs"] == "required" and kwargs["ssl_check_hostname"] is True
        sid = store.create_session("carlos", "alicia", {"ttl": 600, "max_idle": 300})
        context = store.chat_turn(sid, [("user", "hola"), ("assistant", "¡hola Carlos!")])
        assert [m.content for m in context] == ["hola", "¡hola Carlos!"]
        assert [m.role for m in store.get_history(sid)] == ["user", "assistant"]
        assert store.end_session(sid)
        assert store.get_session(sid) is None
        [archived] = store.get_archived_conversations("carlos")
        assert archived.session_id == sid
        assert [m.content for m in archived.messages] == ["hola", "¡hola Carlos!"]
    finally:
        close()


@pytest.mark.parametrize("shell", ["asyncio", "blocking"])
def test_a_client_that_does_not_trust_the_ca_is_refused(tls_server: RedisServer, shell: str,
                                                        stranger_ca: Path) -> None:
    for url in (url_of(tls_server), url_of(tls_server, ca=stranger_ca)):
        store, close = open_store(shell, url)
        try:
            with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
                store.create_session("carlos", "alicia")
        finally:
            close()
    with tls_server.client() as client:
        assert client.dbsize() == 0  # nothing was written


@pytest.mark.parametrize("shell", ["asyncio", "blocking"])
def test_the_host_name_is_checked(tmp_path: Path, shell: str) -> None:
    require_redis_server()
    files = make_tls_files(tmp_path / "tls", hosts=["localhost"])  # no IP address in it
    with RedisServer(tls=files) as server:
        refused, close = open_store(shell, url_of(server, ca=files.ca_cert))
        try:
            with pytest.raises(redis.ConnectionError, match="IP address mismatch"):
                refused.create_session("carlos", "alicia")
        finally:
            close()
        accepted, close = open_store(shell, url_of(server, host="localhost", ca=files.ca_cert))
        try:
            assert accepted.get_session(accepted.create_session("carlos", "alicia")) is not None
        finally:
            close()


def test_tls_parameters_reach_the_cluster_clients(tls_server: RedisServer,
                                                  stranger_ca: Path) -> None:
    ca = str(tls_server.tls_files.ca_cert)
    url = url_of(tls_server, ca=Path(ca), ssl_cert_reqs="required")
    # The asyncio cluster client connects on first use: its settings can be read first.
    store = SessionStore.from_url(url, cluster=True)
    assert isinstance(store.client, redis.asyncio.cluster.RedisCluster)
    kwargs = store.client.nodes_manager.connection_kwargs
    assert kwargs["connection_class"] is redis.asyncio.SSLConnection
    assert kwargs["ssl_ca_certs"] == ca and kwargs["ssl_cert_reqs"] == "required"
    assert kwargs["ssl_check_hostname"] is True
    asyncio.run(store.aclose())
    # The blocking one connects at once: over TLS to a server that is not a cluster it
    # gets as far as asking for the slots; without the CA it fails at the handshake.
    with pytest.raises(RedisClusterException, match="Cluster mode is not enabled on this node"):
        SyncSessionStore.from_url(url, cluster=True)
    with pytest.raises(RedisClusterException, match="CERTIFICATE_VERIFY_FAILED"):
        SyncSessionStore.from_url(url_of(tls_server, ca=stranger_ca), cluster=True)


# -- the listener -------------------------------------------------------------------


@pytest.fixture
def expiry_flags(tls_server: RedisServer) -> Iterator[None]:
    """The server publishes expiry events itself, as a managed service would be set up;
    the listener is not allowed to change them."""
    with flags_restored([tls_server]):
        with tls_server.client() as client:
            client.config_set(NOTIFY, "Ex")
        yield


@pytest.mark.slow
async def test_the_listener_archives_by_notification_over_tls(
        tls_server: RedisServer, luminora_redis_tls_url: str, expiry_flags: None) -> None:
    archived: asyncio.Queue[ArchivedConversation] = asyncio.Queue()
    async with SessionStore.from_url(luminora_redis_tls_url) as store:
        # The sweeper would only run again in an hour: the archive must come from the
        # expiry notification, received over TLS.
        listener = ExpiryListener(store, on_archived=archived.put, configure_notifications=False,
                                  catch_up=False, sweep_interval=3600.0)
        async with running(listener):
            # Sessions made before the first full sweep ends could be swept by it.
            await until(lambda: listener.sweeps >= 1, timeout=60)

            def create() -> str:
                with SyncSessionStore.from_url(luminora_redis_tls_url) as writer:
                    sid = writer.create_session("carlos", "alicia", {"ttl": MIN_TTL, "max_idle": MIN_TTL})
                    writer.append_message(sid, "user", "hola")
                    return sid

            sid = await asyncio.to_thread(create)
            conversation = await asyncio.wait_for(archived.get(), timeout=30)
        assert conversation.session_id == sid and conversation.user_id == "carlos"
        assert [m.content for m in conversation.messages] == ["hola"]
        assert listener.archived_by_path == {NOTIFICATION: 1, SWEEP: 0}


# -- a cluster ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_cluster() -> Iterator[LocalCluster]:
    """A 3-primary cluster with a replica each, TLS only: clients, replication, cluster bus."""
    require_redis_server()
    with LocalCluster(tls=True, replicas=1) as cluster:
        yield cluster


@pytest.mark.cluster
@pytest.mark.parametrize("shell", ["asyncio", "blocking"])
def test_a_conversation_over_a_tls_cluster(tls_cluster: LocalCluster, shell: str,
                                           stranger_ca: Path) -> None:
    tls_cluster.flushall()
    assert tls_cluster.url.startswith("rediss://")
    store, close = open_store(shell, tls_cluster.url, cluster=True)
    try:
        sessions = [store.create_session(f"user-{n}", "alicia") for n in range(12)]
        for sid in sessions:
            store.chat_turn(sid, [("user", "hola"), ("assistant", "¡hola!")])
        assert all(len(store.get_history(sid)) == 2 for sid in sessions)
        assert store.end_session(sessions[0])
        [archived] = store.get_archived_conversations("user-0")
        assert [m.content for m in archived.messages] == ["hola", "¡hola!"]
    finally:
        close()
    holding = []
    for server in tls_cluster.primaries():
        with server.client() as client:
            holding.append(client.dbsize())
    assert sum(1 for keys in holding if keys) >= 2, holding  # the users spread over primaries
    stranger = url_of(tls_cluster.servers[0], ca=stranger_ca)
    # The blocking cluster client connects when it is made, the asyncio one on first use.
    with pytest.raises((redis.ConnectionError, RedisClusterException),
                       match="CERTIFICATE_VERIFY_FAILED"):
        store, close = open_store(shell, stranger, cluster=True)
        try:
            store.create_session("carlos", "alicia")
        finally:
            close()


@pytest.mark.cluster
async def test_the_listener_archives_by_notification_on_a_tls_cluster(
        tls_cluster: LocalCluster) -> None:
    tls_cluster.flushall()
    primaries = tls_cluster.primaries()
    archived: asyncio.Queue[ArchivedConversation] = asyncio.Queue()
    with flags_restored(primaries):
        for server in primaries:
            with server.client() as client:
                client.config_set(NOTIFY, "Ex")
        async with SessionStore.from_url(tls_cluster.url, cluster=True) as store:
            listener = ExpiryListener(store, on_archived=archived.put,
                                      configure_notifications=False, catch_up=False,
                                      sweep_interval=3600.0)
            async with running(listener):
                # Sessions made before the first full sweep ends could be swept by it.
                await until(lambda: listener.sweeps >= 1, timeout=60)

                def create() -> set[str]:
                    with SyncSessionStore.from_url(tls_cluster.url, cluster=True) as writer:
                        made = set()
                        for n in range(6):
                            sid = writer.create_session(f"user-{n}", "alicia",
                                                        {"ttl": MIN_TTL, "max_idle": MIN_TTL})
                            writer.append_message(sid, "user", "hola")
                            made.add(sid)
                        return made

                made = await asyncio.to_thread(create)
                got = {(await asyncio.wait_for(archived.get(), timeout=30)).session_id
                       for _ in made}
            assert got == made
            assert listener.archived_by_path == {NOTIFICATION: len(made), SWEEP: 0}


# -- the CLI ------------------------------------------------------------------------


def test_the_cli_works_over_tls(tls_server: RedisServer, luminora_redis_tls_url: str) -> None:
    url = luminora_redis_tls_url
    with SyncSessionStore.from_url(url, buckets=8) as store:
        live = store.create_session("carlos", "alicia", {"ttl": 3600})
        store.chat_turn(live, [("user", "hola")])
    listed = cli(url, "sessions", "list", "--json")
    assert listed.exit_code == 0, listed.stderr
    assert [entry["session_id"] for entry in json.loads(listed.stdout)] == [live]
    shown = cli(url, "users", "show", "carlos", "--json")
    assert shown.exit_code == 0, shown.stderr
    assert json.loads(shown.stdout)["user"]["live_sessions"] == 1
    stats = cli(url, "stats", "--json")
    assert stats.exit_code == 0, stats.stderr
    assert json.loads(stats.stdout)["live_sessions"] == 1
    check = cli(url, "check", "--json")
    assert check.exit_code in (0, 1), check.stderr  # 1: this server persists nothing
    findings = {item["check"]: item for item in json.loads(check.stdout)["findings"]}
    assert findings["version"]["status"] == "ok"


@pytest.mark.parametrize("argv", [["sessions", "list"], ["users", "show", "carlos"], ["stats"],
                                  ["check"], ["sessions", "list", "--cluster"]])
def test_the_cli_says_the_tls_handshake_failed(tls_server: RedisServer, stranger_ca: Path,
                                               argv: list[str]) -> None:
    result = cli(url_of(tls_server, ca=stranger_ca), *argv)
    assert result.exit_code == 3, result.output
    assert result.stderr.startswith("luminora-redis: the TLS handshake with Redis failed")
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr and "ssl_ca_certs" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output


@pytest.mark.slow
def test_listen_archives_over_tls(tls_server: RedisServer, luminora_redis_tls_url: str,
                                  stranger_ca: Path) -> None:
    command = [sys.executable, "-m", "luminora_redis.cli", "listen", "--sweep-interval", "0.05"]
    refused = subprocess.run([*command, "--url", url_of(tls_server, ca=stranger_ca)],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 3 and "the TLS handshake with Redis failed" in refused.stderr
    process = subprocess.Popen([*command, "--url", luminora_redis_tls_url],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with SyncSessionStore.from_url(luminora_redis_tls_url) as store:
            wait_until(lambda: store.client.exists("lr:layout"), timeout=30)
            sid = store.create_session("carlos", "alicia", {"ttl": MIN_TTL})
            store.append_message(sid, "user", "hola")
            wait_until(lambda: store.get_archived_conversations("carlos"), timeout=30,
                       what="the listener archived the session")
            assert [c.session_id for c in store.get_archived_conversations("carlos")] == [sid]
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err


# -- the testing support ------------------------------------------------------------


def test_a_tls_server_restarts_with_its_certificates(tmp_path: Path) -> None:
    require_redis_server()
    with RedisServer(tls=True, config={"appendonly": "yes"}) as server:
        ca = server.tls_files.ca_cert.read_bytes()
        with SyncSessionStore.from_url(server.url) as store:
            sid = store.create_session("carlos", "alicia")
        server.kill()
        server.restart()
        assert server.tls_files.ca_cert.read_bytes() == ca  # clients keep trusting it
        with SyncSessionStore.from_url(server.url) as store:
            assert store.get_session(sid) is not None


def test_mutual_tls_needs_the_client_certificate() -> None:
    require_redis_server()
    with RedisServer(tls=True, config={"tls-auth-clients": "yes"}) as server:
        files = server.tls_files
        with pytest.raises(redis.ConnectionError):
            with SyncSessionStore.from_url(server.url) as anonymous:
                anonymous.create_session("carlos", "alicia")
        url = url_of(server, ca=files.ca_cert, ssl_certfile=str(files.client_cert),
                     ssl_keyfile=str(files.client_key))
        with SyncSessionStore.from_url(url) as known:
            assert known.get_session(known.create_session("carlos", "alicia")) is not None


def test_the_certificates_name_the_loopback_hosts(tmp_path: Path) -> None:
    from cryptography import x509

    files = make_tls_files(tmp_path)
    server = x509.load_pem_x509_certificate(files.cert.read_bytes())
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    lifetime = server.not_valid_after_utc - server.not_valid_before_utc
    assert lifetime.days <= 1  # throwaway: never mistaken for a real certificate
    assert files.key.stat().st_mode & 0o077 == 0
    context = ssl.create_default_context(cafile=str(files.ca_cert))
    context.load_cert_chain(str(files.client_cert), str(files.client_key))  # a pair that fits


def test_tls_problem_tells_a_binary_without_tls(tmp_path: Path) -> None:
    require_redis_server()
    executable = find_redis_server()
    assert executable is not None and tls_problem(executable) is None
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\necho \"*** FATAL CONFIG FILE ERROR ***\"\n"
                    "echo \"Bad directive or wrong number of arguments\" >&2\nexit 1\n")
    fake.chmod(0o755)
    problem = tls_problem(str(fake))
    assert problem is not None and "without TLS" in problem
    assert "Bad directive or wrong number of arguments" in problem


TLS_USER_SUITE = '''
from luminora_redis import SyncSessionStore


def test_a_writes(luminora_redis_tls_url):
    assert luminora_redis_tls_url.startswith("rediss://")
    with SyncSessionStore.from_url(luminora_redis_tls_url) as store:
        store.chat_turn(store.create_session("ana", "alicia"), [("user", "hola")])
        assert len(store.list_user_sessions("ana")) == 1


def test_b_starts_flushed(luminora_redis_tls_server, luminora_redis_tls_url):
    with luminora_redis_tls_server.client() as client:
        assert client.dbsize() == 0
'''
INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\nfilterwarnings = error\n"


@pytest.mark.slow
def test_an_application_suite_gets_a_tls_server(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_user=TLS_USER_SUITE)
    result = pytester.runpytest_inprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


@pytest.mark.parametrize(("patch", "reason"), [
    ({"find_redis_server": lambda: None},
     "the TLS fixtures need a local redis-server, and none is installed"),
    ({"have_cryptography": lambda: False},
     "the TLS fixtures make their certificates with the cryptography package, which is not "
     "installed (pip install cryptography)"),
    ({"tls_problem": lambda executable: "it was built without TLS support"},
     "the TLS fixtures need a redis-server with TLS: it was built without TLS support"),
])
def test_without_what_tls_needs_the_fixtures_skip_saying_why(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, patch: dict[str, Any],
        reason: str) -> None:
    for name, value in patch.items():
        monkeypatch.setattr(plugin, name, value)
    pytester.makeini(INI)
    pytester.makepyfile(test_user=TLS_USER_SUITE)
    result = pytester.runpytest_inprocess("-p", "no:randomly", "-p", "no:cacheprovider", "-ra")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines([f"SKIPPED *luminora-redis: {reason}"])
