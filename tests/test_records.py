"""Records round-trip exactly or are refused before anything is written, and one
unreadable stored record never makes the read of the others raise.

The refusals are checked at every depth and in every record that holds a
caller's value (message metadata and content, fact values, episode fields,
trait values, moods), against a snapshot of the whole keyspace. The poison
records are planted behind the store's back with the raw client: a message
with int map keys (what 0.1.0 wrote for such metadata), truncated msgpack,
an array of the wrong arity and plain garbage.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from datetime import datetime, timezone
from enum import Enum
from typing import Any

import msgpack
import pytest
import redis

from luminora_redis import InvalidInput, LuminoraRedisError
from luminora_redis.core.codec import (
    decode_episodes,
    decode_evolutions,
    decode_facts,
    decode_messages,
    decode_stored_mood,
    encode_message,
    pack,
    unpack,
    unreadable_records,
)
from luminora_redis.core.validation import MAX_DEPTH, check_plain

from conftest import server_ms, session_keys, snapshot, user_keys

LONG = {"ttl": 60, "max_idle": 30}
LIMIT = 1 << 20


def nested(depth: int) -> Any:
    """``depth`` levels of containers, alternating dicts and lists, around a string."""
    value: Any = "leaf"
    for level in range(depth):
        value = {"k": value} if level % 2 else [value]
    return value


class Colour(str, Enum):
    RED = "red"


# -- what the codec accepts and refuses, without Redis ----------------------------------


REFUSED = {
    "int-key-at-depth": {"a": {1: "x"}},
    "int-key-in-list": {"a": [{"b": 1}, {2: "y"}]},
    "bytes-key": {"a": {b"k": 1}},
    "none-key": {"a": {None: 1}},
    "tuple": {"a": (1, 2)},
    "tuple-at-depth": {"a": [{"b": (1,)}]},
    "set": {"a": {1, 2}},
    "frozenset": {"a": frozenset()},
    "int-too-big": {"a": [1 << 64]},
    "int-too-small": {"a": {"b": -(1 << 63) - 1}},
    "lone-surrogate-value": {"a": ["ok", "\ud800"]},
    "lone-surrogate-key": {"a": {"\udfff": 1}},
    "datetime": {"a": {"when": datetime(2024, 1, 1, tzinfo=timezone.utc)}},
    "object": {"a": [object()]},
    "memoryview": {"a": memoryview(b"x")},
    "too-deep": {"a": nested(MAX_DEPTH)},
    "ext-type": {"a": msgpack.ExtType(1, b"x")},
}

ACCEPTED = {
    "empty": {},
    "scalars": {"n": None, "t": True, "f": False, "i": -7, "x": 1.5, "s": "ñ😀", "b": b"\x00\xff"},
    "int-bounds": {"lo": -(1 << 63), "hi": (1 << 64) - 1},
    "floats": {"inf": math.inf, "ninf": -math.inf, "negzero": -0.0, "tiny": 5e-324},
    "deepest": {"a": nested(MAX_DEPTH - 1)},
    "empty-containers": {"l": [], "d": {}, "s": "", "b": b""},
    "control-characters": {"s": "a\x00b\nc", "\x00": "nul key"},
}


@pytest.mark.parametrize("metadata", REFUSED.values(), ids=REFUSED.keys())
def test_metadata_that_would_not_read_back_equal_is_refused(metadata: Any) -> None:
    with pytest.raises(InvalidInput):
        encode_message("user", "hi", metadata, LIMIT)
    with pytest.raises(InvalidInput):
        pack(metadata)


@pytest.mark.parametrize("metadata", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_accepted_metadata_reads_back_equal_and_of_the_same_types(metadata: Any) -> None:
    message = decode_messages([encode_message("user", "hi", metadata, LIMIT) + msgpack.packb(1)])[0]
    assert message.metadata == metadata
    assert repr(message.metadata) == repr(metadata)  # -0.0 stays -0.0, bytes stay bytes, no bools turn int


def test_nan_is_stored_as_nan() -> None:
    assert math.isnan(unpack(pack({"x": math.nan}))["x"])


def test_subclasses_of_plain_types_are_stored_as_their_base_type_and_compare_equal() -> None:
    value = {"o": OrderedDict(a=1), "e": Colour.RED, "ba": bytearray(b"x")}
    assert unpack(pack(value)) == value


def test_refusal_names_where_in_the_value_the_problem_is() -> None:
    with pytest.raises(InvalidInput, match=r"message metadata\['a'\]: map key 1 is int"):
        encode_message("user", "hi", {"a": {1: "x"}}, LIMIT)
    with pytest.raises(InvalidInput, match=r"value\['a'\]\[1\]\['b'\]: a tuple would read back as a list"):
        pack({"a": [0, {"b": (1,)}]})
    with pytest.raises(InvalidInput, match=r"value\['a'\]\[1\]: text '\\ud800' is not valid unicode"):
        pack({"a": ["ok", "\ud800"]})
    with pytest.raises(InvalidInput, match=f"nested more than {MAX_DEPTH} levels deep"):
        check_plain(nested(MAX_DEPTH + 1), "value")


def test_a_cyclic_value_is_refused_as_too_deep() -> None:
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(InvalidInput, match="levels deep"):
        pack(cycle)


def test_invalid_input_is_a_luminora_redis_error() -> None:
    assert issubclass(InvalidInput, LuminoraRedisError)


# -- refused before anything is written, on a real server -------------------------------


@pytest.mark.parametrize("metadata", REFUSED.values(), ids=REFUSED.keys())
def test_a_refused_turn_writes_nothing_and_the_session_stays_readable(
        store: Any, raw: redis.Redis, metadata: Any) -> None:
    session_id = store.create_session("carlos", "alicia", LONG)
    store.append_message(session_id, "user", "before")
    before = snapshot(raw)
    with pytest.raises(InvalidInput):
        store.chat_turn(session_id, [("user", "hi"), ("assistant", "ok", metadata)])
    assert snapshot(raw) == before
    assert [m.content for m in store.get_history(session_id)] == ["before"]
    assert [m.content for m in store.chat_turn(session_id, [("user", "again")])] == ["before", "again"]


def test_a_retried_turn_after_a_refusal_is_stored_once(store: Any) -> None:
    session_id = store.create_session("carlos", "alicia", LONG)
    with pytest.raises(InvalidInput):
        store.chat_turn(session_id, [("user", "hi", {"a": {1: "x"}})])
    store.chat_turn(session_id, [("user", "hi", {"a": {"1": "x"}})])
    history = store.get_history(session_id)
    assert [(m.content, m.metadata) for m in history] == [("hi", {"a": {"1": "x"}})]


@pytest.mark.parametrize("value", [REFUSED["int-key-at-depth"], {1: 2}, (1, 2), {"s": {3}},
                                   1 << 64, "\ud800", [nested(MAX_DEPTH)]],
                         ids=["int-key-at-depth", "int-key", "tuple", "set", "huge-int",
                              "lone-surrogate", "too-deep"])
def test_a_refused_fact_value_writes_nothing_and_the_users_facts_stay_readable(
        store: Any, raw: redis.Redis, value: Any) -> None:
    store.save_fact("carlos", "personal_info", "name", "Carlos")
    before = snapshot(raw)
    with pytest.raises(InvalidInput):
        store.save_fact("carlos", "personal_info", "pets", value)
    assert snapshot(raw) == before
    assert [(f.key, f.value) for f in store.get_facts("carlos")] == [("name", "Carlos")]


def test_fact_values_of_every_accepted_kind_read_back_equal(store: Any) -> None:
    for name, value in ACCEPTED.items():
        store.save_fact("carlos", "kinds", name, value)
    store.save_fact("carlos", "kinds", "top-level-list", [1, "a", None])
    store.save_fact("carlos", "kinds", "top-level-bytes", b"\x00")
    facts = {f.key: f.value for f in store.get_facts("carlos", "kinds")}
    assert facts == {**ACCEPTED, "top-level-list": [1, "a", None], "top-level-bytes": b"\x00"}


@pytest.mark.parametrize("field", [{"title": "\ud800"}, {"summary": "ok \udfff"}],
                         ids=["title", "summary"])
def test_an_episode_with_a_lone_surrogate_writes_nothing(
        store: Any, raw: redis.Redis, field: dict[str, str]) -> None:
    store.save_episode("carlos", "milestone", "First", "We met")
    before = snapshot(raw)
    with pytest.raises(InvalidInput):
        store.save_episode("carlos", **{"episode_type": "milestone", "title": "t", "summary": "s",
                                        **field})
    assert snapshot(raw) == before
    assert [e.title for e in store.get_episodes("carlos")] == ["First"]


@pytest.mark.parametrize("value", ["\ud800", math.nan, math.inf], ids=["surrogate", "nan", "inf"])
def test_a_refused_trait_value_writes_nothing(store: Any, raw: redis.Redis, value: Any) -> None:
    store.record_trait("carlos", "alicia", "humor", 0.5)
    before = snapshot(raw)
    with pytest.raises(InvalidInput):
        store.record_trait("carlos", "alicia", "humor", value)
    assert snapshot(raw) == before
    assert [e.value for e in store.get_evolution("carlos")] == [0.5]


@pytest.mark.parametrize("mood", [("\ud800", 0.5), ("shy", math.nan)], ids=["surrogate", "nan"])
def test_a_refused_mood_writes_nothing(store: Any, raw: redis.Redis, mood: tuple[Any, Any]) -> None:
    session_id = store.create_session("carlos", "alicia", LONG)
    store.save_mood(session_id, "calm", 0.2)
    before = snapshot(raw)
    with pytest.raises(InvalidInput):
        store.save_mood(session_id, *mood)
    assert snapshot(raw) == before
    assert store.get_mood(session_id).mood == "calm"


def test_episode_and_trait_text_read_back_exactly(store: Any) -> None:
    text = "línea\x00dos\n😀\u2028"
    store.save_episode("carlos", "milestone", text, text[::-1], 7.25)
    store.record_trait("carlos", "alicia", "catchphrase", "¡olé! 😀")
    [episode] = store.get_episodes("carlos")
    assert (episode.title, episode.summary, episode.importance) == (text, text[::-1], 7.25)
    assert store.get_evolution("carlos")[0].value == "¡olé! 😀"


# -- one unreadable stored record never breaks the reads of the others -----------------


def old_message(content: str, metadata: Any, raw: redis.Redis) -> bytes:
    """A message as 0.1.0 stored it, int map keys included."""
    return msgpack.packb(["user", content, metadata, server_ms(raw)])


def poison_messages(raw: redis.Redis) -> list[bytes]:
    good = msgpack.packb(["user", "x", None, server_ms(raw)])
    return [
        old_message("int keys", {"a": {1: "x"}}, raw),
        good[:-3],                                        # truncated
        msgpack.packb(["user", "three", None]),          # wrong arity
        msgpack.packb(["nobody", "x", None, 1]),          # unknown role
        b"\xc1garbage",                                   # never-used msgpack byte
        msgpack.packb(["user", "x", None, (1 << 63) - 1]),  # timestamp out of range
    ]


@pytest.fixture
def skipped() -> Any:
    """How many unreadable records the test made the store skip."""
    start = unreadable_records()
    return lambda: unreadable_records() - start


def test_poison_messages_are_skipped_by_every_history_read(
        store: Any, raw: redis.Redis, skipped: Any, caplog: pytest.LogCaptureFixture) -> None:
    session_id = store.create_session("carlos", "alicia", LONG)
    store.append_message(session_id, "user", "first")
    poison = poison_messages(raw)
    raw.rpush(session_keys(session_id).history, *poison)
    store.append_message(session_id, "assistant", "last")
    with caplog.at_level(logging.WARNING, logger="luminora_redis.codec"):
        assert [m.content for m in store.get_history(session_id)] == ["first", "last"]
    assert skipped() == len(poison)
    assert any(session_id in record.getMessage() for record in caplog.records)
    turn = store.chat_turn(session_id, [("user", "next")], last=20)
    assert [m.content for m in turn] == ["first", "last", "next"]
    assert [m.content for m in store.get_history(session_id, last=1)] == ["next"]


def test_a_poison_message_is_logged_once_however_often_it_is_read(
        store: Any, raw: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    session_id = store.create_session("carlos", "alicia", LONG)
    raw.rpush(session_keys(session_id).history, old_message("int keys", {1: 2}, raw))
    with caplog.at_level(logging.WARNING, logger="luminora_redis.codec"):
        for _ in range(3):
            assert store.get_history(session_id) == []
    assert len([r for r in caplog.records if session_id in r.getMessage()]) == 1


def test_the_archive_skips_poison_messages_and_keeps_the_others(
        store: Any, raw: redis.Redis, skipped: Any) -> None:
    session_id = store.create_session("carlos", "alicia", LONG)
    store.append_message(session_id, "user", "first")
    raw.rpush(session_keys(session_id).history, *poison_messages(raw))
    store.append_message(session_id, "assistant", "last")
    other = store.create_session("carlos", "alicia", LONG)
    store.append_message(other, "user", "clean")
    assert store.end_session(session_id) and store.end_session(other)
    archived = {c.session_id: c for c in store.get_archived_conversations("carlos")}
    assert [m.content for m in archived[session_id].messages] == ["first", "last"]
    assert [m.content for m in archived[other].messages] == ["clean"]
    assert skipped() >= len(poison_messages(raw))


def test_a_poison_fact_is_skipped_and_the_users_other_facts_are_read(
        store: Any, raw: redis.Redis, skipped: Any) -> None:
    store.save_fact("carlos", "personal_info", "name", "Carlos")
    store.save_fact("carlos", "preferences", "food", ["paella"])
    facts = user_keys("carlos").facts
    now = server_ms(raw)
    raw.hset(facts, mapping={
        msgpack.packb(["personal_info", "pets"]): msgpack.packb([{1: 2}, 1.0, now]),
        msgpack.packb(["x", "y"]): b"\x93\xa1",                       # truncated
        b"not msgpack \xc1": msgpack.packb(["v", 1.0, now]),          # unreadable field
        msgpack.packb(["x", "arity"]): msgpack.packb(["v", 1.0]),      # wrong arity
    })
    assert [(f.category, f.key, f.value) for f in store.get_facts("carlos")] == [
        ("personal_info", "name", "Carlos"), ("preferences", "food", ["paella"])]
    assert [f.key for f in store.get_facts("carlos", "personal_info")] == ["name"]
    assert skipped() == 4 + 4  # read twice
    store.save_fact("carlos", "personal_info", "age", 34)
    assert [f.key for f in store.get_facts("carlos", "personal_info")] == ["age", "name"]


def test_a_poison_episode_is_skipped(store: Any, raw: redis.Redis, skipped: Any) -> None:
    store.save_episode("carlos", "milestone", "First", "We met", 5.0)
    user = user_keys("carlos")
    for n, body in enumerate([b"\xc1", msgpack.packb(["e", "t"]), msgpack.packb({1: 2})]):
        raw.zadd(user.episodes, {f"bad{n}": 9})
        raw.hset(user.episode_bodies, f"bad{n}", body)
    store.save_episode("carlos", "milestone", "Second", "Again", 1.0)
    assert [e.title for e in store.get_episodes("carlos")] == ["First", "Second"]
    assert skipped() == 3


def test_a_poison_evolution_record_is_skipped(store: Any, raw: redis.Redis, skipped: Any) -> None:
    store.update_affinity("carlos", "alicia", 5)
    raw.zadd(user_keys("carlos").evolution, {b"\xc1": 1.5, msgpack.packb(["trait", "alicia"]): 1.6,
                                             msgpack.packb(["weird", "alicia", 1, 2]): 1.7})
    store.record_trait("carlos", "alicia", "humor", 0.7)
    events = store.get_evolution("carlos")
    assert [(e.kind.value, e.personality_name) for e in events] == [
        ("affinity", "alicia"), ("trait", "alicia")]
    assert skipped() == 3


def test_a_poison_mood_reads_as_no_mood_and_the_session_works_on(
        store: Any, raw: redis.Redis, skipped: Any) -> None:
    session_id = store.create_session("carlos", "alicia", LONG)
    raw.hset(session_keys(session_id).session, "mood", msgpack.packb([{1: 2}, 0.5, 1]))
    assert store.get_mood(session_id) is None
    assert skipped() == 1
    assert store.get_session(session_id) is not None
    store.save_mood(session_id, "happy", 0.9)
    assert store.get_mood(session_id).mood == "happy"


# -- the decoders on their own ------------------------------------------------------------


def test_decoders_keep_order_and_skip_only_the_unreadable(skipped: Any) -> None:
    good = [msgpack.packb(["user", str(n), None, 1000 + n]) for n in range(3)]
    assert [m.content for m in decode_messages([good[0], b"\xc1", good[1], b"", good[2]])] == [
        "0", "1", "2"]
    assert decode_facts([msgpack.packb(["c", "k"]), b"\xc1"]) == []
    assert decode_episodes([None, b"\xc1"]) == []
    assert decode_evolutions([b"\x90"]) == []
    assert decode_stored_mood(b"\xc1") is None and decode_stored_mood(None) is None
    assert skipped() == 2 + 1 + 1 + 1 + 1
