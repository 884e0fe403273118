"""AsyncRunner: how the asyncio store runs an operation's steps.

An operation (see ``scripts``) yields ``Call`` and ``Batch`` steps; the
runner sends each through redis-py and hands back the reply. A batch is
always one pipelined write per node (`AutoPipeline`), with the same rules on
a single server and on a cluster: a NOSCRIPT or MOVED/ASK reply reruns that
call alone, any other error is raised after every reply has been read, and a
failed write is never replayed. A single call is one EVALSHA of the
``Script``'s sha through the client's ``execute_command`` (``Script.__call__``
copies the arguments and imports on every call: a measurable share of a chat
turn), or, with ``autopipeline``, joins the calls other tasks issue in the
same event-loop tick. On NOSCRIPT the script had not run, and the call goes
through ``Script``, which loads it and runs it; when Redis restarts between
that load and its EVALSHA, the NOSCRIPT reaches us again, and the call goes
through ``Script`` once more.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from redis.asyncio.client import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from luminora_redis.core.errors import server_refusal
from luminora_redis.core.scripts import Call, Op
from luminora_redis.io.autopipeline import AutoPipeline

__all__ = ["AsyncRunner"]

T = TypeVar("T")


class AsyncRunner:
    """Runs operation steps on one asyncio redis-py client (single server or cluster)."""

    def __init__(self, client: Redis | RedisCluster, scripts: Mapping[str, AsyncScript], *,
                 autopipeline: bool = True) -> None:
        self.client = client
        self.scripts = scripts
        self.pipeline = AutoPipeline(client)
        self.autopipeline = autopipeline
        self._execute = client.execute_command

    async def call(self, call: Call) -> Any:
        """Run one script call; its reply."""
        script = self.scripts[call.script]
        keys, args = call.keys, call.args
        if self.autopipeline:
            pipeline = self.pipeline
            if pipeline.busy:
                return await pipeline.call(script, keys, args)
            # Nothing queued or in flight: a lone call goes out at once, as without
            # auto-pipelining, and calls made while it is out queue behind it.
            with pipeline.alone():
                return await self._direct(script, keys, args)
        return await self._direct(script, keys, args)

    async def _direct(self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        try:
            return await self._execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            pass
        try:
            return await script(keys, args)
        except NoScriptError:
            return await script(keys, args)

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
                    # it; every other operation lets it propagate. A refusal by Redis (over
                    # maxmemory) becomes the library's error here, for every path a step takes.
                    step = op.throw(server_refusal(error))
                else:
                    step = op.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        """Let batches in flight finish."""
        await self.pipeline.aclose()
