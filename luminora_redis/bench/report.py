"""The run's results as JSON (raw: every round's number, versions, machine, server) and
as Markdown tables (medians, and ratios to the floor on the same server)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from luminora_redis.bench import workload
from luminora_redis.bench.runner import Options, Outcome, cpu_per_turn


def turn_json(outcomes: Sequence[Outcome], options: Options) -> dict[str, Any]:
    systems = []
    for o in outcomes:
        cls = o.system
        entry: dict[str, Any] = {
            "name": cls.name, "label": cls.label, "api": cls.api, "floor": cls.floor,
            "ran": o.ran, "skipped": o.skipped, "versions": o.versions,
            "per_turn_calls": cls.facts.per_turn, "expiry": cls.facts.expiry,
            "on_expiry": cls.facts.on_expiry, "needs_modules": list(cls.facts.needs_modules),
            "throughput": {}, "per_turn": o.per_turn, "client_commands": o.client_commands,
            "memory": o.memory,
        }
        for c in options.concurrency:
            rounds = o.turns_per_s.get(c, [])
            if not rounds:
                continue
            entry["throughput"][str(c)] = {
                "turns_per_s": statistics.median(rounds),
                "rounds": rounds,
                "trial_turns": o.trial_turns.get(c),
                "capped_rounds": o.capped.get(c, 0),
                "ratio_to_floor": o.ratio(c),
                "ratio_rounds": o.ratios.get(c, []),
                "server_cpu_us_per_turn": cpu_per_turn(o, c),
            }
        systems.append(entry)
    return {"workload": workload.describe(),
            "options": {"concurrency": options.concurrency, "rounds": options.rounds,
                        "trial_seconds": options.trial_seconds,
                        "trial_cap": options.trial_cap,
                        "memory_sessions": options.memory_sessions,
                        "probe_sessions": options.probe_sessions},
            "systems": systems}


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 1) -> str:
    """A Markdown table; the first ``left`` columns (and a last ``expiry``) align left."""
    marks = [":---"] * left + ["---:"] * (len(headers) - left)
    if headers[-1] == "expiry":
        marks[-1] = ":---"
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def num(value: float | None, digits: int = 0) -> str:
    if value is None or value != value:
        return "—"
    return f"{value:,.{digits}f}"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def turn_markdown(results: dict[str, Any]) -> str:
    """The turn tables from ``turn_json``'s output (so a saved JSON renders the same)."""
    concurrency = results["options"]["concurrency"]
    ran = [s for s in results["systems"] if s["ran"]]
    head = ["system", "API"]
    for c in concurrency:
        head += [f"turns/s c={c}", "÷ floor"]
    rows = []
    for s in ran:
        row = [s["label"], s["api"]]
        for c in concurrency:
            t = s["throughput"].get(str(c), {})
            mark = " ⁽ᶜ⁾" if t.get("capped_rounds") else ""
            row += [num(t.get("turns_per_s")) + mark, _ratio(t.get("ratio_to_floor"))]
        rows.append(row)
    out = [table(head, rows, left=2), ""]
    if any(t.get("capped_rounds") for s in ran for t in s["throughput"].values()):
        out += [f"⁽ᶜ⁾ trials cut at the {results['options']['trial_cap']:g} s cap before every "
                "session had its 20 turns (shorter histories).", ""]
    cost_head = ["system", "client commands / turn", "round trips / turn",
                 "server commands / turn", "command µs / turn", "server CPU µs / turn (c=1)",
                 "bytes in / out per turn", "bytes / session after 20 turns "
                 "(used_memory_dataset; MEMORY USAGE)", "expiry"]
    cost_rows = []
    for s in ran:
        p, m = s["per_turn"], s["memory"]
        cpu = s["throughput"].get(str(concurrency[0]), {}).get("server_cpu_us_per_turn")
        cost_rows.append([
            s["label"], num(p.get("client_commands"), 1), num(p.get("round_trips"), 1),
            num(p.get("server_commands"), 1), num(p.get("command_usec"), 1), num(cpu),
            f"{num(p.get('net_in_bytes'))} / {num(p.get('net_out_bytes'))}",
            f"{num(m.get('dataset_memory_per_session'))}; "
            f"{num(m.get('memory_usage_per_session'))}",
            s["expiry"]])
    out += [table(cost_head, cost_rows), ""]
    out += ["On expiry:", ""]
    out += [f"- **{s['label']}**: {s['on_expiry']}." for s in ran]
    skipped = [s for s in results["systems"] if not s["ran"]]
    if skipped:
        out += ["", "Did not run:", ""]
        out += [f"- **{s['label']}**: {s['skipped']}" for s in skipped]
    return "\n".join(out)


def header_markdown(meta: dict[str, Any]) -> str:
    m, server = meta["machine"], meta["server"]
    return (f"_{meta['started']}; {m['cpus']} CPUs ({m['processor']}), Python {m['python']}, "
            f"redis-py {meta['versions'].get('redis', '?')}, luminora-redis "
            f"{meta['versions'].get('luminora-redis', '?')}; Redis {server['version']} "
            f"({server['note'] or server['url']}), modules: "
            f"{', '.join(server['modules']) or 'none'}; client and server on the same "
            f"machine._")
