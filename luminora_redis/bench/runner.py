"""Rounds and trials of the chat-turn comparison.

Every system runs at every concurrency in every round, and each round visits the
(system, concurrency) pairs in a fresh shuffled order, so slow drifts of a shared machine
spread over all systems instead of favouring one. Round 0 calibrates: its throughput
sets each pair's trial size for the measured rounds (about ``trial_seconds`` each) and
is then discarded. Ratios to the floor are taken round by round (a system's turns/s
over its floor's in the same round), and the report shows their median.

A trial prepares its sessions untimed, then ``c`` asyncio tasks (or ``c`` threads for
blocking systems) take sessions from a shared queue and run all 20 turns of each, so a
trial holds at least ``20 × c`` turns; no turn starts after ``trial_cap`` seconds, so a
slow system at high concurrency ends early (with shorter histories), and the report
marks it. Before each trial the system's keys from the
previous one are deleted (untimed), so the keyspace stays small.
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from luminora_redis.bench import workload as w
from luminora_redis.bench.metrics import Delta, Monitor, Probe
from luminora_redis.bench.servers import Target
from luminora_redis.bench.systems import System, Unavailable

PER = w.TURNS_PER_SESSION


@dataclass
class Options:
    concurrency: list[int] = field(default_factory=lambda: [1, 8, 64])
    rounds: int = 5
    trial_seconds: float = 1.5
    calibrate_turns: int = 200
    trial_cap: float = 10.0
    probe_sessions: int = 5
    memory_sessions: int = 100
    seed: int | None = None


@dataclass
class Outcome:
    """One system's results (or why it did not run)."""

    system: type[System]
    skipped: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    turns_per_s: dict[int, list[float]] = field(default_factory=dict)  # per measured round
    trial_turns: dict[int, int] = field(default_factory=dict)
    capped: dict[int, int] = field(default_factory=dict)  # trials cut short by the cap
    ratios: dict[int, list[float]] = field(default_factory=dict)
    trial_deltas: dict[int, list[tuple[int, Delta]]] = field(default_factory=dict)
    per_turn: dict[str, float] = field(default_factory=dict)
    client_commands: dict[str, float] = field(default_factory=dict)
    memory: dict[str, float] = field(default_factory=dict)

    @property
    def ran(self) -> bool:
        return self.skipped is None and bool(self.turns_per_s)

    def median(self, c: int) -> float | None:
        values = self.turns_per_s.get(c)
        return statistics.median(values) if values else None

    def ratio(self, c: int) -> float | None:
        values = self.ratios.get(c)
        return statistics.median(values) if values else None


class Progress:
    """Where the runner reports; the CLI draws it with rich, the default prints nothing."""

    def start(self, total: int) -> None: ...

    def step(self, description: str) -> None: ...

    def advance(self) -> None: ...

    def say(self, line: str) -> None: ...


# --------------------------------------------------------------------------- #
# One system, sync or async, behind one awaitable interface
# --------------------------------------------------------------------------- #


class Driver:
    """Runs a system's calls and trials whatever its API."""

    def __init__(self, system: System, pool: ThreadPoolExecutor) -> None:
        self.system = system
        self.pool = pool
        self.asynchronous = system.api == "asyncio"

    async def call(self, name: str, *args: Any) -> Any:
        method: Callable[..., Any] = getattr(self.system, name)
        if self.asynchronous:
            return await method(*args)
        return await asyncio.get_running_loop().run_in_executor(self.pool, method, *args)

    async def trial(self, handles: Sequence[Any], concurrency: int,
                    cap: float = float("inf")) -> tuple[int, float]:
        """Run all turns of every session with ``concurrency`` workers; (turns, seconds).
        No turn starts after ``cap`` seconds, so a slow system's trial can end early."""
        system = self.system
        if not self.asynchronous:
            return await asyncio.get_running_loop().run_in_executor(
                None, _threaded, system, handles, concurrency, cap)
        queue = iter(handles)
        done = 0
        start = time.perf_counter()
        deadline = start + cap

        async def task() -> None:
            nonlocal done
            for handle in queue:
                for i in range(PER):
                    if time.perf_counter() > deadline:
                        return
                    await system.turn(handle, i)
                    done += 1

        await asyncio.gather(*(task() for _ in range(concurrency)))
        return done, time.perf_counter() - start


