"""Redis Cluster: chat-turn throughput on a 3-primary local cluster next to a single
server, and how evenly the bucket layout spreads users over slots and nodes.

Part 1 starts a private single redis-server and a private 3-primary ``LocalCluster``
on this machine, and runs the same chat-turn workload through the asyncio store on
each (``cluster=True`` for the cluster). All nodes share this machine's cores with the
benchmark client, so the ratio is information about the client-side cost of cluster
routing, not a scaling claim.

Part 2 needs no server: it hashes ``--users`` simulated user ids into buckets
(``KeySpace.bucket_of_user``), computes each bucket's slot from its hash tag with
redis-py's ``redis.crc.key_slot``, and maps slots to nodes as ``redis-cli --cluster
create`` splits 16384 slots over 3 primaries.

    python -m benchmarks.bench_cluster [--sessions 200 --turns 50 --users 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

import redis
from redis.crc import key_slot

from benchmarks._common import (
    QUIET_SERVER,
    environment,
    num,
    percentile,
    private_server,
    ratio,
    say,
    table,
)
from luminora_redis import SessionStore
from luminora_redis.core.keys import KeySpace
from luminora_redis.testing import LocalCluster

SLOTS = 16384
TTL = 3600.0


# --------------------------------------------------------------------------- #
# Part 1: throughput
# --------------------------------------------------------------------------- #


async def chat_workload(store: SessionStore, sessions: int, turns: int, tasks: int,
                        limit: float) -> dict[str, float]:
    """Sequential p50/p99 and concurrent turns/s of ``store.chat_turn``."""
    user = [f"user turn {i}: " + "the quick brown fox jumps over the lazy dog " * 2
            for i in range(turns)]
    assistant = [f"assistant turn {i}: " + "the quick brown fox jumps over the lazy dog " * 9
                 for i in range(turns)]

    async def create(n: int) -> list[str]:
        ids: list[str] = []
        for start in range(0, n, 64):
            ids += await asyncio.gather(*(
                store.create_session(f"user-{uuid.uuid4().hex[:12]}", "alicia",
                                     {"ttl": TTL, "max_idle": TTL})
                for _ in range(start, min(n, start + 64))))
        return ids

    async def turn(sid: str, i: int) -> None:
        await store.chat_turn(sid, [("user", user[i]), ("assistant", assistant[i])], last=10)

    warm = await create(min(64, sessions))
    for i in range(min(3, turns)):
        await asyncio.gather(*(turn(sid, i) for sid in warm))

    order = [(s, t) for t in range(turns) for s in range(sessions)]
    ids = await create(sessions)
    latencies = []
    deadline = time.monotonic() + limit
    for count, (s, t) in enumerate(order):
        start = time.perf_counter_ns()
        await turn(ids[s], t)
        latencies.append((time.perf_counter_ns() - start) / 1000)
        if count % 256 == 0 and time.monotonic() > deadline:
            break
    latencies.sort()

    ids = await create(sessions)
    position = done = 0
    deadline = time.monotonic() + limit

    async def worker() -> None:
        nonlocal position, done
        while position < len(order) and time.monotonic() < deadline:
            s, t = order[position]
            position += 1
            await turn(ids[s], t)
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    elapsed = time.perf_counter() - start
    return {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
            "throughput": done / elapsed, "turns": done, "complete": done == len(order)}


def keys_per_node(clients: Sequence[redis.Redis]) -> list[int]:
    return [int(client.dbsize()) for client in clients]


def best(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The best of several rounds: lowest latencies, highest throughput."""
    return {"p50": min(r["p50"] for r in runs), "p99": min(r["p99"] for r in runs),
            "throughput": max(r["throughput"] for r in runs),
            "complete": all(r["complete"] for r in runs)}


async def throughput(args: argparse.Namespace) -> tuple[str, list[list[str]], list[int]]:
    """Both targets up at once; rounds alternate between them so that a transient load
    on the machine does not favour one."""
    with private_server() as server:
        probe = redis.Redis.from_url(server.url)
        env = environment(probe)
        probe.close()
        say("starting a 3-primary cluster")
        with LocalCluster(primaries=3, config=QUIET_SERVER) as cluster:
            single_store = SessionStore.from_url(server.url, buckets=args.buckets)
            cluster_store = SessionStore.from_url(cluster.url, cluster=True,
                                                  buckets=args.buckets)
            runs: dict[str, list[dict[str, Any]]] = {"single": [], "cluster": []}
            for number in range(args.rounds):
                for name, store in (("single", single_store), ("cluster", cluster_store)):
                    say(f"round {number + 1}: {name}")
                    runs[name].append(await chat_workload(store, args.sessions, args.turns,
                                                          args.tasks, args.max_seconds))
            await single_store.aclose()
            await cluster_store.aclose()
            clients = [node.client() for node in cluster.primaries()]
            spread = keys_per_node(clients)
            for client in clients:
                client.close()
    single, clustered = best(runs["single"]), best(runs["cluster"])
    rows = []
    for label, result in (("single redis-server", single),
                          ("3-primary cluster (`cluster=True`)", clustered)):
        rows.append([label, num(result["p50"]), num(result["p99"]),
                     ratio(result["p50"], single["p50"]), num(result["throughput"]),
                     ratio(result["throughput"], single["throughput"]),
                     "" if result["complete"] else "stopped by --max-seconds"])
    return env, rows, spread


# --------------------------------------------------------------------------- #
# Part 2: spread
# --------------------------------------------------------------------------- #


