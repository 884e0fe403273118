"""The archive hands back what it archived: a conversation of at most a page (and no
segment) comes back in the archive script's own reply, equal to what reading it back
gives, and the delivery is recorded claimed by the listener that archived it, so that
listener delivers and compresses it without claiming or reading it again. Larger ones,
and those with segments, are read as before; a claim the listener cannot use (it stops,
its queue is short of room) is let go, due at once for any listener. On a real server
and on the cluster."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import msgpack
import pytest

from luminora_redis import SessionStore
from luminora_redis.core.scripts import Batch, Call
from luminora_redis.listener import deliveries
from luminora_redis.listener.expiry_listener import ExpiryListener
from luminora_redis.ops import archive, outbox

from conftest import until
from listener_support import MIN_TTL, create_conversation, open_async_stores, running

async_stores = pytest.fixture(open_async_stores)


def scripts_run(store: SessionStore, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many times each script runs through ``store`` from now on."""
    ran: Counter[str] = Counter()
    runner = store._runner
    real_call, real_batch = runner.call, runner.batch

    async def call(step: Call) -> Any:
        ran[step.script] += 1
        return await real_call(step)

    async def batch(calls: list[Call]) -> Any:
        ran.update(step.script for step in calls)
        return await real_batch(calls)

    monkeypatch.setattr(runner, "call", call)
    monkeypatch.setattr(runner, "batch", batch)
    return ran


class HeldSink:
    """An async sink whose calls wait for ``release``, then record ``key(conversation)``."""

    def __init__(self, key: Callable[[Any], str]) -> None:
        self.release = asyncio.Event()
        self.seen: list[str] = []
        self._key = key

    async def __call__(self, conversation: Any) -> None:
        await self.release.wait()
        self.seen.append(self._key(conversation))


async def _ended(store: SessionStore, user: str, messages: list[str], returned: int,
                 mood: bool = False) -> archive.Archived:
    """A conversation of ``user``, ended through ``archive_due`` asking for ``returned``."""
    sid = await create_conversation(store, user, {"ttl": 600}, messages)
    if mood:
        await store.save_mood(sid, "curious", 0.75)
        await store.set_summary(sid, "they said hello", 1)
    archived = await store.run(archive.archive_due, sid, "end", False, returned)
    assert isinstance(archived, archive.Archived)
    return archived


async def test_a_small_conversation_comes_back_with_its_archive_equal_to_reading_it(
        async_stores: Callable[..., SessionStore]) -> None:
    store = async_stores()
    archived = await _ended(store, "carla", ["hola", "¿qué tal? 🙂", "adiós"], 3, mood=True)
    read = await store.get_archived_conversation("carla", archived.session_id)
    assert archived.conversation is not None and read is not None
    assert archived.conversation == read
    assert archived.conversation.mood is not None and archived.conversation.summary is not None
    assert archived.stored is not None and len(archived.stored) == 3


async def test_nothing_comes_back_unless_asked_or_when_larger_than_asked(
        async_stores: Callable[..., SessionStore]) -> None:
    store = async_stores()
    unasked = await _ended(store, "carla", ["hola", "adiós"], 0)
    larger = await _ended(store, "carla", ["uno", "dos", "tres"], 2)
    for archived in (unasked, larger):
        assert archived.conversation is None and archived.stored is None
        assert archived.message_count in (2, 3)
    assert [m.content for m in (await store.get_archived_conversation(
        "carla", larger.session_id)).messages] == ["uno", "dos", "tres"]


async def test_a_conversation_with_segments_does_not_come_back(
        async_stores: Callable[..., SessionStore]) -> None:
    store = async_stores(max_history=2, max_overflow=2)
    words = [f"m{n}" for n in range(9)]
    archived = await _ended(store, "carla", words, 500)
    assert archived.conversation is None, "its segments are read page by page"
    read = await store.get_archived_conversation("carla", archived.session_id)
    assert [m.content for m in read.messages] == words


async def test_the_listener_delivers_and_compresses_without_reading_the_archive(
        async_stores: Callable[..., SessionStore], monkeypatch: pytest.MonkeyPatch) -> None:
    """The sink gets what reading the archive gives, the conversation ends up one frame,
    and no ``read_archived`` ran: the archive's reply held it."""
    store = async_stores()
    seen: list[Any] = []
    ran = scripts_run(store, monkeypatch)
    listener = ExpiryListener(store, notifications=False, sweep_interval=0.05,
                              on_archived=seen.append)
    async with running(listener):
        sid = await create_conversation(store, "carla", {"ttl": MIN_TTL}, ["hola", "adiós"])
        record = (await store.context()).keys.user("carla").archived(sid)[0]
        await until(lambda: seen)
        await until(lambda: store.client.hget(record, "zstd"))
    assert ran["read_archived"] == 0, ran
    assert ran["claim_delivery"] == 0, "claimed by the archive"
    assert ran["compact_archive"] == 1
    assert seen[0] == await store.get_archived_conversation("carla", sid)
    assert [m.content for m in seen[0].messages] == ["hola", "adiós"]


