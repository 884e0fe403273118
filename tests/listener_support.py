"""Helpers shared by the listener tests: run a listener, write sessions from a thread, read archives."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
import redis
import redis.cluster
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from luminora_redis import SessionStore, SyncSessionStore
from luminora_redis.listener.expiry_listener import ExpiryListener
from luminora_redis.testing import RedisServer

from conftest import wait_until

ALL_TYPES = "g$lshzxetd"
MIN_TTL = 2.0  # seconds: see create_sessions
#: The most "promptly" may take: from a deadline to the archive reaching the hook. Far
#: above the usual ~0.1 s, since CI machines are loaded; but an archive that waits for a
#: sweep it should not need, or a delivery that waits for a full outbox scan, misses it.
PROMPTLY = 3.0
NOTIFY = "notify-keyspace-events"


def flag_set(flags: str) -> set[str]:
    """notify-keyspace-events as a set, with ``A`` spelled out."""
    return set(flags.replace("A", ALL_TYPES))


@contextmanager
def flags_restored(servers: list[RedisServer]) -> Iterator[None]:
    """Put every server's notify-keyspace-events back as it was, whatever the block did."""
    before = {}
    for server in servers:
        with server.client(decode_responses=True) as client:
            before[server.port] = client.config_get(NOTIFY)[NOTIFY]
    yield
    for server in servers:
        with server.client(decode_responses=True) as client:
            client.config_set(NOTIFY, before[server.port])


