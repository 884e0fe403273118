"""LangGraph's own checkpointer conformance suite (langgraph-checkpoint-conformance
0.0.2, unmodified) against LuminoraCheckpointSaver, on one server and on the
cluster: all 8 capabilities, the 5 base ones and copy_thread, delete_for_runs and
prune, must be detected and pass. The printed report is the README's."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

pytest.importorskip("langgraph.checkpoint.conformance",
                    reason="langgraph-checkpoint-conformance is not installed")

from langgraph.checkpoint.conformance import checkpointer_test, validate  # noqa: E402
from langgraph.checkpoint.conformance.capabilities import Capability  # noqa: E402

from luminora_redis.compat.langgraph import LuminoraCheckpointSaver  # noqa: E402


async def test_the_conformance_suite_passes_all_eight_capabilities(
        store_url: str, topology: str, capsys: pytest.CaptureFixture[str]) -> None:
    # The suite passes no user_id, so its threads belong to the default user.
    @checkpointer_test(name="LuminoraCheckpointSaver")
    async def luminora_saver() -> AsyncIterator[LuminoraCheckpointSaver]:
        saver = LuminoraCheckpointSaver.from_url(store_url, cluster=topology == "cluster",
                                                 default_user_id="conformance")
        yield saver
        await saver.aclose()

    report = await validate(luminora_saver)
    report.print_report()
    with capsys.disabled():
        print(capsys.readouterr().out)
    failures = {cap: result.failures for cap, result in report.results.items() if result.failures}
    assert not failures
    assert {cap for cap, result in report.results.items() if result.detected} == {
        cap.value for cap in Capability}
    assert all(result.passed is True for result in report.results.values())
    assert report.passed_all() and report.conformance_level() == "FULL"
