"""Upgrades of our own key layout, from the version a keyspace records to ``LAYOUT_VERSION``.

The layout record ``<prefix>:layout`` holds the bucket count and the layout
version; a layout written before versions were recorded has no ``version``
field and is version 1. ``UPGRADES[n]`` turns a version-``n`` keyspace into
version ``n + 1``; ``upgrade_layout`` runs the steps in order and records each
version reached, so an interrupted upgrade resumes where it stopped and a
second run changes nothing.

Versions: 1, archived conversations as message lists; 2, as zstd frames
(``migration.compact`` is the step from 1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from luminora_redis.core.errors import ConfigurationError
from luminora_redis.io import base
from luminora_redis.migration.compact import compact_every_archive

__all__ = ["UPGRADES", "LayoutUpgrade", "upgrade_layout"]

#: version n -> the step that upgrades a version-n keyspace (client, prefix) to n + 1.
UPGRADES: dict[int, Callable[[Any, str], Any]] = {1: compact_every_archive}


@dataclass(frozen=True, slots=True)
class LayoutUpgrade:
    """What ``upgrade_layout`` found and did."""

    prefix: str
    #: None when the prefix holds no keyspace of ours.
    from_version: int | None
    to_version: int | None
    #: The version field was written (it was missing or older).
    recorded: bool
    steps: tuple[int, ...]


def upgrade_layout(client: Any, prefix: str, dry_run: bool = False) -> LayoutUpgrade:
    """Upgrade the keyspace of ``prefix`` (a blocking redis-py client) to the current layout."""
    layout = f"{prefix}:layout"
    fields = client.hgetall(layout)
    if b"buckets" not in fields:
        return LayoutUpgrade(prefix, None, None, False, ())
    version = int(fields.get(b"version", b"1"))
    current = base.LAYOUT_VERSION
    if version > current:
        raise ConfigurationError(
            f"the keyspace {prefix!r} has layout version {version}, newer than this "
            f"luminora-redis understands ({current}); upgrade luminora-redis")
    steps = tuple(range(version, current))
    missing = [step for step in steps if step not in UPGRADES]
    if missing:
        raise ConfigurationError(f"no upgrade step from layout version {missing[0]}")
    if dry_run:
        return LayoutUpgrade(prefix, version, current, b"version" not in fields or bool(steps),
                             steps)
    for step in steps:
        UPGRADES[step](client, prefix)
        client.hset(layout, "version", step + 1)
    recorded = b"version" not in fields or bool(steps)
    if b"version" not in fields:
        client.hset(layout, "version", current)
    return LayoutUpgrade(prefix, version, current, recorded, steps)
