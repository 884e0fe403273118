"""What every private Redis process shares: finding the executables, loopback
ports, redis.conf directives, fast readiness probes, reading their logs, and
reaping at exit.

Every process binds a loopback address only (these servers have no auth) and
is always reaped: every object that owns a process or a temporary directory
registers here and is stopped from an ``atexit`` hook if its owner forgot to,
or if ``start`` failed half-way, so a normal interpreter exit never leaves a
zombie or an orphan behind.
"""

from __future__ import annotations

import atexit
import ipaddress
import os
import shutil
import socket
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

#: Pause between two readiness polls; kept well under 50 ms so tests stay fast.
POLL_INTERVAL = 0.02

STOP_TIMEOUT = 10.0  # seconds to wait for a graceful SIGTERM exit before SIGKILL
PORT_RETRIES = 5  # extra attempts when an automatically chosen port was taken
LOG_NAME = "redis.log"
CONF_NAME = "redis.conf"
CLUSTER_BUS_OFFSET = 10000  # Redis' default cluster bus port is port + 10000
CLUSTER_SLOTS = 16384
SEARCH_DIRS = ("/usr/sbin", "/usr/bin", "/usr/local/bin")
ADDRESS_IN_USE = "Address already in use"
#: The environment variable that names the server binary to run (`find_redis_server`).
SERVER_VARIABLE = "LUMINORA_REDIS_SERVER"

# Directives RedisServer owns: changing them would break readiness checks,
# the log tail in errors, or the loopback-only promise.
RESERVED_DIRECTIVES = frozenset({"port", "bind", "dir", "daemonize", "logfile"})


class RedisServerError(RuntimeError):
    """A private Redis process or cluster failed to start, stop or settle."""


def find_redis_server() -> str | None:
    """Return the path of ``redis-server``, or None when it is not installed.

    ``LUMINORA_REDIS_SERVER``, when set, names the binary to use (any server that
    speaks the Redis protocol and takes a redis.conf, e.g. ``valkey-server``), and a
    path that is not an executable file is an error rather than a silent fallback.
    Else PATH comes first; the system directories are checked as well because
    ``/usr/sbin`` is often missing from a non-root user's PATH, where some
    distributions install it.
    """
    chosen = os.environ.get(SERVER_VARIABLE, "").strip()
    if chosen:
        path = Path(chosen).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise RedisServerError(f"{SERVER_VARIABLE}={chosen!r} is not an executable file")
        # Not resolved: Debian's redis-server is a link to redis-check-rdb, which picks
        # its role by the name it was started under.
        return str(path.absolute())
    return find_executable("redis-server")


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on the loopback ``host`` that is free right now.

    The kernel picks it; another process may still take it before Redis binds
    it, which is why `RedisServer.start` retries on "Address already in use".
    """
    check_loopback(host)
    with socket.socket(address_family(host), socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def find_executable(name: str, near: str | None = None) -> str | None:
    """Find ``name`` next to ``near`` (if given), on PATH, then in system dirs."""
    candidates: list[Path] = []
    if near is not None:
        candidates.append(Path(near).resolve().parent / name)
    found = shutil.which(name)
    if found is not None:
        candidates.append(Path(found))
    candidates.extend(Path(d) / name for d in SEARCH_DIRS)
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def address_family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def check_loopback(host: str) -> None:
    """Refuse anything but a loopback IP literal: these servers have no auth."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"host must be a loopback IP address such as 127.0.0.1, got {host!r}") from None
    if not address.is_loopback:
        raise ValueError(f"host must be a loopback address, got {host!r}")


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(address_family(host), socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_cluster_port(host: str) -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    for _ in range(200):
        port = free_port(host)
        bus = port + CLUSTER_BUS_OFFSET
        if bus <= 65535 and port_is_free(host, bus):
            return port
    raise RedisServerError(f"could not find a free port pair (port, port+{CLUSTER_BUS_OFFSET}) on {host}")


def quote_conf(value: str) -> str:
    """Quote a value for redis.conf (double quotes, backslash escapes)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def normalise_config(config: Mapping[str, str] | None) -> dict[str, str]:
    """Validate extra directives; keys are lower-cased like Redis does."""
    result: dict[str, str] = {}
    for key, value in (config or {}).items():
        name = str(key).strip().lower()
        text = str(value)
        if not name or any(ch.isspace() for ch in name):
            raise ValueError(f"invalid redis.conf directive name {key!r}")
        if "\n" in text or "\r" in text:
            raise ValueError(f"redis.conf value for {key!r} must be a single line")
        if name in RESERVED_DIRECTIVES:
            raise ValueError(
                f"{name!r} is managed by RedisServer and cannot be set through config "
                f"(reserved: {', '.join(sorted(RESERVED_DIRECTIVES))})"
            )
        result[name] = text
    return result


def render_value(value: str) -> str:
    # Values are written verbatim so multi-argument directives such as
    # {"save": "900 1 300 10"} work; only the empty string needs quoting.
    return '""' if value == "" else value


def fast_client(host: str, port: int, protocol: int = 3, **tls: Any) -> redis.Redis:
    """A short-timeout client for readiness polls (``tls``: redis-py's ``ssl`` keywords
    for a server that speaks TLS).

    redis-py retries with exponential backoff by default, which would sleep far
    longer than our polling interval; the probe fails fast instead. ``protocol=2``
    makes a probe that answers on any server, HELLO (RESP3) being Redis 6.0+.
    """
    return redis.Redis(
        host=host,
        port=port,
        protocol=protocol,
        socket_connect_timeout=0.25,
        socket_timeout=0.5,  # a stranger holding the port may never answer
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
        **tls,
    )


def read_log(path: Path, offset: int = 0) -> str:
    """What a process wrote to its log file from byte ``offset`` on; "" without the file."""
    try:
        with open(path, "rb") as log:
            log.seek(offset)
            return log.read().decode("utf-8", "replace")
    except OSError:
        return ""


def log_tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a process's log file, for an error message."""
    try:
        with open(path, "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - 8192))
            text = log.read().decode("utf-8", "replace")
    except OSError:
        return "(no log file)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


class Stoppable(Protocol):
    def stop(self) -> None: ...


# Strong references on purpose: an object that still owns a process must not
# be garbage-collected (Popen would warn and the process would be orphaned).
_live: dict[int, Stoppable] = {}
_live_lock = threading.Lock()


def register(obj: Stoppable) -> None:
    with _live_lock:
        _live[id(obj)] = obj


def unregister(obj: Stoppable) -> None:
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


_S = TypeVar("_S", bound="StartStop")


class StartStop:
    """The context manager of everything that starts private processes: `start` on
    entry (which returns the object), `stop` on exit."""

    def start(self: _S) -> _S:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
