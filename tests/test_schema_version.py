"""Layout versions: recorded on first use, a newer one refused, older ones upgraded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from luminora_redis import ConfigurationError, base
from luminora_redis.migration import layout
from luminora_redis.migration.layout import upgrade_layout

from conftest import snapshot


def _old_keyspace(make_store: Callable[..., Any], raw: Any) -> None:
    """A keyspace as stores wrote it before versions were recorded: no version field."""
    store = make_store(buckets=16)
    store.save_fact("carlos", "personal_info", "name", "Carlos")
    raw.hdel("lr:layout", "version")
    assert raw.hgetall("lr:layout") == {b"buckets": b"16"}


def test_a_fresh_keyspace_records_its_version(make_store: Callable[..., Any], raw: Any) -> None:
    make_store().get_facts("carlos")
    assert raw.hgetall("lr:layout") == {b"buckets": b"1024", b"version": b"1"}


def test_an_old_layout_is_version_one_and_the_upgrade_records_it(
        make_store: Callable[..., Any], raw: Any) -> None:
    _old_keyspace(make_store, raw)
    assert [f.value for f in make_store().get_facts("carlos")] == ["Carlos"]
    assert upgrade_layout(raw, "lr", dry_run=True).recorded
    assert raw.hget("lr:layout", "version") is None  # a dry run writes nothing
    done = upgrade_layout(raw, "lr")
    assert (done.from_version, done.to_version, done.recorded, done.steps) == (1, 1, True, ())
    assert raw.hgetall("lr:layout") == {b"buckets": b"16", b"version": b"1"}
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
    """The machinery with a version 2 that renames nothing but marks every user."""
    _old_keyspace(make_store, raw)
    ran: list[int] = []

    def one_to_two(client: Any, prefix: str) -> None:
        ran.append(1)
        client.hset(f"{prefix}:layout", "step_one", "done")

    monkeypatch.setattr(base, "LAYOUT_VERSION", 2)
    monkeypatch.setitem(layout.UPGRADES, 1, one_to_two)
    with pytest.raises(ConfigurationError, match="luminora-redis migrate"):
        make_store().get_facts("carlos")
    done = upgrade_layout(raw, "lr")
    assert (done.from_version, done.to_version, done.steps) == (1, 2, (1,))
    assert upgrade_layout(raw, "lr").steps == ()
    assert ran == [1]
    assert raw.hget("lr:layout", "version") == b"2"
    assert [f.value for f in make_store().get_facts("carlos")] == ["Carlos"]


def test_no_keyspace_no_upgrade(raw: Any) -> None:
    assert upgrade_layout(raw, "lr").from_version is None
    assert raw.exists("lr:layout") == 0
