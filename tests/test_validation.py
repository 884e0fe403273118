"""Safe input against a real Redis, in both shells.

Hostile but valid ids are stored fully isolated; invalid input, a wrong type
in any argument of any public method included, is refused with InvalidInput
before anything is written; a malformed session id (a string) is a session that
does not exist, decided without a single command to Redis.
"""

from __future__ import annotations

import inspect
from datetime import datetime, timezone
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster

from luminora_redis import InvalidInput, SessionExpired, SessionNotFound, SessionStore, SyncSessionStore

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
    with pytest.raises(InvalidInput) as caught:
        ready.create_session("carlos", "alicia", config)
    assert snapshot(raw) == before
    message = str(caught.value)
    assert "\n" not in message and "pydantic.dev" not in message, message
    assert "session_config" in message


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


# -- wrong types, in every public method -------------------------------------------------
#
# Each parameter of each public method gets values of the wrong type, derived from its
# annotation, while the other arguments are fine: each call raises InvalidInput (never a
# bare TypeError or AttributeError, nor a "not found" for a session id that is not even
# a string) and writes nothing. A new method or parameter type without an entry below
# fails at collection.


class Opaque:
    """An object no parameter takes."""

    def __repr__(self) -> str:
        return "Opaque()"


_SINGLE_MESSAGE = {"role": "user", "content": "hi"}
WRONG_TYPES: dict[str, list[Any]] = {
    "str": [None, 5, 1.5, b"carlos", ["carlos"], {"a": 1}, Opaque()],
    "str | None": [5, b"carlos", ["carlos"], {"a": 1}, Opaque()],
    "bool": [None, 1, 0, "yes", b"1", [True], Opaque()],
    "int": [None, "5", 5.0, True, b"5", [5], {"a": 1}, Opaque()],
    "int | None": ["5", 5.0, True, b"5", [5], Opaque()],
    "float": [None, "0.5", True, b"1", [1], Opaque()],
    "float | None": ["0.5", True, b"1", [1], Opaque()],
    "float | str": [None, True, b"x", ["x"], {"a": 1}, Opaque()],
    "Sentiment | str": [None, 5, b"positive", ["positive"], Opaque()],
    "Any": [Opaque(), {1: "x"}, {"a", "b"}, ("a", "b"), {"a": object()}],
    "dict[str, Any] | None": [["ttl"], ("ttl", 60), "ttl", 60, b"ttl", Opaque()],
    "Iterable[MessageLike]": [None, 5, Opaque(), "hi", b"hi", _SINGLE_MESSAGE, [None], [5],
                              [b"hi"], [["user", "hi"]], [(5, "hi")], [("user", None)],
                              [("user", b"hi")], [("user", "hi", "meta")], [("user", "hi", ["m"])],
                              [{"role": "user", "content": 5}]],
}
#: A fine value for each required parameter ("SESSION": the test's live session).
FINE = {"user_id": "carlos", "personality_name": "alicia", "session_id": "SESSION",
        "role": "user", "content": "hi", "messages": [("user", "hi")], "mood": "shy",
        "category": "c", "key": "k", "value": "v", "points_delta": 1, "episode_type": "e",
        "title": "t", "summary": "s", "trait": "humor", "episode_id": "e1",
        "text": "s", "through": 1}
#: Public methods that take no caller data (``run`` takes an operation generator).
NO_DATA = {"aclose", "context", "run", "delivery_backlog", "check_server"}
#: Deprecated aliases: they warn, then call a method that is checked here.
DEPRECATED = {"archive_expired"}


def wrong_calls(name: str) -> list[tuple[str, dict[str, Any]]]:
    """(what is wrong, keyword arguments) for every wrong-typed value of every parameter."""
    parameters = [p for p in inspect.signature(getattr(SessionStore, name)).parameters.values()
                  if p.name != "self"]
    calls = []
    for wrong in parameters:
        if str(wrong.annotation) not in WRONG_TYPES:
            raise LookupError(f"{name}({wrong.name}: {wrong.annotation}): "
                              f"add wrong values for this type to WRONG_TYPES")
        for value in WRONG_TYPES[str(wrong.annotation)]:
            arguments = {p.name: FINE[p.name] for p in parameters
                         if p.default is inspect.Parameter.empty}
            arguments[wrong.name] = value
            calls.append((f"{wrong.name}={value!r:.40}", arguments))
    return calls


PUBLIC = sorted(name for name, member in vars(SessionStore).items()
                if not name.startswith("_") and inspect.isfunction(member)
                and name not in NO_DATA | DEPRECATED)


def test_every_public_method_with_data_is_checked_for_wrong_types() -> None:
    blocking = {name for name, member in vars(SyncSessionStore).items()
                if not name.startswith("_") and inspect.isfunction(member)}
    assert set(PUBLIC) <= blocking
    assert set(PUBLIC) | NO_DATA | DEPRECATED >= blocking - {"close"}
    for name in NO_DATA - {"run"}:
        assert len(inspect.signature(getattr(SessionStore, name)).parameters) == 1, name
    assert sum(len(wrong_calls(name)) for name in PUBLIC) > 300


# Types are checked before any I/O, whatever the topology: one server is enough.
@pytest.mark.single_server
@pytest.mark.parametrize("method", PUBLIC)
def test_a_wrong_type_is_refused_and_nothing_is_written(
        ready: Any, raw: redis.Redis, method: str) -> None:
    session_id = ready.create_session("carlos", "alicia", LONG)
    ready.chat_turn(session_id, [("user", "hello")])
    before = snapshot(raw)
    failures = []
    for wrong, arguments in wrong_calls(method):
        arguments = {key: session_id if value == "SESSION" else value
                     for key, value in arguments.items()}
        try:
            result = getattr(ready, method)(**arguments)
        except InvalidInput as error:
            assert "\n" not in str(error), str(error)
        except Exception as error:
            failures.append(f"{method}({wrong}) raised {type(error).__name__}: {error}")
        else:
            failures.append(f"{method}({wrong}) was accepted: {result!r:.80}")
        if snapshot(raw) != before:
            failures.append(f"{method}({wrong}) wrote to Redis")
            before = snapshot(raw)
    assert not failures, "\n".join(failures)


def test_a_count_beyond_64_bits_is_refused_before_redis_sees_it(ready: Any, raw: redis.Redis) -> None:
    session_id = ready.create_session("carlos", "alicia", LONG)
    before = snapshot(raw)
    huge = 1 << 64
    for call in (lambda: ready.list_archive("carlos", huge),
                 lambda: ready.get_archived_conversations("carlos", huge),
                 lambda: ready.get_episodes("carlos", None, huge),
                 lambda: ready.get_evolution("carlos", None, huge),
                 lambda: ready.get_history(session_id, huge),
                 lambda: ready.chat_turn(session_id, [("user", "hi")], huge)):
        with pytest.raises(InvalidInput, match="64-bit"):
            call()
    assert snapshot(raw) == before
    assert len(ready.list_archive("carlos", (1 << 63) - 1)) == 0


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
