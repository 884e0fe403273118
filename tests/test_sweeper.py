"""The sweeper on a real server and the cluster: due means past on the server clock,
strictly, as Redis expires keys; entries that keep failing are quarantined and their
bucket moves on."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from luminora_redis import QuarantineKind, SessionStore
from luminora_redis.archive import scan_due
from luminora_redis.listener import SWEEP, ExpiryListener

from conftest import wait_until
from listener_support import create_sessions, open_async_stores, running, until

async_stores = pytest.fixture(open_async_stores)


def _ms(reply: Any) -> int:
    seconds, micros = reply
    return int(seconds) * 1000 + int(micros) // 1000


def test_due_means_strictly_before_the_server_clock(store: Any, raw: Any) -> None:
    """Entries one per millisecond around now: every scan returns exactly those whose
    score is below its own clock, and names the first one at or after it as next."""
    inner = getattr(store, "inner", store)
    run = store.loop.run_until_complete if hasattr(store, "loop") else (lambda value: value)
    ctx = run(inner.context())
    deadlines, _ = ctx.keys.index(7)
    node = {} if not hasattr(raw, "get_node_from_key") else {
        "target_nodes": raw.get_node_from_key(deadlines)}
    start = _ms(raw.time(**node))
    raw.zadd(deadlines, {f"0007-{n:032x}": start + n for n in range(300)})
    scans = 0
    while True:
        scan = run(inner.run(scan_due, [7], False, 1000))
        scans += 1
        expected = [f"0007-{n:032x}" for n in range(300) if start + n < scan.now_ms]
        assert scan.session_ids == expected, f"scan at {scan.now_ms}, start {start}"
        ahead = [start + n for n in range(300) if start + n >= scan.now_ms]
        assert scan.next_deadlines.get(7) == (ahead[0] if ahead else None)
        if scan.now_ms > start + 300:
            break
    assert scans > 1


async def test_a_session_is_due_exactly_when_redis_says_it_expired(
        async_stores: Callable[..., SessionStore], raw: Any) -> None:
    store = async_stores()
    sid = await store.create_session("carlos", "alicia", {"ttl": 0.2})
    session_key = f"lr:{{b{sid[:4]}}}:s:{sid}"
    deadline = raw.pexpiretime(session_key)
    bucket = int(sid[:4], 16)
    while True:
        scan = await store.run(scan_due, [bucket], False, 100)
        if sid in scan.session_ids:
            assert scan.now_ms > deadline
            assert not raw.exists(session_key), "Redis agrees: expired"
            break
        assert scan.now_ms <= deadline, "past its deadline, yet not due"


@pytest.mark.parametrize("kind", ["history", "meta"])
async def test_entries_that_keep_failing_are_quarantined_and_the_bucket_moves_on(
        kind: str, async_stores: Callable[..., SessionStore], raw: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    store = async_stores()
    # One user: one bucket. The broken sessions expire first, so they head the index
    # and fill the sweep's batch.
    broken = list(await create_sessions(store, 3, 1, [0.5] * 3))
    good = list(await create_sessions(store, 5, 1, [1.0] * 5))
    for sid in broken:
        base = f"lr:{{b{sid[:4]}}}:s:{sid}"
        if kind == "history":  # the archive script meets WRONGTYPE
            raw.delete(f"{base}:h")
            raw.set(f"{base}:h", "not a list")
        else:  # the archive script meets a meta hash without its absolute deadline
            raw.hdel(f"{base}:m", "abs")
    listener = ExpiryListener(store, notifications=False, sweep_interval=0.05, sweep_batch=3,
                              sweep_max_failures=2)
    with caplog.at_level(logging.ERROR, logger="luminora_redis.listener"):
        async with running(listener):
            await until(lambda: listener.archived == 5, timeout=30)
    assert listener.archived_by_path[SWEEP] == 5
    archived = {c.session_id for c in await store.get_archived_conversations("user-0",
                                                                              limit=None)}
    assert archived == set(good)
    entries = await store.list_quarantined()
    assert sorted(e.session_id for e in entries) == sorted(broken)
    assert {(e.kind, e.attempts) for e in entries} == {(QuarantineKind.SESSION, 2)}
    backlog = await store.delivery_backlog()
    assert backlog.quarantined_sessions == 3 and backlog.quarantined == 0
    assert await store.get_expired_sessions() == []
    for sid in broken:  # kept for an operator to look at
        assert raw.exists(f"lr:{{b{sid[:4]}}}:s:{sid}:m")
        logged = [r for r in caplog.records if "quarantined" in r.getMessage()
                  and sid in r.getMessage()]
        assert len(logged) == 1


def test_list_quarantined_refuses_a_bad_limit(store: Any) -> None:
    from luminora_redis import InvalidInput

    for bad in (0, -1, 10_001, 1.5, True, "5"):
        with pytest.raises(InvalidInput, match="limit"):
            store.list_quarantined(bad)
    wait_until(lambda: store.list_quarantined(1) == [])
