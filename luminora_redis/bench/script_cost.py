"""The server's cost of one chat turn's script: ours against the floor's, from
``INFO commandstats``.

The per-turn pass of ``bench turn`` reads ``commandstats`` around a few hundred
sequential turns, where one scheduling hiccup of a shared machine moves the figure
by a third. Here each script runs ``calls`` turns (sessions of 20 turns, the
workload's messages, the last 10 read back) in pipelined batches, so the client's
pace does not matter, and the rounds alternate between the scripts: ours with
``last`` alone, with a budget that never binds, with one that binds (about half
of ``last`` back), and the floor. The figure is EVALSHA's ``usec_per_call`` (the
script and every command inside it), the median over the rounds, and each ratio
is taken round by round.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import redis
import redis.cluster

from luminora_redis.bench import systems, workload
from luminora_redis.bench.archive import send_batch
from luminora_redis.bench.report import table
from luminora_redis.core.scripts import Call
from luminora_redis.io.sync_store import SyncSessionStore
from luminora_redis.ops.sessions import encode_messages

PREFIX = "benchscript"
BATCH = 200


def _usec(client: redis.Redis | redis.cluster.RedisCluster) -> tuple[int, int]:
    stats = client.info("commandstats").get("cmdstat_evalsha", {})
    return int(stats.get("calls", 0)), int(stats.get("usec", 0))


def _ours(url: str, calls: int, budget: int = -1) -> Callable[[], float]:
    store = SyncSessionStore.from_url(url, prefix=PREFIX)
    client = store.client
    ctx = store.context()
    turns = [encode_messages(ctx, [("user", u), ("assistant", a)])
             for u, a in zip(workload.USER, workload.ASSISTANT)]

    def run() -> float:
        sids = [store.create_session(f"u{n}", workload.PERSONALITY, {"ttl": 3600, "max_idle": 3600})
                for n in range(calls // workload.TURNS_PER_SESSION)]
        keys = [(*ctx.session_keys(sid)[:4], ctx.session_keys(sid).summary)  # type: ignore[index, union-attr]
                for sid in sids]
        steps = [Call("chat_turn", keys[n // workload.TURNS_PER_SESSION],
                      (ctx.settings.max_history, workload.LAST, budget, 1 + n,
                       *turns[n % workload.TURNS_PER_SESSION]))
                 for n in range(len(sids) * workload.TURNS_PER_SESSION)]
        before = _usec(client)
        for start in range(0, len(steps), BATCH):
            store.run(send_batch, steps[start:start + BATCH])
        after = _usec(client)
        return (after[1] - before[1]) / max(1, after[0] - before[0])

    return run


def _floor(url: str, calls: int) -> Callable[[], float]:
    floor = systems.FloorBlocking(url, f"{PREFIX}:f")
    floor.open()
    client, script = floor.client, floor.script

    def run() -> float:
        keys = floor.sessions(calls // workload.TURNS_PER_SESSION)
        script.sha = client.script_load(script.script)
        before = _usec(client)
        for start in range(0, len(keys) * workload.TURNS_PER_SESSION, BATCH):
            with client.pipeline(transaction=False) as pipe:
                for n in range(start, min(start + BATCH, len(keys) * workload.TURNS_PER_SESSION)):
                    script(keys=keys[n // workload.TURNS_PER_SESSION],
                           args=[systems.FLOOR_BOUND, workload.LAST,
                                 *systems.floor_messages(n % workload.TURNS_PER_SESSION)],
                           client=pipe)
                pipe.execute()
        after = _usec(client)
        return (after[1] - before[1]) / max(1, after[0] - before[0])

    return run


def run_script_cost(url: str, rounds: int, calls: int,
                    say: Callable[[str], None]) -> tuple[dict[str, Any], str]:
    """Median µs per call of each script over ``rounds`` alternating rounds, and the ratios:
    ours to the floor's, and ours with a budget (one that never binds, one that binds)
    to ours with ``last`` alone."""
    ours, floor = _ours(url, calls), _floor(url, calls)
    budgeted = _ours(url, calls, workload.BUDGET)
    binding = _ours(url, calls, workload.BINDING_BUDGET)
    runs = [ours, budgeted, binding, floor]
    usec: dict[int, list[float]] = {id(run): [] for run in runs}
    for round_no in range(rounds):
        say(f"script cost: round {round_no + 1}/{rounds}")
        shift = round_no % len(runs)
        for run in runs[shift:] + runs[:shift]:  # each first in turn
            usec[id(run)].append(run())
    cleanup = redis.Redis.from_url(url)
    for key in cleanup.scan_iter(f"{PREFIX}*", count=1000):
        cleanup.unlink(key)
    mine, theirs = usec[id(ours)], usec[id(floor)]
    with_budget, with_binding = usec[id(budgeted)], usec[id(binding)]

    def ratio(of: list[float], to: list[float]) -> float:
        return statistics.median(a / b for a, b in zip(of, to))

    raw = {"calls": calls, "rounds": rounds, "ours_usec": mine, "floor_usec": theirs,
           "ratio_median": ratio(mine, theirs), "budget_usec": with_budget,
           "budget_ratio_median": ratio(with_budget, mine), "binding_budget_usec": with_binding,
           "binding_budget_ratio_median": ratio(with_binding, mine)}
    text = "\n".join([
        "### Server cost of the turn's script (INFO commandstats)",
        "",
        f"_{calls:,} turns per script per round, pipelined in batches of {BATCH}, "
        f"{rounds} alternating rounds; EVALSHA usec_per_call, median._",
        "",
        table(["script", "µs per turn", "÷ floor"],
              [["luminora-redis `chat_turn.lua`", f"{statistics.median(mine):.1f}",
                f"{ratio(mine, theirs):.2f}×"],
               ["luminora-redis `chat_turn.lua`, chat_turn with budget "
                f"({ratio(with_budget, mine):.3f}× `last` alone)",
                f"{statistics.median(with_budget):.1f}", f"{ratio(with_budget, theirs):.2f}×"],
               ["luminora-redis `chat_turn.lua`, chat_turn with a binding budget "
                f"({ratio(with_binding, mine):.3f}× `last` alone)",
                f"{statistics.median(with_binding):.1f}", f"{ratio(with_binding, theirs):.2f}×"],
               ["floor `floor_turn.lua`", f"{statistics.median(theirs):.1f}", "1.00×"]]),
    ])
    return raw, text
