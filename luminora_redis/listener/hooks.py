"""Calling the application's delivery hooks, ``summarize`` and ``on_archived``, with a bound.

A call that overruns ``hook_timeout`` is abandoned (cancelled, and no longer
awaited) and is a failed attempt, so the worker that made it is free at once.
An async hook runs on the event loop and is awaited; a plain ``on_archived``
runs on the event loop too (it must not block, and cannot be timed out); a
plain ``summarize`` runs in a worker thread of the listener's own pool (one
thread per delivery worker), since a summarizer typically calls a model and
would stall the listener; a thread that overruns is abandoned, not stopped, and
hung ones never take the event loop's default executor (name resolution) away.
What ``summarize`` returns is checked here (`check_summary`).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import ValidationError

from luminora_redis.core.models import ArchivedConversation, SessionSummary

__all__ = ["HookFailed", "HookTimeout", "Hooks", "InvalidSummary", "OnArchived", "Summarize",
           "check_summary"]

OnArchived = Callable[[ArchivedConversation], Awaitable[None] | None]
#: A session's summarizer: the episode to keep for an archived conversation (a
#: `SessionSummary`, a mapping with its keys, or an object with its attributes), or None
#: to keep nothing. Plain or async.
Summarize = Callable[[ArchivedConversation], Any]


class HookTimeout(Exception):
    """A hook call did not return within ``hook_timeout``: abandoned."""


class HookFailed(Exception):
    """A hook call raised (its error is the cause): a failed attempt, never an outage of
    ours, even when the hook's own Redis refused it."""


class InvalidSummary(Exception):
    """``summarize`` returned something that is not an episode: a failed attempt."""


def check_summary(result: object) -> SessionSummary | None:
    """``summarize``'s result as a `SessionSummary` (None stays None); InvalidSummary
    naming what is wrong (a missing field, a wrong type, an importance outside 0 to 10)."""
    if result is None or isinstance(result, SessionSummary):
        return result
    try:
        if isinstance(result, Mapping):
            return SessionSummary.model_validate(dict(result))
        if isinstance(result, (str, bytes, int, float, list, tuple)):
            raise InvalidSummary(f"summarize must return a mapping with title, summary, "
                                 f"importance and sentiment, a SessionSummary, or None; "
                                 f"not {type(result).__name__}")
        return SessionSummary.model_validate(result, from_attributes=True)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, item['loc'])) or 'value'}: {item['msg']}"
                             for item in error.errors())
        raise InvalidSummary(f"summarize returned an invalid episode ({problems})") from None


class Hooks:
    """Calls hooks with ``timeout`` seconds each (None: no bound), plain ones that may
    block in a pool of ``threads``, and keeps the calls it abandoned until they end
    (`close` on stop)."""

    def __init__(self, timeout: float | None, threads: int = 1) -> None:
        self.timeout = timeout
        self._threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._abandoned: set[asyncio.Future[Any]] = set()

    async def call(self, name: str, hook: Callable[[ArchivedConversation], Any],
                   conversation: ArchivedConversation, *, thread: bool = False) -> Any:
        """``hook(conversation)``'s result (awaited when it is awaitable); HookFailed with
        its error, HookTimeout when it overran. ``thread``: a plain hook runs in a worker
        thread rather than on the event loop (what it returns is awaited when awaitable,
        for a plain function that returns a coroutine)."""
        try:
            if thread and not inspect.iscoroutinefunction(hook):
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix=name)
                result: Any = asyncio.get_running_loop().run_in_executor(
                    self._pool, functools.partial(hook, conversation))
            else:
                result = hook(conversation)
        except Exception as error:
            raise HookFailed(f"{name} failed: {error!r}") from error
        if inspect.isawaitable(result):
            result = await self._bounded(name, result)
            if thread and inspect.isawaitable(result):
                result = await self._bounded(name, result)
        return result

    async def _bounded(self, name: str, awaitable: Awaitable[Any]) -> Any:
        try:
            pending = asyncio.ensure_future(awaitable)
        except Exception as error:
            raise HookFailed(f"{name} failed: {error!r}") from error
        try:
            done, _ = await asyncio.wait({pending}, timeout=self.timeout)
        except asyncio.CancelledError:
            pending.cancel()
            raise
        if not done:
            # Abandoned: cancelled, and not awaited, in case it ignores cancellation.
            pending.cancel()
            self._abandoned.add(pending)
            pending.add_done_callback(self._forget)
            raise HookTimeout(f"{name} did not return within {self.timeout} s "
                              f"(hook_timeout); abandoned")
        failure = pending.exception()
        if failure is not None:
            raise HookFailed(f"{name} failed: {failure!r}") from failure
        return pending.result()

    def _forget(self, call_: asyncio.Future[Any]) -> None:
        self._abandoned.discard(call_)
        if not call_.cancelled():
            call_.exception()  # retrieved: an abandoned call's error is no one's to raise

    def close(self) -> None:
        """Cancel the abandoned calls and let the threads go (a hung one is not waited for)."""
        for call_ in self._abandoned:
            call_.cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

