"""Archived conversations compressed into zstd frames: read back equal, written only
when nothing changed, old list archives readable and upgraded, erased and trimmed whole."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import msgpack
import pytest

from luminora_redis import SessionStore
from luminora_redis.core import codec, frames
from luminora_redis.core.errors import ReplyCode
from luminora_redis.core.scripts import Call
from luminora_redis.io.server_identity import scripts_blocking
from luminora_redis.io.sync_runner import SyncRunner
from luminora_redis.listener.expiry_listener import ExpiryListener
from luminora_redis.migration.layout import upgrade_layout
from luminora_redis.ops import compaction

from conftest import snapshot, until, user_keys
from listener_support import MIN_TTL, create_conversation, flags_restored, running

LONG = {"ttl": 60, "max_idle": 30}
#: Small bounds, so that a conversation of a few turns has segments.
BOUNDS = {"max_history": 3, "max_overflow": 4, "page_size": 5}


def _chat(store: Any, user_id: str, turns: int) -> tuple[str, list[Any]]:
    """A session of ``turns`` varied turns, still live; its id and its whole history."""
    session_id = store.create_session(user_id, "alicia", LONG)
    for n in range(turns):
        store.chat_turn(session_id, [
            ("user", f"¿qué tal? turno {n} 🙂"),
            ("assistant", f"muy bien, gracias, turn {n}" * (n % 3 + 1))], last=1)
        if n % 4 == 0:
            store.append_message(session_id, "system", "", metadata={"n": n, "tags": ["x", 1.5]})
    return session_id, store.get_history(session_id, last=None)


def _key_types(raw: Any, user_id: str, session_id: str, segs: int) -> dict[str, bytes]:
    record, history, overflow = user_keys(user_id).archived(session_id)
    names = {"h": history, "o": overflow,
             **{f"g{n}": user_keys(user_id).segment(session_id, n) for n in range(1, segs + 1)}}
    return {name: raw.type(key) for name, key in names.items()}


def test_a_compressed_archive_reads_back_the_conversation(make_store: Callable[..., Any],
                                                          raw: Any) -> None:
    store = make_store(**BOUNDS)
    session_id, history = _chat(store, "carlos", 9)
    assert store.end_session(session_id)
    record = user_keys("carlos").archived(session_id)[0]
    segs = int(raw.hget(record, "segs"))
    assert segs >= 2
    assert int(raw.hget(record, "zstd")) == segs + 1  # every segment and the tail
    types = _key_types(raw, "carlos", session_id, segs)
    assert types.pop("o") == b"none" and set(types.values()) == {b"string"}
    conversation = store.get_archived_conversation("carlos", session_id)
    assert conversation.messages == history  # roles, contents, metadata, timestamps, order
    assert conversation.message_count == len(history) == 9 * 2 + 3
    (listed,) = store.get_archived_conversations("carlos")
    assert listed.messages == history
    exported = store.export_user("carlos")["archived_conversations"]
    assert [m["content"] for m in exported[0]["messages"]] == [m.content for m in history]


def test_an_empty_conversation_compacts_to_no_key(make_store: Callable[..., Any],
                                                  raw: Any) -> None:
    store = make_store()
    session_id = store.create_session("carlos", "alicia", LONG)
    assert store.end_session(session_id)
    record, history, overflow = user_keys("carlos").archived(session_id)
    assert raw.hget(record, "zstd") == b"1" and raw.exists(history, overflow) == 0
    assert store.get_archived_conversation("carlos", session_id).messages == []


def test_old_list_archives_stay_readable_and_the_upgrade_compacts_them(
        make_store: Callable[..., Any], raw: Any) -> None:
    old = make_store(compress_archives=False, **BOUNDS)
    long_id, long_history = _chat(old, "carlos", 7)
    short_id, short_history = _chat(old, "carlos", 1)
    for session_id in (long_id, short_id):
        assert old.end_session(session_id)
    record = user_keys("carlos").archived(long_id)[0]
    segs = int(raw.hget(record, "segs"))
    assert raw.hget(record, "zstd") is None
    types = _key_types(raw, "carlos", long_id, segs)
    assert types.pop("o") in (b"list", b"none") and set(types.values()) == {b"list"}
    before = {sid: old.get_archived_conversation("carlos", sid) for sid in (long_id, short_id)}
    assert before[long_id].messages == long_history
    assert before[short_id].messages == short_history

    raw.hset("lr:layout", "version", 1)  # as a version 1 keyspace holds them
    done = upgrade_layout(raw, "lr")
    assert done.steps == (1,)
    assert int(raw.hget(record, "zstd")) == segs + 1
    assert set(_key_types(raw, "carlos", long_id, segs).values()) <= {b"string", b"none"}
    after = make_store()
    for session_id, conversation in before.items():
        assert after.get_archived_conversation("carlos", session_id) == conversation
    assert after.compact_archives("carlos") == 0  # nothing left to do


def test_compact_archives_compresses_what_was_archived_uncompressed(
        make_store: Callable[..., Any], raw: Any) -> None:
    old = make_store(compress_archives=False, **BOUNDS)
    session_id, history = _chat(old, "carlos", 5)
    old.end_session(session_id)
    segs = int(raw.hget(user_keys("carlos").archived(session_id)[0], "segs"))
    assert old.compact_archives("carlos") == segs + 1
    assert old.get_archived_conversation("carlos", session_id).messages == history


def _runner(raw: Any) -> SyncRunner:
    return SyncRunner(raw, scripts_blocking(raw))


def test_a_compaction_racing_a_change_writes_nothing(make_store: Callable[..., Any],
                                                     raw: Any) -> None:
    store = make_store(compress_archives=False)
    session_id, history = _chat(store, "carlos", 3)
    store.end_session(session_id)
    user = user_keys("carlos")
    record, archived_history, overflow = user.archived(session_id)
    runner = _runner(raw)
    op = compaction.compact_conversation(user, session_id)
    step, swaps = next(op), []
    while True:
        if isinstance(step, Call) and step.script == "compact_archive":
            if not swaps:  # the list changes between the read and the swap
                extra = raw.lindex(archived_history, 0)
                raw.rpush(archived_history, extra)
                history = [*history, history[0]]
                before = snapshot(raw) if not hasattr(raw, "get_nodes") else None
                reply = runner.call(step)
                assert reply == [ReplyCode.CHANGED]
                if before is not None:
                    assert snapshot(raw) == before  # nothing written
                assert raw.type(archived_history) == b"list" and raw.hget(record, "zstd") is None
            else:
                reply = runner.call(step)
            swaps.append(reply)
        else:
            reply = runner.call(step) if isinstance(step, Call) else runner.batch(step.calls)
        try:
            step = op.send(reply)
        except StopIteration as done:
            assert done.value == 1
            break
    assert swaps[-1][0] == ReplyCode.OK  # read again, then swapped
    assert raw.type(archived_history) == b"string"
    assert store.get_archived_conversation("carlos", session_id).messages == history


def test_compact_archive_refuses_stale_counts(make_store: Callable[..., Any], raw: Any) -> None:
    store = make_store(compress_archives=False)
    session_id, _ = _chat(store, "carlos", 2)
    store.end_session(session_id)
    record, history, overflow = user_keys("carlos").archived(session_id)
    length = raw.llen(history)
    runner = _runner(raw)
    frame = frames.pack_frame(raw.lrange(history, 0, -1))
    keys = (record, history, overflow)
    assert runner.call(Call("compact_archive", keys, (1, 1, length, frame)))[0] == ReplyCode.STALE  # segs
    assert runner.call(Call("compact_archive", keys, (2, 0, length, frame)))[0] == ReplyCode.STALE  # unit
    assert runner.call(Call("compact_archive", keys, (1, 0, length + 1, frame))) == [ReplyCode.CHANGED]
    assert raw.type(history) == b"list" and raw.hget(record, "zstd") is None
    assert runner.call(Call("compact_archive", keys, (1, 0, length, frame))) == [ReplyCode.OK, 1]
    assert runner.call(Call("compact_archive", keys, (1, 0, length, frame))) == [ReplyCode.NOT_FOUND]
    raw.delete(record)
    assert runner.call(Call("compact_archive", keys, (2, 0, 0, b""))) == [ReplyCode.NOT_FOUND]


def test_erase_and_retention_remove_compressed_conversations(make_store: Callable[..., Any],
                                                              raw: Any) -> None:
    # Without deliveries: with them, retention waits for the sink (test_deliveries.py).
    store = make_store(archive_retention=1, deliveries=False, **BOUNDS)
    first, _ = _chat(store, "carlos", 6)
    store.end_session(first)
    first_keys = [*user_keys("carlos").archived(first), user_keys("carlos").segment(first, 1)]
    assert raw.type(first_keys[-1]) == b"string"
    second, history = _chat(store, "carlos", 6)
    store.end_session(second)
    assert raw.exists(*first_keys) == 0  # trimmed with its frames
    assert [c.messages for c in store.get_archived_conversations("carlos")] == [history]
    _chat(store, "ana", 1)
    assert store.erase_user("carlos") > 0
    assert [key for key in raw.scan_iter(match="*carlos*")] == []
    assert store.get_user("ana") is not None


def test_an_unreadable_frame_spoils_only_itself(make_store: Callable[..., Any], raw: Any,
                                                caplog: pytest.LogCaptureFixture) -> None:
    store = make_store()
    broken, _ = _chat(store, "carlos", 2)
    store.end_session(broken)
    fine, history = _chat(store, "carlos", 2)
    store.end_session(fine)
    raw.set(user_keys("carlos").archived(broken)[1], b"\x28\xb5\x2f\xfd not a frame")
    skipped = codec.unreadable_records()
    with caplog.at_level(logging.WARNING, logger="luminora_redis.codec"):
        conversations = {c.session_id: c for c in store.get_archived_conversations("carlos")}
    assert conversations[broken].messages == [] and conversations[fine].messages == history
    assert codec.unreadable_records() > skipped


def test_frames_keep_records_that_are_not_plain_messages() -> None:
    plain = [msgpack.packb(["user", "hola", None, 1_700_000_000_000 + n]) for n in range(3)]
    odd = [*plain, msgpack.packb({1: "int map key"}), b"\xc1"]
    assert frames.unpack_frame(frames.pack_frame(odd)) == odd  # stored as they were
    assert [codec.decode_message(raw) for raw in frames.unpack_frame(frames.pack_frame(plain))] \
        == [codec.decode_message(raw) for raw in plain]


@pytest.mark.single_server
async def test_the_listener_compresses_what_it_archives(store_url: str, redis_server: Any) -> None:
    store = SessionStore.from_url(store_url)
    seen: list[Any] = []
    try:
        with flags_restored([redis_server]):
            async with running(ExpiryListener(store, on_archived=seen.append)):
                session_id = await create_conversation(store, "carlos", {"ttl": MIN_TTL},
                                                       ["hola", "¡hola!"])
                record = user_keys("carlos").archived(session_id)[0]
                await until(lambda: store.client.hget(record, "zstd"))
                await until(lambda: seen)
        assert [m.content for m in seen[0].messages] == ["hola", "¡hola!"]
        assert await store.client.type(record + ":h") == b"string"
        conversation = await store.get_archived_conversation("carlos", session_id)
        assert [m.content for m in conversation.messages] == ["hola", "¡hola!"]
    finally:
        await store.aclose()
