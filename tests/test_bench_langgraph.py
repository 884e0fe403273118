"""``luminora-redis bench langgraph``: the LangGraph turn row, run small against the
suite's Redis (the peers that are not installed are reported, not run)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
from click.testing import CliRunner

pytest.importorskip("langgraph.graph", reason="langgraph is not installed "
                                              "(pip install 'luminora-redis[langgraph]')")

from luminora_redis.bench import langgraph as lg  # noqa: E402
from luminora_redis.bench.cli import bench  # noqa: E402

TINY = lg.LangGraphOptions(threads=2, turns=2, rounds=1, memory_turns=3)


@contextlib.asynccontextmanager
async def _missing(url: str) -> AsyncIterator[Any]:
    raise lg.Unavailable("not here")
    yield  # pragma: no cover


def test_rows_measure_turns_and_the_bytes_of_one_thread(redis_url: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lg, "SYSTEMS", {"luminora-redis": lg.SYSTEMS["luminora-redis"],
                                        "langgraph-checkpoint-redis": _missing,
                                        "InMemorySaver": lg.SYSTEMS["InMemorySaver"]})
    said: list[str] = []
    raw, text = asyncio.run(lg.run_langgraph(redis_url, TINY, said.append))
    rows = {row["system"]: row for row in raw["systems"]}
    ours, peer, floor = (rows[name] for name in lg.EXPIRY)
    assert ours["ran"] and floor["ran"] and not peer["ran"]
    assert ours["median_turns_per_s"] > 0 and floor["median_turns_per_s"] > 0
    assert ours["keys"] >= 1 and ours["bytes"] > 0
    # the run leaves nothing behind: each saver deleted its threads, the rest went too
    client = redis.Redis.from_url(redis_url)
    try:
        assert list(client.scan_iter(count=1000)) == []
    finally:
        client.close()
    assert floor["bytes"] > 0 and floor["keys"] == 0
    assert "| langgraph-checkpoint-redis | not run here: not here | — | — |" in text
    assert "archived into the user's archive" in text
    assert any("InMemorySaver round 1" in line for line in said)


def test_the_command_accepts_the_scenario(redis_url: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lg, "SYSTEMS", {"InMemorySaver": lg.SYSTEMS["InMemorySaver"]})
    monkeypatch.setattr(lg.LangGraphOptions, "quick", classmethod(lambda cls: TINY))
    result = CliRunner().invoke(bench, ["langgraph", "--quick", "--url", redis_url])
    assert result.exit_code == 0, result.output
    assert "### LangGraph turn" in result.output and "| InMemorySaver |" in result.output
