"""``luminora-redis bench memory``: bytes per conversation, live and archived, against
the payload, on chat-like text (``corpus``).

For each conversation size, ``conversations`` sessions run that many turns (a user
message and a reply each) through ``chat_turn``. The **payload** is the bytes of the
stored message records (msgpack ``[role, content, metadata, tokens, ts]``, what the history
lists hold). Measured with ``MEMORY USAGE key SAMPLES 0`` (the whole value, key and
allocator rounding included):

- **live history**: the session's history and overflow lists (and segments);
- **archived, lists**: the same conversations archived with ``compress_archives=False``
  (the RENAMEd lists, as before compression existed);
- **archived, zstd**: archived with compression (the frames that replace the lists),
  and the frames' own length (``STRLEN``).

The archived record hash (personality, times, counts) is metadata, not payload: it
is reported on its own. ``end_session`` is timed sequentially both ways, so the cost
of compressing after the archive shows too.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from luminora_redis.bench.corpus import conversation
from luminora_redis.bench.report import num, table
from luminora_redis.io.sync_store import SyncSessionStore

PREFIX = "benchmem"
LONG = {"ttl": 3600, "max_idle": 3600}


@dataclass
class MemoryOptions:
    turns: list[int] = field(default_factory=lambda: [5, 20, 50])
    conversations: int = 200

    @classmethod
    def quick(cls) -> MemoryOptions:
        return cls(conversations=30)


def _usage(client: redis.Redis, keys: Sequence[str]) -> int:
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.memory_usage(key, samples=0)
        return sum(size or 0 for size in pipe.execute())


def _strlen(client: redis.Redis, keys: Sequence[str]) -> int:
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.strlen(key)
        return sum(pipe.execute())


def _payload(client: redis.Redis, keys: Sequence[str]) -> int:
    return sum(len(item) for key in keys for item in client.lrange(key, 0, -1))


def _message_keys(store: SyncSessionStore, user_id: str, session_id: str,
                  archived: bool) -> tuple[list[str], str]:
    """The keys holding a conversation's messages (overflow and history: the sizes here
    stay within the default max_history, so there are no segments), and the archived
    record."""
    record, history, overflow = store.context().keys.user(user_id).archived(session_id)
    if archived:
        return [overflow, history], record
    live = store.context().session_keys(session_id)
    assert live is not None
    return [live.overflow, live.history], record


def _run_size(client: redis.Redis, store: SyncSessionStore, turns: int, count: int,
              compress: bool) -> dict[str, float]:
    payload = live = archived = frames = records = 0
    end_times: list[float] = []
    for n in range(count):
        user_id = f"u{turns}-{n}-{int(compress)}"
        session_id = store.create_session(user_id, "alicia", LONG)
        messages = conversation(turns, seed=n)
        for turn in range(turns):
            store.chat_turn(session_id, messages[2 * turn:2 * turn + 2], last=1)
        keys, record = _message_keys(store, user_id, session_id, archived=False)
        payload += _payload(client, keys)
        live += _usage(client, keys)
        start = time.perf_counter()
        store.end_session(session_id)
        end_times.append(time.perf_counter() - start)
        keys, record = _message_keys(store, user_id, session_id, archived=True)
        archived += _usage(client, keys)
        if compress:
            frames += _strlen(client, keys)
        records += _usage(client, [record])
    return {"payload": payload / count, "live": live / count, "archived": archived / count,
            "frames": frames / count if compress else float("nan"),
            "record": records / count, "end_ms": statistics.median(end_times) * 1000}


def run_memory(url: str, options: MemoryOptions,
               say: Callable[..., None] = lambda *_: None) -> tuple[dict[str, Any], str]:
    """Measure every size on ``url`` (keys under ``benchmem``, removed afterwards)."""
    client = redis.Redis.from_url(url)
    rows: list[dict[str, Any]] = []
    try:
        for turns in options.turns:
            row: dict[str, Any] = {"turns": turns, "messages": 2 * turns}
            for compress in (False, True):
                say(f"memory: {options.conversations} conversations of {turns} turns, "
                    f"compress_archives={compress}")
                store = SyncSessionStore.from_url(url, prefix=PREFIX, deliveries=False,
                                                  compress_archives=compress)
                try:
                    row["zstd" if compress else "lists"] = _run_size(
                        client, store, turns, options.conversations, compress)
                finally:
                    store.close()
            rows.append(row)
    finally:
        for key in client.scan_iter(match=f"{PREFIX}:*", count=1000):
            client.unlink(key)
        client.close()
    return {"options": vars(options), "sizes": rows}, report(options, rows)


def _times(value: float, payload: float) -> str:
    return f"{num(value)} ({value / payload:.2f}×)"


def report(options: MemoryOptions, rows: Sequence[dict[str, Any]]) -> str:
    body = []
    for row in rows:
        lists, zstd = row["lists"], row["zstd"]
        payload = zstd["payload"]
        body.append([
            f"{row['turns']} turns ({row['messages']} messages)", num(payload),
            _times(zstd["live"], payload), _times(lists["archived"], lists["payload"]),
            _times(zstd["archived"], payload), _times(zstd["frames"], payload),
            num(zstd["record"]),
            f"{lists['end_ms']:.2f} / {zstd['end_ms']:.2f}"])
    return "\n".join([
        f"### Memory: bytes per conversation, {options.conversations} chat-like "
        f"conversations per size",
        "",
        "_Payload: the stored message records (msgpack). Bytes are `MEMORY USAGE` (key, "
        "value and allocator rounding) of the keys holding the messages, per conversation; "
        "× is the ratio to the payload. Text: varied English and Spanish chat sentences, "
        "none repeated within a conversation up to about 33 turns (longer ones reuse "
        "reply sentences, which flatters their zstd ratio)._",
        "",
        table(["conversation", "payload B", "live history B", "archived as lists B",
               "archived as zstd B", "zstd frames alone B", "archived record B",
               "end_session ms, lists / zstd (median)"], body),
    ])
