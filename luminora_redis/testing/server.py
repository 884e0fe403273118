"""One private redis-server process on a free loopback port.

``luminora-redis demo`` starts one when it is given no URL, the pytest plugin
(`luminora_redis.testing.plugin`) starts one per test session, and the fault
tests kill Redis and restart it on the same port with the same data.

This is written by hand on purpose: the demo needs it at run time, outside
pytest, and the fault tests need kill/restart-with-the-same-data, which no
pytest plugin we know of gives. It uses only the standard library plus
redis-py for pings. The process writes its output to a log file inside its
own directory (never to the terminal).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis

from luminora_redis.testing.local import (
    ADDRESS_IN_USE,
    CONF_NAME,
    LOG_NAME,
    POLL_INTERVAL,
    PORT_RETRIES,
    SEARCH_DIRS,
    STOP_TIMEOUT,
    RedisServerError,
    StartStop,
    check_loopback,
    fast_client,
    find_redis_server,
    free_cluster_port,
    free_port,
    log_tail,
    normalise_config,
    quote_conf,
    read_log,
    register,
    render_value,
    unregister,
    url_host,
)
from luminora_redis.testing.tls import (
    TLSFiles,
    check_tls_option,
    client_options,
    loopback_tls_files,
    server_directives,
)

__all__ = ["RedisServer"]


class RedisServer(StartStop):
    """One redis-server process on loopback, in its own temporary (or given) directory.

    Use it as a context manager, or call `start` and `stop`. `kill` and
    `restart` exist for fault tests: the directory (and with ``appendonly yes``
    the data) survives a kill, and `restart` comes back on the same port.

    With ``tls`` the server speaks TLS only: `port` is its TLS port (the plain
    port is off), `url` is a ``rediss://`` URL that trusts its CA, and `client`
    connects over TLS with verification on. ``tls=True`` makes a throwaway CA,
    server and client certificate in the server's directory at `start` (see
    `luminora_redis.testing.tls`, which needs ``cryptography``); a `TLSFiles`
    uses those files instead. Clients need no certificate of their own
    (``tls-auth-clients no``) unless ``config`` says otherwise.
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
        tls: bool | TLSFiles = False,
    ) -> None:
        """Describe a server; nothing is started until `start`.

        ``config`` holds extra redis.conf directives that override the defaults
        (for example ``{"appendonly": "yes", "notify-keyspace-events": "Kg"}``).
        ``directory`` is the data directory; when None a private temporary
        directory is created by `start` and removed by `stop`.
        """
        check_loopback(host)
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"port must be in 1..65535, got {port}")
        if startup_timeout <= 0:
            raise ValueError("startup_timeout must be positive")
        self.host: str = host
        self.startup_timeout: float = startup_timeout
        self._port: int | None = port
        self._port_fixed = port is not None
        self._config = normalise_config(config)
        self._tls = tls
        self._tls_files: TLSFiles | None = check_tls_option(tls, self._config)
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
        """``redis://host:port/0`` for this server; on a TLS server
        ``rediss://host:port/0?ssl_ca_certs=<its CA>``, with which redis-py verifies the
        certificate and the host name."""
        if self._tls is False:
            return f"redis://{url_host(self.host)}:{self.port}/0"
        ca = quote(str(self.tls_files.ca_cert), safe="/")
        return f"rediss://{url_host(self.host)}:{self.port}/0?ssl_ca_certs={ca}"

    @property
    def tls(self) -> bool:
        """Whether this server speaks TLS (and only TLS)."""
        return self._tls is not False

    @property
    def tls_files(self) -> TLSFiles:
        """The CA, server and client certificate files of a TLS server (made by `start`
        when ``tls=True``)."""
        if self._tls is False:
            raise RedisServerError("this server was not made with tls: it has no TLS files")
        if self._tls_files is None:
            raise RedisServerError("no TLS files yet: tls=True makes them when the server starts")
        return self._tls_files

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
        return self.directory / LOG_NAME

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
        register(self)
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
            unregister(self)

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
        register(self)
        try:
            self._launch_until_ready(executable, choose_port=False)
        except BaseException:
            # Keep the directory: it may hold the data the caller cares about.
            self._terminate(signal.SIGKILL)
            raise

    def client(self, **kwargs: Any) -> redis.Redis:
        """A new blocking client to this server; the caller closes it.

        ``decode_responses`` defaults to False, as in redis-py. On a TLS server the
        client trusts the server's CA and verifies it (``kwargs`` may override that).
        """
        kwargs.setdefault("decode_responses", False)
        for name, value in self._tls_options(probe=False).items():
            kwargs.setdefault(name, value)
        return redis.Redis(host=self.host, port=self.port, **kwargs)

    # -- internals ---------------------------------------------------------- #

    def _tls_options(self, *, probe: bool) -> dict[str, Any]:
        """redis-py's TLS keywords for this server (see `tls.client_options`); none without TLS."""
        return {} if self._tls is False else client_options(self.tls_files, probe=probe)

    def _resolve_executable(self) -> str:
        executable = self._executable or find_redis_server()
        if executable is None:
            raise RedisServerError(
                "redis-server not found on PATH or in " + ", ".join(SEARCH_DIRS) + "; install Redis"
            )
        if not (os.path.isfile(executable) and os.access(executable, os.X_OK)):
            raise RedisServerError(f"redis-server executable {executable!r} is not an executable file")
        return executable

    def _choose_port(self) -> int:
        cluster = self._config.get("cluster-enabled", "no").lower() == "yes"
        if cluster and "cluster-port" not in self._config:
            return free_cluster_port(self.host)
        return free_port(self.host)

    def _write_config(self) -> Path:
        directory = self.directory
        directives: dict[str, str] = {
            "port": str(self.port),
            "bind": self.host,
            "dir": quote_conf(str(directory)),
            "daemonize": "no",
            "logfile": quote_conf(str(directory / LOG_NAME)),
            "save": '""',
            "appendonly": "no",
            "protected-mode": "no",
        }
        if self._tls is not False:
            directives.update(server_directives(self.tls_files, self.port))
        directives.update({key: render_value(value) for key, value in self._config.items()})
        lines = ["# Written by luminora_redis.testing; rewritten on every start.\n"]
        lines.extend(f"{key} {value}\n" for key, value in directives.items())
        path = directory / CONF_NAME
        path.write_text("".join(lines), encoding="utf-8")
        return path

    def _launch_until_ready(self, executable: str, *, choose_port: bool) -> None:
        attempts = 1 + (PORT_RETRIES if choose_port else 0)
        if self._tls is True:  # a restart keeps the certificates its clients trust
            self._tls_files = loopback_tls_files(self.directory / "tls", self.host)
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
            new_log = read_log(self.log_path, log_offset)
            if choose_port and ADDRESS_IN_USE in new_log and attempt + 1 < attempts:
                # A cluster node records its port in nodes.conf; a file left by
                # the failed attempt would carry the wrong one.
                if cluster_file is not None and not cluster_file_existed:
                    cluster_file.unlink(missing_ok=True)
                continue
            raise RedisServerError(
                f"redis-server on {self.host}:{self.port} exited with code {exit_code} "
                f"during startup; log {self.log_path} ends with:\n{log_tail(self.log_path)}"
            )

    def _cluster_config_file(self) -> Path | None:
        if self._config.get("cluster-enabled", "no").lower() != "yes":
            return None
        name = self._config.get("cluster-config-file", "nodes.conf").strip('"')
        return self.directory / name

    def _launch_args(self, executable: str, conf: Path) -> list[str]:
        """The command line that starts this process (a sentinel adds ``--sentinel``)."""
        return [executable, str(conf)]

    def _spawn(self, executable: str, conf: Path) -> None:
        with open(self.log_path, "ab") as log:
            # The child gets its own copy of the log descriptor; early errors
            # (bad config) go to stderr before Redis opens its logfile.
            self._proc = subprocess.Popen(
                self._launch_args(executable, conf),
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
        # protocol=2: a probe that answers even on a server too old for us
        probe = fast_client(self.host, self.port, protocol=2, **self._tls_options(probe=True))
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
            f"{self.startup_timeout:g}s; log {self.log_path} ends with:\n{log_tail(self.log_path)}"
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
                    proc.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        finally:
            if proc.returncode is not None:
                self._proc = None
