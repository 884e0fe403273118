"""The fault soak, short: chat traffic while listeners are killed with SIGKILL, Redis is
killed and restarted from its AOF, client connections are killed, the script cache is
flushed, Redis sleeps (``DEBUG SLEEP``), pauses its clients (``CLIENT PAUSE`` WRITE and
ALL), drops every subscription, refuses writes over ``maxmemory`` and answers BUSY behind
a long script, while the listeners' hook hangs on some deliveries and the stores trim
every user's archive to two conversations; then every stored record and every delivery
is checked (``benchmarks/soak.py`` says how).

Every archive is delivered at least once, each delivery under its archive's idempotency
key, and no delivery names an archive that was never made.
"""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.soak import FAULTS, HOOK_HANG, soak

from conftest import require_redis_server

pytestmark = pytest.mark.slow


def test_nothing_is_lost_or_duplicated_under_faults() -> None:
    require_redis_server()
    report = asyncio.run(soak(12.0, workers=6, listeners=2, fault_every=0.4, drain=30.0,
                              retention=2, hook_timeout=0.5, windows=(0.15, 0.3)))
    print(report.table(), *report.findings, sep="\n")
    figures = report.figures
    assert all(report.faults[kind] >= 1 for kind in (*FAULTS, HOOK_HANG)), report.faults
    assert set(report.faults) == {*FAULTS, HOOK_HANG}, report.faults  # no fault failed to fire
    assert figures["turns acknowledged"] > 50 and figures["sessions archived"] > 20, figures
    assert figures["archives trimmed after their delivery (checked from the sink)"] > 0, figures
    for name in ("turns lost", "turns duplicated", "turns nobody sent", "turns refused that landed",
                 "sessions not archived", "sessions archived twice",
                 "sessions still live after the drain",
                 "sessions in no deadline index (never archived)", "keys outside the layout",
                 "keys without an owner", "index entries pointing at nothing",
                 "messages undecodable", "archives never delivered",
                 "archives neither kept nor delivered (trimmed first, or archived twice)",
                 "undelivered (left in an outbox after the drain)",
                 "deliveries whose turns differ from the archive", "listeners exited on their own"):
        assert figures[name] == 0, (name, report.table())
    assert figures["deliveries with another key"] == 0, report.table()
    assert figures["deliveries of no archive"] == 0, report.table()
    assert report.problems == [], (report.problems, report.log_dir)
