"""Pure tests of the codec, the key layout and the settings: no Redis involved.

The scripts append the server-side tail of a record with ``cmsgpack.pack``;
here ``msgpack.packb`` plays that part, so what the client packs plus what a
script would append must decode into the full record.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import msgpack
import pytest
import redis
import redis.asyncio
from pydantic import ValidationError

from luminora_redis import (
    ExpiryListener,
    InvalidSettings,
    ListenerSettings,
    LuminoraRedisError,
    SessionConfig,
    SessionStore,
    SyncSessionStore,
)
from luminora_redis.core.codec import (
    decode_episode,
    decode_evolution,
    decode_fact,
    decode_message,
    decode_mood,
    encode_message,
    from_ms,
    pack,
    prefix,
)
from luminora_redis.core.errors import InvalidInput, MessageTooLarge
from luminora_redis.core.keys import KeySpace
from luminora_redis.core.models import EvolutionKind, Role, Sentiment
from luminora_redis.core.settings import (
    DEFAULT_AFFINITY_LEVELS,
    StoreSettings,
    parse_session_config,
)

TS = 1_700_000_000_123  # 2023-11-14T22:13:20.123Z
WHEN = datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=timezone.utc)
LIMIT = 1 << 20
HEX32 = "0123456789abcdef" * 2


def tail(*values: object) -> bytes:
    """What a script appends with cmsgpack.pack, one value after another."""
    return b"".join(msgpack.packb(value) for value in values)


# -- timestamps --------------------------------------------------------------------------


def test_from_ms_is_an_aware_utc_datetime_to_the_millisecond() -> None:
    moment = from_ms(TS)
    assert moment == WHEN
    assert moment.utcoffset() == timedelta(0)


def test_from_ms_accepts_the_bytes_redis_replies_with() -> None:
    assert from_ms(str(TS).encode()) == WHEN


# -- messages ----------------------------------------------------------------------------


def test_a_message_round_trips_once_the_script_appends_its_timestamp() -> None:
    stored = encode_message("user", "hola ¿qué tal? 😀", {"lang": "es", "n": [1, 2]}, LIMIT)
    message = decode_message(stored + tail(TS))
    assert message.role is Role.USER
    assert message.content == "hola ¿qué tal? 😀"
    assert message.metadata == {"lang": "es", "n": [1, 2]}
    assert message.timestamp == WHEN


def test_an_encoded_message_is_an_array_that_still_expects_its_timestamp() -> None:
    stored = encode_message(Role.ASSISTANT, "hi", None, LIMIT)
    unpacker = msgpack.Unpacker()
    unpacker.feed(stored)
    assert unpacker.read_array_header() == 5
    assert [unpacker.unpack() for _ in range(4)] == ["assistant", "hi", None, 1]
    with pytest.raises(msgpack.OutOfData):
        unpacker.unpack()


@pytest.mark.parametrize("role", ["admin", "USER", "", None, 1])
def test_an_unknown_role_is_refused(role: object) -> None:
    with pytest.raises(InvalidInput):
        encode_message(role, "hi", None, LIMIT)


@pytest.mark.parametrize("content", [None, 5, b"bytes", ["hi"]])
def test_content_that_is_not_a_string_is_refused(content: object) -> None:
    with pytest.raises(InvalidInput):
        encode_message("user", content, None, LIMIT)


@pytest.mark.parametrize("metadata", [
    object(),
    {"when": datetime.now(timezone.utc)},
    {1: "non-string key"},
    ["not", "a", "dict"],
    {"big": 2**70},
    {"bad": "\ud800"},
], ids=["object", "datetime", "int-key", "list", "huge-int", "lone-surrogate"])
def test_metadata_that_is_not_plain_data_is_refused(metadata: object) -> None:
    with pytest.raises(InvalidInput):
        encode_message("user", "hi", metadata, LIMIT)


def test_a_message_exactly_at_the_limit_is_accepted_and_one_byte_more_is_too_large() -> None:
    # content "a" * 10 packs to 11 bytes and metadata None to 1: a 12-byte body.
    assert decode_message(encode_message("user", "a" * 10, None, 12) + tail(TS)).content == "a" * 10
    with pytest.raises(MessageTooLarge):
        encode_message("user", "a" * 10, None, 11)


def test_message_too_large_is_an_invalid_input() -> None:
    assert issubclass(MessageTooLarge, InvalidInput)


# -- other records -----------------------------------------------------------------------


def test_a_mood_round_trips() -> None:
    mood = decode_mood(prefix(3, ("shy", 0.8)) + tail(TS))
    assert (mood.mood, mood.intensity, mood.updated_at) == ("shy", 0.8, WHEN)


def test_a_fact_round_trips_with_any_plain_value() -> None:
    value = {"city": "Sevilla", "since": 2019, "tags": ["a", None, True]}
    fact = decode_fact(pack(["personal_info", "home"]), prefix(3, (value, 0.9)) + tail(TS))
    assert (fact.category, fact.key, fact.value, fact.confidence, fact.updated_at) == (
        "personal_info", "home", value, 0.9, WHEN)


def test_an_episode_round_trips() -> None:
    body = prefix(8, ("e1", "milestone", "First chat", "We met", 8.5, "positive", "alicia"))
    episode = decode_episode(body + tail(TS))
    assert episode.episode_id == "e1"
    assert (episode.episode_type, episode.title, episode.summary) == (
        "milestone", "First chat", "We met")
    assert episode.importance == 8.5
    assert episode.sentiment is Sentiment.POSITIVE
    assert episode.personality_name == "alicia"
    assert episode.created_at == WHEN


def test_an_affinity_record_round_trips_with_the_four_values_the_script_appends() -> None:
    record = prefix(8, (EvolutionKind.AFFINITY.value, "alicia", -3, "argument"))
    event = decode_evolution(record + tail(22, "stranger", 7, TS))
    assert event.kind is EvolutionKind.AFFINITY
    assert (event.personality_name, event.points_delta, event.interaction_type) == (
        "alicia", -3, "argument")
    assert (event.points, event.level, event.sequence, event.timestamp) == (
        22, "stranger", 7, WHEN)
    assert event.trait is None


def test_a_trait_record_round_trips_with_the_two_values_the_script_appends() -> None:
    record = prefix(7, (EvolutionKind.TRAIT.value, "alicia", "humor", 0.7, "jokes landed"))
    event = decode_evolution(record + tail(8, TS))
    assert event.kind is EvolutionKind.TRAIT
    assert (event.trait, event.value, event.reason) == ("humor", 0.7, "jokes landed")
    assert (event.sequence, event.timestamp) == (8, WHEN)
    assert event.points is None


@pytest.mark.parametrize("value", [object(), {1, 2}, datetime.now(timezone.utc), "\udfff"],
                         ids=["object", "set", "datetime", "lone-surrogate"])
def test_pack_refuses_what_is_not_plain_data(value: object) -> None:
    with pytest.raises(InvalidInput):
        pack(value)


# -- keys --------------------------------------------------------------------------------


HOSTILE_IDS = ["a{b}c", "x:y", "*", "?", "[a]", "%41", "A", "a%7Bb%7Dc", "Ünïcödé😀",
               "a b", "a/b", "lr:{b0001}:u:x", "x" * 250]


def test_user_keys_of_distinct_ids_never_coincide() -> None:
    keys = KeySpace("lr", 1024)
    users = [keys.user(user_id) for user_id in HOSTILE_IDS]
    every_key = [key for user in users for key in user]
    assert len(set(every_key)) == len(every_key)


@pytest.mark.parametrize("user_id", HOSTILE_IDS)
def test_a_user_key_has_exactly_one_hash_tag_and_no_stray_colon(user_id: str) -> None:
    keys = KeySpace("lr", 1024)
    user_key = keys.user(user_id).user
    assert user_key.count("{") == 1 and user_key.count("}") == 1
    assert user_key.startswith(keys.tag(keys.bucket_of_user(user_id)) + ":u:")
    assert ":" not in user_key.rsplit(":u:", 1)[1]


def test_percent_encoding_keeps_a_literal_percent_apart_from_what_it_would_decode_to() -> None:
    keys = KeySpace("lr", 1)  # one bucket: only the encoding can keep them apart
    assert keys.user("%41").user != keys.user("A").user
    assert keys.user("a%7Bb%7Dc").user != keys.user("a{b}c").user


def test_bucket_of_user_is_stable_across_processes() -> None:
    """Values computed once: a change means every deployed keyspace would be re-sharded."""
    assert KeySpace("lr", 1024).bucket_of_user("carlos") == 547
    assert KeySpace("lr", 1024).bucket_of_user("Ünïcödé😀") == 306
    assert KeySpace("lr", 1024).bucket_of_user("a{b}c") == 11
    assert KeySpace("lr", 65536).bucket_of_user("carlos") == 60963


def test_bucket_of_user_stays_within_the_bucket_count() -> None:
    keys = KeySpace("lr", 7)
    assert {keys.bucket_of_user(f"user-{n}") for n in range(200)} == set(range(7))


def test_a_new_session_id_routes_to_its_users_bucket_and_carries_32_hex_digits() -> None:
    keys = KeySpace("lr", 1024)
    session_id = keys.new_session_id("carlos")
    bucket, _, random_part = session_id.partition("-")
    assert bucket == f"{keys.bucket_of_user('carlos'):04x}"
    assert len(random_part) == 32 and int(random_part, 16) >= 0
    assert keys.bucket_of_session(session_id) == keys.bucket_of_user("carlos")


def test_bucket_of_session_accepts_a_well_formed_id() -> None:
    assert KeySpace("lr", 1024).bucket_of_session(f"03ff-{HEX32}") == 1023


@pytest.mark.parametrize("session_id", [
    "", "../x", "lr:{b0001}:s:x", "*", "0001-zz", f"0001-{HEX32}x", f"0001-{HEX32[:-1]}",
    f"0001-{HEX32.upper()}", f"001-{HEX32}0", f" 0001-{HEX32}", f"0400-{HEX32}", f"ffff-{HEX32}",
    None, 1, b"0001-" + HEX32.encode(),
], ids=repr)
def test_bucket_of_session_rejects_malformed_ids(session_id: object) -> None:
    assert KeySpace("lr", 1024).bucket_of_session(session_id) is None


def test_bucket_of_session_rejects_an_id_with_a_trailing_newline() -> None:
    assert KeySpace("lr", 1024).bucket_of_session(f"0001-{HEX32}\n") is None


def test_session_id_of_key_reads_back_the_id_of_a_session_hash() -> None:
    keys = KeySpace("lr", 1024)
    session_id = f"0011-{HEX32}"
    session_keys = keys.session(session_id, 0x11)
    assert keys.session_id_of_key(session_keys.session) == session_id


def test_session_id_of_key_ignores_every_other_key_of_the_session() -> None:
    keys = KeySpace("lr", 1024)
    session_keys = keys.session(f"0011-{HEX32}", 0x11)
    for key in (session_keys.meta, session_keys.history, session_keys.overflow,
                session_keys.deadlines, session_keys.manual):
        assert keys.session_id_of_key(key) is None


@pytest.mark.parametrize("key", [
    f"other:{{b0011}}:s:0011-{HEX32}",       # another prefix
    f"lr:{{b0012}}:s:0011-{HEX32}",          # the tag and the id disagree on the bucket
    f"lr:{{b0011}}:u:0011-{HEX32}",          # a user key
    "lr:{b0011}:s:not-a-session",
    f"lr:{{b0400}}:s:0400-{HEX32}",          # bucket beyond the count
    "lr:layout",
])
def test_session_id_of_key_rejects_keys_that_are_not_session_hashes(key: str) -> None:
    assert KeySpace("lr", 1024).session_id_of_key(key) is None


# -- settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(("points", "level"), [
    (0, "stranger"), (24, "stranger"), (25, "acquaintance"), (49, "acquaintance"),
    (50, "friend"), (10**9, "friend"),
])
def test_default_levels(points: int, level: str) -> None:
    assert StoreSettings().level_for(points) == level


def test_custom_levels_are_used_by_level_for() -> None:
    settings = StoreSettings(affinity_levels=(("cold", 0), ("warm", 10), ("hot", 100)))
    assert [settings.level_for(p) for p in (0, 9, 10, 99, 100)] == [
        "cold", "cold", "warm", "warm", "hot"]


def test_default_levels_are_stranger_acquaintance_friend() -> None:
    assert DEFAULT_AFFINITY_LEVELS == (("stranger", 0), ("acquaintance", 25), ("friend", 50))


def assert_names_the_field(error: BaseException, field: str) -> None:
    """A settings refusal is the library's error: one line naming the field, no pydantic
    link; pydantic's own error rides along as its cause."""
    assert isinstance(error, InvalidSettings)
    assert isinstance(error, LuminoraRedisError) and isinstance(error, ValueError)
    text = str(error)
    assert "\n" not in text and "pydantic.dev" not in text, text
    assert field in text, text
    assert isinstance(error.__cause__, ValidationError)


