"""Private local Redis processes: one server, or a real Redis Cluster.

``luminora-redis demo`` starts a private ``redis-server`` when it is given no
URL, and the test suite needs real Redis for its integration tests, for fault
tests that kill Redis and restart it on the same port with the same data, and
for Redis Cluster tests with replicas and failover.

This is written by hand on purpose. The demo needs it at run time, outside
pytest, so a pytest plugin cannot serve it; and the tests need
kill/restart-with-the-same-data and clusters with replicas, which a pytest
plugin does not give us. One small implementation, using only the standard
library plus redis-py for pings, therefore serves both.

Every process binds a loopback address only, writes its output to a log file
inside its own directory (never to the terminal), and is always reaped: we
never leave a zombie or an orphan behind on a normal interpreter exit, because
every object that owns a process or a temporary directory is stopped from an
``atexit`` hook if its owner forgot to, or if ``start`` failed half-way.
"""

from __future__ import annotations

import atexit
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = [
    "LocalCluster",
    "RedisServer",
    "RedisServerError",
    "find_redis_server",
    "free_port",
]

#: Pause between two readiness polls; kept well under 50 ms so tests stay fast.
POLL_INTERVAL = 0.02

_STOP_TIMEOUT = 10.0  # seconds to wait for a graceful SIGTERM exit before SIGKILL
_PORT_RETRIES = 5  # extra attempts when an automatically chosen port was taken
_LOG_NAME = "redis.log"
_CONF_NAME = "redis.conf"
_CLUSTER_BUS_OFFSET = 10000  # Redis' default cluster bus port is port + 10000
_CLUSTER_SLOTS = 16384
_SEARCH_DIRS = ("/usr/sbin", "/usr/bin", "/usr/local/bin")
_ADDRESS_IN_USE = "Address already in use"

# Directives this module owns: changing them would break readiness checks,
# the log tail in errors, or the loopback-only promise.
_RESERVED_DIRECTIVES = frozenset({"port", "bind", "dir", "daemonize", "logfile"})


class RedisServerError(RuntimeError):
    """A private Redis process or cluster failed to start, stop or settle."""


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #


def find_redis_server() -> str | None:
    """Return the path of ``redis-server``, or None when it is not installed.

    PATH comes first; the system directories are checked as well because
    ``/usr/sbin`` is often missing from a non-root user's PATH, where some
    distributions install it.
    """
    return _find_executable("redis-server")


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on the loopback ``host`` that is free right now.

    The kernel picks it; another process may still take it before Redis binds
    it, which is why `RedisServer.start` retries on "Address already in use".
    """
    _check_loopback(host)
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _find_executable(name: str, near: str | None = None) -> str | None:
    """Find ``name`` next to ``near`` (if given), on PATH, then in system dirs."""
    candidates: list[Path] = []
    if near is not None:
        candidates.append(Path(near).resolve().parent / name)
    found = shutil.which(name)
    if found is not None:
        candidates.append(Path(found))
    candidates.extend(Path(d) / name for d in _SEARCH_DIRS)
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _check_loopback(host: str) -> None:
    """Refuse anything but a loopback IP literal: these servers have no auth."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"host must be a loopback IP address such as 127.0.0.1, got {host!r}") from None
    if not address.is_loopback:
        raise ValueError(f"host must be a loopback address, got {host!r}")


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _free_cluster_port(host: str) -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    for _ in range(200):
        port = free_port(host)
        bus = port + _CLUSTER_BUS_OFFSET
        if bus <= 65535 and _port_is_free(host, bus):
            return port
    raise RedisServerError(f"could not find a free port pair (port, port+{_CLUSTER_BUS_OFFSET}) on {host}")


