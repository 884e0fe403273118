"""AsyncRunner: how the asyncio store runs an operation's steps.

An operation (see ``scripts``) yields ``Call`` and ``Batch`` steps; the
runner sends each through redis-py and hands back the reply. A batch is
always one pipelined write per node (`AutoPipeline`), with the same rules on
a single server and on a cluster: a NOSCRIPT or MOVED/ASK reply reruns that
call alone, any other error is raised after every reply has been read, and a
failed write is never replayed. Single calls go through redis-py's ``Script``
(EVALSHA, reloaded on NOSCRIPT), or, with ``autopipeline``, join the calls
other tasks issue in the same event-loop tick. When Redis restarts between
``Script``'s SCRIPT LOAD and its second EVALSHA, the NOSCRIPT reaches us: the
script did not run, so the call goes through ``Script`` once more.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from redis.asyncio.client import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from luminora_redis.autopipeline import AutoPipeline
from luminora_redis.scripts import Call, Op

__all__ = ["AsyncRunner"]

T = TypeVar("T")


class AsyncRunner:
    """Runs operation steps on one asyncio redis-py client (single server or cluster)."""

    def __init__(self, client: Redis | RedisCluster, scripts: Mapping[str, AsyncScript], *,
                 autopipeline: bool = False) -> None:
        self.client = client
        self.scripts = scripts
        self.pipeline = AutoPipeline(client)
        self.autopipeline = autopipeline

    async def call(self, call: Call) -> Any:
        """Run one script call; its reply."""
        script = self.scripts[call.script]
        if self.autopipeline:
            return await self.pipeline.call(script, call.keys, call.args)
        try:
            return await script(call.keys, call.args)
        except NoScriptError:
            return await script(call.keys, call.args)

    async def batch(self, calls: Sequence[Call]) -> list[Any]:
        """Run several calls in one write per node; their replies, in order."""
        scripts = self.scripts
        replies = await self.pipeline.call_many(
            [(scripts[call.script], call.keys, call.args) for call in calls])
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
        return replies

    async def drive(self, op: Op[T]) -> T:
        """Run an operation to its end: send each step, feed back its reply."""
        try:
            step = next(op)
            while True:
                try:
                    reply = await (self.call(step) if isinstance(step, Call)
                                   else self.batch(step.calls))
                except Exception as error:
                    # The operation sees its step fail: a follow-up after a commit catches
                    # it; every other operation lets it propagate.
                    step = op.throw(error)
                else:
                    step = op.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        """Let batches in flight finish."""
        await self.pipeline.aclose()