@pytest.mark.parametrize("levels", [
    (),
    (("low", 5), ("high", 10)),                 # does not start at 0
    (("a", 0), ("b", 20), ("c", 10)),           # not ascending
    (("a", 0), ("b", 10), ("c", 10)),           # duplicate minimum
    (("", 0), ("b", 10)),                       # empty name
    (("a", 0), ("b", "ten")),                   # not a number
], ids=["empty", "no-zero", "descending", "duplicate", "empty-name", "not-a-number"])
def test_invalid_affinity_levels_are_refused(levels: tuple[tuple[str, int], ...]) -> None:
    with pytest.raises(InvalidSettings) as caught:
        StoreSettings(affinity_levels=levels)
    assert_names_the_field(caught.value, "affinity_levels")


BAD_STORE_SETTINGS = {
    "prefix-colon": ({"prefix": "a:b"}, "prefix"),
    "prefix-brace": ({"prefix": "{x}"}, "prefix"),
    "prefix-newline": ({"prefix": "a\nb"}, "prefix"),
    "prefix-int": ({"prefix": 7}, "prefix"),
    "buckets-zero": ({"buckets": 0}, "buckets"),
    "buckets-string": ({"buckets": "many"}, "buckets"),
    "max-history-zero": ({"max_history": 0}, "max_history"),
    "default-ttl-zero": ({"default_ttl": 0}, "default_ttl"),
    "deliveries-string": ({"deliveries": "no"}, "deliveries"),
    "misspelt": ({"prefx": "lr"}, "'prefx' (did you mean 'prefix'?)"),
    "unknown": ({"unknown": 1}, "unknown"),
}