def _quote(value: str) -> str:
    """Quote a value for redis.conf (double quotes, backslash escapes)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _normalise_config(config: Mapping[str, str] | None) -> dict[str, str]:
    """Validate extra directives; keys are lower-cased like Redis does."""
    result: dict[str, str] = {}
    for key, value in (config or {}).items():
        name = str(key).strip().lower()
        text = str(value)
        if not name or any(ch.isspace() for ch in name):
            raise ValueError(f"invalid redis.conf directive name {key!r}")
        if "\n" in text or "\r" in text:
            raise ValueError(f"redis.conf value for {key!r} must be a single line")
        if name in _RESERVED_DIRECTIVES:
            raise ValueError(
                f"{name!r} is managed by RedisServer and cannot be set through config "
                f"(reserved: {', '.join(sorted(_RESERVED_DIRECTIVES))})"
            )
        result[name] = text
    return result


def _render_value(value: str) -> str:
    # Values are written verbatim so multi-argument directives such as
    # {"save": "900 1 300 10"} work; only the empty string needs quoting.
    return '""' if value == "" else value


def _probe(host: str, port: int) -> redis.Redis:
    """A short-timeout client for readiness polls.

    redis-py retries with exponential backoff by default, which would sleep far
    longer than our polling interval; the probe fails fast instead.
    """
    return redis.Redis(
        host=host,
        port=port,
        socket_connect_timeout=0.25,
        socket_timeout=0.5,  # a stranger holding the port may never answer
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )


class _Stoppable(Protocol):
    def stop(self) -> None: ...


# Strong references on purpose: an object that still owns a process must not
# be garbage-collected (Popen would warn and the process would be orphaned).
_live: dict[int, _Stoppable] = {}
_live_lock = threading.Lock()


def _register(obj: _Stoppable) -> None:
    with _live_lock:
        _live[id(obj)] = obj


def _unregister(obj: _Stoppable) -> None:
    with _live_lock:
        _live.pop(id(obj), None)


@atexit.register
def _stop_all_at_exit() -> None:
    with _live_lock:
        owners = list(_live.values())
    for owner in reversed(owners):
        try:
            owner.stop()
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            pass


# --------------------------------------------------------------------------- #
# One server
# --------------------------------------------------------------------------- #


class RedisServer:
    """One redis-server process on loopback, in its own temporary (or given) directory.

    Use it as a context manager, or call `start` and `stop`. `kill` and
    `restart` exist for fault tests: the directory (and with ``appendonly yes``
    the data) survives a kill, and `restart` comes back on the same port.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        config: Mapping[str, str] | None = None,
        directory: str | os.PathLike[str] | None = None,
        executable: str | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        """Describe a server; nothing is started until `start`.

        ``config`` holds extra redis.conf directives that override the defaults
        (for example ``{"appendonly": "yes", "notify-keyspace-events": "Kg"}``).
        ``directory`` is the data directory; when None a private temporary
        directory is created by `start` and removed by `stop`.
        """
        _check_loopback(host)
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"port must be in 1..65535, got {port}")
        if startup_timeout <= 0:
            raise ValueError("startup_timeout must be positive")
        self.host: str = host
        self.startup_timeout: float = startup_timeout
        self._port: int | None = port
        self._port_fixed = port is not None
        self._config = _normalise_config(config)
        self._owns_directory = directory is None
        self._directory: Path | None = None if directory is None else Path(directory).absolute()
        self._executable = executable
        self._proc: subprocess.Popen[bytes] | None = None

    # -- properties --------------------------------------------------------- #

    @property
    def port(self) -> int:
        """The TCP port; chosen by `start` when none was given."""
        if self._port is None:
            raise RedisServerError("no port yet: it is chosen when the server starts")
        return self._port

    @property
    def url(self) -> str:
        """``redis://host:port/0`` for this server."""
        return f"redis://{_url_host(self.host)}:{self.port}/0"

    @property
    def directory(self) -> Path:
        """The data directory (holds redis.conf, redis.log, AOF/RDB files)."""
        if self._directory is None:
            raise RedisServerError(
                "no directory: the private directory is created by start() and removed by stop()"
            )
        return self._directory

    @property
    def log_path(self) -> Path:
        """The server's log file, which also receives its stdout and stderr."""
        return self.directory / _LOG_NAME

    @property
    def pid(self) -> int | None:
        """Process id while the process is alive, else None."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        """Whether the process is alive (a dead one is reaped here)."""
        return self._proc is not None and self._proc.poll() is None

    def __repr__(self) -> str:
        return (
            f"RedisServer(host={self.host!r}, port={self._port!r}, "
            f"pid={self.pid!r}, directory={str(self._directory) if self._directory else None!r})"
        )

    # -- lifecycle ---------------------------------------------------------- #

    def start(self) -> RedisServer:
        """Write redis.conf, spawn redis-server and wait until it answers PING.

        When the port was chosen automatically and turns out to be taken, a new
        free port is tried (up to 5 more times). On failure everything started
        here is cleaned up and `RedisServerError` carries the log tail.
        """
        if self.running:
            raise RedisServerError(f"{self!r} is already running")
        executable = self._resolve_executable()
        if self._directory is None:
            self._directory = Path(tempfile.mkdtemp(prefix="luminora-redis-"))
        else:
            self._directory.mkdir(parents=True, exist_ok=True)
        _register(self)
        try:
            self._launch_until_ready(executable, choose_port=not self._port_fixed)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM the process and wait (SIGKILL after a bound); remove a private directory.

        Safe to call twice, before `start`, or after a failed `start`.
        """
        try:
            self._terminate(signal.SIGTERM)
        finally:
            if self._owns_directory and self._directory is not None:
                shutil.rmtree(self._directory, ignore_errors=True)
                self._directory = None
            _unregister(self)

    def kill(self) -> None:
        """SIGKILL the process now and reap it, keeping the directory for `restart`.

        Use `restart` afterwards: `start` would pick a new port when the port
        was chosen automatically.
        """
        self._terminate(signal.SIGKILL)

    def restart(self) -> None:
        """Start again on the same port and directory (stopping first if running).

        Data survives a `kill` when ``appendonly`` was on. Unlike `start`, a
        taken port is an error: clients and cluster peers expect this port.
        """
        if self._port is None:
            raise RedisServerError("restart() needs a server that was started before")
        self._terminate(signal.SIGTERM)
        executable = self._resolve_executable()
        if self._directory is None:  # stopped: the private directory is gone
            self._directory = Path(tempfile.mkdtemp(prefix="luminora-redis-"))
        _register(self)
        try:
            self._launch_until_ready(executable, choose_port=False)
        except BaseException:
            # Keep the directory: it may hold the data the caller cares about.
            self._terminate(signal.SIGKILL)
            raise

    def client(self, **kwargs: Any) -> redis.Redis:
        """A new blocking client to this server; the caller closes it.

        ``decode_responses`` defaults to False, as in redis-py.
        """
        kwargs.setdefault("decode_responses", False)
        return redis.Redis(host=self.host, port=self.port, **kwargs)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals ---------------------------------------------------------- #

    def _resolve_executable(self) -> str:
        executable = self._executable or find_redis_server()
        if executable is None:
            raise RedisServerError(
                "redis-server not found on PATH or in " + ", ".join(_SEARCH_DIRS) + "; install Redis"
            )
        if not (os.path.isfile(executable) and os.access(executable, os.X_OK)):
            raise RedisServerError(f"redis-server executable {executable!r} is not an executable file")
        return executable

    def _choose_port(self) -> int:
        cluster = self._config.get("cluster-enabled", "no").lower() == "yes"
        if cluster and "cluster-port" not in self._config:
            return _free_cluster_port(self.host)
        return free_port(self.host)

    def _write_config(self) -> Path:
        directory = self.directory
        directives: dict[str, str] = {
            "port": str(self.port),
            "bind": self.host,
            "dir": _quote(str(directory)),
            "daemonize": "no",
            "logfile": _quote(str(directory / _LOG_NAME)),
            "save": '""',
            "appendonly": "no",
            "protected-mode": "no",
        }
        directives.update({key: _render_value(value) for key, value in self._config.items()})
        lines = ["# Written by luminora_redis.server; rewritten on every start.\n"]
        lines.extend(f"{key} {value}\n" for key, value in directives.items())
        path = directory / _CONF_NAME
        path.write_text("".join(lines), encoding="utf-8")
        return path

    def _launch_until_ready(self, executable: str, *, choose_port: bool) -> None:
        attempts = 1 + (_PORT_RETRIES if choose_port else 0)
        cluster_file = self._cluster_config_file()
        for attempt in range(attempts):
            if choose_port:
                self._port = self._choose_port()
            conf = self._write_config()
            log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            cluster_file_existed = cluster_file is not None and cluster_file.exists()
            self._spawn(executable, conf)
            exit_code = self._wait_ready()
            if exit_code is None:
                return
            new_log = self._read_log(log_offset)
            if choose_port and _ADDRESS_IN_USE in new_log and attempt + 1 < attempts:
                # A cluster node records its port in nodes.conf; a file left by
                # the failed attempt would carry the wrong one.
                if cluster_file is not None and not cluster_file_existed:
                    cluster_file.unlink(missing_ok=True)
                continue
            raise RedisServerError(
                f"redis-server on {self.host}:{self.port} exited with code {exit_code} "
                f"during startup; log {self.log_path} ends with:\n{self._log_tail()}"
            )

    def _cluster_config_file(self) -> Path | None:
        if self._config.get("cluster-enabled", "no").lower() != "yes":
            return None
        name = self._config.get("cluster-config-file", "nodes.conf").strip('"')
        return self.directory / name

    def _spawn(self, executable: str, conf: Path) -> None:
        with open(self.log_path, "ab") as log:
            # The child gets its own copy of the log descriptor; early errors
            # (bad config) go to stderr before Redis opens its logfile.
            self._proc = subprocess.Popen(
                [executable, str(conf)],
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                close_fds=True,
                # Own session: a Ctrl-C meant for the demo must not kill Redis
                # behind our back; we stop it in order ourselves.
                start_new_session=True,
            )

    def _wait_ready(self) -> int | None:
        """Poll until our process answers PING: None when ready, else its exit code."""
        proc = self._proc
        assert proc is not None
        deadline = time.monotonic() + self.startup_timeout
        probe = _probe(self.host, self.port)
        try:
            while True:
                code = proc.poll()
                if code is not None:
                    return code
                try:
                    # The PID check makes sure we did not reach some other
                    # server that grabbed the port first.
                    if probe.ping() and int(probe.info("server").get("process_id", -1)) == proc.pid:
                        return None
                except (redis.RedisError, OSError, ValueError):
                    pass
                if time.monotonic() >= deadline:
                    break
                time.sleep(POLL_INTERVAL)
        finally:
            probe.close()
        self._terminate(signal.SIGKILL)
        raise RedisServerError(
            f"redis-server on {self.host}:{self.port} did not answer PING within "
            f"{self.startup_timeout:g}s; log {self.log_path} ends with:\n{self._log_tail()}"
        )

    def _terminate(self, sig: signal.Signals) -> None:
        """Send ``sig`` and always reap the process (SIGKILL after a bounded wait)."""
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                proc.send_signal(sig)
                try:
                    proc.wait(timeout=_STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        finally:
            if proc.returncode is not None:
                self._proc = None

    def _read_log(self, offset: int = 0) -> str:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                return log.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _log_tail(self, lines: int = 20) -> str:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - 8192))
                text = log.read().decode("utf-8", "replace")
        except OSError:
            return "(no log file)"
        return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