def _threaded(system: System, handles: Sequence[Any], concurrency: int,
              cap: float) -> tuple[int, float]:
    lock = threading.Lock()
    queue = iter(handles)
    errors: list[BaseException] = []
    counts = [0] * concurrency
    ready = threading.Barrier(concurrency + 1)
    deadline = [float("inf")]

    def worker(index: int) -> None:
        ready.wait()
        while not errors:
            with lock:
                handle = next(queue, None)
            if handle is None:
                return
            try:
                for i in range(PER):
                    if time.perf_counter() > deadline[0]:
                        return
                    system.turn(handle, i)
                    counts[index] += 1
            except BaseException as error:  # noqa: BLE001 - re-raised in the caller
                errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True)
               for i in range(concurrency)]
    for thread in threads:
        thread.start()
    start = time.perf_counter()
    deadline[0] = start + cap
    ready.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return sum(counts), elapsed


def _trial_size(rate: float, concurrency: int, seconds: float) -> int:
    """Turns for a trial of about ``seconds``, whole sessions, at least one per worker."""
    sessions = max(concurrency, math.ceil(rate * seconds / PER))
    return sessions * PER


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


# --------------------------------------------------------------------------- #
# The run
# --------------------------------------------------------------------------- #


async def run_turns(target: Target, systems: Sequence[type[System]], options: Options,
                    progress: Progress | None = None) -> list[Outcome]:
    progress = progress or Progress()
    rng = random.Random(options.seed)
    probe = Probe(target.url)
    outcomes = [Outcome(cls) for cls in systems]
    drivers: dict[str, Driver] = {}
    prefixes: dict[str, str] = {}
    pool = ThreadPoolExecutor(4, thread_name_prefix="bench")
    try:
        for index, outcome in enumerate(outcomes):
            cls = outcome.system
            prefix = f"bench{index:02d}"
            prefixes[cls.name] = prefix
            missing = [m for m in cls.facts.needs_modules if m not in target.modules]
            try:
                cls.check()
                if missing:
                    raise Unavailable(f"needs the Redis module(s) {', '.join(missing)}, which "
                                      f"this server lacks ({target.note or 'given by --url'})")
                system = cls(target.url, prefix)
                driver = Driver(system, pool)
                await driver.call("open")
                outcome.versions = system.versions()
            except Unavailable as reason:
                outcome.skipped = str(reason)
            except Exception as error:  # noqa: BLE001 - one line, and the run moves on
                outcome.skipped = f"could not start: {_one_line(error)}"
            if outcome.skipped:
                progress.say(f"{cls.label}: cannot run: {outcome.skipped}")
                continue
            drivers[cls.name] = driver

        running = [o for o in outcomes if o.system.name in drivers]
        total = len(running) * (2 + len(options.concurrency) * (options.rounds + 1) + 1)
        progress.start(total)

        async def guarded(outcome: Outcome, what: str, job: Callable[[], Any]) -> bool:
            try:
                await job()
                return True
            except Exception as error:  # noqa: BLE001 - one line, and the run moves on
                outcome.skipped = f"failed during {what}: {_one_line(error)}"
                progress.say(f"{outcome.system.label}: stopped: {outcome.skipped}")
                return False

        # Warm-up and the per-turn counts at c=1, one system at a time.
        for outcome in list(running):
            name = outcome.system.name
            driver = drivers[name]
            progress.step(f"{outcome.system.label}: per-turn counts")
            ok = await guarded(outcome, "the per-turn counts",
                               partial(_per_turn, driver, outcome, probe, options))
            progress.advance()
            progress.advance()
            if not ok:
                running.remove(outcome)

        # Interleaved, shuffled rounds; round 0 calibrates.
        for round_no in range(options.rounds + 1):
            pairs = [(o, c) for o in running for c in options.concurrency]
            rng.shuffle(pairs)
            for outcome, concurrency in pairs:
                if outcome not in running:
                    progress.advance()
                    continue
                label = "calibrating" if round_no == 0 else f"round {round_no}/{options.rounds}"
                progress.step(f"{label}: {outcome.system.label}, c={concurrency}")
                ok = await guarded(
                    outcome, f"{label} at c={concurrency}",
                    partial(_trial, drivers[outcome.system.name], outcome, concurrency,
                            round_no, probe, prefixes[outcome.system.name], options))
                progress.advance()
                if not ok:
                    running.remove(outcome)

        # Memory per session after 20 turns, one system at a time.
        for outcome in list(running):
            progress.step(f"{outcome.system.label}: memory per session")
            await guarded(outcome, "the memory pass",
                          partial(_memory, drivers[outcome.system.name], outcome, probe,
                                  prefixes[outcome.system.name], options))
            progress.advance()
        _ratios(outcomes, options)
    finally:
        for name, driver in drivers.items():
            try:
                await driver.call("close")
            except Exception:  # noqa: BLE001, S110 - closing after a failure
                pass
            probe.purge(f"{prefixes[name]}*")
        pool.shutdown(wait=False)
        probe.close()
    return outcomes