async def test_the_listener_reads_a_conversation_larger_than_a_page(
        async_stores: Callable[..., SessionStore], monkeypatch: pytest.MonkeyPatch) -> None:
    store = async_stores(page_size=2)
    seen: list[Any] = []
    ran = scripts_run(store, monkeypatch)
    listener = ExpiryListener(store, notifications=False, sweep_interval=0.05,
                              on_archived=seen.append)
    async with running(listener):
        sid = await create_conversation(store, "carla", {"ttl": MIN_TTL}, ["uno", "dos", "tres"])
        record = (await store.context()).keys.user("carla").archived(sid)[0]
        await until(lambda: seen)
        await until(lambda: store.client.hget(record, "zstd"))
    assert ran["read_archived"] >= 2, "delivered and compressed from reads"
    assert [m.content for m in seen[0].messages] == ["uno", "dos", "tres"]
    conversation = await store.get_archived_conversation("carla", sid)
    assert [m.content for m in conversation.messages] == ["uno", "dos", "tres"]


def test_a_held_conversation_is_compacted_in_one_call_and_read_again_when_it_changed(
) -> None:
    """`compact_held` swaps the frame in at once; when the archive is not what the caller
    holds (the swap refuses), it falls back to reading it."""
    from luminora_redis.core.keys import KeySpace
    from luminora_redis.ops import compaction

    user = KeySpace("lr", 16).user("carla")
    op = compaction.compact_held(user, "s1", (b"a", b"b"))
    step = next(op)
    assert isinstance(step, Call) and step.script == "compact_archive"
    assert step.args[:3] == (1, 0, 2)
    with pytest.raises(StopIteration) as done:
        op.send([1, 1])
    assert done.value.value == 1
    op = compaction.compact_held(user, "s1", (b"a", b"b"))
    next(op)
    step = op.send([-6])
    assert isinstance(step, (Call, Batch)) and getattr(step, "script", "") == "read_archived"


async def _outbox_entries(store: SessionStore, sids: list[str]) -> dict[str, tuple[float, int]]:
    """Each session's outbox entry: (its score less the server clock, ms; its attempts)."""
    ctx = await store.context()
    seconds, micros = await store.client.time()
    now = seconds * 1000 + micros // 1000
    found = {}
    for sid in sids:
        bucket = ctx.keys.bucket(ctx.keys.bucket_of_session(sid) or 0)
        score = await store.client.zscore(bucket.outbox, sid)
        body = await store.client.hget(bucket.bodies, sid)
        if score is not None and body is not None:
            found[sid] = (score - now, msgpack.unpackb(body)["attempts"])
    return found


async def test_stopping_lets_the_claims_of_queued_deliveries_go(
        async_stores: Callable[..., SessionStore]) -> None:
    """One worker is held in the hook; the other archives wait in its queue, claimed by
    their archive. Stopping lets those go: due at once, no attempt counted, and another
    listener delivers them well within the 60 s lease."""
    store = async_stores()
    release = asyncio.Event()
    began: list[str] = []

    async def held(conversation: Any) -> None:
        began.append(conversation.session_id)
        await release.wait()

    first = ExpiryListener(store, notifications=False, sweep_interval=0.05, on_archived=held,
                           delivery_workers=1, hook_timeout=30)
    async with running(first):
        sids = [await create_conversation(store, f"user-{n}", {"ttl": MIN_TTL}, ["hola"])
                for n in range(3)]
        await until(lambda: first.archived == 3 and began)
        queued = [sid for sid in sids if sid not in began]
        entries = await _outbox_entries(store, queued)
        assert all(ahead > 30_000 and attempts == 1 for ahead, attempts in entries.values()), (
            "claimed for the lease by the archive")
        first_stop = asyncio.create_task(first.stop())
        await until(lambda: first_stop.done() or not first._deliveries._open, timeout=10)
        release.set()
        await first_stop
    entries = await _outbox_entries(store, queued)
    assert len(entries) == 2
    assert all(ahead <= 0 and attempts == 0 for ahead, attempts in entries.values()), entries
    seen: list[str] = []
    async with running(ExpiryListener(store, notifications=False, sweep_interval=0.05,
                                      delivery_interval=0.05,
                                      on_archived=lambda c: seen.append(c.session_id))):
        await until(lambda: set(queued) <= set(seen), timeout=10)


