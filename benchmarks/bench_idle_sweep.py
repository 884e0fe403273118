"""Idle sweep cost: redis-server CPU of 0, 1, 2 and 4 idle listeners (default settings,
1024 buckets, nothing due, notifications on) with ``--live`` one-hour sessions in the
keyspace, on a private redis-server and, with ``--cluster``, on a private 3-primary
cluster, as % of one core per node (INFO used_cpu_sys + used_cpu_user over the window,
default 10 s). The 0-listener row is the servers' own cost with that keyspace; a
listener's share is the difference. Public API only, so the same file measures an
older checkout:

    PYTHONPATH=<checkout> python benchmarks/bench_idle_sweep.py [--seconds 10 | 10]
        [--live 100000] [--cluster] [--listeners 0,1,2,4]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from typing import Any

import luminora_redis
from luminora_redis import ExpiryListener, SessionStore
from luminora_redis.testing import LocalCluster, RedisServer

PREFIX = "idle"


def _stats(servers: Sequence[RedisServer]) -> list[tuple[float, int, int]]:
    """Per node: CPU seconds, commands (scripts' own included, INFO excluded), EVALSHAs."""
    out = []
    for server in servers:
        with server.client() as client:
            cpu = client.info("cpu")
            stats: dict[str, Any] = client.info("commandstats")
        out.append((float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
                    sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info"),
                    int(stats.get("cmdstat_evalsha", {}).get("calls", 0))))
    return out


async def fill(url: str, cluster: bool, live: int) -> None:
    """``live`` one-hour sessions of distinct users, created a thousand at a time."""
    store = SessionStore.from_url(url, cluster=cluster, buckets=1024, prefix=PREFIX)
    try:
        for start in range(0, live, 1000):
            await asyncio.gather(*(store.create_session(f"user-{n}", "alicia", {"ttl": 3600})
                                   for n in range(start, min(live, start + 1000))))
    finally:
        await store.aclose()


async def measure(url: str, cluster: bool, servers: Sequence[RedisServer], n: int,
                  seconds: float) -> dict[str, Any]:
    stores = [SessionStore.from_url(url, cluster=cluster, buckets=1024, prefix=PREFIX)
              for _ in range(n)]
    group = [ExpiryListener(store) for store in stores]
    tasks = [asyncio.create_task(listener.run()) for listener in group]
    try:
        for listener in group:
            await asyncio.wait_for(listener.started.wait(), 60)
        await asyncio.sleep(2)
        before, sweeps0 = _stats(servers), sum(x.sweeps for x in group)
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - t0
        after, sweeps1 = _stats(servers), sum(x.sweeps for x in group)
    finally:
        for listener in group:
            await listener.stop()
        await asyncio.gather(*tasks)
        for store in stores:
            await store.aclose()
    cpu = [100 * (b[0] - a[0]) / elapsed for a, b in zip(before, after)]
    return {"listeners": n, "cpu_nodes": cpu,
            "commands": sum(b[1] - a[1] for a, b in zip(before, after)) / elapsed,
            "evalsha": sum(b[2] - a[2] for a, b in zip(before, after)) / elapsed,
            "sweeps": (sweeps1 - sweeps0) / elapsed}


async def run(label: str, url: str, cluster: bool, servers: Sequence[RedisServer],
              args: argparse.Namespace) -> None:
    t0 = time.monotonic()
    await fill(url, cluster, args.live)
    print(f"{label}: {args.live:,} live sessions in {time.monotonic() - t0:.0f} s", flush=True)
    base: list[float] | None = None
    for n in args.listeners:
        row = await measure(url, cluster, servers, n, args.seconds)
        cpu = row["cpu_nodes"]
        if n == 0:
            base = cpu
        share = ("" if base is None or n == 0 else
                 f", above the 0-listener row: {sum(cpu) - sum(base):+.2f} % in all, "
                 f"{max(c - b for c, b in zip(cpu, base)):+.2f} % on the busiest node")
        print(f"{label}, {n} listener(s): redis-server CPU "
              f"{' + '.join(f'{c:.2f}' for c in cpu)} % of one core{share}; "
              f"sweep passes/s {row['sweeps']:.1f}, EVALSHA/s {row['evalsha']:,.0f}, "
              f"commands/s {row['commands']:,.0f}", flush=True)


async def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("window", type=float, nargs="?", default=None,
                        help="the window in seconds (same as --seconds)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--live", type=int, default=100_000)
    parser.add_argument("--cluster", action="store_true", help="also a 3-primary cluster")
    parser.add_argument("--single", action=argparse.BooleanOptionalAction, default=True,
                        help="the single server (default: yes)")
    parser.add_argument("--listeners", default="0,1,2,4")
    args = parser.parse_args(argv)
    args.listeners = [int(n) for n in args.listeners.split(",")]
    if args.window is not None:
        args.seconds = args.window
    print("code:", luminora_redis.__file__, file=sys.stderr)
    if args.single:
        with RedisServer() as server:
            await run("single server", server.url, False, [server], args)
    if args.cluster:
        with LocalCluster() as cluster:
            await run("3-primary cluster", cluster.url, True, cluster.primaries(), args)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