def standard_split(primaries: int = 3) -> list[tuple[int, int]]:
    """Slot ranges as ``redis-cli --cluster create`` assigns them (0-5460, 5461-10922,
    10923-16383 for 3 primaries)."""
    per_node = SLOTS / primaries
    ranges, first = [], 0
    for node in range(primaries):
        last = SLOTS - 1 if node == primaries - 1 else round((node + 1) * per_node) - 1
        ranges.append((first, last))
        first = last + 1
    return ranges


def spread(users: int, buckets: int, digests: Sequence[int],
           ranges: Sequence[tuple[int, int]]) -> dict[str, Any]:
    space = KeySpace("lr", buckets)
    per_bucket = Counter(digest % buckets for digest in digests)
    counts = [per_bucket.get(b, 0) for b in range(buckets)]
    slots = [key_slot(space.tag(b).encode()) for b in range(buckets)]
    node_of_slot = [0] * SLOTS
    for node, (first, last) in enumerate(ranges):
        for slot in range(first, last + 1):
            node_of_slot[slot] = node
    buckets_per_node = Counter(node_of_slot[slot] for slot in slots)
    users_per_node = Counter()
    for bucket, count in enumerate(counts):
        users_per_node[node_of_slot[slots[bucket]]] += count
    mean = users / buckets
    return {
        "buckets": buckets,
        "min": min(counts), "max": max(counts), "mean": mean,
        "stddev": statistics.pstdev(counts),
        "ideal": (users * (1 / buckets) * (1 - 1 / buckets)) ** 0.5,
        "slots": len(set(slots)),
        "buckets_per_node": [buckets_per_node.get(n, 0) for n in range(len(ranges))],
        "users_per_node": [users_per_node.get(n, 0) for n in range(len(ranges))],
    }


def spread_tables(users: int, bucket_counts: Sequence[int]) -> str:
    say(f"hashing {users:,} user ids")
    # bucket_of_user is BLAKE2b-64 of the id, modulo the bucket count: hash once, reduce
    # per bucket count; checked against KeySpace below.
    digests = [int.from_bytes(hashlib.blake2b(f"user-{i}".encode(), digest_size=8).digest(),
                              "big") for i in range(users)]
    for count in bucket_counts:
        space = KeySpace("lr", count)
        for i in range(0, users, max(1, users // 1000)):
            if space.bucket_of_user(f"user-{i}") != digests[i] % count:
                raise RuntimeError("KeySpace.bucket_of_user changed: update this benchmark")
    ranges = standard_split(3)
    results = [spread(users, count, digests, ranges) for count in bucket_counts]
    out = [
        f"### Users per bucket ({users:,} simulated user ids `user-0` … `user-{users - 1}`)",
        "",
        table(["buckets", "users/bucket min", "max", "mean", "stddev",
               "stddev if uniformly random", "max vs mean", "distinct slots"],
              [[num(r["buckets"]), num(r["min"]), num(r["max"]), num(r["mean"], 1),
                num(r["stddev"], 1), num(r["ideal"], 1), ratio(r["max"], r["mean"]),
                f"{r['slots']:,} of {r['buckets']:,}"] for r in results]),
        "",
        "### Buckets and users per node, standard 3-node split "
        f"({', '.join(f'{a}-{b}' for a, b in ranges)})",
        "",
        table(["buckets", "buckets per node", "users per node", "busiest node vs mean"],
              [[num(r["buckets"]),
                " / ".join(num(v) for v in r["buckets_per_node"]),
                " / ".join(num(v) for v in r["users_per_node"]),
                ratio(max(r["users_per_node"]), users / 3)] for r in results]),
    ]
    return "\n".join(out)


# --------------------------------------------------------------------------- #


async def run(args: argparse.Namespace) -> str:
    out = []
    if not args.no_throughput:
        env, rows, keys = await throughput(args)
        out += [
            f"### Chat turn, single server vs 3-primary cluster: {args.sessions} sessions × "
            f"{args.turns} turns",
            "",
            f"_{env}. asyncio `SessionStore.chat_turn`; sequential latency, then "
            f"{args.tasks} concurrent tasks; best of {args.rounds} alternating rounds, fresh "
            f"sessions each. Every node of the cluster runs on the same 2 "
            f"cores as the client: information, not a scaling claim._",
            "",
            table(["server", "p50 µs", "p99 µs", "p50 vs single", "turns/s",
                   "turns/s vs single", "note"], rows),
            "",
            f"Keys per primary after the cluster run: {' / '.join(num(k) for k in keys)}.",
            "",
        ]
    out.append(spread_tables(args.users, args.buckets_list))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--tasks", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating rounds per target; the best is reported")
    parser.add_argument("--max-seconds", type=float, default=30.0,
                        help="time bound of each sequential or concurrent run")
    parser.add_argument("--buckets", type=int, default=1024,
                        help="bucket count of the stores in part 1")
    parser.add_argument("--users", type=int, default=1_000_000,
                        help="simulated user ids for part 2")
    parser.add_argument("--buckets-list", type=int, nargs="+", default=[256, 1024, 4096],
                        help="bucket counts for part 2")
    parser.add_argument("--no-throughput", action="store_true",
                        help="part 2 only (no server needed)")
    args = parser.parse_args(argv)
    if min(args.sessions, args.turns, args.tasks, args.rounds, args.buckets, args.users,
           *args.buckets_list) < 1:
        parser.error("sizes must be positive")
    print(asyncio.run(run(args)))


if __name__ == "__main__":
    sys.exit(main())
