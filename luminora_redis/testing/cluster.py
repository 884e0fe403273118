"""A real Redis Cluster of private redis-server processes on loopback.

The cluster tests and the plugin's cluster fixtures need real slots, real
MOVED redirections and real failover (primaries with replicas that take
over), so the nodes are `RedisServer` processes joined by
``redis-cli --cluster create``. With ``tls=True`` every node speaks only TLS,
to clients, to its replicas and on the cluster bus, with one throwaway CA.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import redis

from luminora_redis.testing.local import (
    CLUSTER_SLOTS,
    POLL_INTERVAL,
    SEARCH_DIRS,
    RedisServerError,
    StartStop,
    check_loopback,
    fast_client,
    find_executable,
    find_redis_server,
    normalise_config,
    register,
    unregister,
    url_host,
)
from luminora_redis.testing.server import RedisServer
from luminora_redis.testing.tls import TLSFiles, client_options, loopback_tls_files

__all__ = ["LocalCluster"]


class LocalCluster(StartStop):
    """A real Redis Cluster on loopback: N primaries (default 3) and optional replicas each.

    Each node is a `RedisServer` with its own directory under one private
    temporary directory; ``redis-cli --cluster create`` assigns the slots.
    Nodes can be killed and restarted through `servers` for failover tests;
    `wait_until_ok` then waits until the cluster has healed.
    """

    def __init__(
        self,
        *,
        primaries: int = 3,
        replicas: int = 0,
        host: str = "127.0.0.1",
        config: Mapping[str, str] | None = None,
        executable: str | None = None,
        timeout: float = 30.0,
        tls: bool = False,
    ) -> None:
        """Describe a cluster; nothing is started until `start`.

        ``config`` adds or overrides redis.conf directives on every node (the
        defaults include ``cluster-node-timeout 1000`` so failover is quick,
        and fast replication settings so replicas attach within a second).
        ``timeout`` bounds `start` and, by default, `wait_until_ok`. ``tls``
        makes every node a TLS-only `RedisServer` signed by one CA made at `start`
        (`tls_files`), with TLS replication and cluster bus too.
        """
        if primaries < 3:
            raise ValueError("redis-cli --cluster create needs at least 3 primaries")
        if replicas < 0:
            raise ValueError("replicas must be >= 0")
        check_loopback(host)
        self.host: str = host
        self.primary_count: int = primaries
        self.replicas_per_primary: int = replicas
        self.timeout: float = timeout
        user = normalise_config(config)
        self._node_config: dict[str, str] = {
            "cluster-config-file": "nodes.conf",
            "cluster-node-timeout": "1000",
            # A replica only shows up in CLUSTER SLOTS once its replication
            # offset is non-zero, which with the defaults takes a 5 s diskless
            # sync delay plus up to a 10 s replica ping period.
            "repl-diskless-sync-delay": "0",
            "repl-ping-replica-period": "1",
            **user,
            "cluster-enabled": "yes",
        }
        if tls:
            self._node_config.update({"tls-cluster": "yes", "tls-replication": "yes"})
        self.tls: bool = tls
        self._tls_files: TLSFiles | None = None
        self._executable = executable
        self._root: Path | None = None
        self.servers: list[RedisServer] = []

    @property
    def url(self) -> str:
        """``redis://host:port`` of the first node (any node bootstraps a cluster client);
        with TLS ``rediss://host:port?ssl_ca_certs=<the CA>``."""
        if not self.servers:
            raise RedisServerError("cluster not started")
        first = self.servers[0]
        if not self.tls:
            return f"redis://{url_host(first.host)}:{first.port}"
        ca = quote(str(self.tls_files.ca_cert), safe="/")
        return f"rediss://{url_host(first.host)}:{first.port}?ssl_ca_certs={ca}"

    @property
    def tls_files(self) -> TLSFiles:
        """The CA and the certificates every node of a TLS cluster shares (made by `start`)."""
        if self._tls_files is None:
            raise RedisServerError("no TLS files: the cluster was not made with tls=True, "
                                   "or has not started")
        return self._tls_files

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every node, for cluster clients."""
        return [(server.host, server.port) for server in self.servers]

    def __repr__(self) -> str:
        ports = [server._port for server in self.servers]
        return (
            f"LocalCluster(primaries={self.primary_count}, replicas={self.replicas_per_primary}, "
            f"host={self.host!r}, ports={ports!r})"
        )

    def start(self) -> LocalCluster:
        """Start every node, create the cluster and wait until it is fully formed.

        Fully formed means: every node reports ``cluster_state:ok``, every
        node's CLUSTER SLOTS covers all 16384 slots with the expected number of
        primaries and replicas, all nodes agree, and every replica's link to
        its primary is up.
        """
        if any(server.running for server in self.servers):
            raise RedisServerError(f"{self!r} is already running")
        executable = self._executable or find_redis_server()
        if executable is None:
            raise RedisServerError(
                "redis-server not found on PATH or in " + ", ".join(SEARCH_DIRS) + "; install Redis"
            )
        cli = find_executable("redis-cli", near=executable) or find_executable(
            "valkey-cli", near=executable)
        if cli is None:
            raise RedisServerError("redis-cli not found; it is needed to create the cluster")
        deadline = time.monotonic() + self.timeout
        self.servers = []
        self._root = Path(tempfile.mkdtemp(prefix="luminora-redis-cluster-"))
        register(self)
        try:
            if self.tls:
                self._tls_files = loopback_tls_files(self._root / "tls", self.host)
            total = self.primary_count * (1 + self.replicas_per_primary)
            for index in range(total):
                server = RedisServer(
                    host=self.host,
                    config=self._node_config,
                    directory=self._root / f"node-{index}",
                    executable=executable,
                    startup_timeout=max(1.0, min(10.0, deadline - time.monotonic())),
                    tls=self._tls_files or False,
                )
                self.servers.append(server)  # before start(), so stop() sees it
                server.start()
            self._create(cli, deadline)
            self._wait(deadline, formation=True)
        except BaseException:
            self.stop()
            raise
        return self

    def primaries(self) -> list[RedisServer]:
        """The running nodes that are primaries now, each by its own CLUSTER NODES.

        A node that does not answer is left out.
        """
        result: list[RedisServer] = []
        for server in self.servers:
            if not server.running:
                continue
            with _probe_of(server) as probe:
                try:
                    nodes = str(probe.execute_command("CLUSTER", "NODES"))
                except redis.RedisError:
                    continue
            for line in nodes.splitlines():
                fields = line.split()
                if len(fields) > 2 and "myself" in fields[2].split(","):
                    if "master" in fields[2].split(","):
                        result.append(server)
                    break
        return result

    def flushall(self) -> None:
        """Remove every key on every primary (loaded scripts stay), as between two tests."""
        for server in self.primaries():
            with server.client() as client:
                client.flushall()

    def wait_until_ok(self, timeout: float | None = None) -> None:
        """Wait until every live node reports cluster_state:ok and all slots are served by live primaries.

        Meant for after a failover or a node restart; ``timeout`` defaults to
        the cluster's ``timeout``. Raises `RedisServerError` with the last
        problem seen when it expires.
        """
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        self._wait(deadline, formation=False)

    def stop(self) -> None:
        """Stop every node and remove the cluster directory; safe to call twice."""
        first_error: BaseException | None = None
        for server in self.servers:
            try:
                server.stop()
            except BaseException as exc:  # noqa: BLE001 - stop the others first
                first_error = first_error or exc
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None
        unregister(self)
        if first_error is not None:
            raise first_error

    # -- internals ---------------------------------------------------------- #

    def _create(self, cli: str, deadline: float) -> None:
        addresses = [f"{server.host}:{server.port}" for server in self.servers]
        command = [
            cli,
            "--cluster",
            "create",
            *addresses,
            "--cluster-replicas",
            str(self.replicas_per_primary),
            "--cluster-yes",
        ]
        if self._tls_files is not None:
            files = self._tls_files
            command += ["--tls", "--cacert", str(files.ca_cert), "--cert", str(files.client_cert),
                        "--key", str(files.client_key)]
        try:
            result = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=max(1.0, deadline - time.monotonic()),
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            output = (exc.stdout or b"") + (exc.stderr or b"")
            raise RedisServerError(
                f"redis-cli --cluster create timed out:\n{output.decode('utf-8', 'replace')[-4000:]}"
            ) from None
        if result.returncode != 0:
            text = (result.stdout + result.stderr).decode("utf-8", "replace")
            raise RedisServerError(
                f"redis-cli --cluster create failed with code {result.returncode}:\n{text[-4000:]}"
            )

    def _wait(self, deadline: float, *, formation: bool) -> None:
        problem = "not checked"
        while True:
            problem_or_none = self._problem(formation=formation)
            if problem_or_none is None:
                return
            problem = problem_or_none
            if time.monotonic() >= deadline:
                raise RedisServerError(f"{self!r} not ready in time: {problem}")
            time.sleep(POLL_INTERVAL)

    def _problem(self, *, formation: bool) -> str | None:
        """Describe why the cluster is not (yet) healthy, or None when it is."""
        live = [server for server in self.servers if server.running]
        if not live:
            return "no node is running"
        if formation and len(live) != len(self.servers):
            dead = [server.port for server in self.servers if not server.running]
            return f"nodes on ports {dead} exited"
        live_ports = {server.port for server in live}
        views: dict[int, list[tuple[int, int, int, int]]] = {}
        masters = 0
        for server in live:
            with _probe_of(server) as probe:
                try:
                    info = str(probe.execute_command("CLUSTER", "INFO"))
                    slots = probe.execute_command("CLUSTER", "SLOTS")
                    replication = probe.info("replication") if formation else {}
                except (redis.RedisError, OSError) as exc:
                    return f"node {server.port} does not answer: {exc}"
            if "cluster_state:ok" not in info:
                return f"node {server.port} is not cluster_state:ok"
            ranges = sorted(
                (int(entry[0]), int(entry[1]), int(entry[2][1]), len(entry) - 3) for entry in slots
            )
            problem = self._check_ranges(server.port, ranges, live_ports, formation=formation)
            if problem is not None:
                return problem
            # Replica counts may differ between views for a while after a
            # failover; only the slot -> primary map has to agree.
            views[server.port] = [r if formation else (r[0], r[1], r[2], 0) for r in ranges]
            if formation:
                if replication.get("role") == "master":
                    masters += 1
                elif replication.get("master_link_status") != "up":
                    return f"replica {server.port} has no link to its primary yet"
        if len({tuple(view) for view in views.values()}) > 1:
            return "nodes disagree about which primary serves which slots"
        if formation and masters != self.primary_count:
            return f"{masters} nodes are primaries, expected {self.primary_count}"
        return None

    def _check_ranges(
        self,
        port: int,
        ranges: list[tuple[int, int, int, int]],
        live_ports: set[int],
        *,
        formation: bool,
    ) -> str | None:
        next_slot = 0
        for start, end, primary, replicas in ranges:
            if start != next_slot:
                return f"node {port} sees slots {next_slot}..{start - 1} unassigned"
            next_slot = end + 1
            if primary not in live_ports:
                return f"node {port} sees slots {start}..{end} on a dead primary {primary}"
            if formation and replicas != self.replicas_per_primary:
                return (
                    f"node {port} sees {replicas} replicas for slots {start}..{end}, "
                    f"expected {self.replicas_per_primary}"
                )
        if next_slot != CLUSTER_SLOTS:
            return f"node {port} sees slots {next_slot}..{CLUSTER_SLOTS - 1} unassigned"
        if formation:
            primaries = {primary for _, _, primary, _ in ranges}
            if len(primaries) != self.primary_count:
                return f"node {port} sees {len(primaries)} primaries, expected {self.primary_count}"
        return None


@contextmanager
def _probe_of(server: RedisServer) -> Iterator[redis.Redis]:
    tls = client_options(server.tls_files, probe=True) if server.tls else {}
    probe = fast_client(server.host, server.port, **tls)
    try:
        yield probe
    finally:
        probe.close()
