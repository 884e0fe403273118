"""Reads return everything, or say what they could not read: an archived conversation
counts the messages it lacks; episode and session listings page by a cursor that
holds under deletes and inserts between pages; a peek counts every message; and
reads that grow with a user's lifetime go in bounded script replies. Both shells,
single server and cluster, with small pages so that every read takes several."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Generator
from typing import Any

import msgpack
import pytest

import luminora_redis
from luminora_redis import InvalidInput
from luminora_redis.compat.luminoracore import RedisStorageV11
from luminora_redis.core import codec, frames
from luminora_redis.core.scripts import Batch, Call

from conftest import server_ms, session_keys, user_keys

LONG = {"ttl": 600, "max_idle": 300}
PAGE = 3


class Watch:
    """Every script reply the store's operations receive, by script; and actions to run
    once, right after the first reply of a given script (between two pages)."""

    def __init__(self, store: Any) -> None:
        runner = getattr(store, "inner", store)._runner
        self.replies: list[tuple[str, Any]] = []
        self.hooks: dict[str, Callable[[], None]] = {}
        drive = runner.drive
        runner.drive = lambda op: drive(self._watch(op))

    def after_first(self, script: str, action: Callable[[], None]) -> None:
        self.hooks[script] = action

    def of(self, script: str) -> list[Any]:
        return [reply for name, reply in self.replies if name == script]

    def _watch(self, op: Generator[Any, Any, Any]) -> Generator[Any, Any, Any]:
        try:
            step = next(op)
        except StopIteration as done:
            return done.value
        while True:
            try:
                reply = yield step
            except Exception as error:
                try:
                    step = op.throw(error)
                except StopIteration as done:
                    return done.value
                continue
            assert isinstance(step, (Call, Batch))
            calls = [step] if isinstance(step, Call) else list(step.calls)
            replies = [reply] if isinstance(step, Call) else reply
            for call, one in zip(calls, replies):
                self.replies.append((call.script, one))
                action = self.hooks.pop(call.script, None)
                if action is not None:
                    action()
            try:
                step = op.send(reply)
            except StopIteration as done:
                return done.value


def contents(messages: list[Any]) -> list[str]:
    return [message.content for message in messages]


@pytest.fixture
def paged(make_store: Callable[..., Any]) -> Any:
    return make_store(page_size=PAGE, max_history=3, max_overflow=4)


# -- an archived conversation that cannot be read whole says so --------------------------


def test_an_unreadable_archived_record_is_counted_and_the_rest_still_read(
        make_store: Callable[..., Any], raw: Any) -> None:
    store = make_store(compress_archives=False, page_size=PAGE)
    sid = store.create_session("carlos", "alicia", LONG)
    store.chat_turn(sid, [("user", f"m{n}") for n in range(6)])
    clean = store.create_session("carlos", "alicia", LONG)
    store.chat_turn(clean, [("user", "fine")])
    assert store.end_session(sid) and store.end_session(clean)
    raw.lset(user_keys("carlos").archived(sid)[1], 2, b"\xc1 not msgpack")
    before = luminora_redis.unreadable_records_total()
    conversations = {c.session_id: c for c in store.get_archived_conversations("carlos")}
    assert luminora_redis.unreadable_records_total() == before + 1
    broken = conversations[sid]
    assert contents(broken.messages) == ["m0", "m1", "m3", "m4", "m5"]
    assert (broken.message_count, broken.unreadable_messages) == (6, 1)
    assert conversations[clean].unreadable_messages == 0
    one = store.get_archived_conversation("carlos", sid)
    assert one.unreadable_messages == 1 and contents(one.messages) == contents(broken.messages)
    assert codec.unreadable_records() == luminora_redis.unreadable_records_total()  # old name
    exported = store.export_user("carlos")["archived_conversations"]
    assert sorted(c["unreadable_messages"] for c in exported) == [0, 1]


def test_an_unreadable_frame_counts_the_messages_it_held(paged: Any, raw: Any) -> None:
    sid = paged.create_session("carlos", "alicia", LONG)
    for n in range(15):
        paged.chat_turn(sid, [("user", f"m{n}")])
    assert paged.end_session(sid)
    segment = user_keys("carlos").segment(sid, 1)
    assert raw.type(segment) == b"string", "segment 1 is a zstd frame"
    held = len(frames.unpack_frame(raw.get(segment)))
    assert held > 0
    raw.set(segment, b"\x28\xb5\x2f\xfd not a frame")
    before = luminora_redis.unreadable_records_total()
    (conversation,) = paged.get_archived_conversations("carlos")
    assert luminora_redis.unreadable_records_total() == before + 1
    assert conversation.message_count == 15
    assert conversation.unreadable_messages == held
    assert contents(conversation.messages) == [f"m{n}" for n in range(held, 15)]


def test_an_archived_list_gone_is_counted(make_store: Callable[..., Any], raw: Any) -> None:
    store = make_store(compress_archives=False, max_history=3)
    sid = store.create_session("carlos", "alicia", LONG)
    store.chat_turn(sid, [("user", f"m{n}") for n in range(5)])
    assert store.end_session(sid)
    raw.delete(user_keys("carlos").archived(sid)[2])  # the archived overflow: m0, m1
    conversation = store.get_archived_conversation("carlos", sid)
    assert contents(conversation.messages) == ["m2", "m3", "m4"]
    assert conversation.unreadable_messages == 2


# -- episodes page by (importance, id) ---------------------------------------------------


def _order(raw: Any) -> list[str]:
    return [member.decode() for member in raw.zrevrange(user_keys("carlos").episodes, 0, -1)]


def _save(store: Any, count: int, ties: bool) -> None:
    for n in range(count):
        store.save_episode("carlos", "moment", f"t{n}", "s", importance=5.0 if ties else n % 3)


@pytest.mark.parametrize("ties", [True, False], ids=["one-importance", "three-importances"])
def test_episodes_deleted_between_pages_skip_nothing(paged: Any, raw: Any, ties: bool) -> None:
    _save(paged, 10, ties)
    order = _order(raw)
    cursor, unread = order[PAGE - 1], order[PAGE + 1]
    user = user_keys("carlos")

    def delete() -> None:
        for gone in (cursor, unread):
            raw.zrem(user.episodes, gone)
            raw.hdel(user.episode_bodies, gone)

    watch = Watch(paged)
    watch.after_first("range_zset", delete)
    listed = [episode.episode_id for episode in paged.get_episodes("carlos")]
    assert listed == [i for i in order if i != unread]
    assert len(watch.of("range_zset")) >= 3
    assert max(len(reply) - 3 for reply in watch.of("range_zset")) <= PAGE


@pytest.mark.parametrize("ties", [True, False], ids=["one-importance", "three-importances"])
def test_episodes_saved_between_pages_are_listed_once_below_the_cursor(
        paged: Any, raw: Any, ties: bool) -> None:
    _save(paged, 8, ties)
    order = _order(raw)
    cursor = order[PAGE - 1]
    user = user_keys("carlos")
    importance = raw.zscore(user.episodes, cursor)
    # Same importance as the cursor, an id just above it and one just below it.
    above, below = cursor + "~", cursor[:-1] + chr(ord(cursor[-1]) - 1)

    def insert() -> None:
        for episode_id in (above, below):
            body = msgpack.packb([episode_id, "moment", episode_id, "s", importance, "neutral",
                                  None, server_ms(raw)])
            raw.zadd(user.episodes, {episode_id: importance})
            raw.hset(user.episode_bodies, episode_id, body)

    watch = Watch(paged)
    watch.after_first("range_zset", insert)
    listed = [episode.episode_id for episode in paged.get_episodes("carlos")]
    now = _order(raw)
    assert listed == order[:PAGE] + now[now.index(cursor) + 1:]
    assert below in listed and above not in listed
    assert len(listed) == len(set(listed)) == len(order) + 1


def test_an_export_lists_every_episode_when_one_is_deleted_between_pages(
        paged: Any, raw: Any) -> None:
    _save(paged, 8, ties=True)
    order = _order(raw)
    user = user_keys("carlos")
    watch = Watch(paged)
    watch.after_first("range_zset", lambda: (raw.zrem(user.episodes, order[PAGE - 1]),
                                               raw.hdel(user.episode_bodies, order[PAGE - 1])))
    exported = [episode["episode_id"] for episode in paged.export_user("carlos")["episodes"]]
    assert exported == order


# -- sessions page by (creation time, id) ------------------------------------------------


def test_a_users_sessions_are_listed_whole_in_bounded_pages(paged: Any, raw: Any) -> None:
    sids = [paged.create_session("carlos", "alicia", LONG) for _ in range(8)]
    ordered = [member.decode() for member in raw.zrange(user_keys("carlos").sessions, 0, -1)]
    assert sorted(ordered) == sorted(sids)
    cursor = ordered[PAGE - 1]

    def end_the_cursor() -> None:  # as archiving does: out of the set, session keys gone
        raw.zrem(user_keys("carlos").sessions, cursor)
        raw.delete(*session_keys(cursor)[:2])

    watch = Watch(paged)
    watch.after_first("range_zset", end_the_cursor)
    listed = [session.session_id for session in paged.list_user_sessions("carlos")]
    assert listed == [sid for sid in ordered if sid != cursor]
    assert len(watch.of("range_zset")) >= 3
    assert max(len(reply) - 3 for reply in watch.of("range_zset")) <= PAGE
    assert max(len(reply) for reply in watch.of("get_sessions")) <= PAGE

    watch = Watch(paged)
    indexed = paged.list_sessions(user_id="carlos", limit=100)
    assert sorted(entry.session_id for entry in indexed) == sorted(listed)
    assert max(len(reply) for reply in watch.of("read_hashes")) <= PAGE
    exported = paged.export_user("carlos")["sessions"]
    assert sorted(session["session_id"] for session in exported) == sorted(listed)


def test_list_archive_of_everything_reads_in_pages(paged: Any) -> None:
    ended = []
    for n in range(8):
        sid = paged.create_session("carlos", "alicia", LONG)
        paged.chat_turn(sid, [("user", f"c{n}")] * (n + 1))
        assert paged.end_session(sid)
        ended.append(sid)
    watch = Watch(paged)
    summaries = paged.list_archive("carlos", limit=None)
    assert [s.session_id for s in summaries] == ended[::-1]
    assert [s.message_count for s in summaries] == list(range(8, 0, -1))
    assert [s.session_id for s in paged.list_archive("carlos", limit=5)] == ended[::-1][:5]
    assert paged.list_archive("carlos", limit=0) == []
    assert len(watch.of("list_archive")) >= 3
    # the same cursor as get_archived_conversations: the last session id of a page
    pages, before = [], None
    while page := paged.list_archive("carlos", limit=3, before=before):
        pages.append([s.session_id for s in page])
        before = page[-1].session_id
    assert pages == [ended[::-1][:3], ended[::-1][3:6], ended[::-1][6:]]
    assert [s.session_id for s in paged.list_archive("carlos", None, ended[4])] == \
        ended[:4][::-1]
    with pytest.raises(InvalidInput, match="before"):
        paged.list_archive("carlos", before="not a session id")
    assert max(len(reply) for reply in watch.of("list_archive")) <= PAGE
    assert max(len(reply) for reply in watch.of("read_hashes")) <= PAGE


def test_an_export_lists_every_archived_conversation_while_the_oldest_is_trimmed(
        paged: Any, raw: Any) -> None:
    ended = []
    for n in range(7):
        sid = paged.create_session("carlos", "alicia", LONG)
        paged.chat_turn(sid, [("user", f"c{n}")])
        assert paged.end_session(sid)
        ended.append(sid)
    watch = Watch(paged)
    # Retention between two pages: the oldest conversation leaves the archive.
    watch.after_first("list_archive", lambda: raw.zrem(user_keys("carlos").archive, ended[0]))
    exported = paged.export_user("carlos")["archived_conversations"]
    assert [c["session_id"] for c in exported] == ended[1:]
    assert max(len(reply) for reply in watch.of("list_archive")) <= PAGE


# -- a peek counts every message ---------------------------------------------------------


def test_a_peek_counts_and_shows_messages_held_in_segments(paged: Any, raw: Any) -> None:
    sid = paged.create_session("carlos", "alicia", LONG)
    for n in range(20):
        paged.chat_turn(sid, [("user", f"m{n}")])
    meta = raw.hgetall(session_keys(sid).meta)
    assert int(meta[b"segs"]) >= 2 and int(meta[b"base"]) >= 8, "older messages are in segments"
    before = paged.get_session(sid)
    watch = Watch(paged)
    view = paged.peek_session(sid, last=2)
    assert view.message_count == 20
    assert contents(view.tail) == ["m18", "m19"]
    assert [name for name, _ in watch.replies].count("read_history") == 0
    assert contents(paged.peek_session(sid, last=20).tail) == [f"m{n}" for n in range(20)]
    assert contents(paged.peek_session(sid, last=13).tail) == [f"m{n}" for n in range(7, 20)]
    assert contents(paged.peek_session(sid, last=50).tail) == [f"m{n}" for n in range(20)]
    assert max(len(reply) - 4 for reply in watch.of("peek_history")) <= PAGE
    assert max(len(reply) - 3 for reply in watch.of("read_history")) <= PAGE
    assert paged.get_session(sid).last_activity == before.last_activity


# -- the LuminoraCore adapter reads facts and episodes in pages ----------------------------


@pytest.fixture
async def storage(store_url: str, topology: str) -> AsyncIterator[RedisStorageV11]:
    adapter = RedisStorageV11.from_url(store_url, cluster=topology == "cluster", page_size=PAGE)
    yield adapter
    await adapter.aclose()


async def test_the_adapter_reads_facts_and_episodes_in_bounded_pages(
        storage: RedisStorageV11) -> None:
    count = 40
    # Values longer than 64 bytes: Redis keeps the hashes in their full encoding, where an
    # HSCAN step returns about COUNT fields (a compact hash comes back whole, <= 128 fields).
    for n in range(count):
        await storage.save_fact("carlos", "likes", f"k{n}", "x" * 80 + str(n), source=n)
        await storage.save_episode("carlos", "moment", f"t{n}", "s" * 80, n % 10, "positive",
                                   order=n)
    watch = Watch(storage.store)
    facts = await storage.get_facts("carlos")
    assert [(f["key"], f["source"]) for f in facts] == [(f"k{n}", n) for n in range(count)]
    episodes = await storage.get_episodes("carlos")
    assert [(e["title"], e["order"]) for e in episodes] == [(f"t{n}", n) for n in range(count)]
    assert len(await storage.get_episodes("carlos", min_importance=5)) == count // 2
    steps = watch.of("compat_scan")
    assert len(steps) >= 4
    assert max((len(reply) - 1) // 3 for reply in steps) < count // 2
    # read_hashes is left with the fixed-field hashes (alias records, moods).
    assert all(len(flat) <= 16 for reply in watch.of("read_hashes") for flat in reply)
