"""``luminora-redis users``: show, export and erase one user.

``export`` writes JSON whether or not ``--json`` is given (it takes the flag like
every other data command, so scripts can pass it everywhere).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from luminora_redis.cli.common import (
    NOT_FOUND,
    PROBLEM,
    Failure,
    connection_options,
    dumps,
    emit,
    json_option,
    literal,
    open_store,
)
from luminora_redis.core.models import UserSummary
from luminora_redis.io.sync_store import SyncSessionStore

__all__ = ["users"]

SHOWN = 10


def _known(store: SyncSessionStore, user_id: str) -> UserSummary:
    summary = store.get_user(user_id)
    if summary is None:
        raise Failure(f"nothing is stored about user {user_id!r} (check the id and --prefix)",
                      NOT_FOUND)
    return summary


def _summary_table(summary: UserSummary) -> Table:
    table = Table(show_header=False, title=literal(f"user {summary.user_id}"))
    for name, value in summary.model_dump().items():
        if name != "user_id":
            table.add_row(name.replace("_", " "), literal(value))
    return table


@click.group()
def users() -> None:
    """One user's data: show, export, erase."""


@users.command("show")
@connection_options
@json_option
@click.argument("user_id")
def show_command(url: str, prefix: str, cluster: bool, as_json: bool, user_id: str) -> None:
    """Affinity per personality, facts, the top episodes, the latest evolution and a summary
    of the archive."""
    with open_store(url, prefix, cluster) as store:
        summary = _known(store, user_id)
        data: dict[str, Any] = {
            "user": summary,
            "affinities": store.get_affinities(user_id),
            "facts": store.get_facts(user_id),
            "episodes": store.get_episodes(user_id, limit=SHOWN),
            "evolution": store.get_evolution(user_id, limit=SHOWN),
            "archive": store.list_archive(user_id, limit=SHOWN),
        }
    plain = {name: value.model_dump(mode="json") if name == "user"
             else [item.model_dump(mode="json") for item in value]
             for name, value in data.items()}

    def render(out: Console) -> None:
        out.print(_summary_table(summary))
        parts: list[tuple[str, list[str], list[list[object]]]] = [
            ("affinity", ["personality", "points", "level"],
             [[a.personality_name, str(a.points), a.level] for a in data["affinities"]]),
            ("facts", ["category", "key", "value", "confidence"],
             [[f.category, f.key, json.dumps(f.value, ensure_ascii=False), f"{f.confidence:g}"]
              for f in data["facts"]]),
            (f"top {SHOWN} episodes", ["importance", "type", "title", "sentiment"],
             [[f"{e.importance:g}", e.episode_type, e.title, e.sentiment.value]
              for e in data["episodes"]]),
            (f"last {SHOWN} evolution records", ["time (UTC)", "personality", "change"],
             [[e.timestamp.isoformat(), e.personality_name,
               f"{e.points_delta:+d} -> {e.points} ({e.level})" if e.kind.value == "affinity"
               else f"{e.trait} = {e.value}"] for e in data["evolution"]]),
            (f"newest {SHOWN} archived conversations",
             ["session", "personality", "ended (UTC)", "reason", "messages"],
             [[a.session_id, a.personality_name, a.ended_at.isoformat(), a.reason.value,
               str(a.message_count)] for a in data["archive"]]),
        ]
        for title, columns, rows in parts:
            table = Table(*columns, title=title)
            for row in rows:
                table.add_row(*(literal(cell) for cell in row))
            out.print(table)

    emit(as_json, plain, render)


@users.command("export")
@connection_options
@click.option("--json", "as_json", is_flag=True,
              help="accepted for symmetry: the export is JSON either way")
@click.argument("user_id")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              default=None, help="write the JSON here instead of to stdout")
def export_command(url: str, prefix: str, cluster: bool, as_json: bool, user_id: str,
                   out_file: Path | None) -> None:
    """Everything kept about one user, as JSON (read in bounded pages), with or without
    --json."""
    with open_store(url, prefix, cluster) as store:
        _known(store, user_id)
        exported = store.export_user(user_id)
    text = dumps(exported)
    if out_file is None:
        click.echo(text)
        return
    try:
        out_file.write_text(text + "\n", "utf-8")
    except OSError as error:
        raise Failure(f"cannot write {out_file}: {error.strerror}", PROBLEM) from None
    click.echo(f"wrote the export of {user_id!r} to {out_file} "
               f"({len(exported['sessions'])} live session(s), "
               f"{len(exported['archived_conversations'])} archived conversation(s))", err=True)


@users.command("erase")
@connection_options
@json_option
@click.argument("user_id")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
def erase_command(url: str, prefix: str, cluster: bool, as_json: bool, user_id: str,
                  yes: bool) -> None:
    """Erase every key of one user: sessions, archive, memory, index entries, pending
    deliveries. Asks first unless --yes."""
    with open_store(url, prefix, cluster) as store:
        summary = _known(store, user_id)
        if not yes:
            Console(stderr=True).print(_summary_table(summary))
            if not click.confirm(f"Erase everything of user {user_id!r}? This cannot be undone",
                                 err=True):
                raise Failure("nothing was erased", PROBLEM)
        removed = store.erase_user(user_id)
    result = {"user_id": user_id, "keys_removed": removed, "erased": summary.model_dump(mode="json")}
    emit(as_json, result, lambda out: out.print(literal(
        f"erased user {user_id!r}: {removed} key(s) removed ({summary.live_sessions} session(s), "
        f"{summary.archived_conversations} archived conversation(s), {summary.facts} fact(s), "
        f"{summary.episodes} episode(s), {summary.evolution_records} evolution record(s), "
        f"{summary.personalities} affinity record(s))")))
