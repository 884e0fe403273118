"""Auto-pipelining: every hazard of sharing one write among callers, on a real server."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from luminora_redis import SessionStore
from luminora_redis.testing import LocalCluster

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[SessionStore]:
    store = SessionStore.from_url(redis_url, autopipeline=True)
    yield store
    await store.aclose()


async def sessions(store: SessionStore, count: int) -> list[str]:
    return [await store.create_session(f"user-{n}", "alicia") for n in range(count)]


async def test_concurrent_calls_share_one_write_and_each_gets_its_own_reply(
        store: SessionStore) -> None:
    sids = await sessions(store, 20)
    await store.touch(sids[0])  # the server learns the script
    before = store._runner.pipeline.batches
    contexts = await asyncio.gather(*(store.chat_turn(sid, [("user", sid)]) for sid in sids))
    assert store._runner.pipeline.batches == before + 1
    assert [[m.content for m in context] for context in contexts] == [[sid] for sid in sids]


async def test_a_redis_error_reaches_only_its_caller(store: SessionStore,
                                                     redis_url: str) -> None:
    sids = await sessions(store, 10)
    ctx = await store.context()
    broken = sids[4]
    keys = ctx.session_keys(broken)
    assert keys is not None
    with redis.Redis.from_url(redis_url) as raw:
        raw.set(keys.history, "not a list")  # RPUSH inside the script now fails
    results = await asyncio.gather(*(store.chat_turn(sid, [("user", sid)]) for sid in sids),
                                   return_exceptions=True)
    assert isinstance(results[4], ResponseError)
    for sid, result in zip(sids, results):
        if sid != broken:
            assert [m.content for m in result] == [sid]


async def test_noscript_reloads_and_runs_each_call_exactly_once(store: SessionStore,
                                                                redis_url: str) -> None:
    sids = await sessions(store, 10)
    with redis.Redis.from_url(redis_url) as raw:
        raw.script_flush()
    contexts = await asyncio.gather(*(store.chat_turn(sid, [("user", sid)]) for sid in sids))
    assert [[m.content for m in context] for context in contexts] == [[sid] for sid in sids]
    for sid in sids:
        assert [m.content for m in await store.get_history(sid)] == [sid]


async def test_a_cancelled_callers_reply_never_reaches_another_caller(
        store: SessionStore) -> None:
    sids = await sessions(store, 12)
    rng = random.Random(7)
    for round_ in range(30):
        tasks = {sid: asyncio.create_task(store.chat_turn(sid, [("user", f"{sid}/{round_}")]))
                 for sid in sids}
        for _ in range(rng.randrange(3)):
            await asyncio.sleep(0)  # cancel before the write, during it, or after it
        victims = rng.sample(sids, 4)
        for sid in victims:
            tasks[sid].cancel()
        for sid, task in tasks.items():
            try:
                context = await task
            except asyncio.CancelledError:
                assert sid in victims
                continue
            assert all(m.content.startswith(f"{sid}/") for m in context)
            assert context[-1].content == f"{sid}/{round_}"
    # The connections still answer in step: a fresh call gets its own reply.
    contexts = await asyncio.gather(*(store.chat_turn(sid, [("user", f"{sid}/last")])
                                      for sid in sids))
    assert [context[-1].content for context in contexts] == [f"{sid}/last" for sid in sids]


async def test_a_dropped_connection_fails_the_calls_in_flight_and_replays_nothing(
        store: SessionStore, redis_url: str) -> None:
    """The first of the eight turns finds the pipeline idle and goes out alone, on the
    plain path (redis-py's own retry resends it, which the turn id makes harmless); the
    seven issued meanwhile go out as one batch, whose dropped connection fails them all."""
    sids = await sessions(store, 8)
    calls = store._runner.pipeline.calls  # those of the creates (each a batch of two)
    with redis.Redis.from_url(redis_url) as raw:
        raw.execute_command("CLIENT", "PAUSE", 5000, "WRITE")  # scripts wait unanswered
        try:
            batch = asyncio.gather(*(store.chat_turn(sid, [("user", "lost?")]) for sid in sids),
                                   return_exceptions=True)
            batched = None
            own = raw.client_id()  # by id: Redis 6.2 names CLIENT LIST's command "client"
            for _ in range(2000):
                await asyncio.sleep(0.002)
                batched = [client for client in raw.client_list()
                           if int(client["id"]) != own and int(client["qbuf"]) > 0]
                if batched:
                    break
            assert batched, "the batch never reached the server"
            for client in raw.client_list():  # the batch's, the lone call's, idle ones
                if int(client["id"]) != own:
                    raw.client_kill_filter(_id=client["id"])
        finally:
            raw.execute_command("CLIENT", "UNPAUSE")
        results = await batch
    assert store._runner.pipeline.calls == calls + 7
    assert all(isinstance(result, RedisConnectionError) for result in results[1:]), results
    for sid in sids[1:]:  # the server dropped the unread batch; nobody sent it again
        assert await store.get_history(sid) == []
    stored = [m.content for m in await store.get_history(sids[0])]
    assert stored == ([] if isinstance(results[0], RedisConnectionError) else ["lost?"])


async def test_calls_of_one_task_keep_their_order(store: SessionStore) -> None:
    sids = await sessions(store, 6)

    async def talk(sid: str) -> None:
        for n in range(25):
            await store.append_message(sid, "user", str(n))

    await asyncio.gather(*(talk(sid) for sid in sids))
    for sid in sids:
        assert [m.content for m in await store.get_history(sid)] == [str(n) for n in range(25)]


@pytest.mark.cluster
async def test_on_a_cluster_calls_are_grouped_per_node_and_moved_is_followed(
        redis_cluster: LocalCluster) -> None:
    for server in redis_cluster.primaries():
        with server.client() as client:
            client.flushall()
    store = SessionStore.from_url(redis_cluster.url, cluster=True, autopipeline=True)
    try:
        sids = await sessions(store, 30)
        ctx = await store.context()
        client = store.client
        nodes = {client.get_node_from_key(ctx.session_keys(sid).session).name for sid in sids}
        assert len(nodes) == 3
        await asyncio.gather(*(store.touch(sid) for sid in sids))  # every primary learns it
        before = store._runner.pipeline.batches
        contexts = await asyncio.gather(*(store.chat_turn(sid, [("user", sid)]) for sid in sids))
        assert store._runner.pipeline.batches == before + 3
        assert [[m.content for m in context] for context in contexts] == [[sid] for sid in sids]

        # Point one slot at the wrong node: that call meets MOVED and is rerun alone.
        moved = sids[0]
        key = ctx.session_keys(moved).session
        slot = client.keyslot(key)
        right = client.get_node_from_key(key)
        wrong = next(node for node in client.get_primaries() if node.name != right.name)
        client.nodes_manager.slots_cache[slot] = [wrong]
        contexts = await asyncio.gather(*(store.chat_turn(sid, [("user", "again")])
                                          for sid in sids[:5]))
        assert [m.content for m in contexts[0]] == [moved, "again"]
        assert [m.content for m in await store.get_history(moved)] == [moved, "again"]
    finally:
        await store.aclose()


async def test_a_lone_call_goes_out_at_once_and_concurrent_ones_are_batched(
        store: SessionStore) -> None:
    sids = await sessions(store, 4)
    pipeline = store._runner.pipeline
    before = pipeline.calls
    for sid in sids:  # one at a time: the pipeline is idle each time
        await store.chat_turn(sid, [("user", "alone")])
    assert pipeline.calls == before and pipeline.inflight == 0
    await asyncio.gather(*(store.chat_turn(sid, [("user", "together")]) for sid in sids))
    assert pipeline.calls == before + len(sids) - 1  # all but the first shared a batch
    assert pipeline.inflight == 0
