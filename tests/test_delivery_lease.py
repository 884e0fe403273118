"""The outbox scan lease, on a real server and the cluster: of several listeners with a
hook only one scans the whole outbox every interval; another takes over when it stops
or is killed, and delivers what it left; a listener without the lease still delivers
what it archived, and its own retries."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from luminora_redis import ArchivedConversation, SessionStore
from luminora_redis.core.context import Context
from luminora_redis.core.scripts import Op
from luminora_redis.listener.expiry_listener import ExpiryListener
from luminora_redis.ops import outbox
from luminora_redis.ops.scans import DueScan

from conftest import until
from listener_support import create_sessions, open_async_stores, running

async_stores = pytest.fixture(open_async_stores)

FAST = {"sweep_interval": 0.05, "delivery_interval": 0.05, "delivery_backoff": 0.05}


def count_full_scans(monkeypatch: pytest.MonkeyPatch) -> Counter[int]:
    """Count full outbox scans (every bucket asked) by the ``id`` of the store context
    that ran each: the delivery loop reaches the operation through the module."""
    original = outbox.scan_due_deliveries
    counts: Counter[int] = Counter()

    def counting(ctx: Context, buckets: Iterable[int] | None = None,
                 batch: int = 100) -> Op[DueScan]:
        chosen = list(range(ctx.keys.buckets) if buckets is None else buckets)
        if len(chosen) == ctx.keys.buckets:
            counts[id(ctx)] += 1
        return (yield from original(ctx, chosen, batch))

    monkeypatch.setattr(outbox, "scan_due_deliveries", counting)
    return counts


async def test_of_four_listeners_with_a_hook_one_scans_the_outbox_and_another_takes_over(
        async_stores: Callable[..., SessionStore], monkeypatch: pytest.MonkeyPatch,
        raw: Any) -> None:
    counts = count_full_scans(monkeypatch)
    seen: list[str] = []
    stores = [async_stores() for _ in range(4)]
    contexts = {id(await store.context()): n for n, store in enumerate(stores)}
    # A long lease, renewed every 0.1 s: a loaded machine's stall does not hand it over.
    listeners = [ExpiryListener(store, on_archived=lambda c: seen.append(c.session_id),
                                name=f"L{n}", delivery_scan_lease=5.0,
                                **{**FAST, "delivery_interval": 0.1})
                 for n, store in enumerate(stores)]
    async with running(*listeners):
        await until(lambda: sum(counts.values()) >= 5, timeout=20)  # the lease is taken
        before = Counter(counts)
        # 30 more full scans at 0.1 s: every listener would have run several by then.
        await until(lambda: sum(counts.values()) >= sum(before.values()) + 30, timeout=30)
        scanned = {contexts[ctx] for ctx in (Counter(counts) - before)}
        assert len(scanned) == 1, f"listeners {scanned} scanned the whole outbox"
        [holder] = [n for n, listener in enumerate(listeners) if listener.scanning_outbox]
        assert scanned == {holder}, "only the outbox scan lease's holder scans the outbox"
        assert raw.get("lr:deliverer").decode().startswith(f"L{holder}#")

        # A clean stop releases the lease: another takes over at its next interval and
        # delivers what no listener archived (only a full scan finds it).
        await listeners[holder].stop()
        sid = await stores[0].create_session("carlos", "alicia", {"ttl": 60})
        assert await stores[0].end_session(sid)
        await until(lambda: seen == [sid], timeout=20)
        survivors = [listener for n, listener in enumerate(listeners) if n != holder]
        await until(lambda: sum(listener.scanning_outbox for listener in survivors) == 1,
                    timeout=20)
    assert raw.get("lr:deliverer") is None, "the last holder released the lease on stop"


DOOMED = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from luminora_redis import SessionStore
    from luminora_redis.listener.expiry_listener import ExpiryListener

    url, cluster, marker = sys.argv[1], sys.argv[2] == "1", Path(sys.argv[3])

    async def hook(conversation):
        with marker.open("a") as out:
            out.write(conversation.idempotency_key + "\\n")
        if len(marker.read_text().split()) > 1:
            await asyncio.Event().wait()  # the second one: stuck inside the sink

    async def main():
        store = SessionStore.from_url(url, cluster=cluster)
        listener = ExpiryListener(store, on_archived=hook, name="doomed", delivery_lease=1.0,
                                  delivery_interval=0.05, delivery_scan_lease=3.0,
                                  hook_timeout=None, heartbeat_interval=0.2)
        await listener.run()

    asyncio.run(main())
""")


