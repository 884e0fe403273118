"""Idle delivery cost: what 2 and 4 idle ``ExpiryListener``s with an ``on_archived``
hook cost the server (default settings, 1024 buckets, nothing due, empty outbox), for
two checkouts in one run, on a private single server and a private 3-primary cluster.

Each group of listeners runs in a subprocess whose ``PYTHONPATH`` is one checkout
(``--before PATH``; the other is this file's own tree), so the two codes alternate on
the same servers, each measured over the same window. Reported per group: server CPU
(INFO used_cpu_sys + used_cpu_user over the window, every node summed, % of one core),
EVALSHA/s and commands/s (INFO commandstats, INFO's own calls excluded), and the
after/before ratios. The same number of listeners without a hook (this tree) is the
sweepers' and heartbeats' share; what a hook adds above it is the outbox scans'.

    python benchmarks/bench_idle_deliveries.py --before <checkout> [--seconds 10]
        [--no-cluster]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from benchmarks._common import QUIET_SERVER, command_count, environment, num, ratio, say, table
from luminora_redis.testing import LocalCluster, RedisServer

HERE = Path(__file__).resolve().parent.parent

CHILD = textwrap.dedent("""
    import asyncio, sys
    import luminora_redis
    from luminora_redis import ExpiryListener, SessionStore
    print("code:", luminora_redis.__file__, file=sys.stderr)

    url, cluster, count, hooked = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]), \\
        sys.argv[4] == "1"

    async def sink(conversation):
        pass

    async def main():
        stores = [SessionStore.from_url(url, cluster=cluster, buckets=1024, prefix="idle")
                  for _ in range(count)]
        group = [ExpiryListener(store, on_archived=sink if hooked else None)
                 for store in stores]
        tasks = [asyncio.create_task(listener.run()) for listener in group]
        for listener in group:
            await asyncio.wait_for(listener.started.wait(), 60)
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.read)  # until the parent closes it
        for listener in group:
            await listener.stop()
        await asyncio.gather(*tasks)
        for store in stores:
            await store.aclose()

    asyncio.run(main())
""")


def totals(clients: Sequence[redis.Redis]) -> tuple[float, int, int]:
    """CPU seconds, EVALSHA calls and commands, summed over the nodes."""
    cpu = evalsha = commands = 0
    for client in clients:
        info = client.info("cpu")
        cpu += float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
        stats = client.info("commandstats")
        evalsha += int(stats.get("cmdstat_evalsha", {}).get("calls", 0))
        commands += command_count(client)
    return cpu, evalsha, commands


def measure(url: str, cluster: bool, clients: Sequence[redis.Redis], code: Path,
            count: int, hooked: bool, seconds: float) -> dict[str, float]:
    """Run ``count`` idle listeners of ``code`` in a subprocess; the server's cost."""
    # Run from the checkout: ``python -c`` puts the working directory before PYTHONPATH.
    env = {**os.environ, "PYTHONPATH": str(code)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, url, "1" if cluster else "0",
                              str(count), "1" if hooked else "0"], env=env, cwd=code,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdin is not None and child.stdout is not None
    try:
        if count and child.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the listeners of {code} did not start")
        time.sleep(2.0)  # past the start-up sweeps and scans
        cpu0, eval0, cmd0 = totals(clients)
        start = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - start
        cpu1, eval1, cmd1 = totals(clients)
    finally:
        child.stdin.close()
        child.wait(60)
    return {"cpu": 100 * (cpu1 - cpu0) / elapsed, "evalsha": (eval1 - eval0) / elapsed,
            "commands": (cmd1 - cmd0) / elapsed}


@contextmanager
def target(cluster: bool) -> Iterator[tuple[str, list[redis.Redis]]]:
    """A private server or 3-primary cluster: its URL and a client of every node."""
    if cluster:
        with LocalCluster(config=QUIET_SERVER) as nodes:
            clients = [server.client() for server in nodes.servers]
            try:
                yield nodes.url, clients
            finally:
                for client in clients:
                    client.close()
    else:
        with RedisServer(config=QUIET_SERVER) as server:
            client = server.client()
            try:
                yield server.url, [client]
            finally:
                client.close()


def run(before: Path, seconds: float, cluster: bool) -> str:
    rows = []
    with target(cluster) as (url, clients):
        say(environment(clients[0]))
        base = measure(url, cluster, clients, HERE, 0, False, seconds)
        rows.append(["0 (the server alone)", "—", f"{base['cpu']:.2f} %", num(base["evalsha"]),
                     num(base["commands"]), "", ""])
        for count in (2, 4):
            plain = measure(url, cluster, clients, HERE, count, False, seconds)
            old = measure(url, cluster, clients, before, count, True, seconds)
            new = measure(url, cluster, clients, HERE, count, True, seconds)
            say(f"{count}: no hook {plain}, before {old}, after {new}")
            rows.append([f"{count}, no hook", "—", f"{plain['cpu']:.2f} %",
                         num(plain["evalsha"]), num(plain["commands"]), "", ""])
            for label, cost in (("before", old), ("after", new)):
                rows.append([f"{count}, hook", label, f"{cost['cpu']:.2f} %",
                             num(cost["evalsha"]), num(cost["commands"]),
                             ratio(cost["cpu"] - plain["cpu"], old["cpu"] - plain["cpu"])
                             if label == "after" else "",
                             ratio(cost["commands"] - plain["commands"],
                                   old["commands"] - plain["commands"])
                             if label == "after" else ""])
    title = "3-primary cluster" if cluster else "single server"
    return "\n".join([
        f"### Idle listeners, {title} ({seconds:g} s windows)", "",
        table(["idle listeners", "code", "server CPU, % of one core", "EVALSHA/s",
               "commands/s (incl. inside scripts)", "hook's share of CPU, after / before",
               "hook's share of commands/s, after / before"], rows), ""])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True,
                        help="a checkout of the code to compare with (its top directory)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--no-cluster", action="store_true")
    args: Any = parser.parse_args(argv)
    print(run(args.before.resolve(), args.seconds, False))
    if not args.no_cluster:
        print(run(args.before.resolve(), args.seconds, True))


if __name__ == "__main__":
    main()
