"""A pytest plugin that runs LuminoraCore's own storage tests against ``RedisStorageV11``.

LuminoraCore's tests build their storage as ``InMemoryStorageV11()``, a
module global. Loaded with ``-p luminora_redis.compat.luminoracore_pytest``,
this plugin starts a private redis-server for the run and, before each test,
replaces that global in the test's module with a factory of adapters over it
(each with a prefix of its own, so every storage starts empty, as an
in-memory one does). The swap is a plain fixture on pytest-asyncio's
``event_loop`` (LuminoraCore pins pytest-asyncio 0.21, whose async fixtures
do not run under pytest 8), which closes the adapters on that loop. The tests themselves run unmodified; see
``.ci/luminoracore.sh``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import pytest

from luminora_redis.compat.luminoracore import RedisStorageV11
from luminora_redis.testing import RedisServer, find_redis_server

_GLOBAL = "InMemoryStorageV11"
_numbers = itertools.count()


@pytest.fixture(scope="session")
def luminora_redis_server() -> Iterator[RedisServer]:
    """The private redis-server every adapter of this run talks to."""
    if find_redis_server() is None:
        pytest.exit("redis-server is not installed; it is needed to run the adapter", 2)
    with RedisServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _storage_is_redis(request: pytest.FixtureRequest, luminora_redis_server: RedisServer,
                      event_loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """Swap the test module's ``InMemoryStorageV11`` for adapters on the private server."""
    module = request.module
    made: list[RedisStorageV11] = []

    def factory() -> RedisStorageV11:
        adapter = RedisStorageV11.from_url(luminora_redis_server.url,
                                           prefix=f"lc{next(_numbers)}")
        made.append(adapter)
        return adapter

    swapped = hasattr(module, _GLOBAL)
    if swapped:
        original = getattr(module, _GLOBAL)
        setattr(module, _GLOBAL, factory)
    try:
        yield
    finally:
        if swapped:
            setattr(module, _GLOBAL, original)
        for adapter in made:
            event_loop.run_until_complete(adapter.aclose())


def pytest_report_header() -> str:
    return "storage: luminora_redis.compat.luminoracore.RedisStorageV11 on a private redis-server"
