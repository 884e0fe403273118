"""The pytest plugin as an application's test suite sees it: its stores work on a
flushed private Redis and a real cluster, and without Redis it skips in one line
(or fails, when the suite overrides ``luminora_redis_unavailable``)."""

from __future__ import annotations

import importlib.metadata

import pytest
import redis

import luminora_redis.testing.plugin as plugin
from luminora_redis import SessionStore, SyncSessionStore
from luminora_redis.testing import LocalCluster, RedisServer

USER_SUITE = '''
import pytest
import redis


@pytest.mark.asyncio
async def test_a_writes(luminora_store):
    session_id = await luminora_store.create_session("ana", "alicia")
    await luminora_store.chat_turn(session_id, [("user", "hola")])
    assert [m.content for m in await luminora_store.get_history(session_id)] == ["hola"]


def test_b_starts_flushed(luminora_sync_store, luminora_redis_url):
    with redis.Redis.from_url(luminora_redis_url) as client:
        assert client.dbsize() == 0
    assert luminora_sync_store.list_user_sessions("ana") == []
'''

INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\nfilterwarnings = error\n"


def test_the_plugin_is_registered_as_a_pytest11_entry_point() -> None:
    (entry,) = [e for e in importlib.metadata.entry_points(group="pytest11") if e.name == "luminora_redis"]
    assert entry.value == "luminora_redis.testing.plugin"


async def test_both_stores_share_the_flushed_private_server(
        luminora_store: SessionStore, luminora_sync_store: SyncSessionStore, luminora_redis_url: str) -> None:
    with redis.Redis.from_url(luminora_redis_url) as client:
        assert client.dbsize() == 0
    session_id = await luminora_store.create_session("ana", "alicia")
    await luminora_store.chat_turn(session_id, [("user", "hola"), ("assistant", "¡hola!")])
    history = luminora_sync_store.get_history(session_id)
    assert [(m.role.value, m.content) for m in history] == [("user", "hola"), ("assistant", "¡hola!")]


@pytest.mark.cluster
async def test_the_cluster_store_writes_across_three_primaries(
        luminora_cluster_store: SessionStore, luminora_redis_cluster: LocalCluster) -> None:
    primaries = luminora_redis_cluster.primaries()
    assert len(primaries) == 3
    for index in range(24):
        await luminora_cluster_store.create_session(f"user-{index}", "alicia")
    holding = []
    for server in primaries:
        with server.client() as client:
            holding.append(client.dbsize())
    assert sum(1 for keys in holding if keys) >= 2, holding


@pytest.mark.slow
def test_an_application_suite_gets_a_fresh_database_per_test(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_user=USER_SUITE)
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_without_redis_or_docker_it_skips_in_one_line(pytester: pytest.Pytester,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugin, "find_redis_server", lambda: None)
    monkeypatch.setattr(plugin, "docker_problem", lambda: "Docker does not answer (DockerException)")
    pytester.makeini(INI)
    pytester.makepyfile(test_user=USER_SUITE)
    result = pytester.runpytest_inprocess("-p", "no:randomly", "-p", "no:cacheprovider", "-ra")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["SKIPPED *luminora-redis: no redis-server is installed and "
                                 "Docker does not answer (DockerException)"])


def test_a_suite_can_make_a_missing_redis_fail(pytester: pytest.Pytester,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugin, "find_redis_server", lambda: None)
    monkeypatch.setattr(plugin, "docker_problem", lambda: "testcontainers is not installed")
    pytester.makeini(INI)
    pytester.makeconftest('''
import pytest

@pytest.fixture(scope="session")
def luminora_redis_unavailable():
    def fail(reason):
        pytest.fail(reason, pytrace=False)
    return fail
''')
    pytester.makepyfile(test_user=USER_SUITE)
    result = pytester.runpytest_inprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*no redis-server is installed and testcontainers is not installed*"])


def test_docker_problem_names_what_is_missing() -> None:
    problem = plugin.docker_problem()
    # Here there is either no testcontainers or no Docker daemon; both are said plainly.
    assert problem is None or problem.startswith(
        ("testcontainers is not installed", "Docker does not answer"))


def test_without_a_local_redis_server_docker_is_next(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[RedisServer] = []

    def container() -> RedisServer:  # stands in for DockerRedis: the same start/url/client/stop
        made.append(RedisServer())
        return made[-1]

    monkeypatch.setattr(plugin, "find_redis_server", lambda: None)
    monkeypatch.setattr(plugin, "docker_problem", lambda: None)
    monkeypatch.setattr(plugin, "DockerRedis", container)
    endpoint = plugin.start_private_redis()
    try:
        assert made == [endpoint] and made[0].running
        with endpoint.client() as client:
            assert client.ping() is True
    finally:
        endpoint.stop()
