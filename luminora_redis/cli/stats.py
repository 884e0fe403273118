"""``luminora-redis stats``: what is in Redis and whether archiving keeps up.

Sessions, overdue deadlines (the archive backlog) and sessions ending soon
come from the per-bucket deadline indexes in one pipelined round trip per
node. Deliveries and listeners come from the store (the outbox and the
listener heartbeat). Users and archived conversations have no index of their
own, so counting them is the one place a ``SCAN`` is unavoidable: it walks
only this prefix's user keys, with a progress bar, and ``--no-scan`` skips it.
"""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from luminora_redis.cli.common import (
    connection_options,
    emit,
    json_option,
    literal,
    open_store,
    primaries,
)
from luminora_redis.io.sync_store import SyncSessionStore

__all__ = ["stats"]

SCAN_COUNT = 1000


def count_users(store: SyncSessionStore, show_progress: bool) -> tuple[int, int]:
    """Users and archived conversations of the store's prefix, by SCAN of its user keys."""
    client = store.client
    prefix = store.settings.prefix
    users = archived = 0
    archives: list[bytes] = []
    with Progress(TextColumn("scanning user keys"), BarColumn(), MofNCompleteColumn(),
                  console=Console(stderr=True), disable=not show_progress) as progress:
        task = progress.add_task("scan", total=int(client.dbsize()))
        for key in client.scan_iter(match=f"{prefix}:{{b*}}:u:*", count=SCAN_COUNT):
            progress.advance(task)
            parts = key.split(b":")
            if len(parts) == 4:
                users += 1
            elif len(parts) == 5 and parts[4] == b"archive":
                archives.append(key)
    for start in range(0, len(archives), SCAN_COUNT):
        pipe = client.pipeline()
        for key in archives[start:start + SCAN_COUNT]:
            pipe.zcard(key)
        archived += sum(pipe.execute())
    return users, archived


def _memory(store: SyncSessionStore) -> dict[str, Any]:
    used = peak = 0
    for node in primaries(store.client):
        info = node.info("memory")
        used += int(info["used_memory"])
        peak += int(info.get("used_memory_peak", 0))
    return {"used_bytes": used, "peak_bytes": peak}


def gather(store: SyncSessionStore, window: float, scan: bool, show_progress: bool) -> dict[str, Any]:
    """Every figure ``stats`` prints; None where this build or the server cannot tell."""
    deadlines = store.deadline_stats(window)
    users = archived = None
    if scan:
        users, archived = count_users(store, show_progress)
    deliveries = None
    if hasattr(store, "delivery_backlog"):
        deliveries = store.delivery_backlog().model_dump(mode="json")
    listeners = store.live_listeners() if hasattr(store, "live_listeners") else None
    return {
        "sessions": deadlines.sessions,
        "live_sessions": deadlines.sessions - deadlines.overdue,
        "overdue_sessions": deadlines.overdue,
        "oldest_overdue_seconds": deadlines.oldest_overdue_seconds,
        "ending_soon": deadlines.ending_soon,
        "window_seconds": deadlines.window_seconds,
        "users": users,
        "archived_conversations": archived,
        "deliveries": deliveries,
        "listeners": listeners,
        "memory": _memory(store),
        "buckets": deadlines.buckets,
    }


def _text(value: Any) -> str:
    return "unknown" if value is None else str(value)


@click.command()
@connection_options
@json_option
@click.option("--window", type=click.FloatRange(min=0), default=60.0, show_default=True,
              metavar="SECONDS", help="what 'ending soon' means")
@click.option("--no-scan", is_flag=True,
              help="skip counting users and archived conversations (the only SCAN)")
def stats(url: str, prefix: str, cluster: bool, as_json: bool, window: float,
          no_scan: bool) -> None:
    """Sessions, users, archived conversations, deliveries, the archive backlog, listeners
    and memory."""
    with open_store(url, prefix, cluster) as store:
        data = gather(store, window, not no_scan, not as_json)

    def render(out: Console) -> None:
        table = Table(show_header=False, title=literal(f"luminora-redis under {prefix!r}"))
        backlog = data["oldest_overdue_seconds"]
        deliveries = data["deliveries"] or {}
        rows = [
            ("live sessions", data["live_sessions"]),
            ("overdue sessions (awaiting archive)", data["overdue_sessions"]),
            ("oldest overdue deadline", "none" if backlog is None else f"{backlog:.1f} s ago"),
            (f"ending in the next {window:g} s", data["ending_soon"]),
            ("users", "skipped (--no-scan)" if no_scan else data["users"]),
            ("archived conversations",
             "skipped (--no-scan)" if no_scan else data["archived_conversations"]),
            ("pending deliveries", deliveries.get("pending")),
            ("quarantined deliveries", deliveries.get("quarantined")),
            ("listeners alive", None if data["listeners"] is None else len(data["listeners"])),
            ("memory used", f"{data['memory']['used_bytes'] / 2**20:.1f} MiB"),
            ("buckets", data["buckets"]),
        ]
        for name, value in rows:
            table.add_row(name, literal(_text(value)))
        out.print(table)

    emit(as_json, data, render)