@pytest.mark.slow
async def test_a_killed_scan_lease_holder_s_deliveries_are_made_by_a_survivor(
        async_stores: Callable[..., SessionStore], store_url: str, topology: str,
        tmp_path: Path, raw: Any) -> None:
    """The holder is killed mid-delivery: its lease (3 s) lapses, the survivor takes it
    over within about one lease, then delivers the delivery the dead one had claimed and one
    recorded after its death, which only a full scan finds."""
    store = async_stores()
    marker = tmp_path / "delivered"
    marker.touch()
    process = subprocess.Popen(
        [sys.executable, "-c", DOOMED, store_url, "1" if topology == "cluster" else "0",
         str(marker)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seen: list[str] = []
    survivor = ExpiryListener(async_stores(), on_archived=lambda c: seen.append(c.session_id),
                              name="survivor", **FAST)
    try:
        def held() -> bool:
            holder = raw.get("lr:deliverer")
            return holder is not None and holder.decode().startswith("doomed#")

        await until(held, timeout=30)
        async with running(survivor):
            first, stuck = [await store.create_session(f"user-{n}", "alicia", {"ttl": 60})
                            for n in range(2)]
            assert await store.end_session(first)
            await until(lambda: marker.read_text().split() == [first], timeout=20)
            assert await store.end_session(stuck)
            await until(lambda: marker.read_text().split() == [first, stuck], timeout=20)
            assert held() and not survivor.scanning_outbox and survivor.outbox_scans == 0
            assert seen == []
            process.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            assert await asyncio.to_thread(process.wait, 10) == -signal.SIGKILL
            later = await store.create_session("user-2", "alicia", {"ttl": 60})
            assert await store.end_session(later)
            await until(lambda: sorted(seen) == sorted([stuck, later]), timeout=30)
            # The bound is the lease (3 s) + one interval (0.05 s); the rest is slack for
            # a loaded machine, far below the 30 s the wait allows.
            assert time.monotonic() - killed < 3.05 + 5.0
            assert survivor.scanning_outbox and survivor.outbox_scans > 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert (await store.delivery_backlog()).pending == 0


async def test_a_listener_without_the_scan_lease_delivers_its_own_archives_and_retries(
        async_stores: Callable[..., SessionStore]) -> None:
    """The holder scans the outbox once a minute here, so only the other listener, which
    archived the session, can deliver it in time: at once, then its retry when due."""
    holder = ExpiryListener(async_stores(), on_archived=lambda c: None, name="holder",
                            notifications=False, sweep_interval=60.0, delivery_interval=60.0)
    calls: list[str] = []

    def flaky(conversation: ArchivedConversation) -> None:
        calls.append(conversation.session_id)
        if len(calls) == 1:
            raise ConnectionError("the sink is down")

    other = ExpiryListener(async_stores(), on_archived=flaky, name="other", **FAST)
    async with running(holder):
        await until(lambda: holder.scanning_outbox, timeout=20)
        async with running(other):
            [sid] = await create_sessions(async_stores(), 1, 1, [0.05])
            await until(lambda: other.delivered == 1, timeout=30)
            assert not other.scanning_outbox and other.outbox_scans == 0
            assert holder.outbox_scans == 1, "the holder scanned at start only"
    assert calls == [sid, sid]
    assert other.archived == 1 and holder.archived == 0 and holder.delivered == 0
