"""``luminora-redis bench archive``: expiry-to-archive lag. How long after its deadline an
expired session reaches its user's archive, while many live sessions sit in the keyspace,
with and without the sweeper.

The server holds ``live`` one-hour sessions (real luminora sessions, created through the
store's own script, pipelined). Then, for each listener setup in turn, ``expiring`` fresh
sessions get deadlines spread over ``spread`` seconds and an ``ExpiryListener`` archives
them; the ``on_archived`` hook stamps the wall clock. Lag = hook time − the session's
effective deadline (the session hash's PEXPIRETIME).

Setups: the sweeper at each interval (with notifications), notifications only (a sweep
interval so long it never runs after the start-up sweep), and the sweeper alone
(``notifications=False``). The last table is the sweepers' idle cost with 1, 2 and 4
listeners: Redis commands per second while nothing is due (INFO commandstats delta) and
redis-server CPU (INFO used_cpu_sys + used_cpu_user delta) as % of one core. The
listeners run at their defaults otherwise: each interval the lease holder reads the
due-bucket hints, and it sweeps every bucket every ``full_sweep_interval`` (30 s).
Target: p99 ≤ 20 ms and 100 % archived; idle sweeping ≤ 1 % of a core whatever the
listeners.

Filling the keyspace pipelines the store's own operations through its extension API
(``store.context()``, and ``store.run()`` of a ``Batch`` step).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from luminora_redis import ArchivedConversation, SessionStore
from luminora_redis.bench.archive_report import percentile, report
from luminora_redis.bench.host import CpuTimes, cpu_times, steal_percent
from luminora_redis.core.context import Context
from luminora_redis.core.keys import KeySpace
from luminora_redis.core.scripts import Batch, Call, Op, Step
from luminora_redis.listener.expiry_listener import ExpiryListener
from luminora_redis.ops import sessions

PREFIX = "bencharc"  # the store's key prefix, so a --url server's own data is untouched


def command_count(client: redis.Redis) -> int:
    """Commands the server has executed (INFO commandstats, INFO's own calls excluded)."""
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


def _quiet(*parts: Any) -> None:
    pass


@dataclass
class ArchiveOptions:
    live: int = 100_000
    expiring: int = 1000
    spread: float = 2.0
    lead: float = 3.0  # seconds from creating them to the first deadline, so none expires early
    intervals: list[float] = field(default_factory=lambda: [0.05, 0.25])
    timeout_notify: float = 60.0
    timeout_sweep: float = 30.0
    no_sweeper_only: bool = False
    buckets: int = 1024
    cost_intervals: list[float] = field(default_factory=lambda: [0.25, 0.05])
    cost_listeners: list[int] = field(default_factory=lambda: [0, 1, 2, 4])
    cost_seconds: float = 10.0
    hz: int = 10

    @classmethod
    def quick(cls) -> ArchiveOptions:
        return cls(live=10_000, expiring=300, spread=1.0, lead=2.0, intervals=[0.05],
                   timeout_notify=10.0, timeout_sweep=10.0, no_sweeper_only=True,
                   cost_intervals=[0.25], cost_listeners=[0, 1, 2], cost_seconds=2.0)


NEVER = 10 * 365 * 24 * 3600.0  # a sweep interval that never comes round during a run
BATCH = 1000  # operations per pipelined round trip when filling the keyspace


# --------------------------------------------------------------------------- #
# Filling the keyspace fast, through the store's own operations
# --------------------------------------------------------------------------- #


def send_batch(ctx: Context, calls: Sequence[Call]) -> Op[list[Any]]:
    """One ``Batch`` step: the calls in one round trip per node, their replies in order."""
    replies: list[Any] = yield Batch(calls)
    return replies


async def pipelined(store: SessionStore, operation: Callable[..., Any],
                    arguments: Iterable[tuple[Any, ...]], batch: int = BATCH) -> list[Any]:
    """Run many store operations (create_session, append_messages, ...) with their steps
    pipelined ``batch`` operations at a time: the same scripts, keys and arguments as
    ``store.<operation>(...)``, without a round trip each (an operation's own ``Batch``
    step joins the pipeline whole). Uses the store's operation layer
    (``luminora_redis.ops.sessions``) through ``store.run``."""
    ctx = await store.context()
    results: list[Any] = []
    pending = list(arguments)
    for start in range(0, len(pending), batch):
        ops = [operation(ctx, *args) for args in pending[start:start + batch]]
        steps: list[Step] = [next(op) for op in ops]
        while ops:
            flat = [call for step in steps
                    for call in (step.calls if isinstance(step, Batch) else (step,))]
            replies = iter(await store.run(send_batch, flat))
            again_ops, again_steps = [], []
            for op, step in zip(ops, steps):
                reply = ([next(replies) for _ in step.calls] if isinstance(step, Batch)
                         else next(replies))
                try:
                    again_steps.append(op.send(reply))
                except StopIteration as done:
                    results.append(done.value)
                    continue
                again_ops.append(op)
            ops, steps = again_ops, again_steps
    return results


async def create_sessions(store: SessionStore, count: int, tag: str,
                          ttl: Callable[[int], float], max_idle: float | None = None,
                          batch: int = BATCH, progress: bool = False,
                          say: Callable[..., None] = _quiet) -> list[str]:
    """``count`` sessions of distinct users; session i lives ``ttl(i)`` seconds."""
    ids: list[str] = []
    started = time.monotonic()
    for start in range(0, count, 50 * batch):
        stop = min(count, start + 50 * batch)
        ids += await pipelined(store, sessions.create_session, (
            (f"{tag}-{i}", "alicia", {"ttl": ttl(i), "max_idle": max_idle or ttl(i)})
            for i in range(start, stop)), batch)
        if progress:
            rate = len(ids) / max(1e-9, time.monotonic() - started)
            say(f"{len(ids):,} / {count:,} sessions ({rate:,.0f}/s)")
    return ids


# --------------------------------------------------------------------------- #
# One scenario
# --------------------------------------------------------------------------- #


@dataclass
class Scenario:
    label: str
    sweep_interval: float
    notifications: bool
    timeout: float


@dataclass
class Outcome:
    scenario: Scenario
    expiring: int
    lags_ms: list[float] = field(default_factory=list)
    archive_lags_ms: list[float] = field(default_factory=list)  # observer: before the hook
    by_path: dict[str, int] = field(default_factory=dict)
    waited: float = 0.0
    #: CPU time per archived session (ms), this process (the listener) and redis-server,
    #: between the hook calls at 10 % and 90 % of the sessions (None when fewer arrived).
    client_cpu_ms: float | None = None
    server_cpu_ms: float | None = None
    #: The hypervisor's steal, % of the machine's CPU time, over the same window (None
    #: where the host does not report it).
    steal_pct: float | None = None


def _cpu_now(probe: redis.Redis) -> tuple[float, float, CpuTimes | None]:
    """CPU seconds used so far: this process, and the server ``probe`` talks to; and the
    machine's steal and total ticks."""
    server = probe.info("cpu")
    return (time.process_time(),
            float(server["used_cpu_user"]) + float(server["used_cpu_sys"]), cpu_times())


async def run_scenario(store: SessionStore, probe: redis.Redis, space: KeySpace,
                       scenario: Scenario, count: int, lead: float, spread: float,
                       round_no: int) -> Outcome:
    deadlines: dict[str, float] = {}
    lags: list[float] = []
    all_done = asyncio.Event()
    # CPU is read at the hook calls of 10 % and 90 % of the sessions: per session, it is
    # what a steady flow of expiries costs, whatever else runs on the machine's cores.
    marks = {max(1, count // 10), max(1, 9 * count // 10)}
    cpu: list[tuple[float, float, CpuTimes | None]] = []

    def on_archived(conversation: ArchivedConversation) -> None:
        now = time.time()
        deadline = deadlines.get(conversation.session_id)
        if deadline is None:
            return  # not one of this scenario's sessions
        lags.append((now - deadline) * 1000)
        if len(lags) in marks:
            cpu.append(_cpu_now(probe))
        if len(lags) == count:
            all_done.set()

    class Observer:
        """The listener's own lag, measured when the archive script returned (before the
        delivery's round trips, if any, and the hook)."""

        def __init__(self) -> None:
            self.archive_lags: list[float] = []

        def archived(self, path: str, lag: float) -> None:
            self.archive_lags.append(lag * 1000)

        def swept(self) -> None:
            pass

        def error(self) -> None:
            pass

        def reconnected(self) -> None:
            pass

    observer = Observer()
    gc.freeze()  # as `luminora-redis listen` does once set up (cli/listen.py)
    listener = ExpiryListener(store, sweep_interval=scenario.sweep_interval,
                              notifications=scenario.notifications, on_archived=on_archived,
                              observer=observer)
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.started.wait(), 30)
        ids = await create_sessions(
            store, count, f"expiring{round_no}",
            lambda i: lead + spread * i / max(1, count - 1))
        await pipelined(store, sessions.append_messages, (
            (sid, [("user", "hola"), ("assistant", "¡hola! ¿qué tal?")]) for sid in ids))
        with probe.pipeline(transaction=False) as pipe:
            for sid in ids:
                bucket = space.bucket_of_session(sid)
                assert bucket is not None  # the store made these ids
                pipe.pexpiretime(space.session(sid, bucket).session)
            scores = pipe.execute()
        # The hook may run before this dict is filled only if a deadline passed already:
        # the session hash's own expiry (index scores are lower bounds).
        # lead keeps the first deadline well after this point.
        deadlines.update({sid: float(score) / 1000 for sid, score in zip(ids, scores)})
        last_deadline = max(deadlines.values())
        started = time.monotonic()
        remaining = last_deadline - time.time() + scenario.timeout
        try:
            await asyncio.wait_for(all_done.wait(), max(0.1, remaining))
        except asyncio.TimeoutError:
            pass
        waited = time.monotonic() - started
    finally:
        await listener.stop()
        await task
    # Leave nothing due for the next scenario: archive what this one did not.
    await store.cleanup_expired_sessions()
    outcome = Outcome(scenario, count, sorted(lags), sorted(observer.archive_lags),
                      listener.archived_by_path, waited)
    if len(cpu) == 2 and len(marks) == 2:
        sessions_between = max(marks) - min(marks)
        outcome.client_cpu_ms = (cpu[1][0] - cpu[0][0]) * 1000 / sessions_between
        outcome.server_cpu_ms = (cpu[1][1] - cpu[0][1]) * 1000 / sessions_between
        outcome.steal_pct = steal_percent(cpu[0][2], cpu[1][2])
    return outcome


async def sweeper_cost(store: SessionStore, probe: redis.Redis, interval: float,
                       seconds: float, listeners: int = 1) -> dict[str, float]:
    """What ``listeners`` idle listeners (nothing due) cost the server: commands per
    second and redis-server CPU (INFO used_cpu_sys + used_cpu_user) as % of one core.
    Each listener has its own store, as separate processes would. With 0 listeners it
    is the server's own cost with the keyspace it holds (its expiry cycle), the
    baseline of the others."""
    stores = [store] + [SessionStore.from_url(probe_url(probe), buckets=store.settings.buckets,
                                              prefix=PREFIX) for _ in range(listeners - 1)]
    group = [ExpiryListener(each, sweep_interval=interval) for each in stores[:listeners]]
    tasks = [asyncio.create_task(listener.run()) for listener in group]
    try:
        for listener in group:
            await asyncio.wait_for(listener.started.wait(), 30)
        await asyncio.sleep(max(1.0, interval * 2))
        stats0, cpu0 = probe.info("commandstats"), probe.info("cpu")
        sweeps0 = sum(listener.sweeps for listener in group)
        total0 = command_count(probe)
        start = time.monotonic()
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - start
        total1 = command_count(probe)
        stats1, cpu1 = probe.info("commandstats"), probe.info("cpu")
        sweeps1 = sum(listener.sweeps for listener in group)
    finally:
        for listener in group:
            await listener.stop()
        await asyncio.gather(*tasks)
        for extra in stores[1:]:
            await extra.aclose()

    def calls(stats: dict[str, Any], name: str) -> int:
        return int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))

    cpu = sum(float(cpu1[k]) - float(cpu0[k]) for k in ("used_cpu_sys", "used_cpu_user"))
    return {
        "interval": interval,
        "listeners": listeners,
        "sweeps": (sweeps1 - sweeps0) / elapsed,
        "evalsha": (calls(stats1, "evalsha") - calls(stats0, "evalsha")) / elapsed,
        "total": (total1 - total0) / elapsed,
        "cpu": 100 * cpu / elapsed,
    }


