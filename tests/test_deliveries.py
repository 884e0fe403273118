"""Deliveries to ``on_archived`` through the outbox, on a real server and the cluster:
every path reaches the sink, at least once, with one idempotency key; failures are
retried with backoff or quarantined; a killed listener's delivery is made by another;
a slow sink never holds up archiving; the backlog is visible."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from luminora_redis import (
    ArchivedConversation,
    ArchiveReason,
    DeliveryBacklog,
    QuarantineKind,
    SessionStore,
)
from luminora_redis.listener.expiry_listener import ExpiryListener, ListenerSettings

from conftest import until
from listener_support import create_sessions, open_async_stores, running

async_stores = pytest.fixture(open_async_stores)

FAST = {"sweep_interval": 0.05, "delivery_interval": 0.05, "delivery_backoff": 0.05}


async def test_end_session_and_cleanup_reach_the_sink_through_any_listener(
        async_stores: Callable[..., SessionStore]) -> None:
    """Archives made while no listener ran wait in the outbox; the listener that starts
    later delivers them, whoever archived them."""
    store = async_stores()
    ended = await store.create_session("carlos", "alicia", {"ttl": 60})
    await store.append_message(ended, "user", "adiós")
    [manual] = await create_sessions(store, 1, 1, [0.05], auto_cleanup=False)
    assert await store.end_session(ended)
    await until(lambda: store.get_expired_sessions(), timeout=10)
    assert await store.cleanup_expired_sessions() == 1
    backlog = await store.delivery_backlog()
    assert backlog.pending == 2 and backlog.quarantined == 0
    assert backlog.oldest_age_seconds is not None and backlog.oldest_age_seconds >= 0
    seen: dict[str, ArchivedConversation] = {}
    listener = ExpiryListener(async_stores(), on_archived=lambda c: seen.update({c.session_id: c}),
                              **FAST)
    async with running(listener):
        await until(lambda: len(seen) == 2, timeout=10)
    assert seen[ended].reason is ArchiveReason.ENDED
    assert [m.content for m in seen[ended].messages] == ["adiós"]
    assert seen[ended].idempotency_key == ended and seen[manual].idempotency_key == manual
    assert seen[manual].user_id == "user-0" and len(seen[manual].messages) == 1
    assert listener.archived == 0, "nothing for the listener to archive: it only delivered"
    assert await store.delivery_backlog() == DeliveryBacklog(pending=0, oldest_age_seconds=None,
                                                             quarantined=0)


async def test_a_raising_hook_is_retried_with_backoff_under_one_key(
        async_stores: Callable[..., SessionStore]) -> None:
    store = async_stores()
    calls: list[tuple[str, float]] = []

    async def flaky(conversation: ArchivedConversation) -> None:
        calls.append((conversation.idempotency_key, time.monotonic()))
        if len(calls) <= 3:
            raise ConnectionError("the sink is down")

    listener = ExpiryListener(store, on_archived=flaky, **{**FAST, "delivery_backoff": 0.1})
    async with running(listener):
        sid = await store.create_session("carlos", "alicia", {"ttl": 60})
        await store.end_session(sid)
        await until(lambda: len(calls) == 4, timeout=20)
        await until(lambda: listener.delivered == 1)
    assert {key for key, _ in calls} == {sid}
    gaps = [later - earlier for (_, earlier), (_, later) in zip(calls, calls[1:])]
    # 0.1, 0.2, 0.4 s: the server holds each retry back at least that long.
    for gap, least in zip(gaps, (0.1, 0.2, 0.4), strict=True):
        assert gap >= least - 0.01, gaps
    assert listener.errors == 3
    assert (await store.delivery_backlog()).pending == 0


async def test_a_delivery_that_fails_max_attempts_is_quarantined_and_listed(
        async_stores: Callable[..., SessionStore], caplog: pytest.LogCaptureFixture) -> None:
    store = async_stores()
    attempts: list[str] = []

    def broken(conversation: ArchivedConversation) -> None:
        attempts.append(conversation.idempotency_key)
        raise ValueError("cannot take this one")

    listener = ExpiryListener(store, on_archived=broken, delivery_max_attempts=2, **FAST)
    with caplog.at_level(logging.ERROR, logger="luminora_redis.listener"):
        async with running(listener):
            sid = await store.create_session("carlos", "alicia", {"ttl": 60})
            await store.end_session(sid)
            await until(lambda: listener.quarantined == 1, timeout=20)
            sweeps = listener.sweeps
            await until(lambda: listener.sweeps >= sweeps + 3)
    assert attempts == [sid, sid]
    assert await store.delivery_backlog() == DeliveryBacklog(
        pending=0, oldest_age_seconds=None, quarantined=1)
    [entry] = await store.list_quarantined()
    assert (entry.kind, entry.session_id, entry.user_id, entry.attempts) == (
        QuarantineKind.DELIVERY, sid, "carlos", 2)
    assert len([r for r in caplog.records if "quarantined" in r.getMessage()]) == 1
    # The archive itself is untouched.
    assert [c.session_id for c in await store.get_archived_conversations("carlos")] == [sid]


async def test_a_slow_sink_never_holds_up_archiving(
        async_stores: Callable[..., SessionStore]) -> None:
    store = async_stores()
    release = asyncio.Event()
    entered: list[str] = []

    async def stuck(conversation: ArchivedConversation) -> None:
        entered.append(conversation.session_id)
        await release.wait()

    listener = ExpiryListener(store, on_archived=stuck, delivery_workers=1, **FAST)
    async with running(listener):
        owners = await create_sessions(store, 6, 2, [0.05] * 6)
        await until(lambda: listener.archived == 6, timeout=20)
        await until(lambda: len(entered) >= 1, timeout=20)  # archiving did not wait for it
        assert len(entered) == 1, "one worker: one delivery in flight, the rest wait"
        assert (await store.delivery_backlog()).pending == 6
        release.set()
        await until(lambda: listener.delivered == 6, timeout=20)
    assert sorted(entered) == sorted(owners)


@pytest.mark.single_server
async def test_retention_keeps_an_archive_until_the_sink_acknowledged_it(
        async_stores: Callable[..., SessionStore]) -> None:
    store = async_stores(archive_retention=1)
    sids = [await store.create_session("carlos", "alicia", {"ttl": 60}) for _ in range(4)]
    for sid in sids:
        assert await store.end_session(sid)
    # Nothing is trimmed while the sink has not got it: four archives over a retention of 1.
    assert len(await store.get_archived_conversations("carlos")) == 4
    received: dict[str, int] = {}

    async def sink(conversation: ArchivedConversation) -> None:
        received[conversation.session_id] = len(conversation.messages)

    listener = ExpiryListener(store, on_archived=sink, **FAST)
    async with running(listener):
        await until(lambda: len(received) == 4, timeout=20)
        await until(lambda: listener.delivered == 4)
    assert set(received) == set(sids)
    # Acknowledged, the older ones go; the newest stays.
    async def trimmed() -> bool:
        return len(await store.get_archived_conversations("carlos")) == 1

    await until(trimmed)
    assert [c.session_id for c in await store.get_archived_conversations("carlos")] == [sids[-1]]
    assert await store.delivery_backlog() == DeliveryBacklog(
        pending=0, oldest_age_seconds=None, quarantined=0)


async def test_retention_keeps_a_quarantined_delivery_s_archive(
        async_stores: Callable[..., SessionStore]) -> None:
    store = async_stores(archive_retention=0)

    def broken(conversation: ArchivedConversation) -> None:
        raise ValueError("the sink refuses it")

    sid = await store.create_session("carlos", "alicia", {"ttl": 60})
    assert await store.end_session(sid)
    listener = ExpiryListener(store, on_archived=broken, delivery_max_attempts=1, **FAST)
    async with running(listener):
        await until(lambda: listener.quarantined == 1, timeout=20)
    other = ExpiryListener(store, on_archived=lambda c: None, **FAST)
    async with running(other):  # another listener trims what it delivers, not this one
        await store.end_session(await store.create_session("carlos", "alicia", {"ttl": 60}))
        await until(lambda: other.delivered == 1, timeout=20)
    assert [c.session_id for c in await store.get_archived_conversations("carlos")] == [sid]


async def test_a_delivery_whose_archive_is_gone_is_dropped_with_a_log_line(
        async_stores: Callable[..., SessionStore], caplog: pytest.LogCaptureFixture,
        raw: Any) -> None:
    store = async_stores()
    sid = await store.create_session("carlos", "alicia", {"ttl": 60})
    assert await store.end_session(sid)
    user = (await store.context()).keys.user("carlos")
    raw.zrem(user.archive, sid)  # gone behind the outbox's back
    raw.delete(*user.archived(sid))
    assert await store.get_archived_conversations("carlos") == []
    called: list[str] = []
    listener = ExpiryListener(store, on_archived=lambda c: called.append(c.session_id), **FAST)
    with caplog.at_level(logging.WARNING, logger="luminora_redis.listener"):
        async with running(listener):
            await until(lambda: any("delivery dropped" in r.getMessage() for r in caplog.records),
                        timeout=10)
    assert called == []
    assert (await store.delivery_backlog()).pending == 0


async def test_the_backlog_ages_on_the_server_clock(async_stores: Callable[..., SessionStore],
                                                   raw: Any) -> None:
    store = async_stores()
    assert await store.delivery_backlog() == DeliveryBacklog(
        pending=0, oldest_age_seconds=None, quarantined=0)
    users = [f"user-{n}" for n in range(5)]  # several buckets (and nodes, on a cluster)
    for user in users:
        await store.end_session(await store.create_session(user, "alicia", {"ttl": 60}))
    first = await store.delivery_backlog()
    after_first = server_ms_any(raw)  # a slow machine may take 100 ms to archive the five
    await until(lambda: server_ms_any(raw) > after_first + 100)
    second = await store.delivery_backlog()
    assert first.pending == second.pending == 5
    assert first.oldest_age_seconds is not None and second.oldest_age_seconds is not None
    assert second.oldest_age_seconds >= first.oldest_age_seconds + 0.05


def server_ms_any(raw: Any) -> int:
    seconds, micros = raw.time() if not hasattr(raw, "get_primaries") else raw.time(
        target_nodes=raw.get_primaries()[0])
    return int(seconds * 1000 + micros // 1000)


def test_trimming_that_fails_after_the_commit_does_not_raise(
        store: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Retention runs after the archive committed: its failure is logged, never raised,
    and the next archive of the user trims again."""
    inner = getattr(store, "inner", store)
    trim = inner._scripts["trim_archive"]
    failing = {"on": True}

    class Flaky:
        """The trim script while Redis is away: the runner's EVALSHA fails to go out."""

        @property
        def sha(self) -> str:
            if failing["on"]:
                raise redis.ConnectionError("Redis went away during the trim")
            return trim.sha  # type: ignore[no-any-return]

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return trim(*args, **kwargs)

    flaky = Flaky()

    # The store fixture has no retention; a second store of the same keyspace has.
    sids = [store.create_session("carlos", "alicia", {"ttl": 60}) for _ in range(3)]
    # Without deliveries: with them, retention waits for the sink (tested above).
    retained = type(inner)(inner.client, archive_retention=1, deliveries=False)
    run = store.loop.run_until_complete if hasattr(store, "loop") else (lambda value: value)
    run(retained.context())  # first use registers the scripts the server takes: then swap
    trim = retained._scripts["trim_archive"]
    retained._scripts["trim_archive"] = flaky
    with caplog.at_level(logging.WARNING, logger="luminora_redis.archive"):
        assert run(retained.end_session(sids[0])) is True
        assert run(retained.end_session(sids[1])) is True  # two archives: one too many
    assert len(store.get_archived_conversations("carlos", limit=None)) == 2
    assert any("trimming the archive" in r.getMessage() for r in caplog.records)
    failing["on"] = False
    assert run(retained.end_session(sids[2])) is True
    assert [c.session_id for c in store.get_archived_conversations("carlos", limit=None)] == [
        sids[2]]


