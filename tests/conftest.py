"""Fixtures: a real redis-server per test session, and one store per shell.

Behavioural tests are written once, as plain functions against ``store``,
which is parametrized over the asyncio store and the blocking store. The
asyncio store is presented through ``Blocking``, which runs each coroutine
on one private event loop for the whole test, so the same test body drives
both shells. When ``CI`` is set, a missing redis-server fails instead of
skipping.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from luminora_redis import SessionStore, SyncSessionStore
from luminora_redis.server import RedisServer, find_redis_server


def require_redis_server() -> None:
    """Skip (or, under CI, fail) when there is no redis-server to start."""
    if find_redis_server() is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed, and CI requires the integration tests")
        pytest.skip("redis-server is not installed")


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.005) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s: {predicate}")
        time.sleep(interval)


class Blocking:
    """The coroutine methods of an asyncio store as blocking calls on one private loop."""

    def __init__(self, store: SessionStore, loop: asyncio.AbstractEventLoop) -> None:
        self.inner = store
        self.loop = loop

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if inspect.iscoroutinefunction(attribute):
            def call(*args: Any, **kwargs: Any) -> Any:
                return self.loop.run_until_complete(attribute(*args, **kwargs))
            return call
        return attribute


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    require_redis_server()
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The shared server's URL, its data flushed and its scripts intact."""
    with redis_server.client() as client:
        client.flushall()
    return redis_server.url


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    """A plain blocking client, for looking at keys behind the store's back."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def open_store(kind: str, url: str, **settings: Any) -> tuple[Any, Callable[[], None]]:
    """A store of one shell over ``url`` and the function that closes it."""
    if kind == "blocking":
        store = SyncSessionStore.from_url(url, **settings)
        return store, store.close
    loop = asyncio.new_event_loop()
    inner = SessionStore.from_url(url, **settings)

    def close() -> None:
        loop.run_until_complete(inner.aclose())
        loop.close()

    return Blocking(inner, loop), close


@pytest.fixture(params=["asyncio", "blocking"])
def shell(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_store(shell: str, redis_url: str) -> Iterator[Callable[..., Any]]:
    """Open stores of the current shell with custom settings; all closed afterwards."""
    closers: list[Callable[[], None]] = []

    def make(**settings: Any) -> Any:
        store, close = open_store(shell, redis_url, **settings)
        closers.append(close)
        return store

    yield make
    for close in reversed(closers):
        close()


@pytest.fixture
def store(make_store: Callable[..., Any]) -> Any:
    """A store with default settings, in the current shell."""
    return make_store()
