"""``luminora-redis bench [turn|archive|all]``: the click command.

Without ``--url`` it starts its own private server(s) (see ``servers``). The Markdown
tables go to stdout; progress and one-line notices go to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import click
import redis

from luminora_redis.bench import servers
from luminora_redis.bench.legacy import LuminoraCoreLegacy
from luminora_redis.bench.peers import LangchainCommunity, LangchainRedis, LlamaIndex, RedisVL
from luminora_redis.bench.report import header_markdown, turn_json, turn_markdown
from luminora_redis.bench.runner import Options, Progress, run_turns
from luminora_redis.bench.systems import (
    FloorAsync,
    FloorBlocking,
    LuminoraAsync,
    LuminoraBlocking,
    LuminoraBudget,
    LuminoraBudgetBinds,
    LuminoraPlain,
)

SYSTEMS = [LuminoraAsync, LuminoraBudget, LuminoraBudgetBinds, LuminoraPlain, LuminoraBlocking,
           FloorAsync, FloorBlocking, LangchainRedis, RedisVL, LlamaIndex, LangchainCommunity,
           LuminoraCoreLegacy]
BY_NAME = {cls.name: cls for cls in SYSTEMS}


class RichProgress(Progress):
    """The runner's progress as a rich bar on stderr."""

    def __init__(self, bar: Any, console: Any) -> None:
        self.bar, self.console, self.task = bar, console, None

    def start(self, total: int) -> None:
        self.task = self.bar.add_task("turn", total=total)

    def step(self, description: str) -> None:
        if self.task is not None:
            self.bar.update(self.task, description=description)
        if not self.console.is_terminal:  # no bar in a log: one line per step instead
            self.say(description)

    def advance(self) -> None:
        if self.task is not None:
            self.bar.advance(self.task)

    def say(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False)


@contextlib.contextmanager
def _progress() -> Iterator[RichProgress]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    with __import__("rich.progress").progress.Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console, transient=True) as bar:
        yield RichProgress(bar, console)


