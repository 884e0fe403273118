"""Recall on reconnect against a real Redis, in both shells, on a server and a cluster:
what a personality remembers of a user, packed within a token budget by one script.

The token counter these tests give the store reads a text's count from its end
(``"...#7"`` costs 7 tokens), so every fact and episode costs what the test says.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import msgpack
import pytest
from redis.crc import key_slot

from luminora_redis import InvalidInput, Recall, Sentiment, SessionStore, StoreSettings
from luminora_redis.compat.luminoracore import RedisStorageV11
from luminora_redis.core.context import Context
from luminora_redis.core.scripts import Call
from luminora_redis.core.tokens import estimate_tokens
from luminora_redis.ops import memory

from conftest import server_ms, user_keys, wait_until


def tagged(text: str) -> int:
    """The token count a text ends with (``"...#7"``), else the default estimate."""
    head, mark, count = text.rpartition("#")
    return int(count) if mark and count.isdigit() else estimate_tokens(text)


@pytest.fixture
def tstore(make_store: Any) -> Any:
    return make_store(token_counter=tagged)


def after(raw: Any, stamp: datetime) -> None:
    """Wait until the server clock is past ``stamp``, so the next record is newer."""
    ms = int(stamp.timestamp() * 1000)
    wait_until(lambda: server_ms(raw) > ms, timeout=5)


def fact(store: Any, raw: Any, key: str, tokens: int, user: str = "carlos") -> None:
    saved = store.save_fact(user, "personal", key, f"{key}#{tokens}")
    after(raw, saved.updated_at)


def episode(store: Any, raw: Any, title: str, importance: float, tokens: int,
            personality: str | None = "alicia", user: str = "carlos") -> None:
    saved = store.save_episode(user, "milestone", title, f"{title}#{tokens}", importance,
                               personality_name=personality)
    after(raw, saved.created_at)


def keys_of(recall: Recall) -> tuple[list[str], list[str]]:
    return [f.key for f in recall.facts], [e.title for e in recall.episodes]


def test_recall_of_a_user_with_nothing_is_empty(tstore: Any) -> None:
    recall = tstore.recall("nobody", "alicia")
    assert recall == Recall(user_id="nobody", personality_name="alicia", affinity=None, facts=[],
                            episodes=[], tokens=0, budget=None, left_out=0)


def test_without_a_budget_everything_comes_back_in_order(tstore: Any, raw: Any) -> None:
    affinity = tstore.update_affinity("carlos", "alicia", 30)
    fact(tstore, raw, "old", 3)
    fact(tstore, raw, "new", 4)
    episode(tstore, raw, "tie-old", 5, 2)
    episode(tstore, raw, "top", 9, 5)
    episode(tstore, raw, "shared", 1, 1, personality=None)
    episode(tstore, raw, "tie-new", 5, 2)
    episode(tstore, raw, "bruno's", 10, 1, personality="bruno")
    recall = tstore.recall("carlos", "alicia")
    assert recall.affinity == affinity
    # Facts newest first; episodes of alicia or of no personality, most important first,
    # newest first among equals; bruno's episode is not alicia's memory.
    assert keys_of(recall) == (["new", "old"], ["top", "tie-new", "tie-old", "shared"])
    assert recall.tokens == 3 + 4 + 5 + 2 + 2 + 1
    assert (recall.budget, recall.left_out) == (None, 0)
    assert recall.episodes[0].sentiment is Sentiment.NEUTRAL
    assert recall.facts[0].value == "new#4"
    assert tstore.recall("carlos", "bruno").episodes[0].title == "bruno's"


def test_budget_zero_keeps_only_the_affinity(tstore: Any, raw: Any) -> None:
    tstore.update_affinity("carlos", "alicia", 5)
    fact(tstore, raw, "a", 1)
    episode(tstore, raw, "e", 5, 1)
    recall = tstore.recall("carlos", "alicia", budget=0)
    assert (recall.facts, recall.episodes, recall.tokens) == ([], [], 0)
    assert (recall.budget, recall.left_out) == (0, 2)
    assert recall.affinity is not None and recall.affinity.points == 5


def test_a_budget_that_fits_exactly_takes_all_and_one_less_leaves_one_out(
        tstore: Any, raw: Any) -> None:
    fact(tstore, raw, "a", 2)
    episode(tstore, raw, "e", 5, 3)
    episode(tstore, raw, "f", 4, 1)
    exact = tstore.recall("carlos", "alicia", budget=6)
    assert (keys_of(exact), exact.tokens, exact.left_out) == ((["a"], ["e", "f"]), 6, 0)
    short = tstore.recall("carlos", "alicia", budget=5)
    assert (keys_of(short), short.tokens, short.left_out) == ((["a"], ["e"]), 5, 1)


def test_items_that_do_not_fit_are_skipped_for_smaller_ones(tstore: Any, raw: Any) -> None:
    fact(tstore, raw, "older", 1)
    fact(tstore, raw, "newer", 3)
    episode(tstore, raw, "big", 9, 5)
    episode(tstore, raw, "small", 5, 2)
    # Budget 4: facts get 2 (the newer one, 3, does not fit; the older, 1, does); the
    # episodes get the 3 left (big, 5, does not fit; small, 2, does); the 1 left is too
    # little for the newer fact.
    recall = tstore.recall("carlos", "alicia", budget=4)
    assert keys_of(recall) == (["older"], ["small"])
    assert (recall.tokens, recall.left_out) == (3, 2)


def test_facts_take_at_most_half_then_fill_what_the_episodes_left(tstore: Any, raw: Any) -> None:
    fact(tstore, raw, "first", 3)
    fact(tstore, raw, "second", 3)
    episode(tstore, raw, "e", 5, 4)
    # Budget 10: facts' half is 5 (only "second", the newest, fits); the episode takes 4
    # of the 7 left; "first" then fits in the 3 remaining. Facts stay newest first.
    recall = tstore.recall("carlos", "alicia", budget=10)
    assert keys_of(recall) == (["second", "first"], ["e"])
    # Budget 9: half is 4; the episode takes 4 of the 6 left; 2 is too little for "first".
    recall = tstore.recall("carlos", "alicia", budget=9)
    assert keys_of(recall) == (["second"], ["e"])
    assert (recall.tokens, recall.left_out) == (7, 1)


def test_episodes_use_the_whole_budget_when_there_are_no_facts(tstore: Any, raw: Any) -> None:
    episode(tstore, raw, "a", 9, 5)
    episode(tstore, raw, "b", 8, 2)
    recall = tstore.recall("carlos", "alicia", budget=7)
    assert keys_of(recall) == ([], ["a", "b"])


def test_counts_are_stored_at_write_and_never_recounted(make_store: Any, raw: Any) -> None:
    calls: list[str] = []

    def counting(text: str) -> int:
        calls.append(text)
        return tagged(text)

    writer = make_store(token_counter=counting)
    writer.save_fact("carlos", "personal", "name", "Carlos#6")
    writer.save_episode("carlos", "milestone", "met", "first chat#4", 5, personality_name="alicia")
    assert calls == [memory.fact_text("personal", "name", "Carlos#6"),
                     memory.episode_text("met", "first chat#4")]
    calls.clear()
    # Another store, counting otherwise, reads the counts stored at write.
    reader = make_store(token_counter=lambda text: 1000)
    assert reader.recall("carlos", "alicia").tokens == 10
    assert writer.recall("carlos", "alicia", budget=10).tokens == 10
    assert calls == []


def test_records_written_without_a_count_are_estimated_at_a_quarter_of_their_bytes(
        tstore: Any, raw: Any) -> None:
    keys = user_keys("carlos")
    fact_body = msgpack.packb(["Carlos", 1.0, 1_700_000_000_000])
    raw.hset(keys.facts, msgpack.packb(["personal", "name"]), fact_body)
    episode_body = msgpack.packb(["old1", "milestone", "met", "a long first chat", 5.0,
                                  "positive", None, 1_700_000_000_000])
    raw.zadd(keys.episodes, {"old1": 5.0})
    raw.hset(keys.episode_bodies, "old1", episode_body)
    recall = tstore.recall("carlos", "alicia")
    assert recall.tokens == math.ceil(len(fact_body) / 4) + math.ceil(len(episode_body) / 4)
    assert recall.facts[0].value == "Carlos"
    assert recall.episodes[0].summary == "a long first chat"
    # The old records still read everywhere else.
    assert tstore.get_facts("carlos")[0].value == "Carlos"
    assert tstore.get_episodes("carlos")[0].episode_id == "old1"


def test_caps_bound_a_recall_without_a_budget(tstore: Any, raw: Any,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "MAX_RECALL_FACTS", 2)
    monkeypatch.setattr(memory, "MAX_RECALL_EPISODES", 1)
    for key in ("a", "b", "c"):
        fact(tstore, raw, key, 1)
    episode(tstore, raw, "low", 1, 1)
    episode(tstore, raw, "high", 2, 1)
    recall = tstore.recall("carlos", "alicia")
    assert keys_of(recall) == (["c", "b"], ["high"])
    assert recall.left_out == 2


def test_recall_reads_each_fact_once_whatever_its_value(tstore: Any) -> None:
    value = {"pets": ["cat", "dog"], "age": 41, "nested": {"deep": [1, 2.5, None]}}
    tstore.save_fact("carlos", "personal", "profile", value)
    recall = tstore.recall("carlos", "alicia")
    assert [f.value for f in recall.facts] == [value]
    assert recall.tokens == estimate_tokens(memory.fact_text("personal", "profile", value))


@pytest.mark.parametrize("budget", [-1, 1.5, True, "10"])
def test_a_budget_that_is_not_a_count_is_refused(tstore: Any, budget: Any) -> None:
    with pytest.raises(InvalidInput, match="budget"):
        tstore.recall("carlos", "alicia", budget=budget)


async def test_the_luminoracore_adapter_s_writes_store_their_counts(store_url: str,
                                                                    topology: str) -> None:
    async with SessionStore.from_url(store_url, cluster=topology == "cluster",
                                     token_counter=tagged) as store:
        adapter = RedisStorageV11(store)
        assert await adapter.save_fact("carlos", "personal", "name", "Carlos#6", confidence=0.9)
        assert await adapter.save_episode("carlos", "milestone", "met", "first chat#4", 7.0,
                                          "positive", personality_name="alicia")
        recall = await store.recall("carlos", "alicia")
        assert (recall.tokens, recall.left_out) == (10, 0)
        assert [f.value for f in recall.facts] == ["Carlos#6"]
        assert [(e.title, e.importance) for e in recall.episodes] == [("met", 7.0)]
        assert (await store.recall("carlos", "alicia", budget=9)).left_out == 1
        # The adapter reads them back as before.
        [fact] = await adapter.get_facts("carlos")
        assert (fact["value"], fact["confidence"]) == ("Carlos#6", 0.9)
        [episode] = await adapter.get_episodes("carlos")
        assert (episode["title"], episode["importance"]) == ("met", 7.0)


def test_recall_is_one_script_call_on_keys_of_one_slot() -> None:
    operation = memory.recall(Context(StoreSettings(), 1024), "carlos", "alicia", 10)
    step = next(operation)
    assert isinstance(step, Call) and step.script == "recall"
    assert len({key_slot(key.encode()) for key in step.keys}) == 1
    with pytest.raises(StopIteration) as done:
        operation.send([None, 0, 0, 0])
    assert done.value.value.budget == 10
