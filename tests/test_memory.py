"""User memory against a real Redis, in both shells: affinity, evolution, facts, episodes.

All of it belongs to the persistent user id, so it must outlive every session.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
import redis

from luminora_redis import (
    EvolutionKind,
    InvalidInput,
    Sentiment,
    SyncSessionStore,
)

from conftest import server_ms, snapshot, wait_until


def next_server_ms(raw: redis.Redis) -> None:
    """Wait until the server clock has moved on, so records get distinct timestamps."""
    now = server_ms(raw)
    wait_until(lambda: server_ms(raw) > now, timeout=5)


# -- affinity ----------------------------------------------------------------------------


def test_get_affinity_is_none_before_the_first_update(store: Any) -> None:
    assert store.get_affinity("carlos", "alicia") is None
    assert store.get_affinities("carlos") == []


def test_update_affinity_adds_points_and_reports_the_level(store: Any) -> None:
    first = store.update_affinity("carlos", "alicia", 10)
    second = store.update_affinity("carlos", "alicia", 15)
    assert (first.points, first.level) == (10, "stranger")
    assert (second.user_id, second.personality_name, second.points, second.level) == (
        "carlos", "alicia", 25, "acquaintance")
    assert store.get_affinity("carlos", "alicia") == second


@pytest.mark.parametrize(("points", "level"), [
    (24, "stranger"), (25, "acquaintance"), (49, "acquaintance"), (50, "friend"),
    (100_000, "friend"),
])
def test_levels_follow_the_default_thresholds_without_an_upper_clamp(
        store: Any, points: int, level: str) -> None:
    updated = store.update_affinity("carlos", "alicia", points)
    assert (updated.points, updated.level) == (points, level)
    assert store.get_affinity("carlos", "alicia").level == level


def test_affinity_never_goes_below_zero(store: Any) -> None:
    store.update_affinity("carlos", "alicia", 10)
    assert store.update_affinity("carlos", "alicia", -30).points == 0
    assert store.get_affinity("carlos", "alicia").points == 0
    assert store.update_affinity("carlos", "alicia", 5).points == 5


def test_a_first_negative_update_starts_at_zero(store: Any) -> None:
    assert store.update_affinity("carlos", "alicia", -5).points == 0
    assert store.get_affinity("carlos", "alicia").points == 0


def test_custom_affinity_levels_are_used_for_updates_and_reads(make_store: Any) -> None:
    store = make_store(affinity_levels=(("cold", 0), ("warm", 10), ("hot", 100)))
    assert store.update_affinity("carlos", "alicia", 9).level == "cold"
    assert store.update_affinity("carlos", "alicia", 1).level == "warm"
    assert store.update_affinity("carlos", "alicia", 90).level == "hot"
    assert store.get_affinity("carlos", "alicia").level == "hot"


def test_a_hundred_threads_adding_one_point_each_yield_exactly_a_hundred(redis_url: str) -> None:
    with SyncSessionStore.from_url(redis_url) as store:
        start = threading.Barrier(100)

        def add_one() -> None:
            start.wait()
            store.update_affinity("carlos", "alicia", 1)

        threads = [threading.Thread(target=add_one) for _ in range(100)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert store.get_affinity("carlos", "alicia").points == 100
        events = store.get_evolution("carlos")
    assert len(events) == 100
    assert sorted(event.points for event in events) == list(range(1, 101))
    assert sorted(event.sequence for event in events) == list(range(1, 101))


def test_affinity_survives_the_end_of_the_session_and_a_reconnect(make_store: Any) -> None:
    first = make_store()
    session_id = first.create_session("carlos", "alicia")
    first.update_affinity("carlos", "alicia", 30)
    first.save_fact("carlos", "personal_info", "name", "Carlos")
    assert first.end_session(session_id)

    reconnected = make_store()
    new_session = reconnected.create_session("carlos", "alicia")
    assert new_session != session_id
    affinity = reconnected.get_affinity("carlos", "alicia")
    assert (affinity.points, affinity.level) == (30, "acquaintance")
    assert reconnected.update_affinity("carlos", "alicia", 25).points == 55
    assert [fact.value for fact in reconnected.get_facts("carlos")] == ["Carlos"]


def test_affinity_belongs_to_one_user_and_one_personality(store: Any) -> None:
    store.update_affinity("carlos", "alicia", 30)
    store.update_affinity("carlos", "bruno", 60)
    assert store.get_affinity("maria", "alicia") is None
    assert store.get_affinity("carlos", "alicia").points == 30
    assert [(a.personality_name, a.points, a.level) for a in store.get_affinities("carlos")] == [
        ("alicia", 30, "acquaintance"), ("bruno", 60, "friend")]


@pytest.mark.parametrize("delta", [1.5, 1.0, True, "5", None, 10**13],
                         ids=["float", "integral-float", "bool", "str", "none", "huge"])
def test_only_integer_deltas_are_accepted_and_a_refused_one_writes_nothing(
        store: Any, raw: redis.Redis, delta: object) -> None:
    store.update_affinity("carlos", "alicia", 3)
    before = snapshot(raw)
    with pytest.raises(InvalidInput):
        store.update_affinity("carlos", "alicia", delta)
    assert snapshot(raw) == before
    assert store.get_affinity("carlos", "alicia").points == 3


def test_user_memory_has_no_ttl(store: Any, raw: redis.Redis) -> None:
    store.update_affinity("carlos", "alicia", 3)
    store.save_fact("carlos", "c", "k", "v")
    store.save_episode("carlos", "milestone", "t", "s")
    store.record_trait("carlos", "alicia", "humor", 0.5)
    keys = list(raw.scan_iter(match="*:u:*", count=1000))
    assert len(keys) >= 5
    assert {raw.pttl(key) for key in keys} == {-1}


# -- evolution ---------------------------------------------------------------------------


def test_the_evolution_log_records_every_change_oldest_first(store: Any, raw: redis.Redis) -> None:
    store.update_affinity("carlos", "alicia", 30, interaction_type="chat")
    next_server_ms(raw)
    store.update_affinity("carlos", "alicia", -40, interaction_type="argument")
    next_server_ms(raw)
    trait = store.record_trait("carlos", "alicia", "humor", 0.7, reason="jokes landed")
    next_server_ms(raw)
    store.update_affinity("carlos", "alicia", 55)
    events = store.get_evolution("carlos")
    assert [e.kind for e in events] == [EvolutionKind.AFFINITY, EvolutionKind.AFFINITY,
                                        EvolutionKind.TRAIT, EvolutionKind.AFFINITY]
    assert [(e.points_delta, e.points, e.level, e.interaction_type)
            for e in events if e.kind is EvolutionKind.AFFINITY] == [
        (30, 30, "acquaintance", "chat"),
        (-40, 0, "stranger", "argument"),
        (55, 55, "friend", None),
    ]
    assert (events[2].trait, events[2].value, events[2].reason) == ("humor", 0.7, "jokes landed")
    assert events[2] == trait
    assert [e.sequence for e in events] == [1, 2, 3, 4]
    timestamps = [e.timestamp for e in events]
    assert timestamps == sorted(timestamps)
    assert all(t.utcoffset() == timedelta(0) for t in timestamps)


def test_get_evolution_filters_by_personality(store: Any, raw: redis.Redis) -> None:
    store.update_affinity("carlos", "alicia", 1)
    next_server_ms(raw)
    store.update_affinity("carlos", "bruno", 2)
    next_server_ms(raw)
    store.record_trait("carlos", "bruno", "mood", "grumpy")
    next_server_ms(raw)
    store.update_affinity("carlos", "alicia", 3)
    alicia = store.get_evolution("carlos", personality_name="alicia")
    assert [e.points_delta for e in alicia] == [1, 3]
    bruno = store.get_evolution("carlos", personality_name="bruno")
    assert [(e.kind, e.personality_name) for e in bruno] == [
        (EvolutionKind.AFFINITY, "bruno"), (EvolutionKind.TRAIT, "bruno")]
    assert store.get_evolution("carlos", personality_name="nadie") == []
    assert store.get_evolution("maria") == []


def test_get_evolution_limit_keeps_the_newest_records(store: Any, raw: redis.Redis) -> None:
    for delta in (1, 2, 3, 4):
        store.update_affinity("carlos", "alicia", delta)
        next_server_ms(raw)
    assert [e.points_delta for e in store.get_evolution("carlos", limit=2)] == [3, 4]
    assert store.get_evolution("carlos", limit=0) == []


def test_the_evolution_log_stays_in_order_within_one_millisecond(store: Any) -> None:
    for _ in range(20):
        for delta in (2, 1) * 25:
            store.update_affinity("carlos", "alicia", delta)
        events = store.get_evolution("carlos")
        if len({e.timestamp for e in events}) < len(events):
            break
    assert len({e.timestamp for e in events}) < len(events), "precondition: shared timestamps"
    sequences = [e.sequence for e in events]
    assert sequences == sorted(sequences)


@pytest.mark.parametrize("value", [True, None, [1], float("inf")])
def test_record_trait_refuses_values_that_are_not_a_number_or_a_string(
        store: Any, raw: redis.Redis, value: object) -> None:
    store.update_affinity("carlos", "alicia", 1)
    before = snapshot(raw)
    with pytest.raises(InvalidInput):
        store.record_trait("carlos", "alicia", "humor", value)
    assert snapshot(raw) == before


# -- facts -------------------------------------------------------------------------------


def test_a_fact_is_saved_and_read_back(store: Any, raw: redis.Redis) -> None:
    before = server_ms(raw)
    saved = store.save_fact("carlos", "personal_info", "home",
                            {"city": "Sevilla", "since": 2019}, confidence=0.9)
    (fact,) = store.get_facts("carlos")
    assert fact == saved
    assert (fact.category, fact.key, fact.value, fact.confidence) == (
        "personal_info", "home", {"city": "Sevilla", "since": 2019}, 0.9)
    assert fact.updated_at.utcoffset() == timedelta(0)
    assert round(fact.updated_at.timestamp() * 1000) >= before


def test_saving_a_fact_again_replaces_it(store: Any) -> None:
    store.save_fact("carlos", "personal_info", "name", "Carlos")
    store.save_fact("carlos", "personal_info", "name", "Carlitos", confidence=0.5)
    (fact,) = store.get_facts("carlos")
    assert (fact.value, fact.confidence) == ("Carlitos", 0.5)


def test_facts_are_listed_by_category_then_key_and_filtered_by_category(store: Any) -> None:
    store.save_fact("carlos", "preferences", "food", "paella")
    store.save_fact("carlos", "personal_info", "name", "Carlos")
    store.save_fact("carlos", "personal_info", "age", 34)
    store.save_fact("maria", "personal_info", "name", "María")
    assert [(f.category, f.key) for f in store.get_facts("carlos")] == [
        ("personal_info", "age"), ("personal_info", "name"), ("preferences", "food")]
    assert [f.value for f in store.get_facts("carlos", category="personal_info")] == [34, "Carlos"]
    assert [f.value for f in store.get_facts("carlos", category="preferences")] == ["paella"]
    assert store.get_facts("carlos", category="work") == []


def test_a_category_and_key_never_collide_with_another_split_of_the_same_text(store: Any) -> None:
    store.save_fact("carlos", "a:b", "c", 1)
    store.save_fact("carlos", "a", "b:c", 2)
    assert [(f.category, f.key, f.value) for f in store.get_facts("carlos")] == [
        ("a", "b:c", 2), ("a:b", "c", 1)]


def test_delete_fact_forgets_one_fact_and_says_whether_there_was_one(store: Any) -> None:
    store.save_fact("carlos", "personal_info", "name", "Carlos")
    store.save_fact("carlos", "personal_info", "age", 34)
    assert store.delete_fact("carlos", "personal_info", "name") is True
    assert store.delete_fact("carlos", "personal_info", "name") is False
    assert [f.key for f in store.get_facts("carlos")] == ["age"]


@pytest.mark.parametrize("bad", [
    {"value": object()}, {"confidence": 1.5}, {"confidence": float("nan")}, {"category": ""},
    {"key": "a\nb"},
], ids=["object-value", "confidence-high", "confidence-nan", "empty-category", "newline-key"])
def test_a_refused_fact_writes_nothing(store: Any, raw: redis.Redis, bad: dict[str, Any]) -> None:
    store.save_fact("carlos", "personal_info", "name", "Carlos")
    before = snapshot(raw)
    arguments = {"category": "personal_info", "key": "age", "value": 34, "confidence": 1.0, **bad}
    with pytest.raises(InvalidInput):
        store.save_fact("carlos", **arguments)
    assert snapshot(raw) == before


# -- episodes ----------------------------------------------------------------------------


def test_episodes_come_back_most_important_first(store: Any) -> None:
    for title, importance in (("middling", 5.0), ("huge", 9.5), ("small", 1.0), ("big", 8.0)):
        store.save_episode("carlos", "milestone", title, f"{title} summary", importance=importance)
    assert [e.title for e in store.get_episodes("carlos")] == ["huge", "big", "middling", "small"]


def test_an_episode_is_read_back_as_saved(store: Any) -> None:
    saved = store.save_episode("carlos", "milestone", "First chat", "We met", importance=8.5,
                               sentiment="positive", personality_name="alicia")
    (episode,) = store.get_episodes("carlos")
    assert episode == saved
    assert (episode.episode_type, episode.title, episode.summary, episode.importance) == (
        "milestone", "First chat", "We met", 8.5)
    assert episode.sentiment is Sentiment.POSITIVE
    assert episode.personality_name == "alicia"
    assert episode.created_at.utcoffset() == timedelta(0)


def test_min_importance_is_inclusive_and_limit_keeps_the_most_important(store: Any) -> None:
    for importance in (2.0, 5.0, 7.0, 9.0):
        store.save_episode("carlos", "e", f"i{importance:g}", "s", importance=importance)
    assert [e.importance for e in store.get_episodes("carlos", min_importance=5)] == [9, 7, 5]
    assert [e.importance for e in store.get_episodes("carlos", limit=2)] == [9, 7]
    assert [e.importance for e in store.get_episodes("carlos", min_importance=6, limit=5)] == [9, 7]
    assert store.get_episodes("carlos", min_importance=9.5) == []
    assert store.get_episodes("maria") == []


@pytest.mark.parametrize("sentiment", list(Sentiment))
def test_every_sentiment_is_accepted_by_value_or_member(store: Any, sentiment: Sentiment) -> None:
    store.save_episode("carlos", "e", "by value", "s", sentiment=sentiment.value)
    store.save_episode("carlos", "e", "by member", "s", sentiment=sentiment)
    assert {e.sentiment for e in store.get_episodes("carlos")} == {sentiment}


@pytest.mark.parametrize("bad", [
    {"sentiment": "angry"}, {"sentiment": "POSITIVE"}, {"sentiment": None},
    {"importance": 10.5}, {"importance": -1}, {"importance": float("nan")},
    {"title": None}, {"summary": 3}, {"episode_type": ""},
], ids=lambda bad: "-".join(f"{k}={v!r}" for k, v in bad.items()))
def test_a_refused_episode_writes_nothing(store: Any, raw: redis.Redis,
                                         bad: dict[str, Any]) -> None:
    store.save_episode("carlos", "milestone", "t", "s")
    before = snapshot(raw)
    arguments = {"episode_type": "milestone", "title": "t", "summary": "s", "importance": 5.0,
                 "sentiment": "neutral", **bad}
    with pytest.raises(InvalidInput):
        store.save_episode("carlos", **arguments)
    assert snapshot(raw) == before