def _csv_ints(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        numbers = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter("a comma-separated list of positive integers") from None
    if not numbers or min(numbers) < 1:
        raise click.BadParameter("a comma-separated list of positive integers")
    return sorted(set(numbers))


def _csv_systems(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown or not names:
        raise click.BadParameter(f"unknown system(s) {', '.join(unknown) or '(none)'}; "
                                 f"choose from {', '.join(BY_NAME)}")
    return names


def _versions() -> dict[str, str]:
    out = {"redis": redis.__version__}
    for package in ("luminora-redis", "hiredis", "msgpack", "pydantic"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            pass
    return out


def _options(quick: bool, tiny: bool, rounds: int | None,
             concurrency: list[int] | None) -> Options:
    if tiny:
        options = Options(concurrency=[1, 4], rounds=1, trial_seconds=0.05, calibrate_turns=20,
                          trial_cap=2.0, probe_sessions=1, memory_sessions=3)
    elif quick:
        options = Options(rounds=2, trial_seconds=0.4, calibrate_turns=100, trial_cap=1.5,
                          probe_sessions=2, memory_sessions=10)
    else:
        options = Options()
    if rounds is not None:
        options.rounds = rounds
    if concurrency is not None:
        options.concurrency = concurrency
    return options


@click.command("bench")
@click.argument("scenario", type=click.Choice(["turn", "archive", "memory", "all",
                                              "langgraph"]), default="turn")
@click.option("--url", default=None,
              help="Redis to run against (keys under bench*); default: private server(s)")
@click.option("--systems", callback=_csv_systems, default=None,
              help="comma-separated systems (default: all); the floor of each selected "
                   "API is added. One of: " + ", ".join(BY_NAME))
@click.option("--concurrency", callback=_csv_ints, default=None,
              help="comma-separated concurrency levels (asyncio tasks or threads) [1,8,64]")
@click.option("--rounds", type=click.IntRange(min=1), default=None,
              help="measured rounds after the calibration round [5; --quick 2]")
@click.option("--quick", is_flag=True, help="small trials and fewer rounds: about a minute")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, writable=True),
              default=None, help="write the raw results here")
@click.option("--chart", "chart_path", type=click.Path(dir_okay=False, writable=True),
              default=None, help="draw turns/s against concurrency into this PNG")
@click.option("--live", type=click.IntRange(min=1), default=None,
              help="archive: live sessions in the keyspace [100000; --quick 10000]")
@click.option("--seed", type=int, default=None, help="seed of the round order")
@click.option("--tiny", is_flag=True, hidden=True)
@click.option("--plain", is_flag=True, hidden=True,
              help="private plain redis-server even if a Redis with modules is available")
def bench(scenario: str, url: str | None, systems: list[str] | None,
          concurrency: list[int] | None, rounds: int | None, quick: bool,
          json_path: str | None, chart_path: str | None, live: int | None, seed: int | None,
          tiny: bool, plain: bool) -> None:
    """Compare chat turns per second and their cost across luminora-redis, the hand-written
    floor and the peer session stores, on one Redis; or measure expiry-to-archive lag, or
    bytes per conversation live and archived (memory), or one LangGraph turn per
    checkpointer (langgraph)."""
    options = _options(quick, tiny, rounds, concurrency)
    options.seed = seed
    chosen = [BY_NAME[n] for n in systems] if systems else list(SYSTEMS)
    for api_floor in {cls.floor for cls in chosen}:
        if BY_NAME[api_floor] not in chosen:
            chosen.append(BY_NAME[api_floor])
    if chart_path is not None and scenario != "archive":
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise click.UsageError("--chart needs matplotlib: "
                                   "pip install 'luminora-redis[bench]'") from None
    logging.getLogger("luminora_redis").setLevel(logging.WARNING)
    try:
        results, markdown = _run(scenario, url, plain, chosen, options, quick or tiny, live)
    except redis.ConnectionError as error:
        click.echo(f"Redis is unreachable: {error}", err=True)
        sys.exit(3)
    if json_path:
        with open(json_path, "w", encoding="utf-8") as out:
            json.dump(results, out, indent=1, default=str)
    if chart_path and results.get("turn"):
        from luminora_redis.bench.chart import draw

        draw(results["turn"], chart_path)
        markdown += f"\n\n![turns/s against concurrency]({chart_path})"
    click.echo(markdown)
    turn = results.get("turn")
    if turn is not None and not any(s["ran"] for s in turn["systems"]):
        sys.exit(1)


def _run(scenario: str, url: str | None, plain: bool, chosen: list[Any], options: Options,
         quick: bool, live: int | None) -> tuple[dict[str, Any], str]:
    with contextlib.ExitStack() as stack:
        if url is None:
            target = stack.enter_context(servers.private_target(plain))
        else:
            target = servers.inspect(url, False, "given by --url")
        meta = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "command": ["luminora-redis", *sys.argv[1:]], "versions": _versions(),
                "machine": servers.machine(),
                "server": {**target.describe(), "url": servers.redacted(target.url)}}
        results: dict[str, Any] = {"meta": meta, "turn": None, "archive": None, "memory": None}
        parts = [header_markdown(meta)]
        progress = stack.enter_context(_progress())
        progress.say(f"Redis {target.version} at {servers.redacted(target.url)}: {target.note}")
        if scenario in ("turn", "all"):
            outcomes = asyncio.run(run_turns(target, chosen, options, progress))
            results["turn"] = turn_json(outcomes, options)
            parts += ["", "### Chat turn", "", turn_markdown(results["turn"])]
            from luminora_redis.bench.script_cost import run_script_cost

            results["script_cost"], text = run_script_cost(
                target.url, rounds=max(3, options.rounds), calls=400 if quick else 4000,
                say=progress.say)
            parts += ["", text]
        if scenario in ("archive", "all"):
            from luminora_redis.bench.archive import ArchiveOptions, run_archive

            archive_options = ArchiveOptions.quick() if quick else ArchiveOptions()
            if live is not None:
                archive_options.live = live
            try:
                raw, text = asyncio.run(run_archive(target.url, archive_options, progress.say))
            except redis.ConnectionError:
                raise
            except Exception as error:  # noqa: BLE001 - keep the turn results, say why
                raw = {"failed": f"{type(error).__name__}: {error}"}
                text = f"### Expiry → archive lag\n\nfailed: {raw['failed']}"
                progress.say(f"archive: {text.splitlines()[-1]}")
            results["archive"] = raw
            parts += ["", text]
        if scenario in ("memory", "all"):
            from luminora_redis.bench.memory import MemoryOptions, run_memory

            memory_options = MemoryOptions.quick() if quick else MemoryOptions()
            results["memory"], text = run_memory(target.url, memory_options, progress.say)
            parts += ["", text]
        if scenario == "langgraph":
            from luminora_redis.bench.langgraph import LangGraphOptions, run_langgraph

            graph_options = LangGraphOptions.quick() if quick else LangGraphOptions()
            results["langgraph"], text = asyncio.run(
                run_langgraph(target.url, graph_options, progress.say))
            parts += ["", text]
    return results, "\n".join(parts)
