"""The fault soak, short: chat traffic while listeners are killed with SIGKILL, Redis is
killed and restarted from its AOF, client connections are killed and the script cache is
flushed; then every stored record is checked (``benchmarks/soak.py`` says how).

Deliveries to the ``on_archived`` sink are asserted once archives carry an idempotency
key (at-least-once delivery); before that, the report counts what went missing.
"""

from __future__ import annotations

import asyncio

from benchmarks.soak import FAULTS, soak

from conftest import require_redis_server


def test_nothing_is_lost_or_duplicated_under_faults() -> None:
    require_redis_server()
    report = asyncio.run(soak(10.0, workers=6, listeners=2, fault_every=0.6, drain=30.0))
    print(report.table(), *report.findings, sep="\n")
    figures = report.figures
    assert all(report.faults[kind] >= 1 for kind in FAULTS), report.faults
    assert set(report.faults) == set(FAULTS), report.faults  # no fault failed to fire
    assert figures["turns acknowledged"] > 50 and figures["sessions archived"] > 20, figures
    for name in ("turns lost", "turns duplicated", "turns nobody sent", "sessions not archived",
                 "sessions archived twice", "sessions still live after the drain",
                 "sessions in no deadline index (never archived)", "keys outside the layout",
                 "keys without an owner", "index entries pointing at nothing",
                 "messages undecodable"):
        assert figures[name] == 0, (name, report.table())
    if report.deliveries_asserted:
        assert figures["archives never delivered"] == 0, report.table()
        assert figures["deliveries with another key"] == 0, report.table()
        assert figures["deliveries of no archive"] == 0, report.table()
    assert report.problems == [], (report.problems, report.log_dir)
