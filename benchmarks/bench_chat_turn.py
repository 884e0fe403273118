"""The hot path: one chat turn (append two messages, slide the idle deadline, read the
last 10) through luminora-redis, the raw script, a legacy pipeline and a peer library.

All approaches run in one process against one private redis-server:

(a) ``SessionStore.chat_turn`` (asyncio)
(b) ``SyncSessionStore.chat_turn`` (blocking)
(c) the floor: redis-py ``register_script`` of ``lua/chat_turn.lua`` with the same keys and
    msgpack arguments, replies left as bytes (no validation, no models); asyncio and blocking
(d) the legacy LuminoraCore-style store: one pipeline of HSET + RPUSH + EXPIRE (hash and
    list) + LRANGE with JSON messages, no atomic idle/absolute deadline logic
(e) ``langchain-community``'s ``RedisChatMessageHistory`` when it is installed (blocking;
    ``add_messages`` then ``messages[-10:]``, as its own API does it)

For each: sequential latency (p50/p99 per turn) and concurrent throughput (32 asyncio
tasks, or 8 threads for blocking APIs), then memory per session (MEMORY USAGE of the
session's keys and used_memory growth) with 20 messages per session.

    python -m benchmarks.bench_chat_turn [--sessions 200 --turns 50 ...]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
import uuid
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import msgpack
import redis
import redis.asyncio as aioredis

from benchmarks._common import (
    command_count,
    environment,
    num,
    percentile,
    private_server,
    ratio,
    say,
    table,
)
from luminora_redis import SessionStore, SyncSessionStore
from luminora_redis.keys import KeySpace
from luminora_redis.scripts import script_sources

BUCKETS = 1024
PREFIX = "lr"
TTL = 3600
MAX_HISTORY = 1000  # the store's default live-history bound, passed to the raw script too

try:  # (e) is optional: a heavy dependency tree, installed only for this comparison
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from langchain_community.chat_message_histories import RedisChatMessageHistory
        from langchain_core.messages import AIMessage, HumanMessage
except ImportError:
    RedisChatMessageHistory = None


# --------------------------------------------------------------------------- #
# Workload
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Workload:
    sessions: int
    turns: int
    last: int
    user: list[str]
    assistant: list[str]

    @classmethod
    def make(cls, sessions: int, turns: int, last: int, user_chars: int,
             assistant_chars: int) -> Workload:
        def text(who: str, i: int, size: int) -> str:
            head = f"{who} turn {i}: "
            body = ("the quick brown fox jumps over the lazy dog ñ " * (size // 40 + 1))
            return (head + body)[:size]
        return cls(sessions, turns, last,
                   [text("user", i, user_chars) for i in range(turns)],
                   [text("assistant", i, assistant_chars) for i in range(turns)])


@dataclass
class Approach:
    """One way of running a chat turn. A handle is whatever it needs to address one
    session; ``turn(handle, i)`` runs turn i (0 <= i < turns) and returns the context."""

    label: str
    api: str  # "asyncio" or "blocking"
    round_trips: str
    setup: Callable[[int], Any]  # n -> list of handles (coroutine for asyncio approaches)
    turn: Callable[[Any, int], Any]
    floor: str | None = None  # label of the row this one is compared with


@dataclass
class Result:
    approach: Approach
    latencies_us: list[float] = field(default_factory=list)
    seq_turns: int = 0
    throughput: float = float("nan")
    conc_turns: int = 0
    commands_per_turn: float = float("nan")
    note: str = ""


# --------------------------------------------------------------------------- #
# The approaches
# --------------------------------------------------------------------------- #


def _encoded(role: str, content: str) -> bytes:
    """The message as chat_turn.lua expects it: a 4-element msgpack array lacking its
    timestamp, which the script appends."""
    return (b"\x94" + msgpack.packb(role) + msgpack.packb(content, use_bin_type=True)
            + b"\xc0")


def _iso_now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _legacy_message(role: str, content: str) -> str:
    return json.dumps({"role": role, "content": content, "timestamp": _iso_now()})


def luminora_async(url: str, work: Workload) -> tuple[Approach, Approach, Any]:
    """(a) the store and (c) the raw script, both on redis.asyncio."""
    store = SessionStore.from_url(url, buckets=BUCKETS)
    client = aioredis.Redis.from_url(url)
    script = client.register_script(script_sources()["chat_turn"])
    space = KeySpace(PREFIX, BUCKETS)

    async def create(n: int) -> list[str]:
        ids = []
        for start in range(0, n, 64):  # redis.asyncio pools hold 100 connections
            ids += await asyncio.gather(*(
                store.create_session(f"user-{uuid.uuid4().hex[:12]}", "alicia",
                                     {"ttl": TTL, "max_idle": TTL})
                for _ in range(start, min(n, start + 64))))
        return ids

    async def store_turn(sid: str, i: int) -> Any:
        return await store.chat_turn(
            sid, [("user", work.user[i]), ("assistant", work.assistant[i])], last=work.last)

    async def raw_setup(n: int) -> list[tuple[str, Any]]:
        return [(sid, space.session(sid, space.bucket_of_session(sid))) for sid in await create(n)]

    async def raw_turn(handle: tuple[str, Any], i: int) -> Any:
        sid, keys = handle
        reply = await script(keys=keys, args=[
            sid, MAX_HISTORY, work.last, uuid.uuid4().hex[:16],
            _encoded("user", work.user[i]), _encoded("assistant", work.assistant[i])])
        if reply[0] != 1:
            raise RuntimeError(f"chat_turn.lua replied {reply[:1]}")
        return reply[4:]

    async def close() -> None:
        await store.aclose()
        await client.aclose()

    return (Approach("(a) luminora `SessionStore.chat_turn`", "asyncio", "1", create,
                     store_turn, floor="raw-async"),
            Approach("(c) raw EVALSHA of `chat_turn.lua` (floor)", "asyncio", "1", raw_setup,
                     raw_turn),
            close)


def luminora_sync(url: str, work: Workload) -> tuple[Approach, Approach, Any]:
    """(b) the blocking store and (c) the raw script on a blocking client."""
    store = SyncSessionStore.from_url(url, buckets=BUCKETS)
    client = redis.Redis.from_url(url)
    script = client.register_script(script_sources()["chat_turn"])
    space = KeySpace(PREFIX, BUCKETS)

    def create(n: int) -> list[str]:
        return [store.create_session(f"user-{uuid.uuid4().hex[:12]}", "alicia",
                                     {"ttl": TTL, "max_idle": TTL}) for _ in range(n)]

    def store_turn(sid: str, i: int) -> Any:
        return store.chat_turn(
            sid, [("user", work.user[i]), ("assistant", work.assistant[i])], last=work.last)

    def raw_setup(n: int) -> list[tuple[str, Any]]:
        return [(sid, space.session(sid, space.bucket_of_session(sid))) for sid in create(n)]

    def raw_turn(handle: tuple[str, Any], i: int) -> Any:
        sid, keys = handle
        reply = script(keys=keys, args=[
            sid, MAX_HISTORY, work.last, uuid.uuid4().hex[:16],
            _encoded("user", work.user[i]), _encoded("assistant", work.assistant[i])])
        if reply[0] != 1:
            raise RuntimeError(f"chat_turn.lua replied {reply[:1]}")
        return reply[4:]

    def close() -> None:
        store.close()
        client.close()

    return (Approach("(b) luminora `SyncSessionStore.chat_turn`", "blocking", "1", create,
                     store_turn, floor="raw-sync"),
            Approach("(c) raw EVALSHA of `chat_turn.lua` (floor)", "blocking", "1", raw_setup,
                     raw_turn),
            close)


def legacy_async(url: str, work: Workload) -> tuple[Approach, Any]:
    """(d) on redis.asyncio."""
    client = aioredis.Redis.from_url(url)

    async def setup(n: int) -> list[tuple[str, str]]:
        handles = []
        async with client.pipeline(transaction=False) as pipe:
            for _ in range(n):
                sid = uuid.uuid4().hex
                skey, hkey = f"legacy:session:{sid}", f"legacy:session:{sid}:messages"
                now = _iso_now()
                pipe.hset(skey, mapping={"user_id": f"user-{sid[:12]}",
                                         "personality_name": "alicia",
                                         "created_at": now, "last_activity": now})
                pipe.expire(skey, TTL)
                handles.append((skey, hkey))
            await pipe.execute()
        return handles

    async def turn(handle: tuple[str, str], i: int) -> Any:
        skey, hkey = handle
        async with client.pipeline(transaction=False) as pipe:
            pipe.hset(skey, "last_activity", _iso_now())
            pipe.rpush(hkey, _legacy_message("user", work.user[i]),
                       _legacy_message("assistant", work.assistant[i]))
            pipe.expire(skey, TTL)
            pipe.expire(hkey, TTL)
            pipe.lrange(hkey, -work.last, -1)
            replies = await pipe.execute()
        return [json.loads(raw) for raw in replies[-1]]

    return (Approach("(d) legacy JSON pipeline (HSET+RPUSH+EXPIRE+LRANGE)", "asyncio", "1",
                     setup, turn, floor="raw-async"),
            client.aclose)


def legacy_sync(url: str, work: Workload) -> tuple[Approach, Any]:
    """(d) on a blocking client."""
    client = redis.Redis.from_url(url)

    def setup(n: int) -> list[tuple[str, str]]:
        handles = []
        with client.pipeline(transaction=False) as pipe:
            for _ in range(n):
                sid = uuid.uuid4().hex
                skey, hkey = f"legacy:session:{sid}", f"legacy:session:{sid}:messages"
                now = _iso_now()
                pipe.hset(skey, mapping={"user_id": f"user-{sid[:12]}",
                                         "personality_name": "alicia",
                                         "created_at": now, "last_activity": now})
                pipe.expire(skey, TTL)
                handles.append((skey, hkey))
            pipe.execute()
        return handles

    def turn(handle: tuple[str, str], i: int) -> Any:
        skey, hkey = handle
        with client.pipeline(transaction=False) as pipe:
            pipe.hset(skey, "last_activity", _iso_now())
            pipe.rpush(hkey, _legacy_message("user", work.user[i]),
                       _legacy_message("assistant", work.assistant[i]))
            pipe.expire(skey, TTL)
            pipe.expire(hkey, TTL)
            pipe.lrange(hkey, -work.last, -1)
            replies = pipe.execute()
        return [json.loads(raw) for raw in replies[-1]]

    return (Approach("(d) legacy JSON pipeline (HSET+RPUSH+EXPIRE+LRANGE)", "blocking", "1",
                     setup, turn, floor="raw-sync"),
            client.close)


def langchain_sync(url: str, work: Workload) -> tuple[Approach, Any] | None:
    """(e) langchain-community's RedisChatMessageHistory, sharing one client between the
    per-session history objects (its constructor would open a pool per session)."""
    if RedisChatMessageHistory is None:
        return None
    client = redis.Redis.from_url(url)

    def setup(n: int) -> list[Any]:
        histories = []
        for _ in range(n):
            history = RedisChatMessageHistory(session_id=uuid.uuid4().hex, url=url, ttl=TTL)
            history.redis_client.close()
            history.redis_client = client
            histories.append(history)
        return histories

    def turn(history: Any, i: int) -> Any:
        history.add_messages([HumanMessage(content=work.user[i]),
                              AIMessage(content=work.assistant[i])])
        return history.messages[-work.last:]

    return (Approach("(e) langchain-community `RedisChatMessageHistory`", "blocking",
                     "5 (LPUSH+EXPIRE per message, LRANGE 0 -1)", setup, turn,
                     floor="raw-sync"),
            client.close)


# --------------------------------------------------------------------------- #
# Measuring
# --------------------------------------------------------------------------- #


def _order(work: Workload) -> list[tuple[int, int]]:
    """(session index, turn) pairs: every session gets turn 0, then turn 1, and so on."""
    return [(s, t) for t in range(work.turns) for s in range(work.sessions)]


async def measure_async(approach: Approach, work: Workload, tasks: int, limit: float,
                        probe: redis.Redis) -> Result:
    result = Result(approach)
    warm = await approach.setup(min(50, work.sessions))
    for i in range(min(5, work.turns)):
        await asyncio.gather(*(approach.turn(h, i) for h in warm))

    handles = await approach.setup(work.sessions)
    clock = time.perf_counter_ns
    deadline = time.monotonic() + limit
    latencies = result.latencies_us
    for count, (s, t) in enumerate(_order(work)):
        start = clock()
        await approach.turn(handles[s], t)
        latencies.append((clock() - start) / 1000)
        if count % 256 == 0 and time.monotonic() > deadline:
            result.note = "sequential run stopped by --max-seconds"
            break
    result.seq_turns = len(latencies)

    handles = await approach.setup(work.sessions)
    order = _order(work)
    position = 0
    done = 0
    deadline = time.monotonic() + limit

    async def worker() -> None:
        nonlocal position, done
        while position < len(order) and time.monotonic() < deadline:
            s, t = order[position]
            position += 1
            await approach.turn(handles[s], t)
            done += 1

    commands = command_count(probe)
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    elapsed = time.perf_counter() - start
    result.commands_per_turn = (command_count(probe) - commands) / max(1, done)
    result.conc_turns = done
    result.throughput = done / elapsed
    if done < len(order):
        result.note = "concurrent run stopped by --max-seconds"
    return result


def measure_sync(approach: Approach, work: Workload, threads: int, limit: float,
                 probe: redis.Redis) -> Result:
    result = Result(approach)
    warm = approach.setup(min(50, work.sessions))
    for i in range(min(5, work.turns)):
        for h in warm:
            approach.turn(h, i)

    handles = approach.setup(work.sessions)
    clock = time.perf_counter_ns
    deadline = time.monotonic() + limit
    latencies = result.latencies_us
    for count, (s, t) in enumerate(_order(work)):
        start = clock()
        approach.turn(handles[s], t)
        latencies.append((clock() - start) / 1000)
        if count % 256 == 0 and time.monotonic() > deadline:
            result.note = "sequential run stopped by --max-seconds"
            break
    result.seq_turns = len(latencies)

    handles = approach.setup(work.sessions)
    order = _order(work)
    positions = itertools.count()
    counts = [0] * threads
    deadline = time.monotonic() + limit

    def worker(index: int) -> None:
        done = 0
        while time.monotonic() < deadline:
            position = next(positions)
            if position >= len(order):
                break
            s, t = order[position]
            approach.turn(handles[s], t)
            done += 1
        counts[index] = done

    commands = command_count(probe)
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
    elapsed = time.perf_counter() - start
    done = sum(counts)
    result.commands_per_turn = (command_count(probe) - commands) / max(1, done)
    result.conc_turns = done
    result.throughput = done / elapsed
    if done < len(order):
        result.note = "concurrent run stopped by --max-seconds"
    return result


# --------------------------------------------------------------------------- #
# Memory
# --------------------------------------------------------------------------- #


@dataclass
class Memory:
    label: str
    keys: str
    usage: float  # MEMORY USAGE of the session's own keys, bytes, mean
    growth: float  # used_memory growth per session, bytes
    note: str = ""


def _used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def measure_memory(url: str, work: Workload, count: int, turns: int) -> list[Memory]:
    """Fill ``count`` sessions with ``turns`` turns each (2 messages per turn) on an empty
    server, per approach, and weigh them."""
    client = redis.Redis.from_url(url)
    results = []

    def weigh(label: str, keys_of: list[list[str]], what: str, before: int, note: str) -> None:
        after = _used_memory(client)
        with client.pipeline(transaction=False) as pipe:
            for keys in keys_of:
                for key in keys:
                    pipe.memory_usage(key, samples=0)
            sizes = pipe.execute()
        results.append(Memory(label, what, sum(s or 0 for s in sizes) / len(keys_of),
                              (after - before) / len(keys_of), note))

    client.flushall()
    before = _used_memory(client)
    store = SyncSessionStore.from_url(url, buckets=BUCKETS)
    space = KeySpace(PREFIX, BUCKETS)
    sids = [store.create_session(f"user-{uuid.uuid4().hex[:12]}", "alicia",
                                 {"ttl": TTL, "max_idle": TTL}) for _ in range(count)]
    for t in range(turns):
        for sid in sids:
            store.chat_turn(sid, [("user", work.user[t % work.turns]),
                                  ("assistant", work.assistant[t % work.turns])], last=0)
    keys = [list(space.session(sid, space.bucket_of_session(sid))[:3]) for sid in sids]
    weigh("luminora (msgpack)", keys, "hash + meta hash + history list", before,
          "growth includes the user hash, the user's session index and the bucket deadline "
          "index entry")
    store.close()

    client.flushall()
    before = _used_memory(client)
    legacy = legacy_sync(url, work)[0]
    handles = legacy.setup(count)
    for t in range(turns):
        for h in handles:
            legacy.turn(h, t % work.turns)
    weigh("legacy JSON pipeline", [list(h) for h in handles], "hash + history list", before,
          "no user keys, no index")

    peer = langchain_sync(url, work)
    if peer is not None:
        client.flushall()
        before = _used_memory(client)
        histories = peer[0].setup(count)
        for t in range(turns):
            for h in histories:
                h.add_messages([HumanMessage(content=work.user[t % work.turns]),
                                AIMessage(content=work.assistant[t % work.turns])])
        weigh("langchain-community", [[h.key] for h in histories], "history list", before,
              "messages only: no session metadata at all")
        peer[1]()
    client.flushall()
    client.close()
    return results


# --------------------------------------------------------------------------- #
# Report
# --------------------------------------------------------------------------- #


def report(args: argparse.Namespace, env: str, results: list[Result], floors: dict[str, Result],
           memory: list[Memory], peer_note: str) -> str:
    work = f"{args.sessions} sessions × {args.turns} turns"
    out = [
        f"### Chat turn: {work}, 2 messages per turn (user {args.user_chars} chars, "
        f"assistant {args.assistant_chars} chars), context of the last {args.last}",
        "",
        f"_{env}. Concurrency: {args.tasks} asyncio tasks on one event loop for asyncio "
        f"APIs, {args.threads} threads for blocking APIs. Each row gets fresh sessions for "
        f"each of its two runs; ratios compare a row with the raw script (c) on the same "
        f"API._",
        "",
    ]
    rows = []
    for r in results:
        floor = floors.get(r.approach.floor or "")
        lat = sorted(r.latencies_us)
        p50, p99 = percentile(lat, 50), percentile(lat, 99)
        f50 = percentile(sorted(floor.latencies_us), 50) if floor else None
        conc = f"{args.tasks} tasks" if r.approach.api == "asyncio" else f"{args.threads} threads"
        rows.append([
            r.approach.label, r.approach.api, r.approach.round_trips,
            num(p50), num(p99), ratio(p50, f50) if floor else "×1.00",
            f"{num(r.throughput)} ({conc})",
            ratio(r.throughput, floor.throughput) if floor else "×1.00",
            num(r.commands_per_turn, 1),
        ])
    out.append(table(["approach", "API", "round trips / turn", "p50 µs", "p99 µs",
                      "p50 vs (c)", "turns/s", "turns/s vs (c)", "Redis commands / turn"],
                     rows, "llrrrrrrr"))
    out.append("")
    notes = [f"- {r.approach.label} ({r.approach.api}): {r.note}; "
             f"{r.seq_turns} sequential / {r.conc_turns} concurrent turns measured"
             for r in results if r.note]
    overhead = []
    for r in results:
        floor = floors.get(r.approach.floor or "")
        if floor and r.approach.label.startswith(("(a)", "(b)")):
            p50 = percentile(sorted(r.latencies_us), 50)
            f50 = percentile(sorted(floor.latencies_us), 50)
            overhead.append(f"{r.approach.label}: p50 latency {ratio(p50, f50)} of the raw "
                            f"script, throughput {ratio(r.throughput, floor.throughput)}")
    out.append("Overhead of luminora over the raw script (c), same server, same Lua: "
               + "; ".join(overhead) + ".")
    out.append("")
    out.append("Redis commands / turn counts every command the server ran during the "
               "concurrent run (INFO commandstats), including those inside scripts.")
    out.append(f"(e): {peer_note}")
    if notes:
        out.append("")
        out.extend(notes)
    out.append("")
    base = memory[0].usage if memory else None
    base_growth = memory[0].growth if memory else None
    out.append(f"### Memory per session: {args.memory_sessions} sessions × "
               f"{args.memory_turns * 2} messages")
    out.append("")
    out.append(table(
        ["approach", "keys weighed", "MEMORY USAGE bytes", "vs luminora",
         "used_memory growth bytes", "vs luminora", "note"],
        [[m.label, m.keys, num(m.usage), ratio(m.usage, base), num(m.growth),
          ratio(m.growth, base_growth), m.note] for m in memory],
        "llrrrrl"))
    return "\n".join(out)


async def run(args: argparse.Namespace) -> str:
    work = Workload.make(args.sessions, args.turns, args.last, args.user_chars,
                         args.assistant_chars)
    with private_server() as server:
        probe = redis.Redis.from_url(server.url)
        env = environment(probe)
        results: list[Result] = []
        floors: dict[str, Result] = {}

        store_a, raw_a, close_a = luminora_async(server.url, work)
        legacy_a, close_la = legacy_async(server.url, work)
        for approach, key in ((raw_a, "raw-async"), (store_a, None), (legacy_a, None)):
            say(f"measuring {approach.label} ({approach.api})")
            result = await measure_async(approach, work, args.tasks, args.max_seconds, probe)
            results.append(result)
            if key:
                floors[key] = result
        await close_a()
        await close_la()

        store_b, raw_b, close_b = luminora_sync(server.url, work)
        legacy_b, close_lb = legacy_sync(server.url, work)
        sync_rows = [(raw_b, "raw-sync"), (store_b, None), (legacy_b, None)]
        peer = langchain_sync(server.url, work) if not args.no_peer else None
        if peer is not None:
            sync_rows.append((peer[0], None))
            from importlib.metadata import version
            peer_note = (f"langchain-community {version('langchain-community')} with "
                         f"langchain-core {version('langchain-core')}; the package "
                         "announces its own sunset. It reads the whole list on every "
                         "turn (`messages` has no window), so its cost grows with the "
                         "conversation.")
        elif args.no_peer:
            peer_note = "skipped (--no-peer)."
        else:
            peer_note = ("skipped: langchain-community is not installed here "
                         "(`pip install langchain-community` to include it).")
        for approach, key in sync_rows:
            say(f"measuring {approach.label} ({approach.api})")
            result = measure_sync(approach, work, args.threads, args.max_seconds, probe)
            results.append(result)
            if key:
                floors[key] = result
        close_b()
        close_lb()
        if peer is not None:
            peer[1]()

        say("measuring memory")
        memory = measure_memory(server.url, work, args.memory_sessions, args.memory_turns)
        probe.close()
    return report(args, env, results, floors, memory, peer_note)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--sessions", type=int, default=200, help="sessions per run (N)")
    parser.add_argument("--turns", type=int, default=50, help="turns per session (M)")
    parser.add_argument("--last", type=int, default=10, help="context size returned per turn")
    parser.add_argument("--user-chars", type=int, default=100)
    parser.add_argument("--assistant-chars", type=int, default=400)
    parser.add_argument("--tasks", type=int, default=32, help="asyncio tasks, concurrent run")
    parser.add_argument("--threads", type=int, default=8, help="threads, concurrent run")
    parser.add_argument("--max-seconds", type=float, default=30.0,
                        help="time bound of each sequential or concurrent run")
    parser.add_argument("--memory-sessions", type=int, default=2000)
    parser.add_argument("--memory-turns", type=int, default=10,
                        help="turns per session for the memory table (2 messages each)")
    parser.add_argument("--no-peer", action="store_true", help="skip (e) even if installed")
    args = parser.parse_args(argv)
    if min(args.sessions, args.turns, args.last, args.tasks, args.threads,
           args.memory_sessions, args.memory_turns) < 1:
        parser.error("sizes must be positive")
    print(asyncio.run(run(args)))


if __name__ == "__main__":
    sys.exit(main())
