"""pytest plugin: real Redis for the test suites of applications built on luminora-redis.

Registered as the ``luminora_redis`` ``pytest11`` entry point, so installing
the package makes these fixtures available (disable with
``-p no:luminora_redis``). Every name starts with ``luminora_`` so it cannot
clash with an application's own fixtures.

``luminora_redis_server`` (session) is a private redis-server: a local
``redis-server`` process on a free loopback port when one is installed, else
a ``redis`` container through testcontainers when that is installed
(``pip install 'luminora-redis[docker]'``) and Docker answers, else every test
that needs it is skipped with one line saying why. ``luminora_redis_url`` is
its URL, flushed before each test. ``luminora_store`` (asyncio, needs
pytest-asyncio) and ``luminora_sync_store`` (blocking) are stores with default
settings over that URL. ``luminora_redis_cluster`` (session) is a real
3-primary Redis Cluster, ``luminora_cluster_url`` its URL flushed per test,
and ``luminora_cluster_store`` an asyncio store on it; the cluster needs a
local ``redis-server`` and ``redis-cli`` (it is never started in Docker).
``luminora_redis_tls_server`` (session) is a local redis-server that speaks
only TLS, with a throwaway CA made at start (needs ``cryptography`` and a
``redis-server`` built with TLS; skipped with the reason otherwise), and
``luminora_redis_tls_url`` its verifying ``rediss://`` URL, flushed per test.
``luminora_redis_sentinel`` (session) is Redis Sentinel (a primary, a replica
and three sentinels, `LocalSentinel`), ``luminora_sentinel_url`` its
``redis+sentinel://`` URL, the primary flushed per test; it needs a local
``redis-server`` too.

A suite that must not skip (in CI, say) overrides the
``luminora_redis_unavailable`` fixture with one that calls ``pytest.fail``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, NoReturn, Protocol, TypeVar

import pytest
import redis

from luminora_redis.io.store import SessionStore
from luminora_redis.io.sync_store import SyncSessionStore
from luminora_redis.testing.cluster import LocalCluster
from luminora_redis.testing.local import StartStop, find_redis_server
from luminora_redis.testing.sentinel import LocalSentinel
from luminora_redis.testing.server import RedisServer
from luminora_redis.testing.tls import tls_problem

__all__ = ["DOCKER_IMAGE", "DockerRedis", "RedisEndpoint", "RedisUnavailable", "start_private_redis",
           "start_tls_redis"]

#: The image the Docker fallback runs: Redis 7 with the Lua ``cmsgpack`` library.
DOCKER_IMAGE = "redis:7.4"


class RedisUnavailable(Exception):
    """Neither a local redis-server nor Docker can give this test session a Redis."""


class RedisEndpoint(Protocol):
    """What a private Redis offers a test: its URL and plain clients. `RedisServer` is one."""

    @property
    def url(self) -> str: ...

    def client(self, **kwargs: Any) -> redis.Redis: ...

    def stop(self) -> None: ...


class DockerRedis(StartStop):
    """A redis-server in a Docker container started through testcontainers (imported lazily)."""

    def __init__(self, image: str = DOCKER_IMAGE) -> None:
        from testcontainers.redis import RedisContainer

        self._container = RedisContainer(image)
        self._url: str | None = None

    def start(self) -> DockerRedis:
        self._container.start()
        host = self._container.get_container_host_ip()
        port = self._container.get_exposed_port(self._container.port)
        self._url = f"redis://{host}:{port}/0"
        return self

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the container is not started")
        return self._url

    def client(self, **kwargs: Any) -> redis.Redis:
        return redis.Redis.from_url(self.url, **kwargs)

    def stop(self) -> None:
        if self._url is not None:
            self._container.stop()
            self._url = None



def docker_problem() -> str | None:
    """Why the Docker fallback cannot run here, or None when it can."""
    try:
        import docker
        import testcontainers.redis  # noqa: F401
    except ImportError:
        return "testcontainers is not installed (pip install 'luminora-redis[docker]')"
    try:
        client = docker.from_env()
        try:
            client.ping()
        finally:
            client.close()
    except (docker.errors.DockerException, OSError) as exc:
        return f"Docker does not answer ({type(exc).__name__})"
    return None


def start_private_redis() -> RedisEndpoint:
    """Start a private Redis: a local redis-server, else a Docker container.

    Raises `RedisUnavailable` with a one-line reason when neither is possible.
    A local redis-server that is installed but fails to start is an error,
    not a skip: `RedisServerError` propagates.
    """
    if find_redis_server() is not None:
        return RedisServer().start()
    problem = docker_problem()
    if problem is not None:
        raise RedisUnavailable(f"no redis-server is installed and {problem}")
    return DockerRedis().start()


def have_cryptography() -> bool:
    """Whether ``cryptography``, which makes the TLS fixtures' certificates, is installed."""
    return importlib.util.find_spec("cryptography") is not None


def start_tls_redis() -> RedisServer:
    """Start a private local redis-server that speaks only TLS (``RedisServer(tls=True)``).

    Raises `RedisUnavailable` with a one-line reason when there is no local
    redis-server, it was built without TLS, or ``cryptography`` (which makes the
    certificates) is missing. There is no Docker fallback. A server that can
    speak TLS but fails to start is an error: `RedisServerError` propagates.
    """
    executable = find_redis_server()
    if executable is None:
        raise RedisUnavailable("the TLS fixtures need a local redis-server, and none is installed")
    if not have_cryptography():
        raise RedisUnavailable("the TLS fixtures make their certificates with the cryptography "
                               "package, which is not installed (pip install cryptography)")
    problem = tls_problem(executable)
    if problem is not None:
        raise RedisUnavailable(f"the TLS fixtures need a redis-server with TLS: {problem}")
    return RedisServer(executable=executable, tls=True).start()


