"""Layout versions: recorded on first use, a newer one refused, older ones upgraded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from luminora_redis import ConfigurationError
from luminora_redis.io import base
from luminora_redis.migration import layout
from luminora_redis.migration.layout import upgrade_layout

from conftest import snapshot


def _old_keyspace(make_store: Callable[..., Any], raw: Any) -> None:
    """A keyspace as stores wrote it before versions were recorded: no version field
    (and archived conversations as lists, as version 1 wrote them)."""
    store = make_store(buckets=16, compress_archives=False)
    store.save_fact("carlos", "personal_info", "name", "Carlos")
    raw.hdel("lr:layout", "version")
    assert raw.hgetall("lr:layout") == {b"buckets": b"16"}


def test_a_fresh_keyspace_records_its_version(make_store: Callable[..., Any], raw: Any) -> None:
    make_store().get_facts("carlos")
    assert raw.hgetall("lr:layout") == {b"buckets": b"1024",
                                        b"version": str(base.LAYOUT_VERSION).encode()}


def test_an_old_layout_is_version_one_and_the_upgrade_records_it(
        make_store: Callable[..., Any], raw: Any) -> None:
    _old_keyspace(make_store, raw)
    with pytest.raises(ConfigurationError, match="luminora-redis migrate"):
        make_store().get_facts("carlos")
    assert upgrade_layout(raw, "lr", dry_run=True).recorded
    assert raw.hget("lr:layout", "version") is None  # a dry run writes nothing
    done = upgrade_layout(raw, "lr")
    current = base.LAYOUT_VERSION
    assert (done.from_version, done.to_version, done.recorded, done.steps) == (
        1, current, True, tuple(range(1, current)))
    assert raw.hgetall("lr:layout") == {b"buckets": b"16", b"version": str(current).encode()}
    before = snapshot(raw) if not hasattr(raw, "get_nodes") else None
    again = upgrade_layout(raw, "lr")
    assert not again.recorded and again.steps == ()
    if before is not None:
        assert snapshot(raw) == before
    assert [f.value for f in make_store().get_facts("carlos")] == ["Carlos"]


def test_a_newer_layout_is_refused(make_store: Callable[..., Any], raw: Any) -> None:
    raw.hset("lr:layout", mapping={"buckets": 1024, "version": base.LAYOUT_VERSION + 1})
    with pytest.raises(ConfigurationError, match="newer than this luminora-redis"):
        make_store().get_facts("carlos")
    with pytest.raises(ConfigurationError, match="newer"):
        upgrade_layout(raw, "lr")
    assert raw.exists("lr:{b0000}:u:carlos:facts") == 0


def test_upgrade_steps_run_once_in_order(make_store: Callable[..., Any], raw: Any,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The machinery with a next version whose step renames nothing but marks the layout."""
    _old_keyspace(make_store, raw)
    ran: list[int] = []
    current = base.LAYOUT_VERSION

    def to_next(client: Any, prefix: str) -> None:
        ran.append(current)
        client.hset(f"{prefix}:layout", "step_next", "done")

    monkeypatch.setattr(base, "LAYOUT_VERSION", current + 1)
    monkeypatch.setitem(layout.UPGRADES, current, to_next)
    with pytest.raises(ConfigurationError, match="luminora-redis migrate"):
        make_store().get_facts("carlos")
    done = upgrade_layout(raw, "lr")
    assert (done.from_version, done.to_version, done.steps) == (1, current + 1,
                                                                 tuple(range(1, current + 1)))
    assert upgrade_layout(raw, "lr").steps == ()
    assert ran == [current]
    assert raw.hget("lr:layout", "version") == str(current + 1).encode()
    assert [f.value for f in make_store().get_facts("carlos")] == ["Carlos"]


def test_no_keyspace_no_upgrade(raw: Any) -> None:
    assert upgrade_layout(raw, "lr").from_version is None
    assert raw.exists("lr:layout") == 0
