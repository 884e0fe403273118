"""Safe input against a real Redis, in both shells.

Hostile but valid ids are stored fully isolated; invalid input is refused
with InvalidInput before anything is written; a malformed session id is a
session that does not exist, decided without a single command to Redis.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster

from luminora_redis import InvalidInput, SessionExpired, SessionNotFound

from conftest import snapshot

HOSTILE_IDS = ["a{b}c", "x:y", "*", "?", "[a]", "%41", "A", "Ünïcödé😀",
               "é" * 125,  # 250 bytes of UTF-8
               "lr:{b0001}:u:x", "}{", "a b"]
HEX32 = "0123456789abcdef" * 2
LONG = {"ttl": 60, "max_idle": 30}


def commands_processed(raw: redis.Redis | RedisCluster) -> int:
    """Commands the server has run (on a cluster: every primary), not counting the INFO
    calls that ask. A cluster client sends INFO to one random node unless told otherwise."""
    if isinstance(raw, RedisCluster):
        per_node = raw.info("commandstats", target_nodes=RedisCluster.PRIMARIES)
        assert len(per_node) == len(raw.get_primaries()), per_node.keys()
    else:
        per_node = {"server": raw.info("commandstats")}
    return sum(stat["calls"] for stats in per_node.values()
               for name, stat in stats.items() if name != "cmdstat_info")


@pytest.fixture
def ready(store: Any, raw: redis.Redis) -> Any:
    """The store after its first call (which records the bucket layout)."""
    store.get_affinity("warm-up", "alicia")
    return store


# -- hostile but valid ids ---------------------------------------------------------------


def test_hostile_user_ids_are_stored_fully_isolated(ready: Any, raw: redis.Redis) -> None:
    store = ready
    layout = set(raw.scan_iter(count=1000))
    sessions = {}
    for points, user_id in enumerate(HOSTILE_IDS, start=1):
        store.update_affinity(user_id, "alicia", points)
        store.save_fact(user_id, "who", "me", user_id)
        store.save_episode(user_id, "milestone", user_id, "s")
        store.record_trait(user_id, "alicia", "id", user_id)
        sessions[user_id] = store.create_session(user_id, "alicia", LONG)
        store.chat_turn(sessions[user_id], [("user", user_id)])
    for points, user_id in enumerate(HOSTILE_IDS, start=1):
        assert store.get_affinity(user_id, "alicia").points == points
        assert [a.personality_name for a in store.get_affinities(user_id)] == ["alicia"]
        assert [f.value for f in store.get_facts(user_id)] == [user_id]
        assert [e.title for e in store.get_episodes(user_id)] == [user_id]
        assert [e.value for e in store.get_evolution(user_id) if e.trait] == [user_id]
        assert [s.session_id for s in store.list_user_sessions(user_id)] == [sessions[user_id]]
        assert store.get_session(sessions[user_id]).user_id == user_id
    for user_id in HOSTILE_IDS:
        assert store.end_session(sessions[user_id])
    for user_id in HOSTILE_IDS:
        (archived,) = store.get_archived_conversations(user_id)
        assert (archived.session_id, archived.user_id) == (sessions[user_id], user_id)
        assert [m.content for m in archived.messages] == [user_id]
    written = set(raw.scan_iter(count=1000)) - layout
    assert written
    for key in written:
        assert key.count(b"{") == 1 and key.count(b"}") == 1, key


def test_a_percent_escape_and_the_character_it_spells_are_different_users(ready: Any) -> None:
    ready.update_affinity("%41", "alicia", 7)
    ready.save_fact("A", "who", "me", "A")
    assert ready.get_affinity("A", "alicia") is None
    assert ready.get_facts("%41") == []


# -- refused ids and names ---------------------------------------------------------------


BAD_USER_IDS = {
    "empty": "", "nul": "a\x00b", "newline": "a\nb", "tab": "a\tb", "5kb": "x" * 5000,
    "257-bytes": "é" * 128 + "x", "int": 42, "none": None, "bytes": b"carlos",
    "lone-surrogate": "\ud800",
}
USER_OPERATIONS = {
    "create_session": lambda store, uid: store.create_session(uid, "alicia", LONG),
    "update_affinity": lambda store, uid: store.update_affinity(uid, "alicia", 1),
    "save_fact": lambda store, uid: store.save_fact(uid, "c", "k", "v"),
    "save_episode": lambda store, uid: store.save_episode(uid, "e", "t", "s"),
    "record_trait": lambda store, uid: store.record_trait(uid, "alicia", "humor", 0.5),
    "get_affinity": lambda store, uid: store.get_affinity(uid, "alicia"),
    "list_user_sessions": lambda store, uid: store.list_user_sessions(uid),
    "get_archived_conversations": lambda store, uid: store.get_archived_conversations(uid),
}


@pytest.mark.parametrize("operation", sorted(USER_OPERATIONS))
@pytest.mark.parametrize("user_id", BAD_USER_IDS.values(), ids=BAD_USER_IDS.keys())
def test_a_bad_user_id_is_refused_and_nothing_is_written(
        ready: Any, raw: redis.Redis, user_id: object, operation: str) -> None:
    before = snapshot(raw)
    with pytest.raises(InvalidInput):
        USER_OPERATIONS[operation](ready, user_id)
    assert snapshot(raw) == before


@pytest.mark.parametrize("name", ["", "a\x00", "a\nb", "x" * 300, 7, None],
                         ids=["empty", "nul", "newline", "300-bytes", "int", "none"])
def test_a_bad_personality_name_is_refused_and_nothing_is_written(
        ready: Any, raw: redis.Redis, name: object) -> None:
    before = snapshot(raw)
    with pytest.raises(InvalidInput):
        ready.create_session("carlos", name, LONG)
    with pytest.raises(InvalidInput):
        ready.update_affinity("carlos", name, 1)
    assert snapshot(raw) == before


BAD_CONFIGS = [
    pytest.param({"ttl": 0}, id="ttl-zero"),
    pytest.param({"ttl": -5}, id="ttl-negative"),
    pytest.param({"ttl": float("nan")}, id="ttl-nan"),
    pytest.param({"ttl": float("inf")}, id="ttl-inf"),
    pytest.param({"max_idle": 0}, id="max-idle-zero"),
    pytest.param({"max_idle": -0.5}, id="max-idle-negative"),
    pytest.param({"ttl": 11 * 365 * 24 * 3600}, id="ttl-eleven-years"),
    pytest.param({"ttl": 60, "idle": 30}, id="unknown-key"),
    pytest.param([("ttl", 60)], id="not-a-mapping"),
    pytest.param({"ttl": None}, id="ttl-none"),
    pytest.param({"ttl": "10"}, id="ttl-string"),
    pytest.param({"max_idle": True}, id="max-idle-bool"),
]


@pytest.mark.parametrize("config", BAD_CONFIGS)
def test_a_bad_session_config_is_refused_and_nothing_is_written(
        ready: Any, raw: redis.Redis, config: object) -> None:
    before = snapshot(raw)
    with pytest.raises(InvalidInput):
        ready.create_session("carlos", "alicia", config)
    assert snapshot(raw) == before


BAD_MESSAGES = {
    "unknown-role": ("wizard", "hi", None),
    "role-none": (None, "hi", None),
    "content-int": ("user", 42, None),
    "content-bytes": ("user", b"hi", None),
    "content-none": ("user", None, None),
    "content-lone-surrogate": ("user", "a\udc00b", None),
    "metadata-object": ("user", "hi", {"x": object()}),
    "metadata-datetime": ("user", "hi", {"when": datetime.now(timezone.utc)}),
    "metadata-set": ("user", "hi", {"tags": {"a", "b"}}),
    "metadata-int-key": ("user", "hi", {1: "x"}),
    "metadata-list": ("user", "hi", ["x"]),
    "metadata-string": ("user", "hi", "x"),
}


@pytest.mark.parametrize("message", BAD_MESSAGES.values(), ids=BAD_MESSAGES.keys())
def test_a_bad_message_is_refused_and_nothing_is_written(
        ready: Any, raw: redis.Redis, message: tuple[Any, Any, Any]) -> None:
    session_id = ready.create_session("carlos", "alicia", LONG)
    ready.append_message(session_id, "user", "fine")
    before = snapshot(raw)
    role, content, metadata = message
    with pytest.raises(InvalidInput):
        ready.append_message(session_id, role, content, metadata)
    with pytest.raises(InvalidInput):
        ready.chat_turn(session_id, [("user", "fine"), message])
    assert snapshot(raw) == before


@pytest.mark.parametrize("messages", ["hello", {"role": "user", "content": "hi"},
                                      [("user",)], [("user", "a", None, "extra")], [42]],
                         ids=["string", "single-mapping", "short-tuple", "long-tuple", "int"])
def test_something_that_is_not_a_list_of_messages_is_refused(
        ready: Any, raw: redis.Redis, messages: object) -> None:
    session_id = ready.create_session("carlos", "alicia", LONG)
    before = snapshot(raw)
    with pytest.raises(InvalidInput):
        ready.chat_turn(session_id, messages)
    assert snapshot(raw) == before


# -- malformed session ids ---------------------------------------------------------------


MALFORMED_IDS = [
    pytest.param("", id="empty"),
    pytest.param("../x", id="dot-dot"),
    pytest.param("lr:{b0001}:s:x", id="a-key"),
    pytest.param("lr:{b0001}:s:0001-" + HEX32, id="a-whole-session-key"),
    pytest.param("*", id="glob"),
    pytest.param("0001-zz", id="not-hex"),
    pytest.param("0001-" + HEX32.upper(), id="upper-case"),
    pytest.param("0400-" + HEX32, id="bucket-beyond-count"),
    pytest.param("ffff-" + HEX32, id="bucket-ffff"),
    pytest.param(None, id="none"),
    pytest.param(1234, id="int"),
    pytest.param(b"0001-" + HEX32.encode(), id="bytes"),
    pytest.param("0001-" + HEX32 + "\n", id="trailing-newline"),
]


@pytest.mark.parametrize("session_id", MALFORMED_IDS)
def test_a_malformed_session_id_is_a_missing_session_and_asks_redis_nothing(
        ready: Any, raw: redis.Redis, session_id: object) -> None:
    store = ready
    before = commands_processed(raw)
    assert store.get_session(session_id) is None
    assert store.touch(session_id) is False
    assert store.is_session_expired(session_id) is True
    assert store.get_mood(session_id) is None
    assert store.end_session(session_id) is False
    assert store.delete_session(session_id) is False
    for write in (lambda: store.append_message(session_id, "user", "hi"),
                  lambda: store.chat_turn(session_id, [("user", "hi")]),
                  lambda: store.get_history(session_id),
                  lambda: store.save_mood(session_id, "shy")):
        with pytest.raises(SessionNotFound) as caught:
            write()
        assert not isinstance(caught.value, SessionExpired)
    assert commands_processed(raw) == before
