"""Acknowledged turns lost by a Sentinel failover, with each ``acknowledge`` mode.

A private Sentinel deployment (`LocalSentinel`: a primary, a replica, three
sentinels) per run; 20 sessions chat every 0.2 s through one asyncio store made
from the ``redis+sentinel://`` URL; ``SENTINEL FAILOVER`` at 3 s; the chat goes on
until the old primary replicates from the new one, plus 2 s. Then every turn
whose call returned is looked for in its session's live history on the new
primary. One line per run:

    PYTHONPATH=. python benchmarks/bench_sentinel_failover.py [runs] [modes]

``runs`` defaults to 2, ``modes`` to ``primary,replicas``.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from collections import Counter, defaultdict

import redis

from luminora_redis import LuminoraRedisError, SessionStore
from luminora_redis.testing import LocalSentinel

SESSIONS, PACE, FAILOVER_AT, AFTER = 20, 0.2, 3.0, 2.0


async def run(acknowledge: str) -> str:
    with LocalSentinel() as deployment:
        store = SessionStore.from_url(deployment.url, acknowledge=acknowledge)
        sids = [await store.create_session(f"user{n}", "alicia") for n in range(SESSIONS)]
        acknowledged: dict[str, list[str]] = defaultdict(list)
        errors: Counter[str] = Counter()
        stop = asyncio.Event()
        counter = itertools.count()

        async def chat(sid: str) -> None:
            while not stop.is_set():
                content = f"{sid} {next(counter)}"
                try:
                    await store.chat_turn(sid, [("user", content)])
                except (LuminoraRedisError, redis.RedisError, OSError) as error:
                    errors[type(error).__name__] += 1
                else:
                    acknowledged[sid].append(content)
                await asyncio.sleep(PACE)

        chatters = [asyncio.create_task(chat(sid)) for sid in sids]
        await asyncio.sleep(FAILOVER_AT)
        started = time.monotonic()
        new = await asyncio.to_thread(deployment.failover)
        switched = time.monotonic() - started
        await asyncio.to_thread(deployment.wait_settled, new)
        settled = time.monotonic() - started
        await asyncio.sleep(AFTER)
        stop.set()
        await asyncio.gather(*chatters)
        found = lost = 0
        for sid in sids:
            history = {message.content for message in await store.get_history(sid)}
            for content in acknowledged[sid]:
                if content in history:
                    found += 1
                else:
                    lost += 1
        await store.aclose()
    failures = ", ".join(f"{name} {count}" for name, count in errors.most_common()) or "none"
    return (f"acknowledge={acknowledge!r}: {found + lost} turns acknowledged, {found} found after "
            f"the failover, {lost} lost; failed calls: {failures}; switch {switched:.1f} s, "
            f"old primary replicating {settled:.1f} s after SENTINEL FAILOVER")


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    modes = sys.argv[2].split(",") if len(sys.argv) > 2 else ["primary", "replicas"]
    for mode in modes:
        for _ in range(runs):
            print(asyncio.run(run(mode)), flush=True)


if __name__ == "__main__":
    main()
