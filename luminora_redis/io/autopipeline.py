"""Auto-pipelining: script calls issued in one event-loop tick go out as one write.

When many tasks of one process call the store at once, each call through
redis-py takes a pooled connection, writes one command and waits for one
reply. ``AutoPipeline`` instead queues the calls made during one pass of the
event loop and, on the next pass, writes each node's share as one pipelined
write over one connection, then routes every reply back to its caller
(ioredis's ``enableAutoPipelining`` is the model). redis-py has no such
feature, so it is built here on redis-py's own parts: a pooled
``Connection`` packs and parses (single server), ``ClusterNode.execute_pipeline``
does the same per node (Redis Cluster), and ``Script`` reloads a flushed
script. There is no protocol code of our own.

Why not redis-py's ``Pipeline``: it retries the whole pipeline when the
connection fails (with the client's ``Retry``), which would run again a write
that may already have run. Here a failed write fails exactly the calls that
were in it, and nothing is replayed. Rules, each pinned by a test:

- A Redis error reaches only the call it belongs to.
- NOSCRIPT (after ``SCRIPT FLUSH`` or on a new primary) reloads and reruns
  that one call through ``Script``; the script had not run.
- A caller cancelled while its call is in flight gets nothing; the batch still
  reads every reply, so no reply can reach another caller.
- Calls from one task keep their order (a task awaits each call).
- On a cluster, calls are grouped per node by their first key; a call that
  meets MOVED or ASK (the script did not run there) is rerun alone through the
  cluster client, which follows the redirection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

from redis.asyncio.client import Redis
from redis.asyncio.cluster import PipelineCommand, RedisCluster
from redis.asyncio.connection import async_timeout
from redis.commands.core import AsyncScript
from redis.exceptions import (
    AskError,
    ConnectionError,
    MovedError,
    NoScriptError,
    ResponseError,
    TimeoutError,
    TryAgainError,
)

__all__ = ["AutoPipeline"]

_REROUTE = (MovedError, AskError, TryAgainError)


class _Pending:
    __slots__ = ("args", "future", "keys", "retried", "script")

    def __init__(self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any],
                 future: asyncio.Future[Any]) -> None:
        self.script = script
        self.keys = keys
        self.args = args
        self.future = future
        self.retried = False

    def command(self) -> tuple[Any, ...]:
        return ("EVALSHA", self.script.sha, len(self.keys), *self.keys, *self.args)


class AutoPipeline:
    """Sends the script calls of one event-loop tick as one pipelined write per node."""

    def __init__(self, client: Redis | RedisCluster) -> None:
        self._client = client
        self._cluster = isinstance(client, RedisCluster)
        self._queue: list[_Pending] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        #: Calls sent and not yet answered, batched or alone (see ``AsyncRunner.call``).
        self.inflight = 0
        #: Batches written, and calls they held (for benchmarks and tests).
        self.batches = 0
        self.calls = 0

    @property
    def busy(self) -> bool:
        """Whether calls are queued or out: a new call then joins the next batch."""
        return bool(self._queue) or self.inflight > 0

    @contextlib.contextmanager
    def alone(self) -> Iterator[None]:
        """Count a call sent outside the batches (while the pipeline was idle) as out,
        so that calls made meanwhile queue behind it."""
        self.inflight += 1
        try:
            yield
        finally:
            self.inflight -= 1

    async def call(self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run ``script`` with ``keys`` and ``args`` in the next batch; its reply."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._enqueue(_Pending(script, keys, args, future))
        return await future

    async def call_many(self, calls: Sequence[tuple[AsyncScript, Sequence[Any], Sequence[Any]]],
                        ) -> list[Any]:
        """Run several calls in the next batch; their replies or errors, in order."""
        loop = asyncio.get_running_loop()
        futures = []
        for script, keys, args in calls:
            future: asyncio.Future[Any] = loop.create_future()
            self._enqueue(_Pending(script, keys, args, future))
            futures.append(future)
        return await asyncio.gather(*futures, return_exceptions=True)

    def _enqueue(self, pending: _Pending) -> None:
        self._queue.append(pending)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    async def aclose(self) -> None:
        """Wait for the batches in flight."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _flush(self) -> None:
        self._scheduled = False
        queue, self._queue = self._queue, []
        live = [pending for pending in queue if not pending.future.done()]
        if not live:
            return
        groups: dict[Any, list[_Pending]] = {}
        if self._cluster:
            for pending in live:
                try:
                    node = self._client.get_node_from_key(pending.keys[0])
                except Exception:  # no slot map yet: the cluster client finds the node
                    node = None
                groups.setdefault(node, []).append(pending)
        else:
            groups[None] = live
        for node, group in groups.items():
            self._spawn(self._send(node, group))

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, node: Any, group: list[_Pending]) -> None:
        self.batches += 1
        self.calls += len(group)
        self.inflight += len(group)
        try:
            await self._exchange(node, group)
        finally:
            self.inflight -= len(group)

    async def _exchange(self, node: Any, group: list[_Pending]) -> None:
        try:
            if self._cluster and node is None:
                replies: list[Any] = [MovedError("0 unknown:0") for _ in group]
            elif self._cluster:
                replies = await self._send_to_node(node, group)
            else:
                replies = await self._send_to_server(group)
        except BaseException as error:
            # Nothing was written, or the write failed: every call of the batch fails.
            replies = [error] * len(group)
        lost = False
        reload: list[_Pending] = []
        for pending, reply in zip(group, replies):
            if pending.future.done():
                continue
            if isinstance(reply, NoScriptError) and not pending.retried:
                reload.append(pending)
            elif self._cluster and isinstance(reply, _REROUTE):
                self._spawn(self._reroute(pending))
            elif isinstance(reply, BaseException):
                lost = lost or not isinstance(reply, ResponseError)
                _fail(pending.future, reply)
            else:
                pending.future.set_result(reply)
        if reload:
            self._spawn(self._reload(reload))
        if lost and self._cluster:
            # The node may be gone: have the client map the slots again on its next command.
            self._client._initialize = True

    async def _reload(self, calls: list[_Pending]) -> None:
        """Load each script that a server did not know (once), then send its calls again,
        once: the script had not run."""
        scripts = {id(pending.script): pending.script for pending in calls}
        try:
            for script in scripts.values():
                script.sha = await self._client.script_load(script.script)
        except BaseException as error:
            for pending in calls:
                _fail(pending.future, error)
            return
        for pending in calls:
            pending.retried = True
            self._enqueue(pending)

    async def _reroute(self, pending: _Pending) -> None:
        """Run one call alone through the cluster client, which follows MOVED and ASK."""
        try:
            reply = await pending.script(pending.keys, pending.args)
        except BaseException as error:
            _fail(pending.future, error)
        else:
            if not pending.future.done():
                pending.future.set_result(reply)

    async def _send_to_server(self, group: list[_Pending]) -> list[Any]:
        """One write on one pooled connection, then every reply in order. When the
        connection fails part-way, the calls already answered keep their replies and
        the rest fail with the error: they may or may not have run."""
        pool = self._client.connection_pool
        connection = await pool.get_connection()
        replies: list[Any] = []
        try:
            await connection.send_packed_command(
                connection.pack_commands([pending.command() for pending in group]))
            read = _reader(connection)
            async with async_timeout(connection.socket_timeout):
                for _ in group:
                    try:
                        replies.append(await read())
                    except ResponseError as error:
                        replies.append(error)
        except (asyncio.TimeoutError, OSError) as error:
            # As Connection.read_response reports them: a redis-py TimeoutError or
            # ConnectionError. Replies may still be on the wire: the connection goes.
            await connection.disconnect()
            where = f"{connection.host}:{connection.port}"
            failure = (TimeoutError(f"Timeout reading from {where}")
                       if isinstance(error, asyncio.TimeoutError)
                       else ConnectionError(f"Error while reading from {where} : {error.args}"))
            replies.extend([failure] * (len(group) - len(replies)))
        except BaseException as error:
            # Replies may still be on the wire: this connection cannot be reused.
            await connection.disconnect()
            replies.extend([error] * (len(group) - len(replies)))
            if isinstance(error, asyncio.CancelledError):
                raise
        finally:
            await pool.release(connection)
        return replies

    async def _send_to_node(self, node: Any, group: list[_Pending]) -> list[Any]:
        """The same through redis-py's per-node pipeline, which records each reply or error."""
        commands = [PipelineCommand(index, *pending.command()) for index, pending in enumerate(group)]
        await node.execute_pipeline(commands)
        return [command.result for command in commands]


def _reader(connection: Any) -> Callable[[], Awaitable[Any]]:
    """How to read one reply of a batch: the connection parser's own read.
    ``Connection.read_response`` wraps that read in per-call work (a timeout context,
    a host string, health-check bookkeeping) that costs several times the read itself,
    once per reply of the batch; here the connection's socket timeout bounds the
    batch's whole read instead. The parser returns a Redis error as a
    ``ResponseError`` object instead of raising it: the reply of its call. Without
    such a parser, the connection's own read."""
    read = getattr(getattr(connection, "_parser", None), "read_response", None)
    return read if read is not None else connection.read_response  # type: ignore[no-any-return]


def _fail(future: asyncio.Future[Any], error: BaseException) -> None:
    if future.done():
        return
    if isinstance(error, asyncio.CancelledError):
        future.cancel()
    else:
        future.set_exception(error)
