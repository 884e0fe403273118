"""RedisStorageV11: LuminoraCore's storage interface over the store, on a real server
and on the real cluster. LuminoraCore itself is not needed here (the adapter is
duck-typed); its own tests run against the adapter in .ci/luminoracore.sh."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import redis

from luminora_redis import InvalidInput, SessionStore
from luminora_redis.compat.luminoracore import RedisStorageV11
from luminora_redis.core.errors import ConfigurationError
from luminora_redis.testing import free_port

from conftest import until


@pytest.fixture
async def storage(store_url: str, topology: str) -> AsyncIterator[RedisStorageV11]:
    adapter = RedisStorageV11.from_url(store_url, cluster=topology == "cluster")
    yield adapter
    await adapter.aclose()


def _iso(seconds_from_now: float) -> str:
    return (datetime.now() + timedelta(seconds=seconds_from_now)).isoformat()


async def _session(storage: RedisStorageV11, session_id: str, user_id: str,
                   ttl: float = 3600.0) -> None:
    assert await storage.save_session(session_id, user_id, "alicia", _iso(0), _iso(ttl),
                                      _iso(0), "active", {"name": "stub"})


async def test_affinity_round_trip_keeps_fields_and_is_native(storage: RedisStorageV11) -> None:
    assert await storage.get_affinity("carlos", "alicia") is None
    assert await storage.save_affinity("carlos", "alicia", 40, "acquaintance",
                                       total_interactions=3, positive_interactions=2)
    assert await storage.save_affinity("carlos", "alicia", 55, "friend", total_interactions=4)
    got = await storage.get_affinity("carlos", "alicia")
    assert got is not None
    assert (got["user_id"], got["personality_name"], got["affinity_points"],
            got["current_level"], got["total_interactions"]) == ("carlos", "alicia", 55, "friend", 4)
    assert "positive_interactions" not in got  # an upsert replaces the record, as the reference
    datetime.fromisoformat(got["updated_at"])
    native = await storage.store.get_affinity("carlos", "alicia")
    assert native is not None and native.points == 55
    deltas = [event.points_delta for event in await storage.store.get_evolution("carlos")]
    assert deltas == [40, 15]
    await storage.store.update_affinity("carlos", "alicia", -50)
    moved = await storage.get_affinity("carlos", "alicia")
    assert moved is not None and (moved["affinity_points"], moved["current_level"]) == (5, "stranger")


async def test_facts_upsert_order_filter_and_delete(storage: RedisStorageV11) -> None:
    await storage.save_fact("carlos", "personal_info", "name", "Carlos", confidence=0.99,
                            session_id="s1")
    await storage.save_fact("carlos", "preferences", "anime", "Naruto", confidence=0.8)
    await storage.save_fact("carlos", "personal_info", "name", "Carlos M.", confidence=0.95)
    facts = await storage.get_facts("carlos")
    assert [(f["key"], f["value"], f["confidence"]) for f in facts] == [
        ("anime", "Naruto", 0.8), ("name", "Carlos M.", 0.95)]  # a replaced fact moves last
    assert "session_id" not in facts[1]
    assert await storage.get_facts("carlos", "") == facts
    assert [f["key"] for f in await storage.get_facts("carlos", "preferences")] == ["anime"]
    await storage.save_fact("carlos", "meta", "session", {"provider": None, "n": [1, 2]}, source="x")
    meta = await storage.get_facts("carlos", "meta")
    assert meta[0]["value"] == {"provider": None, "n": [1, 2]} and meta[0]["source"] == "x"
    assert await storage.delete_fact("carlos", "preferences", "anime") is True
    assert await storage.delete_fact("carlos", "preferences", "anime") is False
    assert await storage.get_facts("carlos", "preferences") == []
    assert await storage.get_facts("nobody") == []
    assert [fact.key for fact in await storage.store.get_facts("carlos")] == ["session", "name"]


async def test_episodes_in_save_order_with_their_sentiment(storage: RedisStorageV11) -> None:
    await storage.save_episode("carlos", "routine", "Low", "s", 3.0, "neutral")
    await storage.save_episode("carlos", "emotional_moment", "High", "s", 9.5, "very_negative")
    await storage.save_episode("carlos", "achievement", "Mid", "s", 5.0, "positive", source="x")
    episodes = await storage.get_episodes("carlos")
    assert [e["title"] for e in episodes] == ["Low", "High", "Mid"]
    assert episodes[1]["sentiment"] == "very_negative" and episodes[2]["source"] == "x"
    assert [e["title"] for e in await storage.get_episodes("carlos", min_importance=5.0)] == [
        "High", "Mid"]  # inclusive
    native = await storage.store.get_episodes("carlos")
    assert [(e.title, e.sentiment.value) for e in native] == [
        ("High", "negative"), ("Mid", "positive"), ("Low", "neutral")]
    with pytest.raises(InvalidInput):
        await storage.save_episode("carlos", "routine", "Too much", "s", 11.0, "neutral")
    assert len(await storage.get_episodes("carlos")) == 3


async def test_moods_of_known_and_unknown_sessions(storage: RedisStorageV11) -> None:
    assert await storage.get_mood("session1") is None
    assert await storage.save_mood("session1", "carlos", "shy", 0.8)
    mood = await storage.get_mood("session1")
    assert mood is not None
    assert (mood["session_id"], mood["user_id"], mood["current_mood"], mood["mood_intensity"]) == (
        "session1", "carlos", "shy", 0.8)
    await _session(storage, "session_a", "carlos")
    assert await storage.save_mood("session_a", "carlos", "happy")
    live = await storage.get_mood("session_a")
    assert live is not None and (live["current_mood"], live["mood_intensity"]) == ("happy", 1.0)
    sid = (await storage.store.list_user_sessions("carlos"))[0].session_id
    native = await storage.store.get_mood(sid)
    assert native is not None and native.mood == "happy"
    with pytest.raises(InvalidInput):
        await storage.save_mood("session_a", "carlos", "happy", 1.5)


async def test_sessions_by_caller_chosen_id(storage: RedisStorageV11) -> None:
    assert await storage.get_session("session_x") is None
    assert await storage.update_session_activity("session_x", _iso(0)) is False
    assert await storage.delete_session("session_x") is False
    created, expires = _iso(0), _iso(3600)
    assert await storage.save_session("session_x", "carlos", "alicia", created, expires,
                                      created, "active", {"model": "m"})
    got = await storage.get_session("session_x")
    assert got is not None
    assert {k: v for k, v in got.items() if k != "last_activity"} == {
        "session_id": "session_x", "user_id": "carlos", "personality_name": "alicia",
        "created_at": created, "expires_at": expires, "status": "active",
        "provider_config": {"model": "m"}}
    [ours] = await storage.store.list_user_sessions("carlos")
    assert ours.session_id != "session_x"
    # expires_at is the real absolute deadline, within the clock skew of the test
    assert abs(ours.expires_at.timestamp() - datetime.fromisoformat(expires).timestamp()) < 2
    assert await storage.update_session_activity("session_x", _iso(0)) is True
    assert await storage.save_session("session_x", "carlos", "alicia", created, expires,
                                      created, "paused")
    again = await storage.get_session("session_x")
    assert again is not None and again["status"] == "paused"
    assert len(await storage.store.list_user_sessions("carlos")) == 1
    assert await storage.delete_session("session_x") is True
    assert await storage.get_session("session_x") is None
    assert await storage.store.list_user_sessions("carlos") == []


async def test_session_id_as_user_id_means_the_sessions_user(storage: RedisStorageV11) -> None:
    await _session(storage, "session_a", "carlos")
    await storage.save_affinity("session_a", "alicia", 7, "stranger")
    await storage.save_fact("session_a", "personal_info", "name", "Carlos")
    await storage.save_episode("session_a", "milestone", "First", "s", 6.0, "positive")
    for asked in ("carlos", "session_a"):
        affinity = await storage.get_affinity(asked, "alicia")
        assert affinity is not None and (affinity["user_id"], affinity["affinity_points"]) == (
            "carlos", 7)
        assert [f["key"] for f in await storage.get_facts(asked, "personal_info")] == ["name"]
        assert [e["title"] for e in await storage.get_episodes(asked)] == ["First"]
    assert await storage.store.get_affinity("session_a", "alicia") is None


async def test_conversation_turns_live_in_the_session_and_are_archived(
        storage: RedisStorageV11) -> None:
    await _session(storage, "session_a", "carlos")
    turns = [{"user_message": f"q{n}", "assistant_response": f"a{n}", "personality_name": "alicia",
              "timestamp": _iso(n), "facts_learned": []} for n in range(3)]
    for n, turn in enumerate(turns):
        assert await storage.save_fact("session_a", "conversation_history", f"turn_{n}",
                                       json.dumps(turn))
    await storage.save_fact("session_a", "conversation_history", "note", "not a turn")
    read = await storage.get_facts("session_a", "conversation_history")
    assert [f["key"] for f in read] == ["note", "turn_0", "turn_1", "turn_2"]
    assert [json.loads(f["value"]) for f in read[1:]] == turns
    assert [f["key"] for f in await storage.get_facts("carlos", "conversation_history")] == ["note"]
    sid = (await storage.store.list_user_sessions("carlos"))[0].session_id
    history = await storage.store.get_history(sid)
    assert [m.content for m in history] == ["q0", "a0", "q1", "a1", "q2", "a2"]
    assert await storage.store.end_session(sid)
    [archived] = await storage.store.get_archived_conversations("carlos")
    assert [m.content for m in archived.messages] == ["q0", "a0", "q1", "a1", "q2", "a2"]
    assert await storage.get_facts("session_a", "conversation_history") == [read[0]]


@pytest.mark.slow
async def test_expires_at_is_native_expiry(storage: RedisStorageV11) -> None:
    await _session(storage, "session_short", "carlos", ttl=2.0)
    await storage.save_fact("session_short", "conversation_history", "turn_1", json.dumps(
        {"user_message": "hola", "assistant_response": "hey", "timestamp": _iso(0)}))

    async def gone() -> bool:
        return await storage.get_session("session_short") is None

    await until(gone)
    assert await storage.get_expired_sessions() == ["session_short"]
    assert await storage.store.cleanup_expired_sessions() == 1
    assert await storage.get_expired_sessions() == []
    [archived] = await storage.store.get_archived_conversations("carlos")
    assert [m.content for m in archived.messages] == ["hola", "hey"]
    # A new save of the same id starts a new session of ours.
    await _session(storage, "session_short", "carlos")
    assert await storage.get_session("session_short") is not None


async def test_bad_input_writes_nothing(storage: RedisStorageV11, raw: Any) -> None:
    with pytest.raises(InvalidInput):
        await storage.save_session("s", "carlos", "alicia", _iso(0), "tomorrow", _iso(0), "active")
    with pytest.raises(InvalidInput):
        await storage.save_fact("carlos", "c", "k", object())
    with pytest.raises(InvalidInput):
        await storage.save_affinity("carlos", "alicia", -1, "stranger")
    with pytest.raises(InvalidInput):
        await storage.save_fact("", "c", "k", "v")
    assert [key for key in raw.scan_iter() if not key.endswith(b":layout")] == []


@pytest.mark.single_server
async def test_truthy_lazy_and_redis_down_raises() -> None:
    adapter = RedisStorageV11.from_url(f"redis://127.0.0.1:{free_port()}/0")
    assert bool(adapter) is True
    try:
        with pytest.raises(redis.ConnectionError):
            await adapter.get_affinity("carlos", "alicia")
        with pytest.raises(redis.ConnectionError):
            await adapter.get_session("session_a")
    finally:
        await adapter.aclose()


def test_needs_an_asyncio_store() -> None:
    with pytest.raises(ConfigurationError):
        RedisStorageV11(object())  # type: ignore[arg-type]


async def test_wraps_a_callers_store(redis_url: str) -> None:
    store = SessionStore.from_url(redis_url)
    adapter = RedisStorageV11(store, max_idle=60)
    await adapter.save_fact("carlos", "c", "k", "v")
    await adapter.aclose()  # the caller's store stays open
    assert [fact.value for fact in await store.get_facts("carlos")] == ["v"]
    await store.aclose()


async def test_caller_ids_with_braces_and_colons_stay_apart(storage: RedisStorageV11) -> None:
    odd = ["s{b0000}:x", "s{b0000}", "s:*", "sesión ✨"]
    for n, session_id in enumerate(odd):
        await _session(storage, session_id, f"user{n}")
    for n, session_id in enumerate(odd):
        got = await storage.get_session(session_id)
        assert got is not None and (got["session_id"], got["user_id"]) == (session_id, f"user{n}")
        await storage.save_fact(session_id, "c", "k", n)
        assert [f["value"] for f in await storage.get_facts(f"user{n}")] == [n]
