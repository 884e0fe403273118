"""``ExpiryListener(store, summarize=fn)`` on a real server and the cluster: every archived
session's summary is kept in its user's memory as exactly one ``session_summary``
episode, through the delivery pipeline's retries, timeouts and quarantine, and under
real faults (a sink that fails after the summary was saved, a listener killed between
saving it and acknowledging the delivery)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from luminora_redis import (
    ArchivedConversation,
    DeliveryBacklog,
    Episode,
    QuarantineKind,
    SessionStore,
    SessionSummary,
)
from luminora_redis.listener.expiry_listener import ExpiryListener
from luminora_redis.listener.hooks import InvalidSummary, check_summary
from luminora_redis.ops.memory import session_summary_id

from conftest import until
from listener_support import (
    MIN_TTL,
    ListenProcess,
    blocking_twin,
    create_conversation,
    open_async_stores,
    running,
)

async_stores = pytest.fixture(open_async_stores)

FAST = {"sweep_interval": 0.05, "delivery_interval": 0.05, "delivery_backoff": 0.05}
#: On the server only: the pipeline's failure paths are the same code on a cluster, where the
#: summary, retry, quarantine and fault tests run too (a cluster listener takes seconds).
SERVER_ONLY = pytest.mark.parametrize("topology", ["single"])


def extractive(conversation: ArchivedConversation) -> dict[str, Any] | None:
    """A summarizer without a model: the first user message as the title, the first
    sentence of each user message as the summary; None for an empty conversation."""
    said = [m.content for m in conversation.messages if m.role.value == "user"]
    if not said:
        return None
    return {"title": said[0][:60], "summary": " ".join(s.split(".")[0] for s in said)[:500],
            "importance": min(10.0, 1.0 + len(conversation.messages) / 2),
            "sentiment": "positive"}


async def ended_session(store: SessionStore, messages: list[str], user: str = "carlos",
                        personality: str = "alicia") -> str:
    sid = await store.create_session(user, personality, {"ttl": 60})
    if messages:
        await store.append_messages(sid, [("user", text) for text in messages])
    assert await store.end_session(sid)
    return sid


async def summaries(store: SessionStore, user: str = "carlos") -> list[Episode]:
    return [e for e in await store.get_episodes(user) if e.episode_type == "session_summary"]


async def test_the_summary_is_kept_as_the_session_s_one_episode_and_recalled(
        async_stores: Callable[..., SessionStore]) -> None:
    store = async_stores()
    listener = ExpiryListener(async_stores(), summarize=extractive, **FAST)
    async with running(listener):
        sid = await ended_session(store, ["I adopted a cat. Her name is Luna.",
                                          "She sleeps all day."])
        await until(lambda: listener.delivered == 1, timeout=20)
    [episode] = await summaries(store)
    assert (episode.episode_id, episode.title, episode.summary, episode.importance,
            episode.sentiment.value, episode.personality_name) == (
        session_summary_id(sid), "I adopted a cat. Her name is Luna.",
        "I adopted a cat She sleeps all day", 2.0, "positive", "alicia")
    assert listener.summarized == 1
    assert (await store.delivery_backlog()).pending == 0
    # Recalled by the session's personality, not by another; the blocking store reads it too.
    assert [e.episode_id for e in (await store.recall("carlos", "alicia")).episodes] == [
        episode.episode_id]
    assert (await store.recall("carlos", "bruno")).episodes == []
    twin = await asyncio.to_thread(blocking_twin, store)
    try:
        recalled = await asyncio.to_thread(twin.recall, "carlos", "alicia")
        assert recalled.episodes == [episode]
    finally:
        await asyncio.to_thread(twin.close)


async def test_summarize_none_keeps_nothing_and_the_sink_still_gets_the_conversation(
        async_stores: Callable[..., SessionStore]) -> None:
    store = async_stores()
    seen: list[str] = []
    listener = ExpiryListener(async_stores(), summarize=extractive,
                              on_archived=lambda c: seen.append(c.session_id), **FAST)
    async with running(listener):
        sid = await ended_session(store, [])
        await until(lambda: seen == [sid], timeout=20)
        await until(lambda: listener.delivered == 1)
    assert await store.get_episodes("carlos") == []
    assert listener.summarized == 0
    assert (await store.delivery_backlog()).pending == 0


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_a_sink_failing_after_the_summary_was_saved_leaves_one_summary(
        async_stores: Callable[..., SessionStore], asynchronous: bool) -> None:
    """The first attempt saves the summary, then the sink fails: the retry runs
    ``summarize`` again, and its episode replaces the first."""
    store = async_stores()
    runs: list[str] = []
    delivered: list[str] = []

    def summarize_plain(conversation: ArchivedConversation) -> SessionSummary:
        runs.append(conversation.session_id)
        return SessionSummary(title=f"run {len(runs)}", summary="a chat", importance=4)

    async def summarize_async(conversation: ArchivedConversation) -> SessionSummary:
        return summarize_plain(conversation)

    async def sink(conversation: ArchivedConversation) -> None:
        if not delivered:
            delivered.append("failed")
            # The summary of this attempt is already in the user's memory.
            assert [e.title for e in await summaries(store)] == ["run 1"]
            raise ConnectionError("the sink is down")
        delivered.append(conversation.session_id)

    listener = ExpiryListener(async_stores(), on_archived=sink,
                              summarize=summarize_async if asynchronous else summarize_plain,
                              **FAST)
    async with running(listener):
        sid = await ended_session(store, ["hola"])
        await until(lambda: listener.delivered == 1, timeout=20)
    assert runs == [sid, sid]
    assert delivered == ["failed", sid]
    [episode] = await summaries(store)
    assert (episode.episode_id, episode.title) == (session_summary_id(sid), "run 2")
    assert len(await store.get_episodes("carlos")) == 1


@SERVER_ONLY
async def test_a_summary_of_a_user_erased_meanwhile_is_not_kept(
        async_stores: Callable[..., SessionStore], caplog: pytest.LogCaptureFixture) -> None:
    """Erasure is final: a summary finished after the user was erased does not bring an
    episode back into the erased user's memory."""
    store = async_stores()
    ran: list[str] = []

    async def erasing(conversation: ArchivedConversation) -> dict[str, Any]:
        assert await store.erase_user(conversation.user_id) > 0
        ran.append(conversation.session_id)
        return {"title": "t", "summary": "s", "importance": 1}

    listener = ExpiryListener(async_stores(), summarize=erasing, **FAST)
    with caplog.at_level(logging.WARNING, logger="luminora_redis.listener"):
        async with running(listener):
            sid = await ended_session(store, ["hola"])
            await until(lambda: any("the summary is not kept" in r.getMessage()
                                    for r in caplog.records), timeout=20)
    assert ran == [sid]
    assert await store.get_episodes("carlos") == []
    assert await store.get_user("carlos") is None
    assert listener.summarized == 0


