"""AsyncRunner: how the asyncio store runs an operation's steps.

An operation (see ``scripts``) yields ``Call`` and ``Batch`` steps; the
runner sends each through redis-py and hands back the reply, following
``batching``'s rules (shared with ``SyncRunner``). A batch is always one
pipelined write per node (`AutoPipeline`), on a single server and on a
cluster alike. A single call is one EVALSHA of the ``Script``'s sha through
the client's ``execute_command`` (``Script.__call__`` copies the arguments and
imports on every call: a measurable share of a chat turn), or, with
``autopipeline``, joins the calls other tasks issue in the same event-loop
tick. This is the hot path of a chat turn: nothing is built or checked per
call beyond the EVALSHA itself. Under ``acknowledge="replicas"`` or ``"aof"`` a
write goes out through the pipeline with its wait (``acknowledge``), alone or in
a batch.
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
from luminora_redis.io.acknowledge import Acknowledgement
from luminora_redis.io.autopipeline import AutoPipeline
from luminora_redis.io.batching import SCRIPT_LOADS, first_error

__all__ = ["AsyncRunner"]

T = TypeVar("T")


class AsyncRunner:
    """Runs operation steps on one asyncio redis-py client (single server or cluster)."""

    def __init__(self, client: Redis | RedisCluster, scripts: Mapping[str, AsyncScript], *,
                 autopipeline: bool = True, prefix: str | None = None,
                 ack: Acknowledgement | None = None) -> None:
        self.client: Any = client  # either kind: both have execute_command and script_load
        self.scripts = scripts
        self.pipeline = AutoPipeline(client, ack)
        self.autopipeline = autopipeline
        self.ack = ack
        self._execute = client.execute_command
        self._prefix = prefix  # names the key rule of a MissingPermission

    async def call(self, call: Call) -> Any:
        """Run one script call; its reply."""
        script = self.scripts[call.script]
        keys, args = call.keys, call.args
        ack = self.ack
        if ack is not None and ack.writes(call.script):
            # A write and its wait go out as one pipelined write (see ``acknowledge``).
            if self.autopipeline and self.pipeline.busy:
                return await self.pipeline.call(script, keys, args, waits=True)
            return await self.pipeline.call_now(script, keys, args)
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
        return await _through_script(script, keys, args)

    async def batch(self, calls: Sequence[Call]) -> list[Any]:
        """Run several calls in one write per node; their replies, in order."""
        scripts = self.scripts
        ack = self.ack
        replies = await self.pipeline.call_many(
            [(scripts[call.script], call.keys, call.args) for call in calls],
            waits=[ack is not None and ack.writes(call.script) for call in calls])
        error = first_error(replies)
        if error is not None:
            raise error
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
                    step = op.throw(server_refusal(error, prefix=self._prefix))
                else:
                    step = op.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        """Let batches in flight finish."""
        await self.pipeline.aclose()


async def _through_script(script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> Any:
    """A call that met NOSCRIPT (the script had not run), through ``Script``, which loads
    the script and runs it, up to ``SCRIPT_LOADS`` times."""
    for _ in range(SCRIPT_LOADS - 1):
        try:
            return await script(keys, args)
        except NoScriptError:
            pass
    return await script(keys, args)
