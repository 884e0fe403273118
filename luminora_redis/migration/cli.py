"""``luminora-redis migrate``: upgrade our layout, or import LuminoraCore's legacy data.

Without ``--from-luminoracore`` it upgrades the keyspace of ``--prefix``
(default ``lr``) to the layout version this luminora-redis writes. With it,
it reads LuminoraCore's keys under ``--prefix`` (default ``luminora``) from
``--source-url`` (default: ``--url``) and writes them into our layout under
``--target-prefix`` at ``--url``. Exit codes: 0 done, 1 failed, 2 usage,
3 Redis unreachable.
"""

from __future__ import annotations

import json
from typing import Any

import click
import redis
import redis.cluster

from luminora_redis.core.errors import ConfigurationError, InvalidInput
from luminora_redis.io.sync_store import SyncSessionStore
from luminora_redis.migration.layout import upgrade_layout
from luminora_redis.migration.luminoracore import MigrationReport, migrate_luminoracore
from luminora_redis.migration.user_map import load_user_map

__all__ = ["migrate"]

UNREACHABLE = 3


def _client(url: str, cluster: bool) -> Any:
    return redis.cluster.RedisCluster.from_url(url) if cluster else redis.Redis.from_url(url)


@click.command("migrate")
@click.option("--url", envvar="REDIS_URL", default="redis://localhost:6379/0", show_default=True,
              help="Our Redis (the target).")
@click.option("--cluster", is_flag=True, help="The target is a Redis Cluster.")
@click.option("--prefix", default=None,
              help="Key prefix: LuminoraCore's with --from-luminoracore (default luminora), "
                   "else ours (default lr).")
@click.option("--from-luminoracore", "from_luminoracore", is_flag=True,
              help="Import LuminoraCore's legacy Redis data.")
@click.option("--source-url", default=None, help="LuminoraCore's Redis (default: --url).")
@click.option("--target-prefix", default="lr", show_default=True,
              help="Our key prefix to import into.")
@click.option("--user-map", type=click.Path(exists=True, dir_okay=False),
              help="CSV or JSON mapping old ids (session ids) to user ids.")
@click.option("--dry-run", is_flag=True, help="Write nothing; report what would be done.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--delete-source", is_flag=True, help="Delete each legacy key once migrated.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def migrate(url: str, cluster: bool, prefix: str | None, from_luminoracore: bool,
            source_url: str | None, target_prefix: str, user_map: str | None, dry_run: bool,
            yes: bool, delete_source: bool, as_json: bool) -> None:
    """Upgrade our key layout, or import LuminoraCore's legacy data (--from-luminoracore)."""
    if not from_luminoracore and (source_url or user_map or delete_source):
        raise click.UsageError("--source-url, --user-map and --delete-source need "
                               "--from-luminoracore")
    try:
        if from_luminoracore:
            _import(url, cluster, prefix or "luminora", source_url or url, target_prefix,
                    user_map, dry_run, yes, delete_source, as_json)
        else:
            _upgrade(url, cluster, prefix or "lr", dry_run, as_json)
    except (redis.ConnectionError, redis.TimeoutError) as error:
        click.echo(f"Redis is unreachable: {error}", err=True)
        raise SystemExit(UNREACHABLE) from None
    except (ConfigurationError, InvalidInput) as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(1) from None


def _upgrade(url: str, cluster: bool, prefix: str, dry_run: bool, as_json: bool) -> None:
    client = _client(url, cluster)
    try:
        done = upgrade_layout(client, prefix, dry_run=dry_run)
    finally:
        client.close()
    if as_json:
        click.echo(json.dumps({"prefix": prefix, "from_version": done.from_version,
                               "to_version": done.to_version, "recorded": done.recorded,
                               "steps": list(done.steps), "dry_run": dry_run}))
    elif done.from_version is None:
        click.echo(f"No keyspace under {prefix!r}: nothing to upgrade.")
    elif not done.steps and not done.recorded:
        click.echo(f"Layout of {prefix!r} is current (version {done.to_version}).")
    else:
        verb = "would upgrade" if dry_run else "upgraded"
        click.echo(f"Layout of {prefix!r}: {verb} version {done.from_version} -> "
                   f"{done.to_version}.")


def _import(url: str, cluster: bool, prefix: str, source_url: str, target_prefix: str,
            user_map_path: str | None, dry_run: bool, yes: bool, delete_source: bool,
            as_json: bool) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    try:
        mapping = load_user_map(user_map_path) if user_map_path else {}
    except InvalidInput as error:
        raise click.UsageError(str(error)) from None
    if not (yes or dry_run):
        click.confirm(f"Import LuminoraCore keys {prefix}:* from {source_url} into "
                      f"{target_prefix!r} at {url}?", abort=True)
    source = redis.Redis.from_url(source_url)
    target = SyncSessionStore.from_url(url, cluster=cluster, prefix=target_prefix)
    console = Console(stderr=True)
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      console=console, transient=as_json) as bar:
            tasks: dict[str, Any] = {}

            def progress(phase: str, done: int, total: int | None) -> None:
                if phase not in tasks:
                    tasks[phase] = bar.add_task(f"{phase:5}", total=total)
                bar.update(tasks[phase], completed=done, total=max(total or 0, done))

            report = migrate_luminoracore(source, target, prefix=prefix, user_map=mapping,
                                          dry_run=dry_run, delete_source=delete_source,
                                          progress=progress)
    finally:
        source.close()
        target.close()
    click.echo(json.dumps(report.as_dict()) if as_json else _describe(report))


def _describe(report: MigrationReport) -> str:
    head = "Dry run: nothing written." if report.dry_run else "Migration done."
    lines = [head,
             f"  migrated: {sum(report.migrated.values())} keys "
             f"({', '.join(f'{k} {n}' for k, n in sorted(report.migrated.items())) or 'none'}), "
             f"{report.conversations} archived conversations",
             f"  merged:   {report.merged.get('ids', 0)} old ids into other users, "
             f"{report.merged.get('affinity', 0)} affinity and {report.merged.get('facts', 0)} "
             f"fact records folded",
             f"  already migrated: {report.already}",
             f"  skipped:  {sum(report.skipped.values())}"]
    for reason, count in sorted(report.skipped.items()):
        lines.append(f"    {count:6}  {reason}  (e.g. {report.examples[reason]})")
    if report.deleted:
        lines.append(f"  deleted from the source: {report.deleted}")
    return "\n".join(lines)