@pytest.mark.slow
async def test_two_listeners_racing_on_one_session_leave_one_summary(
        async_stores: Callable[..., SessionStore]) -> None:
    """The listener that archived a session summarizes it past its delivery lease; the
    holder of the outbox scan lease then takes the delivery over and summarizes it too;
    both save, and the user has one summary."""
    store = async_stores()
    release = asyncio.Event()
    runs: list[str] = []

    async def summarize(conversation: ArchivedConversation) -> dict[str, Any]:
        runs.append(conversation.session_id)
        title = f"run {len(runs)}"
        if len(runs) == 1:
            await release.wait()
        return {"title": title, "summary": "s", "importance": 2}

    # The scanner neither sweeps (after its start) nor reads notifications: the session is
    # archived, and first delivered, by the other listener.
    scanner = ExpiryListener(async_stores(), summarize=summarize, name="scanner",
                             notifications=False, sweep_interval=60.0, delivery_interval=0.05,
                             delivery_backoff=0.05, delivery_lease=1.0, hook_timeout=None)
    archiver = ExpiryListener(async_stores(), summarize=summarize, name="archiver",
                              delivery_lease=1.0, hook_timeout=None, **FAST)
    try:
        async with running(scanner):
            await until(lambda: scanner.scanning_outbox, timeout=20)
            async with running(archiver):
                assert not archiver.scanning_outbox
                sid = await create_conversation(store, "carlos", {"ttl": MIN_TTL}, ["hola"])
                await until(lambda: len(runs) == 2, timeout=30)
                await until(lambda: scanner.summarized == 1, timeout=20)
                assert [e.title for e in await summaries(store)] == ["run 2"]
                release.set()
                await until(lambda: archiver.summarized == 1, timeout=20)
    finally:
        release.set()
    assert archiver.archived == 1 and scanner.archived == 0
    assert runs == [sid, sid]
    [episode] = await summaries(store)
    assert (episode.episode_id, episode.title) == (session_summary_id(sid), "run 1")
    assert (await store.delivery_backlog()).pending == 0


