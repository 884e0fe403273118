"""Layout 1 -> 2: compress every archived conversation into zstd frames.

Layout 2 stores an archived conversation's messages as zstd frames
(``compaction``). Readers of layout 2 read message lists too, but readers of
layout 1 fail on a compressed conversation (WRONGTYPE), hence the version. The
step walks the prefix's user archives (SCAN of ``<prefix>:{b*}:u:*:archive``,
on every primary of a cluster) and compacts each conversation in the same
atomic, re-checked steps as after an archive; it is idempotent, so an
interrupted upgrade resumes where it stopped.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from luminora_redis.core.context import Context
from luminora_redis.core.settings import StoreSettings
from luminora_redis.io.server_identity import scripts_blocking
from luminora_redis.io.sync_runner import SyncRunner
from luminora_redis.ops.compaction import compact_user

__all__ = ["compact_every_archive"]

SCAN_COUNT = 1000


def compact_every_archive(client: Any, prefix: str) -> int:
    """Compact the archived conversations of every user of ``prefix`` (a blocking redis-py
    client, single server or cluster); how many units were compacted."""
    buckets = int(client.hget(f"{prefix}:layout", "buckets"))
    ctx = Context(StoreSettings(prefix=prefix), buckets)
    runner = SyncRunner(client, scripts_blocking(client))
    compacted = 0
    for key in client.scan_iter(match=f"{prefix}:{{b*}}:u:*:archive", count=SCAN_COUNT):
        parts = key.decode().split(":")
        if len(parts) != 5:
            continue  # not a user's archive index (a user id never holds a raw colon)
        user = ctx.keys.user(unquote(parts[3]))
        if user.archive != key.decode():
            continue  # a key that only looks like ours
        compacted += runner.drive(compact_user(user))
    return compacted