async def _trial(driver: Driver, outcome: Outcome, concurrency: int, round_no: int,
                 probe: Probe, prefix: str, options: Options) -> None:
    turns = (outcome.trial_turns.get(concurrency)
             or max(options.calibrate_turns, PER * concurrency))
    turns = max(turns, PER * concurrency)
    probe.purge(f"{prefix}*")
    handles = await driver.call("sessions", turns // PER)
    before = probe.snapshot()
    done, elapsed = await driver.trial(handles, concurrency, options.trial_cap)
    change = probe.delta(before)
    rate = done / elapsed
    if round_no == 0:
        outcome.trial_turns[concurrency] = _trial_size(rate, concurrency, options.trial_seconds)
        return
    if done < len(handles) * PER:
        outcome.capped[concurrency] = outcome.capped.get(concurrency, 0) + 1
    outcome.turns_per_s.setdefault(concurrency, []).append(rate)
    outcome.trial_deltas.setdefault(concurrency, []).append((done, change))


async def _per_turn(driver: Driver, outcome: Outcome, probe: Probe, options: Options) -> None:
    """Counts at c=1: round trips, bytes, server commands and their time (INFO), and the
    client's own commands (MONITOR, in a separate pass so its output does not count)."""
    warm = await driver.call("sessions", 2)
    await driver.trial(warm, 1)
    handles = await driver.call("sessions", options.probe_sessions)
    before = probe.snapshot()
    turns, _ = await driver.trial(handles, 1)
    change = probe.delta(before)

    handles = await driver.call("sessions", 1)
    monitor = Monitor(probe.url)
    try:
        await driver.trial(handles, 1)
    finally:
        outer, inner = monitor.stop()
    client_commands = sum(outer.values()) / PER
    server_us = 0.0
    for name, usec in change.usec.items():
        if name in ("info",):
            continue
        total = outer[name] + inner[name]
        share = outer[name] / total if total else 1.0
        server_us += usec * share
    outcome.client_commands = {k: v / PER for k, v in sorted(outer.items())}
    outcome.per_turn = {
        "client_commands": client_commands,
        "script_commands": sum(inner.values()) / PER,
        "round_trips": change.reads / turns,
        "server_commands": change.commands() / turns,
        "command_usec": server_us / turns,
        "net_in_bytes": change.net_in / turns,
        "net_out_bytes": change.net_out / turns,
    }


async def _memory(driver: Driver, outcome: Outcome, probe: Probe, prefix: str,
                  options: Options) -> None:
    probe.purge(f"{prefix}*")
    before = probe.dataset_memory()
    handles = await driver.call("sessions", options.memory_sessions)
    await driver.trial(handles, min(8, options.memory_sessions))
    after = probe.dataset_memory()
    keys, usage = probe.keys_usage(f"{prefix}*")
    count = len(handles)
    outcome.memory = {"sessions": count, "turns": PER,
                      "dataset_memory_per_session": (after - before) / count,
                      "memory_usage_per_session": usage / count,
                      "keys_per_session": keys / count}
    probe.purge(f"{prefix}*")


def _ratios(outcomes: Sequence[Outcome], options: Options) -> None:
    by_name = {o.system.name: o for o in outcomes}
    for outcome in outcomes:
        floor = by_name.get(outcome.system.floor)
        if floor is None or not floor.ran or not outcome.ran:
            continue
        for c in options.concurrency:
            mine, base = outcome.turns_per_s.get(c, []), floor.turns_per_s.get(c, [])
            outcome.ratios[c] = [a / b for a, b in zip(mine, base) if b]


def cpu_per_turn(outcome: Outcome, concurrency: int) -> float | None:
    """Server process CPU (µs) per turn over the measured trials at ``concurrency``."""
    trials = outcome.trial_deltas.get(concurrency)
    if not trials:
        return None
    turns = sum(n for n, _ in trials)
    return sum(d.cpu for _, d in trials) * 1e6 / turns