@pytest.mark.parametrize(("fields", "named"), BAD_STORE_SETTINGS.values(),
                         ids=BAD_STORE_SETTINGS.keys())
def test_invalid_store_settings_are_refused_with_the_library_error(
        fields: dict[str, Any], named: str) -> None:
    """Every way to give a store its settings refuses them alike, before any client is
    made or any command sent (the URLs lead nowhere)."""
    attempts = [
        lambda: StoreSettings(**fields),
        lambda: StoreSettings.model_validate(fields),
        lambda: SyncSessionStore.from_url("redis://127.0.0.1:1/0", **fields),
        lambda: SessionStore.from_url("redis://127.0.0.1:1/0", **fields),
        lambda: SyncSessionStore.from_url("redis://127.0.0.1:1/0", settings=StoreSettings(), **fields),
        lambda: SessionStore.from_url("redis://127.0.0.1:1/0", cluster=True, **fields),
    ]
    client = redis.Redis(port=1)
    try:
        attempts.append(lambda: SyncSessionStore(client, **fields))
        for attempt in attempts:
            with pytest.raises(InvalidSettings) as caught:
                attempt()
            assert_names_the_field(caught.value, named)
    finally:
        client.close()


@pytest.mark.parametrize("fields", [{"ttl": 0}, {"max_idle": -1}, {"ttl": "10"},
                                    {"auto_cleanup": "yes"}, {"idle": 30}],
                         ids=["ttl-zero", "max-idle-negative", "ttl-string", "auto-cleanup-string",
                              "misspelt"])
