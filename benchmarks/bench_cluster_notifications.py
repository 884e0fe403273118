"""Redis Cluster notifications: what redis-py's round-robin polling adds to the lag.

``AsyncClusterKeyspaceNotifications.get_message(timeout)`` polls the primaries one
after the other, each for up to min(0.1, timeout / primaries) seconds, so an event
that arrives on one node waits while the others are polled. Two parts, on a private
3-primary ``LocalCluster`` and a private single redis-server:

1. **Polling delay.** Keys with deadlines spread over ``--spread`` seconds expire on
   every primary. One reference subscriber per primary (a plain pub/sub connection
   whose task waits on its socket) stamps each ``expired`` event as it arrives; in the
   same event loop a loop of ``get_message(timeout=T)`` stamps it again. Added delay =
   the second stamp − the first, for several T, and for what the listener does:
   ``get_message(timeout=0)`` (every primary, no waiting) and a short pause when
   nothing came. Next to it, the CPU the polling loop burns while nothing is
   published. The single-server row is plain ``PubSub.get_message(timeout=1.0)``
   measured the same way.
2. **The listener's notification path.** ``ExpiryListener`` with the sweeper
   effectively off (a sweep interval that never comes round after the start-up
   sweep): lag = ``on_archived`` wall-clock time − the session's effective deadline,
   on the cluster (at the listener's own poll timeout) and on the single server.
   This includes Redis's own expiry detection (its active expiry cycle runs ``hz``
   times a second) and the archive script.

    python -m benchmarks.bench_cluster_notifications [--keys 600 --sessions 600]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis
import redis.cluster
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.keyspace_notifications import AsyncClusterKeyspaceNotifications
from redis.keyspace_notifications import KeyeventChannel

from benchmarks._common import QUIET_SERVER, environment, num, percentile, say, table
from luminora_redis import ArchivedConversation, SessionStore
from luminora_redis.bench.archive import create_sessions
from luminora_redis.listener.expiry_listener import ExpiryListener
from luminora_redis.listener.subscriptions import CLUSTER_IDLE
from luminora_redis.testing import LocalCluster, RedisServer

NEVER = 10 * 365 * 24 * 3600.0  # a sweep interval that never comes round during a run
CHANNEL = str(KeyeventChannel("expired", db=0))
HZ = "10"  # Redis's default active expiry frequency, on every server here


@dataclass
class Delays:
    label: str
    wait: float | None  # seconds: the per-node poll timeout, or the pause when idle
    delays_ms: list[float]
    expected: int
    idle_cpu: float  # % of one core burnt by the polling loop while nothing arrives


@dataclass
class Lags:
    label: str
    lags_ms: list[float]
    expected: int
    by_path: dict[str, int]


# --------------------------------------------------------------------------- #
# Part 1: the polling delay of get_message itself
# --------------------------------------------------------------------------- #


async def reference(client: aioredis.Redis, stamps: dict[str, float],
                    ready: asyncio.Event) -> None:
    """Stamp every expired event of one server the moment its socket delivers it."""
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(CHANNEL)
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is None:
                continue
            if message["type"] == "subscribe":
                ready.set()
            elif message["type"] == "message":
                stamps.setdefault(message["data"].decode(), time.perf_counter())
    finally:
        await pubsub.aclose()


async def expire_keys(setter: Any, prefix: str, count: int, lead: float,
                      spread: float) -> None:
    """``count`` keys expiring ``lead`` to ``lead + spread`` seconds from now, pipelined."""
    async with setter.pipeline() as pipe:
        for i in range(count):
            ttl_ms = int(1000 * (lead + spread * i / max(1, count - 1)))
            pipe.set(f"{prefix}:{{{i}}}", b"1", px=ttl_ms)
        await pipe.execute()


async def polling_delay(label: str, nodes: Sequence[tuple[str, int]], setter: Any,
                        subscription: Any, timeout: float, wait: float | None,
                        args: argparse.Namespace) -> Delays:
    """Added delay of ``subscription.get_message(timeout)`` over per-node references."""
    ref_stamps: dict[str, float] = {}
    poll_stamps: dict[str, float] = {}
    readies = [asyncio.Event() for _ in nodes]
    clients = [aioredis.Redis(host=host, port=port) for host, port in nodes]
    references = [asyncio.create_task(reference(client, ref_stamps, ready))
                  for client, ready in zip(clients, readies)]
    stop = asyncio.Event()

    async def poll() -> None:
        while not stop.is_set():
            event = await subscription.get_message(timeout=timeout)
            if event is None:
                continue
            key = event.key if hasattr(event, "key") else event.get("data")
            if isinstance(key, bytes):
                key = key.decode()
            if isinstance(key, str):
                poll_stamps.setdefault(key, time.perf_counter())

    poller = asyncio.create_task(poll())
    try:
        await asyncio.wait_for(asyncio.gather(*(ready.wait() for ready in readies)), 10)
        await asyncio.sleep(0.2)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(args.idle_seconds)
        idle_cpu = 100 * (time.process_time() - cpu0) / (time.perf_counter() - wall0)
        prefix = f"poll{time.monotonic_ns()}"
        await expire_keys(setter, prefix, args.keys, args.lead, args.spread)
        deadline = time.monotonic() + args.lead + args.spread + 5.0
        while time.monotonic() < deadline and (
                len(poll_stamps) < args.keys or len(ref_stamps) < args.keys):
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await poller
        for task in references:
            task.cancel()
        await asyncio.gather(*references, return_exceptions=True)
        for client in clients:
            await client.aclose()
    delays = sorted(1000 * (poll_stamps[key] - ref_stamps[key])
                    for key in poll_stamps.keys() & ref_stamps.keys())
    return Delays(label, wait, delays, args.keys, idle_cpu)


class Paced:
    """``get_message(timeout=0)``, which reads whatever any primary has at once, and a
    pause of ``idle`` seconds when nothing came: what the listener does."""

    def __init__(self, subscription: AsyncClusterKeyspaceNotifications, idle: float) -> None:
        self.subscription = subscription
        self.idle = idle

    async def get_message(self, timeout: float) -> Any:
        event = await self.subscription.get_message(timeout=0)
        if event is None:
            await asyncio.sleep(self.idle)
        return event


async def cluster_delays(cluster: LocalCluster, args: argparse.Namespace) -> list[Delays]:
    client = RedisCluster.from_url(cluster.url)
    await client.initialize()
    primaries = [(node.host, node.port) for node in client.get_primaries()]
    for node in client.get_primaries():
        await client.config_set("notify-keyspace-events", "Ex", target_nodes=node)
    setups: list[tuple[str, float | None, float | None]] = [
        (f"cluster, `get_message(timeout={t:g})`", t, min(0.1, t / len(primaries)))
        for t in args.timeouts]
    setups += [(f"cluster, `get_message(timeout=0)`, {idle * 1000:g} ms pause when idle"
                + (" (the listener's)" if idle == CLUSTER_IDLE else ""),
                None, idle) for idle in args.idle_pauses]
    results = []
    try:
        for label, timeout, pause in setups:
            say(f"polling delay: {label}")
            subscription = AsyncClusterKeyspaceNotifications(client)
            await subscription.subscribe(KeyeventChannel("expired", db=0))
            try:
                poller: Any = subscription if timeout is not None else Paced(subscription,
                                                                            pause or 0.0)
                results.append(await polling_delay(label, primaries, client, poller,
                                                   timeout or 0.0, pause, args))
            finally:
                await subscription.aclose()
    finally:
        await client.aclose()
    return results


async def server_delay(server: RedisServer, args: argparse.Namespace) -> Delays:
    say("polling delay: single server, PubSub.get_message(timeout=1)")
    client = aioredis.Redis.from_url(server.url)
    await client.config_set("notify-keyspace-events", "Ex")
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(CHANNEL)
    try:
        return await polling_delay("single server, `PubSub.get_message(timeout=1)`",
                                   [(server.host, server.port)], client, pubsub, 1.0, None,
                                   args)
    finally:
        await pubsub.aclose()
        await client.aclose()


# --------------------------------------------------------------------------- #
# Part 2: the listener's notification path, sweeper off
# --------------------------------------------------------------------------- #


async def listener_lag(label: str, store: SessionStore, probe: Any,
                       args: argparse.Namespace, tag: str) -> Lags:
    deadlines: dict[str, float] = {}
    lags: list[float] = []
    done = asyncio.Event()

    def on_archived(conversation: ArchivedConversation) -> None:
        deadline = deadlines.get(conversation.session_id)
        if deadline is not None:
            lags.append(1000 * (time.time() - deadline))
            if len(lags) == args.sessions:
                done.set()

    listener = ExpiryListener(store, sweep_interval=NEVER, on_archived=on_archived)
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.started.wait(), 30)
        space = (await store.context()).keys
        ids = await create_sessions(
            store, args.sessions, tag, lambda i: args.lead + args.spread * i / max(
                1, args.sessions - 1))
        with probe.pipeline(transaction=False) as pipe:
            for sid in ids:
                pipe.zscore(space.session(sid, space.bucket_of_session(sid)).deadlines, sid)
            scores = pipe.execute()
        deadlines.update({sid: float(score) / 1000 for sid, score in zip(ids, scores)})
        remaining = max(deadlines.values()) - time.time() + 10.0
        try:
            await asyncio.wait_for(done.wait(), max(0.1, remaining))
        except asyncio.TimeoutError:
            pass
    finally:
        await listener.stop()
        await task
    await store.cleanup_expired_sessions()
    return Lags(label, sorted(lags), args.sessions, listener.archived_by_path)


# --------------------------------------------------------------------------- #
# Report
# --------------------------------------------------------------------------- #


def _ms(values: list[float], q: float, expected: int) -> str:
    padded = values + [float("inf")] * (expected - len(values))
    value = percentile(padded, q) if q < 100 else max(padded, default=float("nan"))
    return "lost" if value == float("inf") else num(value, 1)


def report(env: str, args: argparse.Namespace, delays: Sequence[Delays],
           lags: Sequence[Lags]) -> str:
    return "\n".join([
        f"### Polling delay of `get_message`: {args.keys} keys expiring over "
        f"{args.spread:g} s on a 3-primary cluster",
        "",
        f"_{env}. Added delay = when the polling loop got an `expired` event − when a "
        f"per-node reference subscriber, in the same event loop, got it. Idle CPU: the "
        f"polling loop alone, nothing published, over {args.idle_seconds:g} s._",
        "",
        table(["subscription", "per-node wait / idle pause ms", "added p50 ms", "added p99 ms",
               "added max ms", "received", "idle CPU, % of one core"],
              [[d.label, "—" if d.wait is None else num(1000 * d.wait, 0),
                _ms(d.delays_ms, 50, d.expected), _ms(d.delays_ms, 99, d.expected),
                _ms(d.delays_ms, 100, d.expected), f"{len(d.delays_ms)} / {d.expected}",
                f"{d.idle_cpu:.1f} %"] for d in delays]),
        "",
        f"### The listener's notification path, sweeper off: {args.sessions} sessions "
        f"expiring over {args.spread:g} s",
        "",
        f"_Lag = `on_archived` wall-clock time − the session's effective deadline: Redis's "
        f"expiry detection (hz {HZ}), the notification, the archive script and reading "
        f"the conversation back for the hook. On the cluster the listener polls with "
        f"`get_message(timeout=0)` and pauses {CLUSTER_IDLE * 1000:g} ms "
        f"when idle (`CLUSTER_IDLE`)._",
        "",
        table(["topology", "p50 ms", "p99 ms", "max ms", "archived", "archived by"],
              [[lag.label, _ms(lag.lags_ms, 50, lag.expected),
                _ms(lag.lags_ms, 99, lag.expected), _ms(lag.lags_ms, 100, lag.expected),
                f"{len(lag.lags_ms)} / {lag.expected}",
                ", ".join(f"{k} {v}" for k, v in sorted(lag.by_path.items()) if v) or "—"]
               for lag in lags], "lrrrrl"),
    ])


async def run(args: argparse.Namespace) -> str:
    config = {**QUIET_SERVER, "hz": HZ}
    with LocalCluster(primaries=3, config=config) as cluster, \
            RedisServer(config=config) as server:
        with server.client() as admin:
            env = environment(admin)
        delays = [await server_delay(server, args), *await cluster_delays(cluster, args)]
        lags = []
        for label, url, is_cluster in (("single server", server.url, False),
                                       ("3-primary cluster", cluster.url, True)):
            say(f"listener lag: {label}")
            store = SessionStore.from_url(url, cluster=is_cluster)
            probe: Any = (redis.cluster.RedisCluster.from_url(url) if is_cluster
                          else redis.Redis.from_url(url))
            try:
                lags.append(await listener_lag(label, store, probe, args, f"lag-{label}"))
            finally:
                probe.close()
                await store.aclose()
    return report(env, args, delays, lags)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--keys", type=int, default=600,
                        help="keys expiring per poll timeout in part 1")
    parser.add_argument("--sessions", type=int, default=600,
                        help="sessions expiring per topology in part 2")
    parser.add_argument("--spread", type=float, default=2.0,
                        help="seconds over which the deadlines are spread")
    parser.add_argument("--lead", type=float, default=1.0,
                        help="seconds from creating them to the first deadline")
    parser.add_argument("--timeouts", type=float, nargs="+", default=[1.0, 0.1, 0.03, 0.003],
                        help="get_message timeouts to measure on the cluster (seconds)")
    parser.add_argument("--idle-pauses", type=float, nargs="+",
                        default=[0.02, 0.01, 0.005, 0.002],
                        help="pauses after an empty get_message(timeout=0) to measure (s)")
    parser.add_argument("--idle-seconds", type=float, default=2.0,
                        help="window of the idle CPU measurement")
    args = parser.parse_args(argv)
    if min(args.keys, args.sessions) < 1 or args.spread < 0 or args.lead <= 0:
        parser.error("sizes must be positive")
    logging.getLogger("luminora_redis").setLevel(logging.WARNING)
    print(asyncio.run(run(args)))


if __name__ == "__main__":
    sys.exit(main())
