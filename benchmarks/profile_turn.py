"""Where a chat turn's client time goes: pyinstrument over sequential turns.

    python -m benchmarks.profile_turn [--turns N] [--shell asyncio|blocking] [--url URL]

Runs ``--turns`` chat turns at concurrency 1 (the benchmark's turn: two 200-character
messages in, the last 10 back, sessions of 20 turns) on a private redis-server (or
``--url``) under pyinstrument, and prints its call tree. Without a server's latency
in the way, ``--no-io`` replaces the EVALSHA with a canned reply of the same shape,
so the tree holds the library's own work alone. Needs ``pip install pyinstrument``.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import msgpack

from luminora_redis import SessionStore, SyncSessionStore
from luminora_redis.bench import workload as w
from luminora_redis.testing import RedisServer


def canned_reply(store: Any) -> list[Any]:
    """A chat_turn reply holding 10 of the workload's messages."""
    from luminora_redis.ops.sessions import encode_messages

    ctx = store._ctx
    entries = encode_messages(ctx, [("user", w.USER[0]), ("assistant", w.ASSISTANT[0])])
    stamp = msgpack.packb(1_700_000_000_000)
    return [1, 1_700_000_060_000, 1_700_000_000_000, 0, *(entries[i % 2] + stamp for i in range(10))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20_000)
    parser.add_argument("--shell", choices=("asyncio", "blocking"), default="blocking")
    parser.add_argument("--url")
    parser.add_argument("--no-io", action="store_true")
    options = parser.parse_args()
    from pyinstrument import Profiler

    server = None
    url = options.url
    if url is None:
        server = RedisServer()
        server.start()
        url = server.url
    profiler = Profiler(interval=0.0002)
    try:
        turns = [(("user", w.USER[i]), ("assistant", w.ASSISTANT[i])) for i in range(20)]
        if options.shell == "blocking":
            store = SyncSessionStore.from_url(url, prefix="profile")
            sessions = [store.create_session(f"u{n}", "alicia") for n in range(options.turns // 20 + 1)]
            if options.no_io:
                reply = canned_reply(store)
                store._runner._execute = lambda *command: reply  # type: ignore[method-assign]
            profiler.start()
            for n in range(options.turns):
                store.chat_turn(sessions[n // 20], turns[n % 20], last=w.LAST)
            profiler.stop()
            store.close()
        else:
            async def run() -> None:
                store = SessionStore.from_url(url, prefix="profile")
                sessions = [await store.create_session(f"u{n}", "alicia")
                            for n in range(options.turns // 20 + 1)]
                if options.no_io:
                    reply = canned_reply(store)

                    async def canned(*command: Any) -> Any:
                        return reply
                    store._runner._execute = canned  # type: ignore[method-assign]
                profiler.start()
                for n in range(options.turns):
                    await store.chat_turn(sessions[n // 20], turns[n % 20], last=w.LAST)
                profiler.stop()
                await store.aclose()

            asyncio.run(run())
    finally:
        if server is not None:
            server.stop()
    print(profiler.output_text(unicode=False, color=False, show_all=False))


if __name__ == "__main__":
    main()