def probe_url(probe: redis.Redis) -> str:
    """The URL of the server ``probe`` talks to."""
    kwargs = probe.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"


# --------------------------------------------------------------------------- #
# Report
# --------------------------------------------------------------------------- #


async def run_archive(url: str, args: ArchiveOptions,
                      say: Callable[..., None] = _quiet) -> tuple[dict[str, Any], str]:
    """Run the archive scenario on ``url``; (raw results, Markdown)."""
    scenarios = [
        Scenario(f"sweeper {s * 1000:g} ms + notifications", s, True, args.timeout_sweep)
        for s in args.intervals
    ]
    scenarios.append(Scenario("notifications only (no sweeps after start-up)", NEVER, True,
                              args.timeout_notify))
    if not args.no_sweeper_only:
        scenarios.append(Scenario(f"sweeper {args.intervals[-1] * 1000:g} ms only "
                                  "(`notifications=False`)", args.intervals[-1], False,
                                  args.timeout_sweep))
    probe = redis.Redis.from_url(url)
    store = SessionStore.from_url(url, buckets=args.buckets, prefix=PREFIX)
    try:
        args.hz = int(probe.config_get("hz").get("hz") or args.hz)
        space = KeySpace(store.settings.prefix, args.buckets)
        say(f"creating {args.live:,} live one-hour sessions")
        start = time.monotonic()
        await create_sessions(store, args.live, "live", lambda i: 3600.0, 3600.0,
                              progress=args.live >= 200_000, say=say)
        fill = {"rate": args.live / (time.monotonic() - start),
                "memory": float(probe.info("memory")["used_memory"])}
        outcomes = []
        for number, scenario in enumerate(scenarios):
            say(f"scenario: {scenario.label}")
            outcomes.append(await run_scenario(store, probe, space, scenario, args.expiring,
                                               args.lead, args.spread, number))
        costs = []
        for interval in args.cost_intervals:
            for listeners in args.cost_listeners:
                if listeners == 0 and interval != args.cost_intervals[0]:
                    continue  # the baseline does not depend on the interval
                say(f"sweeper cost at {interval:g} s, {listeners} listener(s)")
                costs.append(await sweeper_cost(store, probe, interval, args.cost_seconds,
                                                listeners))
    finally:
        await store.aclose()
        doomed: list[bytes] = []
        for key in probe.scan_iter(match=f"{PREFIX}:*", count=1000):
            doomed.append(key)
            if len(doomed) == BATCH:  # one UNLINK per batch, not a round trip per key
                probe.unlink(*doomed)
                doomed.clear()
        if doomed:
            probe.unlink(*doomed)
        probe.close()
    raw = {"options": vars(args), "fill": fill, "setups": [{
        "label": o.scenario.label, "sweep_interval": o.scenario.sweep_interval,
        "notifications": o.scenario.notifications, "expiring": o.expiring,
        "lags_ms": o.lags_ms, "archive_lags_ms": o.archive_lags_ms, "by_path": o.by_path,
        "p50_ms": percentile(o.lags_ms, 50) if len(o.lags_ms) == o.expiring else None,
        "p99_ms": percentile(o.lags_ms, 99) if len(o.lags_ms) == o.expiring else None,
        "archived": len(o.lags_ms), "client_cpu_ms": o.client_cpu_ms,
        "server_cpu_ms": o.server_cpu_ms, "steal_pct": o.steal_pct} for o in outcomes], "sweeper_cost": costs}
    return raw, report(args, fill, outcomes, costs)