@SERVER_ONLY
async def test_summarize_failures_are_retried_and_the_sink_waits_for_the_summary(
        async_stores: Callable[..., SessionStore]) -> None:
    store = async_stores()
    runs: list[int] = []
    seen: list[int] = []

    def flaky(conversation: ArchivedConversation) -> dict[str, Any]:
        runs.append(1)
        if len(runs) <= 2:
            raise TimeoutError("the model is busy")
        return {"title": "t", "summary": "s", "importance": 1, "sentiment": "neutral"}

    listener = ExpiryListener(async_stores(), summarize=flaky,
                              on_archived=lambda c: seen.append(len(runs)), **FAST)
    async with running(listener):
        await ended_session(store, ["hola"])
        await until(lambda: listener.delivered == 1, timeout=20)
    assert len(runs) == 3
    assert seen == [3], "the sink is called only once the summary was kept"
    assert len(await summaries(store)) == 1
    assert listener.errors == 2


async def test_a_summarizer_that_always_fails_is_quarantined_with_nothing_kept(
        async_stores: Callable[..., SessionStore], caplog: pytest.LogCaptureFixture) -> None:
    store = async_stores()
    runs: list[str] = []
    seen: list[str] = []

    async def broken(conversation: ArchivedConversation) -> None:
        runs.append(conversation.session_id)
        raise RuntimeError("no model")

    listener = ExpiryListener(async_stores(), summarize=broken, on_archived=seen.append,
                              delivery_max_attempts=2, **FAST)
    with caplog.at_level(logging.ERROR, logger="luminora_redis.listener"):
        async with running(listener):
            sid = await ended_session(store, ["hola"])
            await until(lambda: listener.quarantined == 1, timeout=20)
    assert runs == [sid, sid]
    assert seen == [], "a failed summary skips the sink for that attempt"
    assert await store.get_episodes("carlos") == []
    assert await store.delivery_backlog() == DeliveryBacklog(
        pending=0, oldest_age_seconds=None, quarantined=1)
    [entry] = await store.list_quarantined()
    assert (entry.kind, entry.session_id, entry.attempts) == (QuarantineKind.DELIVERY, sid, 2)
    lines = [r.getMessage() for r in caplog.records]
    assert any(f"summarize failed for session {sid}" in line and "quarantined" in line
               for line in lines), lines


@SERVER_ONLY
async def test_a_summarizer_that_overruns_the_hook_timeout_is_a_failed_attempt(
        async_stores: Callable[..., SessionStore]) -> None:
    store = async_stores()
    hung = asyncio.Event()

    async def slow(conversation: ArchivedConversation) -> dict[str, Any]:
        hung.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    listener = ExpiryListener(async_stores(), summarize=slow, hook_timeout=0.2,
                              delivery_max_attempts=1, **FAST)
    async with running(listener):
        await ended_session(store, ["hola"])
        await until(lambda: listener.quarantined == 1, timeout=20)
    assert hung.is_set()
    assert await store.get_episodes("carlos") == []


