"""The tables of ``luminora-redis bench archive`` (``bench/archive.py``): each listener
setup's lag percentiles, CPU per archived session and host steal, then the sweepers'
idle cost; and the nearest-rank percentile both use."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from luminora_redis.bench.report import num, table

if TYPE_CHECKING:
    from luminora_redis.bench.archive import ArchiveOptions, Outcome

__all__ = ["TARGET_P99_MS", "outcome_row", "percentile", "report"]

TARGET_P99_MS = 20.0  # expiry -> archive, with a million live sessions


def percentile(ordered: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of an ascending sequence, nearest rank."""
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]



def _ms(value: float, timeout: float) -> str:
    return num(value, 1) if value != float("inf") else f"> {num(timeout * 1000)}"


def outcome_row(outcome: Outcome) -> list[str]:
    """Percentiles over every expiring session; one not archived in time counts as
    infinitely late, so a percentile that reaches it shows as "> timeout"."""
    n, timeout = outcome.expiring, outcome.scenario.timeout
    lags = outcome.lags_ms + [float("inf")] * (n - len(outcome.lags_ms))
    within = sum(1 for lag in lags if lag <= 1000)
    archived = len(outcome.lags_ms)
    p99 = percentile(lags, 99)
    paths = ", ".join(f"{k} {v}" for k, v in sorted(outcome.by_path.items()) if v) or "—"
    script_lags = outcome.archive_lags_ms + [float("inf")] * (n - len(outcome.archive_lags_ms))
    return [
        outcome.scenario.label,
        _ms(percentile(lags, 50), timeout), _ms(p99, timeout), _ms(max(lags), timeout),
        f"{_ms(percentile(script_lags, 50), timeout)} / {_ms(percentile(script_lags, 99), timeout)}",
        f"{100 * within / n:.1f} %",
        f"{100 * archived / n:.1f} %" + ("" if archived == n else f" in {timeout:g} s"),
        "yes" if archived == n and p99 <= TARGET_P99_MS else "no",
        paths,
        "—" if outcome.client_cpu_ms is None or outcome.server_cpu_ms is None
        else f"{outcome.client_cpu_ms:.2f} / {outcome.server_cpu_ms:.2f}",
        "—" if outcome.steal_pct is None else f"{outcome.steal_pct:.1f} %",
    ]


def report(args: ArchiveOptions, fill: dict[str, float],
           outcomes: Sequence[Outcome], costs: Sequence[dict[str, float]]) -> str:
    out = [
        f"### Expiry → archive lag: {args.expiring:,} sessions expiring over "
        f"{args.spread:g} s among {args.live:,} live sessions",
        "",
        f"_redis-server hz {args.hz} (Redis's default is 10), {args.buckets} buckets. "
        f"Live sessions: "
        f"{num(fill['rate'])} created/s pipelined, used_memory {num(fill['memory'] / 2**20, 0)} "
        f"MiB after filling. Lag = `on_archived` wall-clock time − the session's effective "
        f"deadline (the hook runs after the delivery's own round trips, if any: a claim, a "
        f"read; the listener's own lag, when the archive script returned, is next to it); "
        f"a setup's wait ends when all are archived or {args.timeout_notify:g} s "
        f"(notifications only) / {args.timeout_sweep:g} s after the last deadline. "
        f"CPU per session: this process's CPU time (the listener; the bench itself idles "
        f"meanwhile) and redis-server's, between the hook calls of 10 % and 90 % of the "
        f"sessions, divided by the sessions between them. Host steal: the share of the "
        f"machine's CPU time the hypervisor gave other guests over the same window "
        f"(Linux's /proc/stat; a vCPU not running stalls Redis and the listener alike). "
        f"Target: p99 ≤ {TARGET_P99_MS:g} ms and 100 % archived._",
        "",
        table(["listener setup", "p50 ms", "p99 ms", "max ms",
               "p50 / p99 ms when the archive script returned", "within 1 s", "archived",
               "target met", "archived by",
               "CPU ms per archived session, listener / Redis", "host steal"],
              [outcome_row(o) for o in outcomes]),
        "",
        f"### Sweeper cost while idle ({args.buckets} buckets, nothing due, "
        f"{args.cost_seconds:g} s window)",
        "",
        table(["sweep interval", "idle listeners", "sweep passes/s (all listeners)",
               "EVALSHA/s", "Redis commands/s (incl. inside scripts)",
               "redis-server CPU, % of one core"],
              [[f"{c['interval'] * 1000:g} ms", str(int(c["listeners"])), num(c["sweeps"], 1),
                num(c["evalsha"]), num(c["total"]), f"{c['cpu']:.2f} %"] for c in costs]),
    ]
    return "\n".join(out)
