"""A Sentinel failover under load: with ``acknowledge="replicas"`` no acknowledged
turn is lost, and the store and the listener follow the new primary.

Sessions chat concurrently through one asyncio store made from the
``redis+sentinel://`` URL while ``SENTINEL FAILOVER`` promotes the replica.
Every turn whose call returned must be in its session's live history on the
new primary afterwards. (With ``acknowledge="primary"`` a failover may lose
turns; nothing is asserted about that here: see the README's figures.)
"""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from collections.abc import Iterator

import pytest
import redis

from luminora_redis import ArchivedConversation, ExpiryListener, LuminoraRedisError, SessionStore
from luminora_redis.testing import LocalSentinel
from tests.conftest import require_redis_server
from tests.listener_support import running

pytestmark = pytest.mark.slow

SESSIONS = 15


@pytest.fixture
def deployment() -> Iterator[LocalSentinel]:
    require_redis_server()
    with LocalSentinel() as sentinel:
        yield sentinel


async def test_no_acknowledged_turn_is_lost_by_a_failover_under_load(
        deployment: LocalSentinel) -> None:
    store = SessionStore.from_url(deployment.url, acknowledge="replicas", acknowledge_timeout=1.0)
    archived: asyncio.Queue[ArchivedConversation] = asyncio.Queue()
    listener = ExpiryListener(store, sweep_interval=0.25, on_archived=archived.put_nowait)
    sids = [await store.create_session(f"user{n}", "alicia") for n in range(SESSIONS)]
    acknowledged: dict[str, list[str]] = defaultdict(list)
    failed: list[BaseException] = []
    phase = {"name": "before"}
    after_failover = asyncio.Event()
    stop = asyncio.Event()
    counter = itertools.count()

    async def chat(sid: str) -> None:
        while not stop.is_set():
            content = f"{sid} turn {next(counter)}"
            try:
                await store.chat_turn(sid, [("user", content)])
            except (LuminoraRedisError, redis.RedisError, OSError) as error:
                failed.append(error)
                await asyncio.sleep(0.05)  # pacing while the primary changes hands
                continue
            acknowledged[sid].append(content)
            if phase["name"] == "settled":
                after_failover.set()
            await asyncio.sleep(0.01)  # the workload's pace: a chat, not a flood

    async with running(listener):
        chatters = [asyncio.create_task(chat(sid)) for sid in sids]
        try:
            while sum(map(len, acknowledged.values())) < 100:
                await asyncio.sleep(0.01)
            old = deployment.primary
            new = await asyncio.to_thread(deployment.failover)
            assert new is not old
            await asyncio.to_thread(deployment.wait_settled, new)
            phase["name"] = "settled"
            await asyncio.wait_for(after_failover.wait(), timeout=30)
        finally:
            stop.set()
            await asyncio.gather(*chatters)
        # The listener follows the new primary: an expiry there is archived.
        sid = await store.create_session("late", "alicia", session_config={"ttl": 0.3})
        await store.chat_turn(sid, [("user", "after the failover")])
        done = await asyncio.wait_for(archived.get(), timeout=30)
        assert done.session_id == sid
        # Its subscription and its notification flags moved to the new primary.
        with new.client(decode_responses=True) as raw:
            assert raw.info("replication")["role"] == "master"
            assert dict(raw.pubsub_numsub("__keyevent@0__:expired"))[
                "__keyevent@0__:expired"] >= 1
            flags = raw.config_get("notify-keyspace-events")["notify-keyspace-events"]
            assert {"E", "x"} <= set(flags.replace("A", "x"))

    lost = {}
    for sid in sids:
        history = [message.content for message in await store.get_history(sid)]
        missing = [content for content in acknowledged[sid] if content not in history]
        if missing:
            lost[sid] = missing
    await store.aclose()
    turns = sum(map(len, acknowledged.values()))
    assert turns > 100
    assert lost == {}, f"{sum(map(len, lost.values()))} of {turns} acknowledged turns lost"
