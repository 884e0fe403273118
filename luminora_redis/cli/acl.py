"""``luminora-redis acl``: the least-privilege ``ACL SETUSER`` rules for one prefix.

It prints what `luminora_redis.core.acl.acl_rules` returns (the one place the
rules are written) as a command to paste into ``redis-cli``, and sends
nothing to Redis. ``--config`` and ``--info`` add the optional rights; on a
cluster, run the command on every node.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

import click

from luminora_redis.cli.common import USAGE, Failure, emit, json_option, prefix_option
from luminora_redis.core.acl import CONFIG_COMMANDS, INFO_COMMANDS, acl_rules

__all__ = ["acl"]

_USER = re.compile(r"[^\s<>#~&%@+\-\"'][^\s]{0,127}")


def _user(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not _USER.fullmatch(value):
        raise Failure(f"bad --user {value!r}: an ACL user name is one word, without spaces, "
                      f"that does not start with a rule character", USAGE)
    return value


def _notes(config: bool, info: bool, cluster: bool) -> list[str]:
    notes = ["a new user also needs to be enabled with a password: "
             "ACL SETUSER <user> on >PASSWORD"]
    if not config:
        notes.append(f"without {' '.join('+' + c for c in CONFIG_COMMANDS)} (--config) set "
                     f"notify-keyspace-events to include Ex yourself, or the listener "
                     f"archives by its sweeper only")
    if not info:
        notes.append(f"'check' and 'stats' read INFO: add +{INFO_COMMANDS[0]} (--info)")
    if cluster:
        notes.append("run it on every node of the cluster: each node has its own ACL")
    return notes


@click.command()
@prefix_option
@click.option("--user", default="luminora", show_default=True, callback=_user,
              help="the ACL user name to print the command for")
@click.option("--db", default=0, show_default=True, type=click.IntRange(min=0),
              help="the database number of the store's URL (its expired-events channel)")
@click.option("--cluster", is_flag=True,
              help="a Redis Cluster: db 0, and the slot map and command table reads")
@click.option("--config/--no-config", default=False, show_default=True,
              help="grant CONFIG GET/SET: the listener sets the notification flags itself")
@click.option("--info/--no-info", default=False, show_default=True,
              help="grant INFO, for 'check' and 'stats'")
@json_option
def acl(prefix: str, user: str, db: int, cluster: bool, config: bool, info: bool,
        as_json: bool) -> None:
    """Print the ACL rules a user needs to run the store and the listener on --prefix."""
    rules = acl_rules(prefix, db, config, info, cluster=cluster)
    # Quoted for a shell (& and | are operators there); redis-cli reads the quotes too.
    command = " ".join(["ACL", "SETUSER", shlex.quote(user), *map(shlex.quote, rules)])
    notes = _notes(config, info, cluster)
    data: dict[str, Any] = {"user": user, "prefix": prefix, "db": 0 if cluster else db,
                            "cluster": cluster, "config": config, "info": info,
                            "rules": rules, "command": command, "notes": notes}

    def render(_: Any) -> None:
        click.echo(command)
        for note in notes:
            click.echo(f"# {note}")

    emit(as_json, data, render)
