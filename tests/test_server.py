"""Tests for luminora_redis.testing: private redis-server processes and clusters.

They need a real ``redis-server`` (and ``redis-cli`` for the cluster tests).
Without it they skip, except under CI (env var ``CI`` set), where a missing
Redis is a broken test environment and must fail loudly.
"""

from __future__ import annotations

import os
import socket

import pytest
import redis
from redis.cluster import RedisCluster

import luminora_redis.testing.server as server_module
from luminora_redis.io.sync_store import close_client
from luminora_redis.testing import (
    LocalCluster,
    RedisServer,
    RedisServerError,
    free_port,
)

from conftest import require_redis_server


@pytest.fixture(autouse=True)
def _needs_redis_server() -> None:
    require_redis_server()


def _process_exists(pid: int) -> bool:
    # A zombie still answers signal 0, so this also catches an un-reaped child.
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_start_ping_stop() -> None:
    with RedisServer() as srv:
        assert srv.running
        assert srv.url == f"redis://127.0.0.1:{srv.port}/0"
        directory = srv.directory
        assert (directory / "redis.log").is_file()
        with srv.client() as client:
            assert client.ping() is True
            client.set("k", "v")
            assert client.get("k") == b"v"  # decode_responses defaults to False
        with redis.Redis.from_url(srv.url) as by_url:
            assert by_url.ping() is True
    assert not srv.running
    assert not directory.exists()


def test_two_servers_get_different_ports_and_data() -> None:
    with RedisServer() as first, RedisServer() as second:
        assert first.port != second.port
        assert first.directory != second.directory
        with first.client() as a, second.client() as b:
            a.set("only-in-first", "1")
            assert b.get("only-in-first") is None


def test_kill_and_restart_with_appendonly_keeps_data() -> None:
    with RedisServer(config={"appendonly": "yes"}) as srv:
        port, directory, old_pid = srv.port, srv.directory, srv.pid
        assert old_pid is not None
        with srv.client() as client:
            client.set("survivor", "still here")
        srv.kill()
        assert not srv.running
        assert srv.pid is None
        assert not _process_exists(old_pid)
        assert directory.is_dir()
        srv.restart()
        assert srv.running
        assert srv.port == port
        assert srv.pid != old_pid
        with srv.client() as client:
            assert client.get("survivor") == b"still here"


def test_stop_is_idempotent_and_process_is_gone() -> None:
    srv = RedisServer().start()
    pid, directory = srv.pid, srv.directory
    assert pid is not None and _process_exists(pid)
    srv.stop()
    srv.stop()
    assert not srv.running
    assert srv.pid is None
    assert not _process_exists(pid)
    assert not directory.exists()


def test_stop_before_start_is_harmless() -> None:
    RedisServer().stop()
    LocalCluster().stop()


def test_given_directory_is_kept(tmp_path: os.PathLike[str]) -> None:
    data = os.path.join(tmp_path, "data")
    with RedisServer(directory=data, config={"hz": "100"}) as srv:
        assert str(srv.directory) == data
        conf = (srv.directory / "redis.conf").read_text()
        assert "hz 100" in conf and 'save ""' in conf
    assert os.path.isfile(os.path.join(data, "redis.log"))


def test_automatic_port_that_is_taken_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        ports = iter([taken])
        real_free_port = server_module.free_port

        def taken_first(host: str = "127.0.0.1") -> int:
            return next(ports, None) or real_free_port(host)

        monkeypatch.setattr(server_module, "free_port", taken_first)
        with RedisServer() as srv:
            assert srv.port != taken
            with srv.client() as client:
                assert client.ping() is True
            assert "Address already in use" in srv.log_path.read_text()


def test_fixed_port_that_is_taken_fails_with_log_tail() -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        srv = RedisServer(port=blocker.getsockname()[1])
        with pytest.raises(RedisServerError, match="Address already in use"):
            srv.start()
    assert not srv.running
    srv.stop()  # still safe after a failed start


def test_rejects_non_loopback_and_reserved_directives() -> None:
    with pytest.raises(ValueError):
        RedisServer(host="0.0.0.0")
    with pytest.raises(ValueError):
        RedisServer(config={"port": "6379"})
    with pytest.raises(ValueError):
        free_port("10.1.2.3")


@pytest.mark.cluster
def test_local_cluster_serves_keys() -> None:
    with LocalCluster(primaries=3) as cluster:
        assert len(cluster.servers) == 3
        for node in cluster.servers:
            with node.client(decode_responses=True) as client:
                assert "cluster_state:ok" in client.execute_command("CLUSTER", "INFO")
        assert len(cluster.primaries()) == 3
        host, port = cluster.startup_nodes[0]
        rc = RedisCluster(host=host, port=port)
        try:
            for i in range(20):  # keys spread over all three primaries
                rc.set(f"key:{i}", str(i))
            assert [rc.get(f"key:{i}") for i in range(20)] == [str(i).encode() for i in range(20)]
        finally:
            close_client(rc)
    assert not any(node.running for node in cluster.servers)


@pytest.mark.cluster
@pytest.mark.slow
def test_local_cluster_with_replicas_survives_primary_kill() -> None:
    with LocalCluster(primaries=3, replicas=1) as cluster:
        assert len(cluster.servers) == 6
        primaries = cluster.primaries()
        assert len(primaries) == 3
        victim = primaries[0]
        victim.kill()
        cluster.wait_until_ok(timeout=20)
        after = cluster.primaries()
        assert victim not in after and len(after) == 3
        victim.restart()  # comes back as a replica of its replacement
        cluster.wait_until_ok(timeout=20)
        assert len(cluster.primaries()) == 3