LISTENER_SCRIPT = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from luminora_redis import SessionStore
    from luminora_redis.listener.expiry_listener import ExpiryListener

    url, cluster, marker = sys.argv[1], sys.argv[2] == "1", Path(sys.argv[3])

    async def hook(conversation):
        marker.write_text(conversation.idempotency_key)
        await asyncio.Event().wait()  # stuck inside the sink until killed

    async def main():
        store = SessionStore.from_url(url, cluster=cluster)
        listener = ExpiryListener(store, on_archived=hook, name="doomed", delivery_lease=1.0,
                                  delivery_interval=0.05, heartbeat_interval=0.2)
        await listener.run()

    asyncio.run(main())
""")


@pytest.mark.slow
async def test_a_listener_killed_inside_the_hook_is_delivered_by_another(
        async_stores: Callable[..., SessionStore], store_url: str, topology: str,
        tmp_path: Path) -> None:
    store = async_stores()
    marker = tmp_path / "delivering"
    process = subprocess.Popen(
        [sys.executable, "-c", LISTENER_SCRIPT, store_url, "1" if topology == "cluster" else "0",
         str(marker)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        await until(lambda: store.live_listeners(), timeout=30)
        assert await store.live_listeners() == ["doomed"]
        sid = await store.create_session("carlos", "alicia", {"ttl": 60})
        await store.end_session(sid)
        # The hook writes the marker, then blocks: wait for the whole write.
        await until(lambda: marker.exists() and marker.read_text(), timeout=30)
        process.send_signal(signal.SIGKILL)
        assert await asyncio.to_thread(process.wait, 10) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert marker.read_text() == sid
    assert (await store.delivery_backlog()).pending == 1, "in flight: leased, not acknowledged"
    seen: list[str] = []
    heir = ExpiryListener(async_stores(), on_archived=lambda c: seen.append(c.idempotency_key),
                          name="heir", **FAST)
    async with running(heir):
        await until(lambda: seen == [sid], timeout=20)
        names = await store.live_listeners()
    assert names == ["heir"], "the killed listener's heartbeat lapsed"
    assert (await store.delivery_backlog()).pending == 0
    assert await store.live_listeners() == [], "a clean stop removes the heartbeat"


def test_both_shells_see_the_backlog(store: Any) -> None:
    sid = store.create_session("carlos", "alicia", {"ttl": 60})
    assert store.end_session(sid)
    backlog = store.delivery_backlog()
    assert backlog.pending == 1 and backlog.quarantined == 0
    assert backlog.oldest_age_seconds is not None
    assert store.list_quarantined() == []


async def test_a_store_told_that_no_sink_listens_records_no_deliveries(
        async_stores: Callable[..., SessionStore]) -> None:
    """``deliveries=False`` keeps the outbox empty; the archive itself is unchanged."""
    quiet = async_stores(deliveries=False)
    sid = await quiet.create_session("carlos", "alicia", {"ttl": 60})
    assert await quiet.end_session(sid)
    assert (await quiet.delivery_backlog()).pending == 0
    assert [c.session_id for c in await quiet.get_archived_conversations("carlos")] == [sid]
    recorded = async_stores()
    other = await recorded.create_session("carlos", "alicia", {"ttl": 60})
    assert await recorded.end_session(other)
    assert (await recorded.delivery_backlog()).pending == 1


async def test_a_backlog_larger_than_the_queue_drains_without_waiting_for_full_scans(
        async_stores: Callable[..., SessionStore]) -> None:
    """One worker holds four queued deliveries; the other 16 of the backlog are taken as
    the worker makes room, not one queueful per (here 60 s) full scan."""
    store = async_stores()
    ids = [await store.create_session(f"user-{n}", "alicia", {"ttl": 60}) for n in range(20)]
    for sid in ids:
        assert await store.end_session(sid)  # archived while no listener runs: in the outbox
    seen: list[str] = []
    listener = ExpiryListener(async_stores(), on_archived=lambda c: seen.append(c.session_id),
                              delivery_workers=1, sweep_interval=0.05, delivery_interval=60.0)
    async with running(listener):
        await until(lambda: len(seen) == 20, timeout=15)
    assert sorted(seen) == sorted(ids)


async def test_hung_hook_calls_are_abandoned_and_stall_no_other_delivery(
        async_stores: Callable[..., SessionStore]) -> None:
    store = async_stores()
    sids = [await store.create_session(f"user-{n}", "alicia", {"ttl": 60}) for n in range(12)]
    hang, stubborn = set(sids[:3]), sids[3]  # more hung calls than workers
    attempts: Counter[str] = Counter()
    delivered: set[str] = set()

    async def sink(conversation: ArchivedConversation) -> None:
        sid = conversation.session_id
        attempts[sid] += 1
        if attempts[sid] == 1 and sid in hang:
            await asyncio.Event().wait()  # hangs for good
        if attempts[sid] == 1 and sid == stubborn:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                await asyncio.sleep(3)  # ignores the cancellation for a while
                return
        delivered.add(sid)

    listener = ExpiryListener(store, on_archived=sink, delivery_workers=2, hook_timeout=0.3,
                              **FAST)
    async with running(listener):
        for sid in sids:
            assert await store.end_session(sid)
        await until(lambda: delivered == set(sids), timeout=30)
        await until(lambda: listener.delivered == len(sids))
    assert {sid: attempts[sid] for sid in sids} == {
        sid: 2 if sid in hang or sid == stubborn else 1 for sid in sids}
    assert listener.errors == 4
    assert await store.delivery_backlog() == DeliveryBacklog(
        pending=0, oldest_age_seconds=None, quarantined=0)


async def test_an_overrun_counts_towards_max_attempts(
        async_stores: Callable[..., SessionStore]) -> None:
    store = async_stores()

    async def hangs(conversation: ArchivedConversation) -> None:
        await asyncio.Event().wait()

    listener = ExpiryListener(store, on_archived=hangs, hook_timeout=0.1,
                              delivery_max_attempts=2, **FAST)
    async with running(listener):
        sid = await store.create_session("carlos", "alicia", {"ttl": 60})
        await store.end_session(sid)
        await until(lambda: listener.quarantined == 1, timeout=20)
    [entry] = await store.list_quarantined()
    assert (entry.session_id, entry.kind, entry.attempts) == (sid, QuarantineKind.DELIVERY, 2)


def test_the_hook_timeout_stays_below_the_delivery_lease() -> None:
    assert ListenerSettings().hook_limit == 30.0
    assert ListenerSettings(delivery_lease=2.0).hook_limit == 1.0  # the default follows
    assert ListenerSettings(delivery_lease=2.0, hook_timeout=1.5).hook_limit == 1.5
    assert ListenerSettings(hook_timeout=None).hook_limit is None
    with pytest.raises(ValueError, match="hook_timeout"):
        ListenerSettings(delivery_lease=2.0, hook_timeout=2.0)


async def test_an_unreadable_outbox_entry_is_quarantined_at_once(
        async_stores: Callable[..., SessionStore], raw: Any) -> None:
    store = async_stores()
    sid = await store.create_session("carlos", "alicia", {"ttl": 60})
    await store.end_session(sid)
    bucket = (await store.context()).keys.bucket(int(sid[:4], 16))
    raw.hset(bucket.bodies, sid, b"\xc1 not msgpack")
    called: list[str] = []
    # Retries forever otherwise: an unreadable body is no retry's to fix.
    listener = ExpiryListener(store, on_archived=lambda c: called.append(c.session_id), **FAST)
    async with running(listener):
        await until(lambda: listener.quarantined == 1, timeout=20)
    assert called == []
    [entry] = await store.list_quarantined()
    assert (entry.session_id, entry.kind) == (sid, QuarantineKind.DELIVERY)
    assert (await store.delivery_backlog()).pending == 0


async def test_a_failure_before_the_hook_counts_towards_max_attempts(
        async_stores: Callable[..., SessionStore], raw: Any) -> None:
    store = async_stores()
    sid = await store.create_session("carlos", "alicia", {"ttl": 60})
    await store.end_session(sid)
    record = (await store.context()).keys.user("carlos").archived(sid)[0]
    raw.delete(record)
    raw.set(record, "not a record")  # reading the archive fails with WRONGTYPE
    called: list[str] = []
    listener = ExpiryListener(store, on_archived=lambda c: called.append(c.session_id),
                              delivery_max_attempts=3, **FAST)
    async with running(listener):
        await until(lambda: listener.quarantined == 1, timeout=20)
    assert called == []
    [entry] = await store.list_quarantined()
    assert (entry.session_id, entry.kind, entry.attempts) == (sid, QuarantineKind.DELIVERY, 3)


async def test_the_backlog_is_read_only_for_an_observer_that_takes_it(
        async_stores: Callable[..., SessionStore], monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading the backlog asks every bucket's outbox: a listener whose observer has no
    ``backlog`` never reads it; one whose observer has gets it from the first scan on."""
    from luminora_redis.ops import outbox

    store = async_stores()
    reads: list[int] = []
    real = outbox.delivery_backlog

    def counted(*args: Any) -> Any:
        reads.append(1)
        return (yield from real(*args))

    monkeypatch.setattr(outbox, "delivery_backlog", counted)

    class Quiet:
        """The observer's required methods, and no ``backlog``."""

        def archived(self, path: str, lag: float) -> None: ...
        def swept(self) -> None: ...
        def error(self) -> None: ...
        def reconnected(self) -> None: ...

    class Counting(Quiet):
        def __init__(self) -> None:
            self.backlogs: list[DeliveryBacklog] = []

        def backlog(self, backlog: DeliveryBacklog) -> None:
            self.backlogs.append(backlog)

    seen: list[ArchivedConversation] = []
    [sid] = await create_sessions(store, 1, 1, [0.05])
    quiet = ExpiryListener(store, on_archived=seen.append, observer=Quiet(), **FAST)
    async with running(quiet):
        await until(lambda: seen)
        await until(lambda: quiet.outbox_scans >= 2)
    assert reads == [], "no observer took a backlog"
    counting = Counting()
    async with running(ExpiryListener(store, on_archived=seen.append, observer=counting,
                                      **FAST)):
        await until(lambda: counting.backlogs)
    assert reads and counting.backlogs[0].pending == 0
