"""What keeps the expiry-to-archive lag short under load: passes for due hints overlap,
compression runs beside the archive path, and a delivery's claim and read share a round
trip. On a real server and on the cluster."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from luminora_redis import SessionStore
from luminora_redis.core.scripts import Batch, Call, Op, alongside
from luminora_redis.listener import compression
from luminora_redis.listener.expiry_listener import SWEEP, ExpiryListener
from luminora_redis.ops import outbox, scans

from conftest import until
from listener_support import MIN_TTL, create_conversation, create_sessions, open_async_stores, running

async_stores = pytest.fixture(open_async_stores)


def _echo(name: str, steps: list[Any]) -> Op[list[Any]]:
    """A fake operation: yields ``steps`` (Calls or Batches), returns the replies."""
    replies = []
    for step in steps:
        replies.append((yield step))
    return [name, *replies]


def test_alongside_runs_two_operations_in_the_round_trips_of_the_longer() -> None:
    one, two, three = (Call(f"s{n}", (f"k{n}",), ()) for n in (1, 2, 3))
    pair = alongside(_echo("a", [one, Batch([two, three])]), _echo("b", [three]))
    assert next(pair) == Batch([one, three]), "the first steps of both, one round trip"
    assert pair.send(["r1", "r3"]) == Batch([two, three]), "then what is left of the longer"
    with pytest.raises(StopIteration) as done:
        pair.send(["r2", "r3b"])
    assert done.value.value == (["a", "r1", ["r2", "r3b"]], ["b", "r3"])


def test_alongside_an_error_of_either_propagates() -> None:
    def failing() -> Op[None]:
        yield Call("s", ("k",), ())
        raise ValueError("bad reply")

    pair = alongside(_echo("a", [Call("t", ("j",), ())]), failing())
    next(pair)
    with pytest.raises(ValueError, match="bad reply"):
        pair.send(["x", "y"])


async def _distinct_bucket_sessions(store: SessionStore,
                                    ttls: list[float]) -> list[tuple[str, str]]:
    """(session, user) of distinct users in distinct buckets, one per ttl, with a message
    each."""
    space = (await store.context()).keys
    made: list[tuple[str, str]] = []
    buckets: set[int] = set()
    number = 0
    while len(made) < len(ttls):
        user = f"passes-{number}"
        number += 1
        sid = await create_conversation(store, user, {"ttl": ttls[len(made)]}, ["hola"])
        bucket = space.bucket_of_session(sid)
        assert bucket is not None
        if bucket in buckets:
            await store.delete_session(sid)
            continue
        buckets.add(bucket)
        made.append((sid, user))
    return made


async def test_a_pass_held_up_does_not_hold_up_the_next_deadline(
        async_stores: Callable[..., SessionStore]) -> None:
    """The archive of one session hangs: a session of another bucket falling due a
    second later is archived through its own pass meanwhile. Passes run one after the
    other would keep it waiting for the first."""
    store = async_stores()
    listener = ExpiryListener(store, notifications=False, sweep_interval=0.2,
                              full_sweep_interval=3600)
    release = asyncio.Event()
    held: list[str] = []
    async with running(listener):
        await until(lambda: listener._sweeper.full_sweeps == 1)
        (slow, slow_user), (fast, fast_user) = await _distinct_bucket_sessions(
            store, [MIN_TTL, MIN_TTL + 1.5])
        archive = listener._sweeper._archive

        async def hanging(session_id: str) -> bool:
            if session_id == slow:
                held.append(session_id)
                await release.wait()
            return await archive(session_id)

        listener._sweeper._archive = hanging
        await until(lambda: held, timeout=30)
        await until(lambda: listener.archived_by_path[SWEEP] == 1, timeout=30,
                    what="the later session archived while the first pass hangs")
        assert [c.session_id for c in await store.get_archived_conversations(fast_user)] \
            == [fast]
        assert held == [slow] and not await store.get_archived_conversations(slow_user)
        release.set()
        await until(lambda: listener.archived_by_path[SWEEP] == 2, timeout=30)
        assert listener._sweeper.full_sweeps == 1, "both found through their hints"


async def test_compressions_never_hold_up_archiving(
        async_stores: Callable[..., SessionStore], monkeypatch: pytest.MonkeyPatch) -> None:
    """Every compression hangs: all 20 sessions due at once are archived and delivered
    anyway (compressing inline, 16 concurrent archives would hold them), uncompressed
    and readable; once compressions proceed, each is compressed."""
    store = async_stores()
    release = asyncio.Event()
    started: list[str] = []
    real_call = compression.call

    async def held_call(store_: Any, operation: Any, archived: Any) -> Any:
        started.append(archived.session_id)
        await release.wait()
        return await real_call(store_, operation, archived)

    monkeypatch.setattr(compression, "call", held_call)
    delivered: list[str] = []
    listener = ExpiryListener(store, notifications=False, sweep_interval=0.2,
                              on_archived=lambda c: delivered.append(c.session_id))
    async with running(listener):
        owners = await create_sessions(store, 20, 20, [MIN_TTL] * 20)
        await until(lambda: len(delivered) == 20, timeout=60,
                    what="every session archived and delivered while compressions hang")
        assert sorted(delivered) == sorted(owners) and len(started) == 20
        records = [(await store.context()).keys.user(user).archived(sid)[0]
                   for sid, user in owners.items()]
        assert not any([await store.client.hget(record, "zstd") for record in records])
        release.set()
        await until(lambda: all_compressed(store, records), timeout=60)


async def all_compressed(store: SessionStore, records: list[str]) -> bool:
    return all([await store.client.hget(record, "zstd") for record in records])


@pytest.mark.single_server
async def test_stop_abandons_a_hanging_compression_within_its_bound(
        async_stores: Callable[..., SessionStore], monkeypatch: pytest.MonkeyPatch) -> None:
    """A compression that never ends does not keep `stop` waiting: it is cancelled, and
    the conversation stays readable, uncompressed."""
    store = async_stores()
    never = asyncio.Event()
    started = asyncio.Event()

    async def hanging(*_: Any) -> Any:
        started.set()
        await never.wait()

    monkeypatch.setattr(compression, "call", hanging)
    listener = ExpiryListener(store, notifications=False, sweep_interval=0.2)
    task = asyncio.create_task(listener.run())
    await asyncio.wait_for(listener.started.wait(), 30)
    sid = await create_conversation(store, "carla", {"ttl": MIN_TTL}, ["hola", "adiós"])
    await asyncio.wait_for(started.wait(), 30)
    begun = time.monotonic()
    await asyncio.wait_for(listener.stop(), 30)
    await task
    assert time.monotonic() - begun < 15
    conversation = await store.get_archived_conversation("carla", sid)
    assert conversation is not None
    assert [m.content for m in conversation.messages] == ["hola", "adiós"]


async def test_claim_and_read_claims_once_and_reads_the_expected_users_conversation(
        async_stores: Callable[..., SessionStore]) -> None:
    """One round trip claims the delivery and reads the conversation; a second claim finds
    it held. A wrong guess of the user reads nothing, and the claim names the real one."""
    store = async_stores()
    sid = await create_conversation(store, "carlos", {"ttl": 600}, ["hola"])
    other = await create_conversation(store, "carlos", {"ttl": 600}, ["¿qué tal?"])
    await store.end_session(sid)
    await store.end_session(other)
    delivery, conversation = await store.run(outbox.claim_and_read, sid, 60_000, "carlos")
    assert delivery is not None and delivery.user_id == "carlos" and delivery.attempts == 1
    assert not isinstance(conversation, Exception) and conversation is not None
    assert [m.content for m in conversation.messages] == ["hola"]
    again, _ = await store.run(outbox.claim_and_read, sid, 60_000, "carlos")
    assert again is None, "held by the first claim"
    delivery, conversation = await store.run(outbox.claim_and_read, other, 60_000, "carla")
    assert delivery is not None and delivery.user_id == "carlos"
    assert conversation is None, "carla has no such conversation"


def recorded_runs(store: SessionStore,
                  monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[Any, ...]]]:
    """Every operation the store runs from now on: (its name, its arguments)."""
    ran: list[tuple[str, tuple[Any, ...]]] = []
    real_run = store.run

    async def recording(operation: Any, *args: Any) -> Any:
        ran.append((getattr(operation, "__name__", ""), args))
        return await real_run(operation, *args)

    monkeypatch.setattr(store, "run", recording)
    return ran


@pytest.mark.single_server
async def test_a_take_reports_the_earliest_hints_coming_within_its_horizon(
        async_stores: Callable[..., SessionStore], raw: Any) -> None:
    """The passed hint is taken; of the 40 coming within the horizon the earliest two of
    each of the 16 keys are reported (and left in place): here the earliest `COMING`;
    one beyond the horizon is not."""
    store = async_stores()
    keys = (await store.context()).keys.hints
    seconds, micros = raw.time()
    now = int(seconds) * 1000 + int(micros) // 1000
    raw.zadd(keys[3], {"900": now - 1_000})
    coming = {100 + n: now + 10_000 + n for n in range(40)}
    for bucket, score in coming.items():
        raw.zadd(keys[bucket % len(keys)], {str(bucket): score})
    raw.zadd(keys[5], {"901": now + 120_000})
    due = await store.run(scans.take_hints, 60_000)
    assert due.buckets == [900]
    assert due.next_ms == now + 10_000
    assert due.coming == {bucket: coming[bucket] for bucket in range(100, 100 + scans.COMING)}
    assert raw.zscore(keys[3], "900") is None, "taken"
    assert raw.zscore(keys[100 % len(keys)], "100") == now + 10_000, "only read"
    assert (await store.run(scans.take_hints)).coming == {}, "no horizon, nothing coming"
    # Ten more hints on one key, all earlier: that key reports its earliest two, the
    # earliest of all among them, and the others their own.
    early = {200 + 16 * n: now + 5_000 + n for n in range(10)}
    raw.zadd(keys[200 % len(keys)], {str(bucket): score for bucket, score in early.items()})
    due = await store.run(scans.take_hints, 60_000)
    assert due.next_ms == now + 5_000
    assert {200, 216} <= set(due.coming) and not set(due.coming) & set(list(early)[2:])


@pytest.mark.single_server
async def test_a_take_reads_each_hint_key_twice_and_nothing_beyond_its_horizon(
        async_stores: Callable[..., SessionStore], raw: Any) -> None:
    """Two range reads per key, whether hints are coming or not: the passed hints, then
    the earliest coming (nothing beyond the horizon), or without a horizon the next."""
    store = async_stores()
    keys = (await store.context()).keys.hints
    seconds, micros = raw.time()
    now = int(seconds) * 1000 + int(micros) // 1000
    for number, key in enumerate(keys):
        raw.zadd(key, {str(number): now - 500, str(100 + number): now + 5_000 + number})
    raw.zadd(keys[0], {"200": now + 600_000})
    raw.config_resetstat()
    due = await store.run(scans.take_hints, 60_000)
    assert due.buckets == list(range(len(keys)))
    assert due.next_ms == now + 5_000
    stats = raw.info("commandstats")
    assert stats["cmdstat_zrangebyscore"]["calls"] == 2 * len(keys)
    assert "cmdstat_zrange" not in stats
    raw.config_resetstat()
    await store.run(scans.take_hints, 60_000)
    assert raw.info("commandstats")["cmdstat_zrangebyscore"]["calls"] == 2 * len(keys), (
        "the hints coming are read again, not taken")
    raw.config_resetstat()
    due = await store.run(scans.take_hints, 1_000)
    assert raw.info("commandstats")["cmdstat_zrangebyscore"]["calls"] == 2 * len(keys), (
        "nothing coming within 1 s: nothing beyond is read")
    assert due.next_ms is None and due.coming == {}
    raw.config_resetstat()
    due = await store.run(scans.take_hints)
    assert raw.info("commandstats")["cmdstat_zrangebyscore"]["calls"] == 2 * len(keys), (
        "no horizon: each key is asked for its next hint")
    assert due.next_ms == now + 5_000


@pytest.mark.single_server
async def test_a_bucket_known_to_be_due_is_asked_in_the_round_trip_of_the_take(
        async_stores: Callable[..., SessionStore], monkeypatch: pytest.MonkeyPatch) -> None:
    """A session created after the last full sweep: a take sees its hint coming, so the
    pass that wakes for it asks its bucket together with the take, and no scan of its
    own follows (on a single server, where one connection keeps the two in order)."""
    store = async_stores()
    ran = recorded_runs(store, monkeypatch)
    listener = ExpiryListener(store, notifications=False, sweep_interval=1.0,
                              full_sweep_interval=3600)
    async with running(listener):
        await until(lambda: listener._sweeper.full_sweeps == 1)
        created = len(ran)
        sid = await create_conversation(store, "carlos", {"ttl": MIN_TTL}, ["hola"])
        bucket = int(sid[:4], 16)
        await until(lambda: listener.archived == 1, timeout=30)
        after = ran[created:]
    passes = [args for name, args in after if name == "take_and_scan" and bucket in args[0]]
    assert passes, f"no take asked bucket {bucket} with it: {after}"
    scans_after = [args for name, args in after if name == "scan_due" and bucket in args[0]]
    assert not scans_after, "the bucket was asked again on its own"


@pytest.mark.single_server
async def test_a_live_session_found_due_costs_its_bucket_no_second_scan(
        async_stores: Callable[..., SessionStore], raw: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An index score is a lower bound: here it (and the bucket's hint) is 300 ms ahead
    while the session lives 3 s. The pass that finds it due learns the real deadline
    from the archive call itself, puts it back, and archives the session through that
    hint: one scan of the bucket, where asking again would make two."""
    store = async_stores()
    ran = recorded_runs(store, monkeypatch)
    listener = ExpiryListener(store, notifications=False, sweep_interval=1.0,
                              full_sweep_interval=3600)
    async with running(listener):
        await until(lambda: listener._sweeper.full_sweeps == 1)
        ctx = await store.context()
        sid = await create_conversation(store, "carlos", {"ttl": MIN_TTL + 1}, ["hola"])
        bucket = int(sid[:4], 16)
        keys = ctx.session_keys(sid)
        assert keys is not None
        seconds, micros = raw.time()
        early = int(seconds) * 1000 + int(micros) // 1000 + 300
        created = len(ran)
        raw.zadd(keys.deadlines, {sid: early}, xx=True)
        raw.zadd(ctx.hints.of_bucket(bucket), {str(bucket): early}, lt=True)
        await until(lambda: listener.archived == 1, timeout=30)
        after = ran[created:]
    # Two scans of the bucket: the one that finds the session live, and the one at the
    # real deadline (in the take's round trip when the wake knew the bucket, on its own
    # when a tick's take came first). Asking again after the live finding makes three.
    scans_of_bucket = [args for name, args in after
                       if name in ("scan_due", "take_and_scan") and bucket in args[0]]
    assert len(scans_of_bucket) == 2, \
        f"the bucket was asked again after its live session was found due: {after}"
    conversation = await store.get_archived_conversation("carlos", sid)
    assert conversation is not None


