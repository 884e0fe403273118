"""Bounded, paged reads: every item once, in order, across pages; caps apply; and no
single script reply carries more than a page. Both shells, single server and cluster."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
import redis

from luminora_redis import InvalidInput
from luminora_redis.core.keys import KeySpace
from luminora_redis.core.scripts import Batch, Call
from luminora_redis.ops import archive_reads, memory

from conftest import wait_until

USERS = KeySpace("lr", 1024)
LONG = {"ttl": 60, "max_idle": 30}
PAGE = 3


def contents(messages: list[Any]) -> list[str]:
    return [message.content for message in messages]


def leaves(reply: Any) -> int:
    """How many strings a reply carries, at any depth: messages, records, ids."""
    if isinstance(reply, bytes):
        return 1
    if isinstance(reply, list):
        return sum(leaves(item) for item in reply)
    return 0


class Replies:
    """Records the size of every script reply an operation receives, by script."""

    def __init__(self, store: Any) -> None:
        inner = getattr(store, "inner", store)
        self.sizes: list[tuple[str, int]] = []
        runner = inner._runner
        drive = runner.drive
        runner.drive = lambda op: drive(self._record(op))

    def _record(self, op: Generator[Any, Any, Any]) -> Generator[Any, Any, Any]:
        step = next(op)
        while True:
            try:
                reply = yield step
            except Exception as error:
                step = op.throw(error)
                continue
            calls = [step] if isinstance(step, Call) else list(step.calls)
            replies = [reply] if isinstance(step, Call) else reply
            assert isinstance(step, (Call, Batch))
            self.sizes.extend((call.script, leaves(one)) for call, one in zip(calls, replies))
            try:
                step = op.send(reply)
            except StopIteration as done:
                return done.value

    def largest(self, *scripts: str) -> int:
        return max(size for script, size in self.sizes if script in scripts)


@pytest.fixture
def paged(make_store: Any) -> Any:
    return make_store(max_history=3, max_overflow=4, page_size=PAGE)


def test_no_script_reply_carries_more_than_a_page(paged: Any) -> None:
    replies = Replies(paged)
    session_id = paged.create_session("carlos", "alicia", LONG)
    for n in range(40):
        paged.chat_turn(session_id, [("user", f"m{n}")], last=2)
    for n in range(12):
        paged.update_affinity("carlos", "alicia" if n % 3 else "bruno", 1)
        paged.save_episode("carlos", "moment", f"t{n}", "s", importance=float(n % 4))
    assert len(paged.get_history(session_id)) == 40
    assert len(paged.get_evolution("carlos", personality_name="bruno", limit=4)) == 4
    assert len(paged.get_evolution("carlos")) == 12
    assert len(paged.get_episodes("carlos")) == 12
    paged.end_session(session_id)
    (conversation,) = paged.get_archived_conversations("carlos")
    assert len(conversation.messages) == 40
    # A record hash (7 fields) and at most one zstd frame (one segment, or the tail)
    # ride along with an archived page; nothing else does.
    assert replies.largest("chat_turn", "read_history") <= PAGE
    assert replies.largest("read_archived") <= PAGE + 7 + 1
    assert replies.largest("get_evolution") <= PAGE + 2
    assert replies.largest("range_zset") <= PAGE + 2  # the cursor: importance and id


def test_history_pages_return_every_message_once_in_order(paged: Any) -> None:
    session_id = paged.create_session("carlos", "alicia", LONG)
    sent = [f"m{n}" for n in range(17)]
    for text in sent:
        paged.chat_turn(session_id, [("user", text)])
    assert contents(paged.get_history(session_id)) == sent
    assert contents(paged.get_history(session_id, last=10)) == sent[-10:]


def test_the_archive_pages_newest_first_with_a_cursor(paged: Any) -> None:
    ended = []
    for n in range(7):
        session_id = paged.create_session("carlos", "alicia", LONG)
        paged.chat_turn(session_id, [("user", f"c{n}-{k}") for k in range(n + 1)])
        paged.end_session(session_id)
        ended.append(session_id)
    seen, before = [], None
    while True:
        page = paged.get_archived_conversations("carlos", limit=3, before=before)
        assert len(page) <= 3
        if not page:
            break
        seen.extend(page)
        before = page[-1].session_id
    assert [c.session_id for c in seen] == ended[::-1]
    for conversation, n in zip(seen, range(6, -1, -1)):
        assert contents(conversation.messages) == [f"c{n}-{k}" for k in range(n + 1)]
    assert paged.get_archived_conversations("carlos", limit=0) == []
    with pytest.raises(InvalidInput):
        paged.get_archived_conversations("carlos", before="not a session id")


def test_the_archive_listing_has_a_cap(paged: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive_reads, "MAX_LIST", 4)
    for _ in range(6):
        paged.end_session(paged.create_session("carlos", "alicia", LONG))
    assert len(paged.get_archived_conversations("carlos", limit=None)) == 4
    assert len(paged.get_archived_conversations("carlos", limit=50)) == 4
    assert len(paged.get_archived_conversations("carlos", limit=2)) == 2


def test_one_archived_conversation_reads_fully_by_pages(paged: Any) -> None:
    session_id = paged.create_session("carlos", "alicia", LONG)
    paged.chat_turn(session_id, [("user", f"m{n}") for n in range(11)])
    paged.end_session(session_id)
    conversation = paged.get_archived_conversation("carlos", session_id)
    assert conversation is not None
    assert contents(conversation.messages) == [f"m{n}" for n in range(11)]
    assert paged.get_archived_conversation("maria", session_id) is None
    assert paged.get_archived_conversation("carlos", "nope") is None


def test_evolution_filters_before_limiting(paged: Any) -> None:
    for n in range(20):
        paged.update_affinity("carlos", "alicia" if n % 5 == 0 else "bruno", n)
    alicia = paged.get_evolution("carlos", personality_name="alicia", limit=3)
    assert [e.points_delta for e in alicia] == [5, 10, 15]
    assert [e.points_delta for e in paged.get_evolution("carlos", personality_name="alicia",
                                                         limit=10)] == [0, 5, 10, 15]
    bruno = paged.get_evolution("carlos", personality_name="bruno", limit=7)
    assert [e.points_delta for e in bruno] == [11, 12, 13, 14, 16, 17, 18, 19][-7:]
    assert paged.get_evolution("carlos", personality_name="nadie", limit=5) == []


def test_evolution_pages_forward_with_a_sequence_cursor(paged: Any) -> None:
    for n in range(11):
        paged.update_affinity("carlos", "alicia" if n % 2 else "bruno", n)
    seen: list[int] = []
    after = 0
    while True:
        page = paged.get_evolution("carlos", limit=4, after=after)
        if not page:
            break
        seen.extend(e.points_delta for e in page)
        after = page[-1].sequence
    assert seen == list(range(11))
    odd = paged.get_evolution("carlos", personality_name="alicia", limit=2, after=0)
    assert [e.points_delta for e in odd] == [1, 3]


def test_evolution_has_a_cap(paged: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """``limit=None`` reads up to the cap, which also bounds a larger limit; ``after``
    pages on past it."""
    monkeypatch.setattr(memory, "MAX_EVOLUTION", 5)
    for n in range(8):
        paged.update_affinity("carlos", "alicia", n)
    assert [e.points_delta for e in paged.get_evolution("carlos")] == [3, 4, 5, 6, 7]
    assert [e.points_delta for e in paged.get_evolution("carlos", limit=8)] == [3, 4, 5, 6, 7]
    first = paged.get_evolution("carlos", limit=8, after=0)
    rest = paged.get_evolution("carlos", after=first[-1].sequence)
    assert [e.points_delta for e in first + rest] == list(range(8))


def test_episodes_page_in_importance_order_with_ties(paged: Any, raw: redis.Redis) -> None:
    saved = [paged.save_episode("carlos", "moment", f"t{n}", "s", importance=float(n % 3))
             for n in range(10)]
    by_id = {episode.episode_id: episode for episode in saved}
    order = [raw_id.decode() for raw_id in raw.zrevrange(USERS.user("carlos").episodes, 0, -1)]
    episodes = paged.get_episodes("carlos")
    assert [e.episode_id for e in episodes] == order
    assert set(order) == set(by_id)
    assert [e.episode_id for e in paged.get_episodes("carlos", limit=4)] == order[:4]
    floor = paged.get_episodes("carlos", min_importance=1.0)
    assert [e.episode_id for e in floor] == [i for i in order if by_id[i].importance >= 1.0]


def test_facts_are_read_by_pages_each_once(paged: Any) -> None:
    for n in range(150):
        paged.save_fact("carlos", "likes" if n % 2 else "knows", f"k{n}", {"n": n})
    facts = paged.get_facts("carlos")
    assert sorted(f.key for f in facts) == sorted(f"k{n}" for n in range(150))
    assert len(paged.get_facts("carlos", category="likes")) == 75


def test_expired_sessions_are_capped(paged: Any) -> None:
    short = [paged.create_session("carlos", "alicia", {"ttl": 0.05}) for _ in range(3)]
    wait_until(lambda: all(paged.is_session_expired(s) for s in short), timeout=5)
    assert sorted(paged.get_expired_sessions()) == sorted(short)
    assert len(paged.get_expired_sessions(limit=2)) == 2
    assert paged.get_expired_sessions(limit=0) == []
    assert sorted(paged.get_expired_sessions(limit=None)) == sorted(short)
    with pytest.raises(InvalidInput):
        paged.get_expired_sessions(limit=-1)
