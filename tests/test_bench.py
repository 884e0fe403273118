"""``luminora-redis bench``: a small run of the chat-turn comparison on a real server,
checking the JSON's shape, that every number is positive, that systems which cannot run
say why in one line without stopping the run, and that the harness leaves no keys."""

from __future__ import annotations

import gc
import json
import math
import sys
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from luminora_redis.bench.cli import bench
from luminora_redis.cli import main

pytestmark = [pytest.mark.single_server, pytest.mark.slow]


def _run(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(bench, args, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_quick_run_with_two_systems(redis_url: str, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LUMINORACORE_PATH", raising=False)
    path = tmp_path / "results.json"
    code, out, err = _run(["turn", "--url", redis_url, "--tiny", "--concurrency", "1,4",
                           "--systems", "luminora-async,luminoracore", "--json", str(path)])
    assert code == 0, err
    results = json.loads(path.read_text())

    assert set(results) == {"meta", "turn", "archive", "memory", "script_cost"}
    cost = results["script_cost"]
    assert cost["rounds"] >= 3 and len(cost["ours_usec"]) == len(cost["floor_usec"]) == cost["rounds"]
    assert all(usec > 0 for usec in cost["ours_usec"] + cost["floor_usec"])
    assert cost["ratio_median"] > 0
    for key in ("budget_usec", "binding_budget_usec"):
        assert len(cost[key]) == cost["rounds"] and all(usec > 0 for usec in cost[key])
    assert cost["budget_ratio_median"] > 0 and cost["binding_budget_ratio_median"] > 0
    meta = results["meta"]
    assert meta["server"]["version"] and meta["versions"]["redis"] == redis.__version__
    assert meta["machine"]["cpus"] >= 1
    systems = {s["name"]: s for s in results["turn"]["systems"]}
    # The floor of the selected API comes along, so ratios exist.
    assert set(systems) == {"luminora-async", "floor-async", "luminoracore"}

    legacy = systems["luminoracore"]
    assert not legacy["ran"] and "LUMINORACORE_PATH" in legacy["skipped"]
    assert "\n" not in legacy["skipped"]
    assert "LuminoraCore on its legacy Redis backend: cannot run: LUMINORACORE_PATH" in err

    for name in ("luminora-async", "floor-async"):
        system = systems[name]
        assert system["ran"] and system["skipped"] is None, system["skipped"]
        assert set(system["throughput"]) == {"1", "4"}
        for point in system["throughput"].values():
            assert point["turns_per_s"] > 0 and point["ratio_to_floor"] > 0
            assert len(point["rounds"]) == 1 and all(r > 0 for r in point["rounds"])
            assert point["trial_turns"] >= 20
            assert point["server_cpu_us_per_turn"] >= 0
        per_turn = system["per_turn"]
        for key in ("client_commands", "round_trips", "server_commands", "command_usec",
                    "net_in_bytes", "net_out_bytes"):
            assert per_turn[key] > 0, key
        # One EVALSHA per turn, and the script's own commands on top.
        assert system["client_commands"] == {"evalsha": 1.0}
        assert per_turn["server_commands"] > per_turn["client_commands"]
        assert system["memory"]["memory_usage_per_session"] > 20 * 2 * 200
        assert system["memory"]["keys_per_session"] >= 2
        assert system["expiry"] == "native" and system["on_expiry"]
    assert systems["floor-async"]["throughput"]["1"]["ratio_to_floor"] == 1.0

    assert "| luminora-redis (asyncio) | asyncio |" in out
    assert "| luminora-redis `chat_turn.lua` |" in out
    assert "| luminora-redis `chat_turn.lua`, chat_turn with a binding budget (" in out
    assert "Did not run:" in out
    with redis.Redis.from_url(redis_url) as client:
        assert client.keys("bench*") == []


async def test_the_budget_rows_return_all_or_about_half_of_last(redis_url: str) -> None:
    """The wide budget returns the same ``last`` messages as ``last`` alone; the binding
    one returns the newest half of them once the session holds more, so that row pays
    for reading the counts."""
    from luminora_redis.bench import workload
    from luminora_redis.bench.systems import LuminoraAsync, LuminoraBudget, LuminoraBudgetBinds

    lengths: dict[str, list[int]] = {}
    for n, cls in enumerate((LuminoraAsync, LuminoraBudget, LuminoraBudgetBinds)):
        system = cls(redis_url, f"benchrows{n}")
        await system.open()
        try:
            [sid] = await system.sessions(1)
            contexts = [await system.turn(sid, i) for i in range(workload.TURNS_PER_SESSION)]
        finally:
            await system.close()
        lengths[cls.name] = [len(context) for context in contexts]
        assert contexts[-1][-1].content == workload.ASSISTANT[-1]
    full = [min(2 * (i + 1), workload.LAST) for i in range(workload.TURNS_PER_SESSION)]
    assert lengths["luminora-async"] == lengths["luminora-async-budget"] == full
    half = workload.LAST // 2
    assert lengths["luminora-async-budget-binds"] == [min(n, half) for n in full]
    with redis.Redis.from_url(redis_url) as client:
        for key in client.scan_iter("benchrows*"):
            client.unlink(key)


def test_console_script_reaches_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--help"])
    assert exit_.value.code == 0
    assert "--concurrency" in capsys.readouterr().out


@pytest.mark.parametrize("args", [["--concurrency", "0"], ["--systems", "nope"],
                                  ["everything"]])
def test_bad_options_are_usage_errors(args: list[str]) -> None:
    code, _, err = _run(args)
    assert code == 2 and "Error" in err


def test_unreachable_redis_exits_3() -> None:
    from luminora_redis.testing import free_port

    code, _, err = _run(["--url", f"redis://127.0.0.1:{free_port()}/0", "--tiny"])
    assert code == 3 and "unreachable" in err


def test_memory_measures_live_and_archived_bytes_against_the_payload(redis_url: str) -> None:
    from luminora_redis.bench.memory import MemoryOptions, run_memory

    results, markdown = run_memory(redis_url, MemoryOptions(turns=[4, 8], conversations=3))
    assert [row["messages"] for row in results["sizes"]] == [8, 16]
    for row in results["sizes"]:
        lists, zstd = row["lists"], row["zstd"]
        assert lists["payload"] > 0 and zstd["payload"] > 0
        # the frames replace the lists: smaller than the lists they came from
        assert 0 < zstd["frames"] < zstd["archived"] < lists["archived"]
        assert lists["live"] > lists["payload"] and math.isnan(lists["frames"])
    assert "| 8 turns (16 messages) |" in markdown
    client = redis.Redis.from_url(redis_url)
    try:
        assert list(client.scan_iter(match="benchmem:*")) == []
    finally:
        client.close()


async def test_archive_scenario_reports_lag_and_cpu_per_session(redis_url: str) -> None:
    """A tiny `bench archive`: every expiring session archived by the sweeper, and the CPU
    each cost the listener and Redis, read between the 10 % and 90 % hook calls."""
    from luminora_redis.bench.archive import ArchiveOptions, run_archive

    options = ArchiveOptions(live=200, expiring=60, spread=0.3, lead=1.5, intervals=[0.05],
                             timeout_notify=0.5, timeout_sweep=10, no_sweeper_only=True,
                             cost_intervals=[0.25], cost_listeners=[0], cost_seconds=0.2)
    try:
        raw, text = await run_archive(redis_url, options)
    finally:
        gc.unfreeze()  # each setup froze what this process held, as `listen` does
    swept = raw["setups"][0]
    assert swept["archived"] == 60 and swept["p99_ms"] is not None
    assert swept["client_cpu_ms"] > 0 and swept["server_cpu_ms"] > 0
    assert "CPU ms per archived session, listener / Redis" in text
    assert "| host steal |" in text
    if sys.platform == "linux":
        assert swept["steal_pct"] is not None and 0.0 <= swept["steal_pct"] <= 100.0


def test_host_steal_is_the_steal_share_of_all_ticks_between_two_readings() -> None:
    from luminora_redis.bench.host import parse_cpu_times, steal_percent

    before = parse_cpu_times("cpu  100 0 50 800 10 0 5 35 7 0\ncpu0 50 0 25 400 5 0 2 18 3 0\n")
    after = parse_cpu_times("cpu  160 0 70 880 10 0 5 75 9 0\nintr 1\n")
    # steal field (the 8th) 35 -> 75; guest (the 9th) is already inside user
    assert before == (35, 1000) and after == (75, 1200)
    assert steal_percent(before, after) == 20.0
    assert steal_percent(after, after) is None and steal_percent(None, after) is None
    assert parse_cpu_times("cpu  1 2 3 4\n") is None  # no steal field