INVALID: list[Any] = [
    {"title": "t", "summary": "s", "importance": 11, "sentiment": "neutral"},
    {"title": "t", "summary": "s", "importance": -0.5},
    {"title": "t", "summary": "s", "importance": float("nan")},
    {"title": 7, "summary": "s", "importance": 1},
    {"title": "t", "importance": 1},
    {"title": "t", "summary": "s", "importance": 1, "sentiment": "elated"},
    "a summary as a bare string",
    ["t", "s", 1],
]


@pytest.mark.parametrize("result", INVALID, ids=range(len(INVALID)))
def test_check_summary_refuses_what_is_not_an_episode(result: Any) -> None:
    with pytest.raises(InvalidSummary, match="summarize"):
        check_summary(result)


def test_check_summary_takes_a_mapping_a_model_or_an_object_with_the_fields() -> None:
    class Mine:
        title, summary, importance, sentiment = "t", "s", 10, "mixed"

    expected = SessionSummary(title="t", summary="s", importance=10, sentiment="mixed")
    assert check_summary(Mine()) == expected
    assert check_summary({"title": "t", "summary": "s", "importance": 10.0,
                          "sentiment": "mixed"}) == expected
    assert check_summary(expected) is expected
    assert check_summary(None) is None


@SERVER_ONLY
async def test_an_invalid_summary_is_a_failed_attempt_with_a_clear_line_and_is_not_saved(
        async_stores: Callable[..., SessionStore], caplog: pytest.LogCaptureFixture) -> None:
    store = async_stores()
    listener = ExpiryListener(async_stores(), summarize=lambda c: INVALID[0],
                              delivery_max_attempts=1, **FAST)
    with caplog.at_level(logging.ERROR, logger="luminora_redis.listener"):
        async with running(listener):
            sid = await ended_session(store, ["hola"])
            await until(lambda: listener.quarantined == 1, timeout=20)
    assert await store.get_episodes("carlos") == []
    [line] = [r.getMessage() for r in caplog.records if sid in r.getMessage()]
    assert "summarize returned an invalid episode (importance:" in line, line
    assert "less than or equal to 10" in line, line


@SERVER_ONLY
async def test_a_plain_summarizer_runs_off_the_event_loop(
        async_stores: Callable[..., SessionStore]) -> None:
    """A blocking summarizer (a model call) does not stall the listener: while it waits,
    another session is archived and delivered to the sink."""
    store = async_stores()
    release = threading.Event()
    seen: list[str] = []

    threads: list[str] = []

    def blocking(conversation: ArchivedConversation) -> None:
        threads.append(threading.current_thread().name)
        if conversation.user_id == "slow":
            assert release.wait(30), "never released"
        return None

    listener = ExpiryListener(async_stores(), summarize=blocking,
                              on_archived=lambda c: seen.append(c.user_id), **FAST)
    try:
        async with running(listener):
            await ended_session(store, ["hola"], user="slow")
            await ended_session(store, ["hola"], user="quick")
            await until(lambda: seen == ["quick"], timeout=20)
            release.set()
            await until(lambda: sorted(seen) == ["quick", "slow"], timeout=20)
    finally:
        release.set()
    assert len(threads) == 2 and all(name.startswith("summarize") for name in threads), threads


@SERVER_ONLY
async def test_a_plain_summarizer_that_hangs_is_abandoned_and_holds_no_stop(
        async_stores: Callable[..., SessionStore]) -> None:
    store = async_stores()
    release = threading.Event()
    started = threading.Event()

    def hangs(conversation: ArchivedConversation) -> dict[str, Any]:
        started.set()
        release.wait(60)
        return {"title": "late", "summary": "s", "importance": 1}

    listener = ExpiryListener(async_stores(), summarize=hangs, hook_timeout=0.2,
                              delivery_max_attempts=1, **FAST)
    try:
        async with running(listener):
            await ended_session(store, ["hola"])
            await until(lambda: listener.quarantined == 1, timeout=20)
        # Stopped while the thread still hangs.
        assert started.is_set() and not release.is_set()
    finally:
        release.set()
    assert await store.get_episodes("carlos") == []


