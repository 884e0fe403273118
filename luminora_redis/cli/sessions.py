"""``luminora-redis sessions``: list, show, end and clean up sessions.

Everything comes from the per-bucket deadline indexes and the user's session
set (one pipelined round trip per node), never from a scan of the keyspace.
"""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from luminora_redis.cli.common import (
    NOT_FOUND,
    USAGE,
    Failure,
    connection_options,
    emit,
    json_option,
    literal,
    open_store,
)
from luminora_redis.core.keys import KeySpace
from luminora_redis.core.models import IndexedSession
from luminora_redis.io.sync_store import SyncSessionStore

__all__ = ["sessions"]


def _when(value: Any) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _state(entry: IndexedSession) -> str:
    return "expired, awaiting archive" if entry.expired else "live"


def _checked(store: SyncSessionStore, session_id: str) -> str:
    """``session_id`` if it is of the form this store hands out (bucket-hex, dash, 32
    hex, in one of its buckets), else a usage error: such an id names no session
    here, whatever Redis holds."""
    settings = store.settings
    assert settings.buckets is not None  # open_store adopts the recorded count
    if KeySpace(settings.prefix, settings.buckets).bucket_of_session(session_id) is None:
        raise Failure(f"{session_id!r} is not a session id of this store (one is four hex "
                      f"digits naming one of its {settings.buckets} buckets, a dash and 32 hex "
                      f"digits); check the id and --prefix", USAGE)
    return session_id


@click.group()
def sessions() -> None:
    """Sessions not yet archived: list, show, end, clean up."""


@sessions.command("list")
@connection_options
@json_option
@click.option("--user", "user_id", default=None, help="only this user's sessions")
@click.option("--expiring-within", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="only sessions ending within this many seconds (and overdue ones)")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
def list_command(url: str, prefix: str, cluster: bool, as_json: bool, user_id: str | None,
                 expiring_within: float | None, limit: int) -> None:
    """Sessions with their deadlines, the earliest first."""
    with open_store(url, prefix, cluster) as store:
        found = store.list_sessions(user_id, expiring_within, limit)

    def render(out: Console) -> None:
        table = Table("session", "user", "personality", "deadline (UTC)", "state", "auto",
                      title=f"{len(found)} session(s)")
        for entry in found:
            table.add_row(literal(entry.session_id), literal(entry.user_id or None),
                          literal(entry.personality_name or None), _when(entry.deadline),
                          _state(entry), "yes" if entry.auto_cleanup else "no")
        out.print(table)

    emit(as_json, [entry.model_dump(mode="json") for entry in found], render)


@sessions.command("show")
@connection_options
@json_option
@click.argument("session_id")
@click.option("--last", type=click.IntRange(0, 10_000), default=10, show_default=True,
              help="how many of the newest messages to show")
def show_command(url: str, prefix: str, cluster: bool, as_json: bool, session_id: str,
                 last: int) -> None:
    """One session's metadata, deadlines and the tail of its history (a peek: it does not
    slide the idle deadline)."""
    with open_store(url, prefix, cluster) as store:
        view = store.peek_session(_checked(store, session_id), last)
    if view is None:
        raise Failure(f"no session {session_id!r} waiting to be archived (it never existed, "
                      f"or was ended, archived or deleted)", NOT_FOUND)

    def render(out: Console) -> None:
        entry = view.session
        table = Table(show_header=False, title=literal(f"session {entry.session_id}"))
        for name, value in (("user", entry.user_id), ("personality", entry.personality_name),
                            ("state", _state(entry)), ("created", _when(view.created_at)),
                            ("last activity", _when(view.last_activity)),
                            ("ends (idle or absolute)", _when(entry.deadline)),
                            ("absolute deadline", _when(view.expires_at)),
                            ("auto cleanup", "yes" if entry.auto_cleanup else "no"),
                            ("live messages", str(view.message_count))):
            table.add_row(name, literal(value or None))
        out.print(table)
        history = Table("time (UTC)", "role", "content", title=f"last {len(view.tail)} message(s)")
        for message in view.tail:
            history.add_row(_when(message.timestamp), literal(message.role.value),
                            literal(message.content))
        out.print(history)

    emit(as_json, view.model_dump(mode="json"), render)


@sessions.command("end")
@connection_options
@json_option
@click.argument("session_id")
def end_command(url: str, prefix: str, cluster: bool, as_json: bool, session_id: str) -> None:
    """Archive a session now (an explicit logout)."""
    with open_store(url, prefix, cluster) as store:
        ended = store.end_session(_checked(store, session_id))
    if not ended:
        raise Failure(f"no session {session_id!r} to end (it never existed, or was already "
                      f"archived or deleted)", NOT_FOUND)
    emit(as_json, {"session_id": session_id, "archived": True},
         lambda out: out.print(literal(f"archived session {session_id}")))


@sessions.command("cleanup")
@connection_options
@json_option
@click.option("--batch", type=click.IntRange(1, 10_000), default=100, show_default=True,
              help="sessions archived per step")
def cleanup_command(url: str, prefix: str, cluster: bool, as_json: bool, batch: int) -> None:
    """Archive every overdue session now (auto_cleanup or not), with a progress bar."""
    archived = 0
    with open_store(url, prefix, cluster) as store:
        total = store.deadline_stats().overdue
        with Progress(TextColumn("archiving"), BarColumn(), MofNCompleteColumn(),
                      console=Console(stderr=True), disable=as_json) as progress:
            task = progress.add_task("archive", total=total)
            while True:
                done = store.cleanup_expired_sessions(batch)
                if done == 0:
                    break
                archived += done
                progress.update(task, completed=archived, total=max(total, archived))
    emit(as_json, {"archived": archived},
         lambda out: out.print(f"archived {archived} overdue session(s)"))
