"""SyncRunner: how the blocking store runs an operation's steps.

The blocking twin of ``AsyncRunner``, with the same rules: a single call is
one EVALSHA of the ``Script``'s sha, and goes through ``Script`` (which loads
it) on NOSCRIPT; a batch is one pipelined write per node on one
pooled connection (redis-py's blocking cluster pipeline refuses EVALSHA, and
its ``Pipeline`` would replay a failed write through the client's ``Retry``);
a NOSCRIPT or MOVED/ASK reply reruns that call alone; any other error is
raised after every reply has been read. A NOSCRIPT that reaches a single call
(Redis restarted between ``Script``'s SCRIPT LOAD and its second EVALSHA; the
script did not run) goes through ``Script`` once more.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from redis.client import Redis
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.exceptions import AskError, MovedError, NoScriptError, ResponseError, TryAgainError

from luminora_redis.core.errors import server_refusal
from luminora_redis.core.scripts import Call, Op

__all__ = ["SyncRunner"]

T = TypeVar("T")

_RERUN = (NoScriptError, MovedError, AskError, TryAgainError)


class SyncRunner:
    """Runs operation steps on one blocking redis-py client (single server or cluster)."""

    def __init__(self, client: Redis | RedisCluster, scripts: Mapping[str, Script]) -> None:
        self.client = client
        self.scripts = scripts
        self._cluster = isinstance(client, RedisCluster)
        self._execute = client.execute_command

    def call(self, call: Call) -> Any:
        """Run one script call (one EVALSHA of the ``Script``'s sha, as ``AsyncRunner``
        does); its reply."""
        script = self.scripts[call.script]
        keys, args = call.keys, call.args
        try:
            return self._execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            pass
        try:
            return script(keys, args)
        except NoScriptError:
            return script(keys, args)

    def batch(self, calls: Sequence[Call]) -> list[Any]:
        """Run several calls in one write per node; their replies, in order."""
        groups: dict[Any, list[int]] = {}
        for index, call in enumerate(calls):
            pool = (self.client.get_node_from_key(call.keys[0]).redis_connection.connection_pool
                    if self._cluster else self.client.connection_pool)
            groups.setdefault(pool, []).append(index)
        replies: list[Any] = [None] * len(calls)
        for pool, indexes in groups.items():
            for index, reply in zip(indexes, self._pipeline(pool, [calls[i] for i in indexes])):
                if isinstance(reply, _RERUN):
                    reply = self.call(calls[index])
                replies[index] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    def _pipeline(self, pool: Any, calls: Sequence[Call]) -> list[Any]:
        connection = pool.get_connection()
        try:
            connection.send_packed_command(connection.pack_commands(
                ("EVALSHA", self.scripts[call.script].sha, len(call.keys), *call.keys, *call.args)
                for call in calls))
            replies: list[Any] = []
            for _ in calls:
                try:
                    replies.append(connection.read_response())
                except ResponseError as error:
                    replies.append(error)
            return replies
        except BaseException:
            # Replies may still be on the wire: this connection cannot be reused.
            connection.disconnect()
            raise
        finally:
            pool.release(connection)

    def drive(self, op: Op[T]) -> T:
        """Run an operation to its end: send each step, feed back its reply."""
        try:
            step = next(op)
            while True:
                try:
                    reply = self.call(step) if isinstance(step, Call) else self.batch(step.calls)
                except Exception as error:
                    step = op.throw(server_refusal(error))  # as in AsyncRunner.drive
                else:
                    step = op.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
