"""Property tests: whatever a record accepts reads back equal from a real server, and
whatever it refuses writes nothing.

Plain values are generated at random (None, bool, 64-bit ints, every float
including NaN and the infinities, text, bytes, and lists and str-keyed dicts
of them); refused values hide one bad piece (a non-str key, a tuple, a set,
an int beyond 64 bits, a lone surrogate, an object) at a random depth inside
plain ones. "Equal" is strict: same types all the way down, NaN as NaN, -0.0
as -0.0. The server tests run on the single server in both shells, with a
modest number of examples each so the suite stays fast.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from luminora_redis import InvalidInput, Sentiment
from luminora_redis.core.codec import pack, unpack
from luminora_redis.core.validation import INT_MAX, INT_MIN

from conftest import snapshot

LONG = {"ttl": 3600, "max_idle": 3600}

scalars = (st.none() | st.booleans() | st.integers(INT_MIN, INT_MAX) | st.floats()
           | st.text() | st.binary())
plain = st.recursive(
    scalars,
    lambda children: (st.lists(children, max_size=4)
                      | st.dictionaries(st.text(max_size=8), children, max_size=4)),
    max_leaves=16,
)
metadata = st.dictionaries(st.text(max_size=8), plain, max_size=4)

bad_piece = st.one_of(
    st.dictionaries(st.integers() | st.binary(min_size=1) | st.none(), plain,
                    min_size=1, max_size=2),
    st.tuples(plain),
    st.frozensets(st.integers(), max_size=2),
    st.sets(st.text(max_size=3), max_size=2),
    st.integers(INT_MAX + 1, 1 << 100) | st.integers(-(1 << 100), INT_MIN - 1),
    st.builds(lambda before, after: before + "\ud800" + after, st.text(max_size=3),
              st.text(max_size=3)),
    st.just(datetime(2024, 1, 1, tzinfo=timezone.utc)),
    st.builds(object),
)
refused = st.deferred(lambda: bad_piece | st.builds(
    lambda before, piece, after: [*before, piece, *after],
    st.lists(plain, max_size=2), refused, st.lists(plain, max_size=2),
) | st.builds(
    lambda others, key, piece: {**others, key: piece},
    st.dictionaries(st.text(max_size=4), plain, max_size=2), st.text(max_size=4), refused,
))

ON_SERVER = settings(max_examples=60, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])


def same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down; NaN equals NaN, -0.0 differs from 0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[key], b[key]) for key in a)
    return bool(a == b)


# -- the codec alone ----------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(plain)
def test_every_plain_value_packs_and_reads_back_the_same(value: Any) -> None:
    assert same(unpack(pack(value)), value)


@settings(max_examples=150, deadline=None)
@given(refused)
def test_every_value_hiding_a_bad_piece_is_refused(value: Any) -> None:
    with pytest.raises(InvalidInput):
        pack(value)


# -- on a real server -----------------------------------------------------------------------


@pytest.mark.single_server
@ON_SERVER
@given(content=st.text(), meta=metadata | st.none())
def test_accepted_messages_read_back_the_same(store: Any, content: str, meta: Any) -> None:
    session_id = store.create_session("carlos", "alicia", LONG)
    [echoed] = store.chat_turn(session_id, [("user", content, meta)], last=1)
    [stored] = store.get_history(session_id)
    for message in (echoed, stored):
        assert message.content == content
        assert same(message.metadata, meta)


@pytest.mark.single_server
@ON_SERVER
@given(value=plain)
def test_accepted_fact_values_read_back_the_same(store: Any, value: Any) -> None:
    store.save_fact("carlos", "any", "value", value)
    [fact] = store.get_facts("carlos", "any")
    assert same(fact.value, value)


@pytest.mark.single_server
@ON_SERVER
@given(title=st.text(), summary=st.text(), importance=st.floats(0, 10),
       sentiment=st.sampled_from(Sentiment), trait=st.floats(-1e15, 1e15) | st.text(max_size=60))
def test_accepted_episodes_and_traits_read_back_the_same(
        store: Any, title: str, summary: str, importance: float, sentiment: Sentiment,
        trait: float | str) -> None:
    saved = store.save_episode("hypothesis", "moment", title, summary, importance, sentiment)
    [episode] = [e for e in store.get_episodes("hypothesis") if e.episode_id == saved.episode_id]
    assert (episode.title, episode.summary, episode.sentiment) == (title, summary, sentiment)
    assert same(episode.importance, float(importance))
    event = store.record_trait("hypothesis", "alicia", "trait", trait)
    assert same(store.get_evolution("hypothesis", limit=1)[0].value, event.value)
    assert event.value == trait


@pytest.mark.single_server
@ON_SERVER
@given(value=refused)
def test_refused_values_write_nothing(store: Any, raw: redis.Redis, value: Any) -> None:
    raw.flushall()  # keeps each example's snapshot small; the store keeps its layout and scripts
    session_id = store.create_session("carlos", "alicia", LONG)
    before = snapshot(raw)
    with pytest.raises(InvalidInput):
        store.chat_turn(session_id, [("user", "hi"), ("assistant", "ok", {"v": value})])
    with pytest.raises(InvalidInput):
        store.save_fact("carlos", "any", "value", value)
    assert snapshot(raw) == before
