"""SyncRunner: how the blocking store runs an operation's steps.

The blocking twin of ``AsyncRunner``, following the same ``batching`` rules: a
single call is one EVALSHA of the ``Script``'s sha, and goes through ``Script``
(which loads it) on NOSCRIPT; a batch is one pipelined write per node on one
pooled connection (redis-py's blocking cluster pipeline refuses EVALSHA, and
its ``Pipeline`` would replay a failed write through the client's ``Retry``).
A call that ``batching.after_error`` says to send again (NOSCRIPT, or MOVED/ASK
on a cluster) is rerun alone as a single call, which loads the script and
follows the redirection.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from redis.client import Redis
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.exceptions import NoScriptError, ResponseError

from luminora_redis.core.errors import server_refusal
from luminora_redis.core.scripts import Call, Op
from luminora_redis.io import batching
from luminora_redis.io.acknowledge import Acknowledgement
from luminora_redis.io.batching import Resend
from luminora_redis.io.redis_internals import node_pool

__all__ = ["SyncRunner"]

T = TypeVar("T")


class SyncRunner:
    """Runs operation steps on one blocking redis-py client (single server or cluster)."""

    def __init__(self, client: Redis | RedisCluster, scripts: Mapping[str, Script], *,
                 prefix: str | None = None, ack: Acknowledgement | None = None) -> None:
        self.client: Any = client  # either kind: both have execute_command
        self.scripts = scripts
        self.ack = ack
        self._cluster = isinstance(client, RedisCluster)
        self._execute: Callable[..., Any] = client.execute_command
        self._prefix = prefix  # names the key rule of a MissingPermission

    def call(self, call: Call) -> Any:
        """Run one script call (one EVALSHA of the ``Script``'s sha, as ``AsyncRunner``
        does); its reply. A write under ``acknowledge`` goes out with its wait."""
        script = self.scripts[call.script]
        keys, args = call.keys, call.args
        if self.ack is not None and self.ack.writes(call.script):
            return self._acknowledged(call)
        try:
            return self._execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            pass
        for _ in range(batching.SCRIPT_LOADS - 1):
            try:
                return script(keys, args)
            except NoScriptError:
                pass
        return script(keys, args)

    def batch(self, calls: Sequence[Call]) -> list[Any]:
        """Run several calls in one write per node; their replies, in order."""
        groups = batching.split(calls, self._pool_of)
        replies = batching.merge(len(calls), (
            (indexes, self._pipeline(pool, [calls[index] for index in indexes]))
            for pool, indexes in groups.items()))
        for index, reply in enumerate(replies):
            if isinstance(reply, BaseException) and batching.after_error(
                    reply, retried=False, cluster=self._cluster) is not Resend.RAISE:
                replies[index] = self._rerun(calls[index])
        error = batching.first_error(replies)
        if error is not None:
            raise error
        return replies

    def _acknowledged(self, call: Call) -> Any:
        """One write and its wait in one pipelined write; its reply. On NOSCRIPT the
        script is loaded and the pair sent again, up to ``SCRIPT_LOADS`` times."""
        pool = self.client.connection_pool
        for attempt in range(batching.SCRIPT_LOADS + 1):
            reply = self._pipeline(pool, [call])[0]
            if not isinstance(reply, NoScriptError) or attempt == batching.SCRIPT_LOADS:
                break
            script = self.scripts[call.script]
            script.sha = self.client.script_load(script.script)
        if isinstance(reply, BaseException):
            raise reply
        return reply

    def _pool_of(self, call: Call) -> Any:
        return node_pool(self.client, call.keys[0]) if self._cluster else self.client.connection_pool

    def _rerun(self, call: Call) -> Any:
        """A call sent again alone: its reply, or its error."""
        try:
            return self.call(call)
        except Exception as error:
            return error

    def _pipeline(self, pool: Any, calls: Sequence[Call]) -> list[Any]:
        """One write on one pooled connection, then every reply in order; the calls left
        unanswered by a failed connection get its error."""
        connection = pool.get_connection()
        replies: list[Any] = []
        scripts, command = self.scripts, batching.command
        commands = [command(scripts[call.script].sha, call.keys, call.args) for call in calls]
        ack = self.ack
        waits = [ack is not None and ack.writes(call.script) for call in calls]
        if ack is not None and any(waits):
            commands.append(ack.command)
        else:
            ack = None
        # The wait answers only at its timeout: the read may take that much longer.
        bound = {} if ack is None or connection.socket_timeout is None else {
            "timeout": connection.socket_timeout + ack.timeout}
        try:
            connection.send_packed_command(connection.pack_commands(commands))
            for _ in commands:
                try:
                    replies.append(connection.read_response(**bound))
                except ResponseError as error:
                    replies.append(error)
            if batching.demoted(replies) or (ack is not None and ack.fell_short(replies[-1])):
                connection.disconnect()
        except Exception as error:
            # Replies may still be on the wire: this connection cannot be reused.
            connection.disconnect()
            batching.unanswered(replies, len(commands), error)
        except BaseException:
            connection.disconnect()
            raise
        finally:
            pool.release(connection)
        if ack is not None:
            ack.apply(replies, waits, replies.pop())
        return replies

    def drive(self, op: Op[T]) -> T:
        """Run an operation to its end: send each step, feed back its reply."""
        try:
            step = next(op)
            while True:
                try:
                    reply = self.call(step) if isinstance(step, Call) else self.batch(step.calls)
                except Exception as error:
                    step = op.throw(server_refusal(error, prefix=self._prefix))  # as in AsyncRunner.drive
                else:
                    step = op.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