async def test_an_archive_claims_its_delivery_only_while_the_queue_has_room(
        async_stores: Callable[..., SessionStore], monkeypatch: pytest.MonkeyPatch) -> None:
    """With room for two offers besides those under way, the first two archives claim
    their deliveries; later ones are recorded due, for any listener, and still reach this
    listener's sink."""
    monkeypatch.setattr(deliveries, "QUEUED", 4)
    monkeypatch.setattr(deliveries, "ROOM", 2)
    store = async_stores()
    held = HeldSink(lambda conversation: conversation.session_id)
    release, seen = held.release, held.seen
    listener = ExpiryListener(store, notifications=False, sweep_interval=0.05, on_archived=held,
                              delivery_workers=1, delivery_interval=0.2, hook_timeout=30)
    async with running(listener):
        sids = []
        for n in range(6):
            sids.append(await create_conversation(store, f"user-{n}", {"ttl": MIN_TTL}, ["x"]))
            await until(lambda: listener.archived == len(sids))
        entries = await _outbox_entries(store, sids)
        claimed = [sid for sid, (ahead, _) in entries.items() if ahead > 30_000]
        due = [sid for sid, (ahead, attempts) in entries.items() if ahead <= 0 and attempts == 0]
        assert len(claimed) == 3, entries  # one in the hook, two queued
        assert len(due) == 3, entries
        release.set()
        await until(lambda: len(seen) == 6, timeout=20)


async def test_a_claim_made_by_the_archive_is_extended_or_released_only_with_its_token(
        async_stores: Callable[..., SessionStore]) -> None:
    """The archive's claim ends at ``claimed_until``: another claim finds it held; the
    token extends it with no attempt counted; a release with another token writes
    nothing; with the token, the delivery is due at once, its attempt uncounted."""
    store = async_stores()
    sid = await create_conversation(store, "carla", {"ttl": 600}, ["hola"])
    archived = await store.run(archive.archive_due, sid, "end", False, 0, 60_000)
    assert isinstance(archived, archive.Archived) and archived.claimed_until > 0
    until_ms = archived.claimed_until
    assert await store.run(outbox.claim_delivery, sid, 60_000) is None, "held by the archive"
    assert not await store.run(outbox.release_delivery, sid, until_ms + 1)
    assert (await _outbox_entries(store, [sid]))[sid][1] == 1
    extended = await store.run(outbox.claim_delivery, sid, 60_000, until_ms)
    assert extended is not None and extended.attempts == 1, "extended, not a new attempt"
    assert not await store.run(outbox.release_delivery, sid, until_ms), "extended: not it"
    unclaimed = await store.run(archive.archive_due, await create_conversation(
        store, "carla", {"ttl": 600}, ["adiós"]), "end", False, 0, 0)
    assert unclaimed.claimed_until == 0
    other = await create_conversation(store, "carla", {"ttl": 600}, ["otra"])
    mine = await store.run(archive.archive_due, other, "end", False, 0, 60_000)
    assert await store.run(outbox.release_delivery, other, mine.claimed_until)
    ahead, attempts = (await _outbox_entries(store, [other]))[other]
    assert ahead <= 0 and attempts == 0
    claimed = await store.run(outbox.claim_delivery, other, 60_000)
    assert claimed is not None and claimed.attempts == 1


async def test_an_offer_that_waited_checks_its_claim_and_skips_an_erased_user(
        async_stores: Callable[..., SessionStore], monkeypatch: pytest.MonkeyPatch) -> None:
    """An offer claimed at its archive that waited (here: any wait) extends its claim
    before the hook: the hook gets it once; an erased user's conversation, gone from the
    outbox meanwhile, never reaches the hook."""
    from luminora_redis.listener import delivery_attempts

    monkeypatch.setattr(delivery_attempts, "FRESH", -1.0)
    store = async_stores()
    ran = scripts_run(store, monkeypatch)
    held = HeldSink(lambda conversation: conversation.user_id)
    release, seen = held.release, held.seen
    listener = ExpiryListener(store, notifications=False, sweep_interval=0.05, on_archived=held,
                              delivery_workers=1, hook_timeout=30)
    async with running(listener):
        await create_conversation(store, "kept", {"ttl": MIN_TTL}, ["hola"])
        await until(lambda: listener.archived == 1)
        await create_conversation(store, "erased", {"ttl": MIN_TTL}, ["hola"])
        await until(lambda: listener.archived == 2)
        await store.erase_user("erased")
        release.set()
        # Both offers went through a claim, and no delivery is in flight any more.
        await until(lambda: ran["claim_delivery"] >= 2 and seen
                    and not listener._deliveries._inflight)
    assert seen == ["kept"]


def test_an_archive_claims_ahead_only_when_the_lease_outlasts_the_attempt() -> None:
    from luminora_redis.listener.delivery_attempts import Attempts

    def attempts(hook: Any, summarize: Any, timeout: float | None) -> bool:
        lease_ms = Attempts(None, hook, summarize, lease=60, hook_timeout=timeout, workers=1,  # type: ignore[arg-type]
                            backoff_base=1, backoff_cap=1, max_attempts=None, observer=None,
                            on_error=lambda: None, reoffer=lambda sid: None).claim_ahead_ms
        assert lease_ms in (0, 60_000), "the whole lease, or no claim"
        return lease_ms > 0

    assert attempts(print, None, 30)
    assert not attempts(print, print, 30), "summarize and the hook: two calls of 30 s"
    assert attempts(print, print, 20)
    assert not attempts(print, None, None), "no time limit: the lease may not outlast it"
