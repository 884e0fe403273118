"""The archive hands back what it archived: a conversation of at most a page (and no
segment) comes back in the archive script's own reply, equal to what reading it back
gives, so the listener delivers and compresses it without reading it again. Larger ones,
and those with segments, are read as before. On a real server and on the cluster."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from luminora_redis import SessionStore
from luminora_redis.core.scripts import Batch, Call
from luminora_redis.listener.expiry_listener import ExpiryListener
from luminora_redis.ops import archive

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
