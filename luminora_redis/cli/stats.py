"""``luminora-redis stats``: what is in Redis and whether archiving keeps up.

Sessions, overdue deadlines (the archive backlog) and sessions ending soon
come from the per-bucket deadline indexes in one pipelined round trip per
node. Deliveries and listeners come from the store (the outbox and the
listener heartbeat). Users and archived conversations have no index of their
own, so counting them is the one place a ``SCAN`` is unavoidable: it walks
only this prefix's user keys, with a progress bar, and ``--no-scan`` skips it.

A figure the server refuses to give this user (memory needs ``INFO``, which a
restricted ACL user may lack) shows as unknown, and ``unreadable`` names the
command, the server's reason and the right to grant; the other figures are
still reported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click
from redis.cluster import RedisCluster
from redis.exceptions import ResponseError
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
from luminora_redis.io.server_checks import refusal
from luminora_redis.io.sync_store import SyncSessionStore

__all__ = ["stats"]

SCAN_COUNT = 1000

T = TypeVar("T")


def _key_count(client: Any) -> int:
    """Keys in the whole keyspace: a cluster client's DBSIZE asks one node by default."""
    if isinstance(client, RedisCluster):
        return int(client.dbsize(target_nodes=RedisCluster.PRIMARIES))
    return int(client.dbsize())


def count_users(store: SyncSessionStore, show_progress: bool) -> tuple[int, int]:
    """Users and archived conversations of the store's prefix, by SCAN of its user keys."""
    client = store.client
    prefix = store.settings.prefix
    users = archived = 0
    archives: list[bytes] = []
    with Progress(TextColumn("scanning user keys"), BarColumn(), MofNCompleteColumn(),
                  console=Console(stderr=True), disable=not show_progress) as progress:
        task = progress.add_task("scan", total=_key_count(client))
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


def _readable(unreadable: dict[str, dict[str, str | None]], figure: str, commands: str,
              read: Callable[[], T]) -> T | None:
    """``read()``, or None with the refusal recorded in ``unreadable`` under ``figure``:
    the ``commands`` it needs, the server's reason, the right to grant. Errors other
    than a refusal propagate."""
    try:
        return read()
    except ResponseError as error:
        refused = refusal(error)
        if refused is None:
            raise
        unreadable[figure] = {"commands": commands, "reason": refused.reason,
                              "grant": refused.right}
        return None


def gather(store: SyncSessionStore, window: float, scan: bool, show_progress: bool) -> dict[str, Any]:
    """Every figure ``stats`` prints; None where this build or the server cannot tell, and
    under ``unreadable`` why the server refused each figure it would not give."""
    unreadable: dict[str, dict[str, str | None]] = {}
    deadlines = store.deadline_stats(window)
    users = archived = None
    if scan:
        counted = _readable(unreadable, "users", "DBSIZE, SCAN and ZCARD",
                            lambda: count_users(store, show_progress))
        if counted is not None:
            users, archived = counted
    deliveries = None
    if hasattr(store, "delivery_backlog"):
        deliveries = store.delivery_backlog().model_dump(mode="json")
    listeners = store.live_listeners() if hasattr(store, "live_listeners") else None
    memory = _readable(unreadable, "memory", "INFO memory", lambda: _memory(store))
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
        "memory": memory,
        "buckets": deadlines.buckets,
        "unreadable": unreadable,
    }


def _text(value: Any) -> str:
    return "unknown" if value is None else str(value)


def _refused(data: dict[str, Any], figure: str) -> str | None:
    """The table's cell for a figure the server refused: unknown, why, what to grant."""
    refused = data["unreadable"].get(figure)
    if refused is None:
        return None
    grant = f"; grant this user {refused['grant']}" if refused["grant"] else ""
    return f"unknown: {refused['commands']} refused: {refused['reason']}{grant}"


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
            ("users", "skipped (--no-scan)" if no_scan else _refused(data, "users") or
             data["users"]),
            ("archived conversations", "skipped (--no-scan)" if no_scan else
             _refused(data, "users") or data["archived_conversations"]),
            ("pending deliveries", deliveries.get("pending")),
            ("quarantined deliveries", deliveries.get("quarantined")),
            ("listeners alive", None if data["listeners"] is None else len(data["listeners"])),
            ("memory used", _refused(data, "memory") or
             f"{data['memory']['used_bytes'] / 2**20:.1f} MiB"),
            ("buckets", data["buckets"]),
        ]
        for name, value in rows:
            table.add_row(name, literal(_text(value)))
        out.print(table)

    emit(as_json, data, render)
