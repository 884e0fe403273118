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

The rules (what is sent again, what is raised, how replies map back to
their calls, why nothing is replayed) are ``batching``'s, shared with the
blocking shell; what is particular to this one:

- A caller cancelled while its call is in flight gets nothing; the batch still
  reads every reply, so no reply can reach another caller.
- Calls from one task keep their order (a task awaits each call).
- A NOSCRIPT reply goes back into the next batch once its script is loaded; a
  MOVED or ASK reply is rerun alone through ``Script`` on the cluster client.
- Under ``acknowledge`` (see ``acknowledge``), a batch holding a write ends with
  the wait, on the same connection, and a write alone goes out at once as a
  batch of one with its wait (`call_now`).
- A batch answered ``READONLY`` met a primary turned replica by a failover: its
  connection is dropped, so the next one asks the sentinels for the new primary.
- The redis-py internals it uses are ``redis_internals``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Iterator, Sequence
from typing import Any

from redis.asyncio.client import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError, MovedError, ResponseError, TimeoutError

from luminora_redis.io import batching
from luminora_redis.io.acknowledge import Acknowledgement
from luminora_redis.io.batching import Resend
from luminora_redis.io.redis_internals import (
    execute_on_node,
    read_deadline,
    remap_slots,
    reply_reader,
)

__all__ = ["AutoPipeline"]


class _Pending:
    __slots__ = ("args", "future", "keys", "retried", "script", "waits")

    def __init__(self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any],
                 future: asyncio.Future[Any], waits: bool = False) -> None:
        self.script = script
        self.keys = keys
        self.args = args
        self.future = future
        self.retried = False
        self.waits = waits  # a write followed by the acknowledgement's wait


class AutoPipeline:
    """Sends the script calls of one event-loop tick as one pipelined write per node."""

    def __init__(self, client: Redis | RedisCluster, ack: Acknowledgement | None = None) -> None:
        self._client: Any = client  # either kind: each path below uses its own methods
        self._cluster = isinstance(client, RedisCluster)
        self._ack = ack
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

    async def call(self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any], *,
                   waits: bool = False) -> Any:
        """Run ``script`` with ``keys`` and ``args`` in the next batch; its reply.
        ``waits``: the batch ends with the acknowledgement's wait, which covers it."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._enqueue(_Pending(script, keys, args, future, waits))
        return await future

    async def call_now(self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run one write now, as a batch of its own followed by the acknowledgement's wait
        (on one connection, one round trip); its reply. Single server only: a store
        refuses ``acknowledge`` on a cluster."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self._send(None, [_Pending(script, keys, args, future, True)])
        return await future

    async def call_many(self, calls: Sequence[tuple[AsyncScript, Sequence[Any], Sequence[Any]]],
                        waits: Sequence[bool] = ()) -> list[Any]:
        """Run several calls in the next batch; their replies or errors, in order.
        ``waits[i]``: call ``i`` is covered by the acknowledgement's wait."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Any]] = []
        for index, (script, keys, args) in enumerate(calls):
            future: asyncio.Future[Any] = loop.create_future()
            self._enqueue(_Pending(script, keys, args, future,
                                   index < len(waits) and waits[index]))
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
        if not self._cluster:
            self._spawn(self._send(None, live))
            return
        for node, indexes in batching.split(live, self._node_of).items():
            self._spawn(self._send(node, [live[index] for index in indexes]))

    def _node_of(self, pending: _Pending) -> Any:
        """The node that serves the call's first key; None while the client has no
        slot map yet (then the cluster client finds the node)."""
        try:
            return self._client.get_node_from_key(pending.keys[0])
        except Exception:
            return None

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
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
            if self._cluster and node is None:  # rerouted: the cluster client finds the node
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
            if not isinstance(reply, BaseException):
                pending.future.set_result(reply)
                continue
            action = batching.after_error(reply, retried=pending.retried, cluster=self._cluster)
            if action is Resend.RELOAD:
                reload.append(pending)
            elif action is Resend.REROUTE:
                self._spawn(self._reroute(pending))
            else:
                lost = lost or batching.connection_lost(reply)
                _fail(pending.future, reply)
        if reload:
            self._spawn(self._reload(reload))
        if lost and self._cluster:
            # The node may be gone: have the client map the slots again on its next command.
            remap_slots(self._client)

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
        command = batching.command
        commands = [command(pending.script.sha, pending.keys, pending.args) for pending in group]
        ack = self._ack
        waits = [pending.waits for pending in group]
        if ack is not None and any(waits):
            commands.append(ack.command)
        else:
            ack = None
        try:
            await connection.send_packed_command(connection.pack_commands(commands))
            read = reply_reader(connection)
            async with read_deadline(_read_bound(connection.socket_timeout, ack)):
                for _ in commands:
                    try:
                        replies.append(await read())
                    except ResponseError as error:
                        replies.append(error)
            if batching.demoted(replies) or (ack is not None and ack.fell_short(replies[-1])):
                await connection.disconnect()
        except (asyncio.TimeoutError, OSError) as error:
            # As Connection.read_response reports them: a redis-py TimeoutError or
            # ConnectionError. Replies may still be on the wire: the connection goes.
            await connection.disconnect()
            where = f"{connection.host}:{connection.port}"
            failure = (TimeoutError(f"Timeout reading from {where}")
                       if isinstance(error, asyncio.TimeoutError)
                       else ConnectionError(f"Error while reading from {where} : {error.args}"))
            batching.unanswered(replies, len(commands), failure)
        except BaseException as error:
            # Replies may still be on the wire: this connection cannot be reused.
            await connection.disconnect()
            batching.unanswered(replies, len(commands), error)
            if isinstance(error, asyncio.CancelledError):
                raise
        finally:
            await pool.release(connection)
        if ack is not None:
            ack.apply(replies, waits, replies.pop())
        return replies

    async def _send_to_node(self, node: Any, group: list[_Pending]) -> list[Any]:
        """The same through redis-py's per-node pipeline, which records each reply or error."""
        command = batching.command
        return await execute_on_node(
            node, [command(pending.script.sha, pending.keys, pending.args) for pending in group])


def _read_bound(socket_timeout: float | None, ack: Acknowledgement | None) -> float | None:
    """How long a batch's replies may take: the socket timeout, plus the wait's own
    timeout when the batch ends with one (the wait answers only at its timeout)."""
    if socket_timeout is None or ack is None:
        return socket_timeout
    return socket_timeout + ack.timeout


def _fail(future: asyncio.Future[Any], error: BaseException) -> None:
    if future.done():
        return
    if isinstance(error, asyncio.CancelledError):
        future.cancel()
    else:
        future.set_exception(error)