@asynccontextmanager
async def running(*listeners: ExpiryListener, timeout: float = 30.0
                  ) -> AsyncIterator[list[asyncio.Task[None]]]:
    """Run the listeners until the block ends, once each has ``started``; stop them after."""
    tasks = [asyncio.create_task(listener.run()) for listener in listeners]
    try:
        for listener, task in zip(listeners, tasks, strict=True):
            started = asyncio.create_task(listener.started.wait())
            done, _ = await asyncio.wait({started, task}, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            started.cancel()
            if task in done:
                task.result()
                pytest.fail(f"listener {listener.name} ended before it started")
            if started not in done:
                pytest.fail(f"listener {listener.name} did not start within {timeout} s")
        yield tasks
    finally:
        for listener in listeners:
            await listener.stop()
        for task in tasks:
            if not task.cancelled():
                await task


def blocking_twin(store: SessionStore) -> SyncSessionStore:
    """A blocking store on the same server or cluster, with the same settings."""
    client = store.client
    if isinstance(client, AsyncRedisCluster):
        node = client.get_nodes()[0] if client.get_nodes() else None
        host, port = (node.host, node.port) if node is not None else next(
            iter(client.nodes_manager.startup_nodes.values())).name.rsplit(":", 1)
        return SyncSessionStore(redis.cluster.RedisCluster(host=host, port=int(port)),
                                store.settings)
    kwargs = client.connection_pool.connection_kwargs
    return SyncSessionStore(redis.Redis(host=kwargs["host"], port=kwargs["port"],
                                        db=kwargs.get("db", 0),
                                        username=kwargs.get("username"),
                                        password=kwargs.get("password")), store.settings)


async def create_conversation(store: SessionStore, user: str, config: dict[str, Any],
                              messages: list[str]) -> str:
    """One session of ``user`` with the messages, written from a thread (see
    `create_sessions`); its id."""
    def create() -> str:
        twin = blocking_twin(store)
        try:
            sid = twin.create_session(user, "alicia", config)
            for content in messages:
                twin.append_message(sid, "user", content)
            return sid
        finally:
            twin.client.close()

    return await asyncio.to_thread(create)


async def create_sessions(store: SessionStore, count: int, users: int,
                          ttls: Iterable[float], **config: Any) -> dict[str, str]:
    """``count`` sessions with one message each, round robin over ``users``; sid -> user.

    They are written from a thread, since a listener sharing this event loop may
    hold it between the create and the append, and no TTL is shorter than
    `MIN_TTL`: on a loaded machine the two calls can be that far apart.
    """
    def create() -> dict[str, str]:
        owners: dict[str, str] = {}
        twin = blocking_twin(store)
        try:
            for n, ttl in enumerate(list(ttls)[:count]):
                user = f"user-{n % users}"
                sid = twin.create_session(user, "alicia", {"ttl": max(ttl, MIN_TTL), **config})
                twin.append_message(sid, "user", f"message {n}")
                owners[sid] = user
        finally:
            twin.client.close()
        return owners

    return await asyncio.to_thread(create)


async def archived_sessions(store: SessionStore, users: Iterable[str]) -> Counter[str]:
    """How many archive records each session id has, over the users' whole archives."""
    counts: Counter[str] = Counter()
    for user in set(users):
        for conversation in await store.get_archived_conversations(user, limit=None):
            counts[conversation.session_id] += 1
    return counts


def index_sizes(client: redis.Redis | redis.cluster.RedisCluster) -> int:
    """Sessions waiting in any deadline or manual index (of every primary of a cluster)."""
    return sum(int(client.zcard(key)) for key in client.scan_iter(match="lr:*:deadlines"))


def nodes_of(client: redis.Redis | redis.cluster.RedisCluster,
             session_ids: Iterable[str]) -> set[str]:
    """The servers holding the sessions: primaries' names on a cluster, else ``{"server"}``."""
    if not isinstance(client, redis.cluster.RedisCluster):
        return {"server"}
    # A session id starts with its bucket, and the bucket is the keys' hash tag.
    return {client.get_node_from_key(f"{{b{sid[:4]}}}").name for sid in session_ids}


async def open_async_stores(store_url: str,
                            topology: str) -> AsyncIterator[Callable[..., SessionStore]]:
    """Asyncio stores (each with its own client) of the current topology, closed afterwards;
    a fixture body: ``async_stores = pytest.fixture(open_async_stores)``."""
    stores: list[SessionStore] = []

    def make(**settings: Any) -> SessionStore:
        store = SessionStore.from_url(store_url, cluster=topology == "cluster", **settings)
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.aclose()


ARCHIVED_LINE = re.compile(r"archived session (\S+) of user")


class ListenProcess:
    """``python -m luminora_redis.cli listen`` in a subprocess, its log lines collected."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "luminora_redis.cli", "listen", *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env=env, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def log(self) -> str:
        return "\n".join(self.lines)

    def find(self, pattern: str) -> re.Match[str] | None:
        return next((m for line in list(self.lines) if (m := re.search(pattern, line))), None)

    def archived(self) -> list[str]:
        return [m.group(1) for line in list(self.lines) if (m := ARCHIVED_LINE.search(line))]

    def wait_started(self) -> None:
        wait_until(lambda: self.find(r"listener \S+ started") or self.process.poll() is not None,
                   timeout=15)
        assert self.process.poll() is None, self.log()

    def finish(self) -> int:
        """Wait for the exit (killing after 10 s) and for the last log lines."""
        try:
            code = self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._reader.join(timeout=5)
        assert self.process.stderr is not None
        self.process.stderr.close()
        return code


@contextmanager
def paused(server: RedisServer) -> Iterator[None]:
    """The server's process stopped (SIGSTOP) for the block, its sockets open: it answers
    nothing until the block ends."""
    assert server.pid is not None
    os.kill(server.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.pid, signal.SIGCONT)


def while_listening(url: str, action: Callable[[], Any], **options: Any) -> Any:
    """Run ``action`` in a thread while an ExpiryListener (``options``) runs on ``url``
    (its heartbeat makes check's listeners finding ok); its result."""
    async def scenario() -> Any:
        async with SessionStore.from_url(url) as async_store:
            listener = ExpiryListener(async_store, **options)
            task = asyncio.create_task(listener.run())
            await asyncio.wait_for(listener.started.wait(), 30)
            try:
                return await asyncio.get_running_loop().run_in_executor(None, action)
            finally:
                await listener.stop()
                await task

    return asyncio.run(scenario())