def test_an_invalid_session_config_object_is_refused_with_the_library_error(
        fields: dict[str, Any]) -> None:
    """Built directly it is a settings error; passed to ``create_session`` as a mapping it
    is the caller's input (``InvalidInput``, see test_validation), with the same words."""
    (field,) = fields
    with pytest.raises(InvalidSettings) as caught:
        SessionConfig(**fields)
    assert_names_the_field(caught.value, field)
    with pytest.raises(InvalidInput) as refused:
        parse_session_config(StoreSettings(), fields)
    assert not isinstance(refused.value, InvalidSettings)
    assert str(refused.value) == f"invalid session_config: {caught.value.reasons}"


BAD_LISTENER_SETTINGS = {
    "misspelt": ({"sweep_intervall": 1}, "'sweep_intervall' (did you mean 'sweep_interval'?)"),
    "interval-zero": ({"sweep_interval": 0}, "sweep_interval"),
    "interval-string": ({"sweep_interval": "1"}, "sweep_interval"),
    "batch-float": ({"sweep_batch": 1.5}, "sweep_batch"),
    "catch-up-string": ({"catch_up": "no"}, "catch_up"),
    "name-int": ({"name": 5}, "name"),
    "lease-not-beyond-interval": ({"sweep_interval": 1.0, "sweep_lease": 0.5}, "sweep_lease"),
    "scan-lease-not-beyond-interval": ({"delivery_interval": 2.0, "delivery_scan_lease": 2.0},
                                       "delivery_scan_lease"),
}


