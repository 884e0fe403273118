"""What the scripts under ``benchmarks/`` share that ``luminora_redis.bench`` lacks.

Percentiles, Markdown tables and numbers, the quiet server configuration, the
command count and the machine's description are ``luminora_redis.bench``'s,
re-exported here so that every script imports them from one place; what is
left is particular to these scripts: a private server process, a ratio column,
a one-line environment and progress on stderr.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from luminora_redis.bench.archive import command_count, percentile
from luminora_redis.bench.report import num, table
from luminora_redis.bench.servers import QUIET as QUIET_SERVER
from luminora_redis.bench.servers import machine
from luminora_redis.testing import RedisServer

__all__ = ["QUIET_SERVER", "command_count", "environment", "num", "percentile",
           "private_server", "ratio", "say", "table"]


@contextmanager
def private_server(**config: str) -> Iterator[RedisServer]:
    """A private redis-server on a free loopback port, stopped afterwards (the process
    itself: ``luminora_redis.bench.servers.private_target`` yields only its URL)."""
    with RedisServer(config={**QUIET_SERVER, **config}) as server:
        yield server


def ratio(value: float | None, base: float | None) -> str:
    """``value / base`` as ``×1.23``; an em dash when either is missing."""
    if not value or not base or value != value or base != base:
        return "—"
    return f"×{value / base:.2f}"


def environment(client: redis.Redis) -> str:
    """One line naming the machine, Python, redis-py and the server."""
    host = machine()
    info = client.info("server")
    return (f"{host['cpus']} CPUs, Python {host['python']}, "
            f"redis-py {redis.__version__}, redis-server {info['redis_version']} "
            f"(client and server on the same machine), {time.strftime('%Y-%m-%d')}")


def say(*parts: Any) -> None:
    """Progress on stderr, so stdout stays the Markdown report."""
    print(*parts, file=sys.stderr, flush=True)