def _skip(reason: str) -> NoReturn:
    pytest.skip(f"luminora-redis: {reason}")


@pytest.fixture(scope="session")
def luminora_redis_unavailable() -> Callable[[str], NoReturn]:
    """What a fixture does when it cannot have Redis: skip with the reason. Override to fail."""
    return _skip


_Started = TypeVar("_Started")


def _start(start: Callable[[], _Started], unavailable: Callable[[str], NoReturn]) -> _Started:
    """``start()``, or, when no Redis can be had, ``unavailable`` with the reason (which
    skips or fails the test and must raise)."""
    try:
        return start()
    except RedisUnavailable as exc:
        unavailable(str(exc))
        raise TypeError("luminora_redis_unavailable must raise (pytest.skip or pytest.fail)") from exc


@pytest.fixture(scope="session")
def luminora_redis_server(luminora_redis_unavailable: Callable[[str], NoReturn]) -> Iterator[RedisEndpoint]:
    """A private Redis for the whole test session (a local process, or a container)."""
    endpoint = _start(start_private_redis, luminora_redis_unavailable)
    try:
        yield endpoint
    finally:
        endpoint.stop()


@pytest.fixture
def luminora_redis_url(luminora_redis_server: RedisEndpoint) -> str:
    """The private Redis' URL, its data flushed before this test (loaded scripts stay)."""
    with luminora_redis_server.client() as client:
        client.flushall()
    return luminora_redis_server.url


@pytest.fixture
def luminora_sync_store(luminora_redis_url: str) -> Iterator[SyncSessionStore]:
    """A blocking store with default settings on the flushed private Redis."""
    store = SyncSessionStore.from_url(luminora_redis_url)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture(scope="session")
def luminora_redis_tls_server(luminora_redis_unavailable: Callable[[str], NoReturn]
                              ) -> Iterator[RedisServer]:
    """A private local redis-server that speaks only TLS, for the whole session; its
    ``tls_files`` hold the CA that signed it and a client certificate."""
    server = _start(start_tls_redis, luminora_redis_unavailable)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def luminora_redis_tls_url(luminora_redis_tls_server: RedisServer) -> str:
    """The TLS server's ``rediss://`` URL (trusting its CA, verification on), its data
    flushed before this test."""
    with luminora_redis_tls_server.client() as client:
        client.flushall()
    return luminora_redis_tls_server.url


@pytest.fixture(scope="session")
def luminora_redis_cluster(luminora_redis_unavailable: Callable[[str], NoReturn]) -> Iterator[LocalCluster]:
    """A real 3-primary Redis Cluster of local redis-server processes, for the whole session."""
    if find_redis_server() is None:
        luminora_redis_unavailable(
            "the cluster fixtures need a local redis-server and redis-cli, and none is installed")
    with LocalCluster(primaries=3) as cluster:
        yield cluster


@pytest.fixture
def luminora_cluster_url(luminora_redis_cluster: LocalCluster) -> str:
    """The cluster's URL, every primary flushed before this test."""
    luminora_redis_cluster.flushall()
    return luminora_redis_cluster.url


@pytest.fixture(scope="session")
def luminora_redis_sentinel(luminora_redis_unavailable: Callable[[str], NoReturn],
                            ) -> Iterator[LocalSentinel]:
    """Redis Sentinel for the whole session: a primary, a replica and three sentinels of
    local redis-server processes (fast failover settings)."""
    if find_redis_server() is None:
        luminora_redis_unavailable("the Sentinel fixtures need a local redis-server, and none "
                                   "is installed")
    with LocalSentinel() as sentinel:
        yield sentinel


@pytest.fixture
def luminora_sentinel_url(luminora_redis_sentinel: LocalSentinel) -> str:
    """The ``redis+sentinel://`` URL of the session's Sentinel deployment, once it has
    settled (after a failover, the old primary replicates again) and its primary is
    flushed, the flush replicated."""
    sentinel = luminora_redis_sentinel
    primary = sentinel.primary
    sentinel.wait_settled(primary)
    with primary.client() as client:
        client.flushall()
        client.wait(1, round(sentinel.timeout * 1000))
    return sentinel.url


try:
    import pytest_asyncio
except ImportError:  # the asyncio fixtures say what they need instead
    HAVE_PYTEST_ASYNCIO = False
else:
    HAVE_PYTEST_ASYNCIO = True


if HAVE_PYTEST_ASYNCIO:
    @pytest_asyncio.fixture
    async def luminora_store(luminora_redis_url: str) -> AsyncIterator[SessionStore]:
        """An asyncio store with default settings on the flushed private Redis."""
        store = SessionStore.from_url(luminora_redis_url)
        try:
            yield store
        finally:
            await store.aclose()

    @pytest_asyncio.fixture
    async def luminora_cluster_store(luminora_cluster_url: str) -> AsyncIterator[SessionStore]:
        """An asyncio store with default settings on the flushed 3-primary cluster."""
        store = SessionStore.from_url(luminora_cluster_url, cluster=True)
        try:
            yield store
        finally:
            await store.aclose()
else:
    @pytest.fixture
    def luminora_store() -> NoReturn:
        pytest.skip("luminora-redis: luminora_store needs pytest-asyncio (pip install pytest-asyncio)")

    @pytest.fixture
    def luminora_cluster_store() -> NoReturn:
        pytest.skip("luminora-redis: luminora_cluster_store needs pytest-asyncio "
                    "(pip install pytest-asyncio)")
