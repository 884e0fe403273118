"""What every benchmark shares: a private server, percentiles, Markdown tables."""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis

from luminora_redis.testing import RedisServer

#: redis.conf for benchmark servers: no snapshots or AOF writes in the middle of a run.
QUIET_SERVER = {"save": "", "appendonly": "no"}


@contextmanager
def private_server(**config: str) -> Iterator[RedisServer]:
    """A private redis-server on a free loopback port, stopped afterwards."""
    with RedisServer(config={**QUIET_SERVER, **config}) as server:
        yield server


def percentile(ordered: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of an ascending sequence, nearest rank."""
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A Markdown table; ``align`` is one letter per column, ``l`` or ``r`` (default: first
    column left, the rest right)."""
    align = align or "l" + "r" * (len(headers) - 1)
    marks = [":---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def num(value: float, digits: int = 0) -> str:
    """A number with thousands separators; an em dash for NaN or None."""
    if value is None or value != value:
        return "—"
    return f"{value:,.{digits}f}"


def ratio(value: float | None, base: float | None) -> str:
    """``value / base`` as ``×1.23``; an em dash when either is missing."""
    if not value or not base or value != value or base != base:
        return "—"
    return f"×{value / base:.2f}"


def environment(client: redis.Redis) -> str:
    """One line naming the machine, Python, redis-py and the server."""
    info = client.info("server")
    return (f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"redis-py {redis.__version__}, redis-server {info['redis_version']} "
            f"(client and server on the same machine), {time.strftime('%Y-%m-%d')}")


def command_count(client: redis.Redis) -> int:
    """Commands the server has executed since its start (INFO commandstats; scripts' inner
    calls included, INFO's own calls excluded)."""
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


def say(*parts: Any) -> None:
    """Progress on stderr, so stdout stays the Markdown report."""
    print(*parts, file=sys.stderr, flush=True)