# --------------------------------------------------------------------------- #
# Cluster
# --------------------------------------------------------------------------- #


class LocalCluster:
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
    ) -> None:
        """Describe a cluster; nothing is started until `start`.

        ``config`` adds or overrides redis.conf directives on every node (the
        defaults include ``cluster-node-timeout 1000`` so failover is quick,
        and fast replication settings so replicas attach within a second).
        ``timeout`` bounds `start` and, by default, `wait_until_ok`.
        """
        if primaries < 3:
            raise ValueError("redis-cli --cluster create needs at least 3 primaries")
        if replicas < 0:
            raise ValueError("replicas must be >= 0")
        _check_loopback(host)
        self.host: str = host
        self.primary_count: int = primaries
        self.replicas_per_primary: int = replicas
        self.timeout: float = timeout
        user = _normalise_config(config)
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
        self._executable = executable
        self._root: Path | None = None
        self.servers: list[RedisServer] = []

    @property
    def url(self) -> str:
        """``redis://host:port`` of the first node (any node bootstraps a cluster client)."""
        if not self.servers:
            raise RedisServerError("cluster not started")
        first = self.servers[0]
        return f"redis://{_url_host(first.host)}:{first.port}"

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
                "redis-server not found on PATH or in " + ", ".join(_SEARCH_DIRS) + "; install Redis"
            )
        cli = _find_executable("redis-cli", near=executable)
        if cli is None:
            raise RedisServerError("redis-cli not found; it is needed to create the cluster")
        deadline = time.monotonic() + self.timeout
        self.servers = []
        self._root = Path(tempfile.mkdtemp(prefix="luminora-redis-cluster-"))
        _register(self)
        try:
            total = self.primary_count * (1 + self.replicas_per_primary)
            for index in range(total):
                server = RedisServer(
                    host=self.host,
                    config=self._node_config,
                    directory=self._root / f"node-{index}",
                    executable=executable,
                    startup_timeout=max(1.0, min(10.0, deadline - time.monotonic())),
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
        _unregister(self)
        if first_error is not None:
            raise first_error

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

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
        if next_slot != _CLUSTER_SLOTS:
            return f"node {port} sees slots {next_slot}..{_CLUSTER_SLOTS - 1} unassigned"
        if formation:
            primaries = {primary for _, _, primary, _ in ranges}
            if len(primaries) != self.primary_count:
                return f"node {port} sees {len(primaries)} primaries, expected {self.primary_count}"
        return None


@contextmanager
def _probe_of(server: RedisServer) -> Iterator[redis.Redis]:
    probe = _probe(server.host, server.port)
    try:
        yield probe
    finally:
        probe.close()