async def test_an_entry_another_pass_is_archiving_costs_no_second_scan(
        async_stores: Callable[..., SessionStore], monkeypatch: pytest.MonkeyPatch) -> None:
    """Two passes find the same due entry: the one that came second leaves it to the one
    archiving it (which puts the bucket's next score back, or a retry hint on failure)
    and does not ask the bucket again. Asking again until the answer stops changing
    made two scans."""
    store = async_stores()
    ran = recorded_runs(store, monkeypatch)
    listener = ExpiryListener(store, notifications=False, sweep_interval=3600,
                              full_sweep_interval=3600)
    sweeper = listener._sweeper
    sid = await create_conversation(store, "carlos", {"ttl": MIN_TTL}, ["hola"])
    bucket = int(sid[:4], 16)

    async def due() -> bool:
        return sid in (await store.run(scans.scan_due, [bucket])).session_ids

    await until(due, timeout=30, what="the entry due")
    archive, entered, release = sweeper._archive, asyncio.Event(), asyncio.Event()

    async def held(session_id: str) -> Any:
        entered.set()
        await release.wait()
        return await archive(session_id)

    sweeper._archive = held
    first = asyncio.create_task(sweeper.sweep([bucket]))
    await asyncio.wait_for(entered.wait(), 30)
    before = len(ran)
    second = await sweeper.sweep([bucket])
    asked = [args for name, args in ran[before:] if name == "scan_due"]
    release.set()
    assert await first == 1 and second == 0
    assert len(asked) == 1, f"the bucket was asked again for the entry in flight: {asked}"
    assert [c.session_id for c in await store.get_archived_conversations("carlos")] == [sid]