@SERVER_ONLY
def test_a_summarize_that_is_not_callable_is_refused(
        async_stores: Callable[..., SessionStore]) -> None:
    with pytest.raises(Exception, match="summarize must be callable"):
        ExpiryListener(async_stores(), summarize="module:function")  # type: ignore[arg-type]


KILLED_SCRIPT = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from luminora_redis import SessionStore
    from luminora_redis.listener.expiry_listener import ExpiryListener

    url, cluster, marker = sys.argv[1], sys.argv[2] == "1", Path(sys.argv[3])

    def summarize(conversation):
        return {"title": "by the doomed listener", "summary": "s", "importance": 3}

    async def hook(conversation):
        # The summary is saved; the delivery is not acknowledged yet.
        marker.write_text(conversation.session_id)
        await asyncio.Event().wait()  # stuck here until killed

    async def main():
        store = SessionStore.from_url(url, cluster=cluster)
        listener = ExpiryListener(store, summarize=summarize, on_archived=hook, name="doomed",
                                  delivery_lease=1.0, delivery_interval=0.05,
                                  heartbeat_interval=0.2)
        await listener.run()

    asyncio.run(main())
""")


@pytest.mark.slow
async def test_a_listener_killed_after_saving_the_summary_leaves_one_summary(
        async_stores: Callable[..., SessionStore], store_url: str, topology: str,
        tmp_path: Path) -> None:
    store = async_stores()
    marker = tmp_path / "delivering"
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_SCRIPT, store_url, "1" if topology == "cluster" else "0",
         str(marker)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        await until(lambda: store.live_listeners(), timeout=30)
        sid = await ended_session(store, ["hola"])
        await until(lambda: marker.exists() and marker.read_text(), timeout=30)
        process.send_signal(signal.SIGKILL)
        assert await asyncio.to_thread(process.wait, 10) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    [first] = await summaries(store)
    assert (first.episode_id, first.title) == (session_summary_id(sid), "by the doomed listener")
    assert (await store.delivery_backlog()).pending == 1, "saved, but not acknowledged"
    runs: list[str] = []

    def again(conversation: ArchivedConversation) -> dict[str, Any]:
        runs.append(conversation.session_id)
        return {"title": "by the heir", "summary": "s", "importance": 3}

    heir = ExpiryListener(async_stores(), summarize=again, name="heir", **FAST)
    async with running(heir):
        await until(lambda: heir.delivered == 1, timeout=20)
    assert runs == [sid]
    [episode] = await summaries(store)
    assert (episode.episode_id, episode.title) == (session_summary_id(sid), "by the heir")
    assert (await store.delivery_backlog()).pending == 0


@SERVER_ONLY
@pytest.mark.slow
def test_the_listen_command_loads_a_summarizer(store_url: str, topology: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_summaries.py").write_text(textwrap.dedent("""
        def summarize(conversation):
            return {"title": "from the CLI", "summary": conversation.session_id,
                    "importance": 2, "sentiment": "mixed"}
    """))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    args = ["--url", store_url, "--summarize", "my_summaries:summarize", "--name", "cli"]
    listen = ListenProcess(*args, *(["--cluster"] if topology == "cluster" else []))
    try:
        listen.wait_started()

        async def scenario() -> list[Episode]:
            async with SessionStore.from_url(store_url, cluster=topology == "cluster") as store:
                sid = await ended_session(store, ["hola"])
                await until(lambda: summaries(store), timeout=20)
                found = await summaries(store)
                assert found[0].summary == sid
                return found

        [episode] = asyncio.run(scenario())
        assert (episode.title, episode.sentiment.value) == ("from the CLI", "mixed")
    finally:
        listen.process.send_signal(signal.SIGTERM)
        assert listen.finish() == 0, listen.log()
