"""Server checks on a real server and every primary of the cluster: an eviction policy
that can drop data is found and warned about once; a refused CONFIG is a finding, not a
crash. Listener heartbeats and the pub/sub connection's NO-EVICT."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from luminora_redis import FindingCode, SessionStore
from luminora_redis.listener.expiry_listener import ExpiryListener
from luminora_redis.testing import RedisServer

from conftest import until
from listener_support import open_async_stores, running

async_stores = pytest.fixture(open_async_stores)
POLICY = "maxmemory-policy"


@pytest.fixture
def servers(servers: list[RedisServer]) -> Iterator[list[RedisServer]]:
    """conftest's ``servers``, their eviction policy put back afterwards."""
    yield servers
    for server in servers:
        with server.client() as client:
            client.config_set(POLICY, "noeviction")


def set_policy(servers: list[RedisServer], policy: str) -> None:
    for server in servers:
        with server.client() as client:
            client.config_set(POLICY, policy)


def test_noeviction_is_fine(store: Any, servers: list[RedisServer]) -> None:
    assert store.check_server() == []


@pytest.mark.parametrize(("policy", "code"), [
    ("allkeys-lru", FindingCode.EVICTS_USER_DATA),
    ("allkeys-random", FindingCode.EVICTS_USER_DATA),
    ("volatile-ttl", FindingCode.EVICTS_SESSIONS),
])
def test_an_evicting_policy_is_found_on_every_primary_and_warned_once(
        policy: str, code: FindingCode, make_store: Callable[..., Any],
        servers: list[RedisServer], caplog: pytest.LogCaptureFixture) -> None:
    set_policy(servers, policy)
    with caplog.at_level(logging.WARNING, logger="luminora_redis.server_checks"):
        store = make_store()
        store.create_session("carlos", "alicia")  # first use: the check runs
        store.get_facts("carlos")
    findings = store.check_server()
    assert [f.code for f in findings] == [code] * len(servers)
    assert all(policy in f.message and "noeviction" in f.fix for f in findings)
    if len(servers) > 1:
        assert {f.server for f in findings} == {f"127.0.0.1:{s.port}" for s in servers}
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == len(servers), warnings
    assert all(policy in warning for warning in warnings)


def test_a_refused_config_is_a_finding_not_a_crash(
        make_store: Callable[..., Any], servers: list[RedisServer], store_url: str) -> None:
    for server in servers:
        with server.client() as client:
            client.execute_command("ACL", "SETUSER", "noconfig", "on", ">pw", "~*", "&*",
                                   "+@all", "-config")
    try:
        from conftest import open_store

        store, close = open_store("blocking", store_url.replace("redis://", "redis://noconfig:pw@"),
                                  cluster=len(servers) > 1)
        try:
            sid = store.create_session("carlos", "alicia")  # first use works
            assert store.get_session(sid) is not None
            findings = store.check_server()
        finally:
            close()
    finally:
        for server in servers:
            with server.client() as client:
                client.execute_command("ACL", "DELUSER", "noconfig")
    assert [f.code for f in findings] == [FindingCode.CONFIG_UNAVAILABLE] * len(servers)
    assert all("could not check" in f.message for f in findings)


async def test_heartbeats_list_running_listeners_only(
        async_stores: Callable[..., SessionStore]) -> None:
    store = async_stores()
    assert await store.live_listeners() == []
    first = ExpiryListener(async_stores(), name="first", heartbeat_interval=0.1)
    second = ExpiryListener(async_stores(), name="second", heartbeat_interval=0.1)
    async with running(first):
        await until(lambda: store.live_listeners(), timeout=10)
        assert await store.live_listeners() == ["first"]
        async with running(second):
            await until(lambda: _two(store), timeout=10)
        assert await store.live_listeners() == ["first"]
    assert await store.live_listeners() == []


async def _two(store: SessionStore) -> bool:
    return sorted(await store.live_listeners()) == ["first", "second"]


@pytest.mark.single_server
@pytest.mark.requires_redis((7, 0), "CLIENT NO-EVICT")
async def test_the_listener_pubsub_connection_is_not_evicted(
        async_stores: Callable[..., SessionStore], servers: list[RedisServer]) -> None:
    listener = ExpiryListener(async_stores())
    async with running(listener):
        with servers[0].client(decode_responses=True) as client:
            [pubsub] = client.client_list(_type="pubsub")
    assert "e" in pubsub["flags"], pubsub
