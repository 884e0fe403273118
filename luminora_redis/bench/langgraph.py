"""``luminora-redis bench langgraph``: one LangGraph turn with each checkpointer.

A turn is one ``ainvoke`` of a small chat graph (``MessagesState``, one node, a fake
model that answers at once), so what is measured is the checkpointer: the graph
reads the thread's latest checkpoint and writes the new one with its pending
writes. The systems, all on the same Redis:

- **luminora-redis**: ``LuminoraCheckpointSaver.from_url(...)`` from
  ``luminora_redis.compat.langgraph``: a thread is a session.
- **langgraph-checkpoint-redis**: its ``AsyncRedisSaver``, which needs the RedisJSON
  and RediSearch modules (the bench extra's private server has them).
- **InMemorySaver**: LangGraph's in-process saver, the floor.

Reported: turns/s (``threads`` concurrent threads, each running ``turns`` turns, the
median of ``rounds`` rounds in rotating order), the bytes one thread holds after
``memory_turns`` turns (``MEMORY USAGE key SAMPLES 0`` summed over the keys that
thread's turns created: found by a SCAN before and after, so run it on a Redis
nobody else writes to; RediSearch's index memory is not in any key and is not
counted), and what each does when the thread expires. Each saver deletes the threads
it ran (``adelete_thread``) and the luminora-redis row's remaining keys (its users,
under ``benchlg``) are deleted at the end; langgraph-checkpoint-redis's search
indexes stay.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from luminora_redis.bench.report import num, table

#: Key prefix of the luminora-redis row, so its keys stay apart from the peers'.
PREFIX = "benchlg"
#: The user's message of every turn: a short chat line.
TEXT = "¿Me recuerdas qué te conté ayer sobre el viaje a Lisboa? Quiero planear los días."

EXPIRY = {
    "luminora-redis": "the thread is a session: native ttl and sliding max_idle; its "
                      "checkpoints leave with it and its conversation is archived into the "
                      "user's archive and delivered to on_archived",
    "langgraph-checkpoint-redis": "none by default; with its ttl= the thread's keys expire: "
                                  "checkpoints and conversation are deleted, nothing is kept",
    "InMemorySaver": "no expiry: kept until the process ends, then lost",
}


@dataclass
class LangGraphOptions:
    threads: int = 16
    turns: int = 20
    rounds: int = 3
    memory_turns: int = 20

    @classmethod
    def quick(cls) -> LangGraphOptions:
        return cls(threads=8, turns=10, rounds=1)


class Unavailable(Exception):
    """A system that cannot run here, and why (one line)."""


def chat_graph(checkpointer: Any) -> Any:
    """A ``StateGraph(MessagesState)`` with one fake model node, compiled on ``checkpointer``."""
    from langchain_core.messages import AIMessage
    from langgraph.graph import END, START, MessagesState, StateGraph

    def model(state: MessagesState) -> dict[str, Any]:
        asked = state["messages"][-1].content
        return {"messages": [AIMessage(f"Claro. Sobre «{asked}»: empecemos por el primer día.")]}

    builder = StateGraph(MessagesState)
    builder.add_node("model", model)
    builder.add_edge(START, "model")
    builder.add_edge("model", END)
    return builder.compile(checkpointer=checkpointer)


@contextlib.asynccontextmanager
async def _luminora(url: str) -> AsyncIterator[Any]:
    try:
        from luminora_redis.compat.langgraph import LuminoraCheckpointSaver
    except ImportError as missing:
        raise Unavailable(f"needs the langgraph extra ({missing})") from None
    saver = LuminoraCheckpointSaver.from_url(url, ttl=3600, max_idle=1800, prefix=PREFIX)
    try:
        yield saver
    finally:
        await saver.aclose()


@contextlib.asynccontextmanager
async def _checkpoint_redis(url: str) -> AsyncIterator[Any]:
    try:
        AsyncRedisSaver = importlib.import_module("langgraph.checkpoint.redis.aio").AsyncRedisSaver
    except ImportError:
        raise Unavailable("langgraph-checkpoint-redis is not installed "
                          "(pip install 'luminora-redis[bench]')") from None
    try:
        async with AsyncRedisSaver.from_conn_string(url) as saver:
            await saver.asetup()
            yield saver
    except redis.ResponseError as error:
        raise Unavailable(f"needs RedisJSON + RediSearch on the server: {error}") from None


@contextlib.asynccontextmanager
async def _in_memory(url: str) -> AsyncIterator[Any]:
    from langgraph.checkpoint.memory import InMemorySaver

    yield InMemorySaver()


SYSTEMS: dict[str, Callable[[str], contextlib.AbstractAsyncContextManager[Any]]] = {
    "luminora-redis": _luminora,
    "langgraph-checkpoint-redis": _checkpoint_redis,
    "InMemorySaver": _in_memory,
}


def _config(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id, "user_id": f"u-{thread_id}"}}


async def run_thread(graph: Any, thread_id: str, turns: int) -> None:
    """``turns`` turns of one thread, one after the other."""
    for _ in range(turns):
        await graph.ainvoke({"messages": [("user", TEXT)]}, _config(thread_id))


async def turns_per_second(graph: Any, thread_ids: Sequence[str], turns: int) -> float:
    """Turns per second of the threads running ``turns`` turns each, concurrently."""
    started = time.perf_counter()
    await asyncio.gather(*(run_thread(graph, thread_id, turns) for thread_id in thread_ids))
    return len(thread_ids) * turns / (time.perf_counter() - started)


def _keys(client: redis.Redis) -> set[bytes]:
    return set(client.scan_iter(count=1000))


def _usage(client: redis.Redis, keys: Sequence[bytes]) -> int:
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.memory_usage(key, samples=0)
        return sum(size or 0 for size in pipe.execute())


async def thread_bytes(name: str, graph: Any, saver: Any, client: redis.Redis,
                       thread_id: str, turns: int) -> tuple[int | None, int]:
    """Bytes one new thread holds after ``turns`` turns, and how many keys hold them.
    InMemorySaver: the serialized bytes it keeps for the thread (process memory, no keys)."""
    before = None if name == "InMemorySaver" else _keys(client)
    await run_thread(graph, thread_id, turns)
    if before is None:
        held = [*saver.storage.get(thread_id, {}).values(),
                *(v for k, v in saver.writes.items() if k[0] == thread_id),
                *(v for k, v in saver.blobs.items() if k[0] == thread_id)]
        return _serialized(held), 0
    created = sorted(_keys(client) - before)
    return _usage(client, created), len(created)


def _serialized(value: Any) -> int:
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    if isinstance(value, dict):
        return sum(_serialized(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_serialized(v) for v in value)
    return 0


async def run_langgraph(url: str, options: LangGraphOptions,
                        say: Callable[[str], None]) -> tuple[dict[str, Any], str]:
    """Run every system; the raw results and the Markdown report."""
    client = redis.Redis.from_url(url)
    rows: dict[str, dict[str, Any]] = {name: {"system": name, "ran": False, "turns_per_s": [],
                                              "expiry": EXPIRY[name]} for name in SYSTEMS}
    try:
        names = list(SYSTEMS)
        for round_number in range(options.rounds):
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                row = rows[name]
                if row.get("unavailable"):
                    continue
                tag = uuid.uuid4().hex[:8]
                thread_ids = [f"t{tag}-{n}" for n in range(options.threads)]
                try:
                    async with SYSTEMS[name](url) as saver:
                        graph = chat_graph(saver)
                        try:
                            rate = await turns_per_second(graph, thread_ids, options.turns)
                            row["turns_per_s"].append(rate)
                            say(f"langgraph: {name} round {round_number + 1}: {rate:.0f} turns/s")
                            if "bytes" not in row:
                                thread_ids.append(f"m{tag}")
                                row["bytes"], row["keys"] = await thread_bytes(
                                    name, graph, saver, client, thread_ids[-1],
                                    options.memory_turns)
                            row["ran"] = True
                        finally:
                            # Each saver removes its own threads, so a run on --url leaves
                            # none of them behind.
                            for thread_id in thread_ids:
                                await saver.adelete_thread(thread_id)
                except Unavailable as why:
                    row["unavailable"] = str(why)
                    say(f"langgraph: {name}: {why}")
        # What the luminora-redis row keeps beyond its threads (its users, the layout).
        stale = list(client.scan_iter(match=f"{PREFIX}:*", count=1000))
        for start in range(0, len(stale), 500):
            client.unlink(*stale[start:start + 500])
    finally:
        client.close()
    for row in rows.values():
        if row["turns_per_s"]:
            row["median_turns_per_s"] = statistics.median(row["turns_per_s"])
    systems = list(rows.values())
    return {"options": vars(options), "systems": systems}, report(options, systems)


def report(options: LangGraphOptions, rows: Sequence[dict[str, Any]]) -> str:
    """The Markdown section of a run."""
    lines = []
    for row in rows:
        if not row["ran"]:
            lines.append([row["system"], f"not run here: {row.get('unavailable', '')}", "—", "—"])
            continue
        size = row.get("bytes")
        held = "—" if size is None else (f"{num(size)} (serialized, in process)"
                                         if row["system"] == "InMemorySaver"
                                         else f"{num(size)} in {row['keys']} keys")
        lines.append([row["system"], row["expiry"], num(row["median_turns_per_s"]), held])
    head = (f"### LangGraph turn\n\nOne `ainvoke` of a `MessagesState` chat graph with a fake "
            f"model node; {options.threads} concurrent threads x {options.turns} turns, median "
            f"of {options.rounds} round(s); bytes of one thread after {options.memory_turns} "
            f"turns (`MEMORY USAGE` over the keys it created).\n\n")
    return head + table(["checkpointer", "on expiry", "turns/s", "bytes per thread"], lines,
                        left=2)