@pytest.mark.parametrize(("fields", "named"), BAD_LISTENER_SETTINGS.values(),
                         ids=BAD_LISTENER_SETTINGS.keys())
def test_invalid_listener_settings_are_refused_with_the_library_error(
        fields: dict[str, Any], named: str) -> None:
    store = SessionStore(redis.asyncio.Redis(port=1))
    attempts = [lambda: ListenerSettings(**fields),
                lambda: ListenerSettings.model_validate(fields),
                lambda: ExpiryListener(store, **fields),
                lambda: ExpiryListener(store, ListenerSettings(), **fields)]
    try:
        for attempt in attempts:
            with pytest.raises(InvalidSettings) as caught:
                attempt()
            assert_names_the_field(caught.value, named)
    finally:
        asyncio.run(store.client.aclose())


def test_session_config_gaps_are_filled_from_the_store_defaults() -> None:
    settings = StoreSettings(default_ttl=100, default_max_idle=40)
    config = parse_session_config(settings, {"max_idle": 0.25})
    assert (config.ttl, config.max_idle, config.auto_cleanup) == (100, 0.25, True)
    assert (config.ttl_ms, config.max_idle_ms) == (100_000, 250)


def test_session_config_defaults_are_an_hour_and_half_an_hour() -> None:
    config = parse_session_config(StoreSettings(), None)
    assert (config.ttl, config.max_idle) == (3600, 1800)


def test_a_sub_millisecond_duration_rounds_up_to_one_millisecond() -> None:
    config = parse_session_config(StoreSettings(), {"ttl": 0.0001, "max_idle": 0.0015})
    assert (config.ttl_ms, config.max_idle_ms) == (1, 2)
