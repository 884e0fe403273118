"""The interface every benchmarked system implements, and the two that need nothing but
this package: luminora-redis (asyncio and blocking) and the hand-written floor.

A system opens against a URL, prepares sessions (untimed), runs turn ``i`` of a session
(timed), and closes. Its keys all start with ``prefix`` so the harness can weigh and
purge them. ``facts`` describe what it does, statically, for the report.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any, ClassVar, Literal

import msgpack
import redis
import redis.asyncio as aioredis
from redis.typing import EncodableT

from luminora_redis.bench import workload as w

Api = Literal["asyncio", "blocking"]


@dataclass(frozen=True)
class Facts:
    """What a system does, for the report."""

    per_turn: str  # the calls of one turn
    expiry: str  # "native", "per message" or "none"
    on_expiry: str  # what happens to the conversation when the session expires
    needs_modules: tuple[str, ...] = ()  # MODULE LIST names it needs


class Unavailable(Exception):
    """The system cannot run here; the message says why, in one line."""


class System:
    """Base of every system. ``api`` says whether ``open``, ``sessions``, ``turn`` and
    ``close`` are coroutines (asyncio) or plain calls (blocking)."""

    name: ClassVar[str]
    label: ClassVar[str]
    api: ClassVar[Api]
    facts: ClassVar[Facts]
    floor: ClassVar[str]  # the floor system with the same API

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix

    @classmethod
    def check(cls) -> None:
        """Raise Unavailable when an import or the environment is missing."""

    def versions(self) -> dict[str, str]:
        return {}

    #: One chat turn on a session handle; a coroutine function when ``api`` is asyncio.
    #: (open(), sessions(n) -> list and close() are sync or async the same way.)
    turn: Callable[[Any, int], Any]


def new_id() -> str:
    return uuid.uuid4().hex


# --------------------------------------------------------------------------- #
# luminora-redis
# --------------------------------------------------------------------------- #

_TURN = "one EVALSHA of chat_turn.lua: checks the session, appends both messages, slides the " \
        "idle deadline within the absolute one, re-indexes the deadline, returns the last 10"
_FACTS = Facts(_TURN, "native",
               "Redis expires the session hash at its idle or absolute deadline; the "
               "ExpiryListener archives the whole conversation into the user's archive "
               "exactly once; user memory never expires")
_CREATE = {"ttl": w.TTL_SECONDS, "max_idle": w.TTL_SECONDS}


class LuminoraAsync(System):
    name, label, api, facts, floor = ("luminora-async", "luminora-redis (asyncio)",
                                      "asyncio", _FACTS, "floor-async")
    autopipeline: ClassVar[bool] = True

    async def open(self) -> None:
        from luminora_redis import SessionStore

        self.store = SessionStore.from_url(self.url, prefix=self.prefix,
                                           autopipeline=self.autopipeline)

    async def sessions(self, n: int) -> list[str]:
        import asyncio

        ids: list[str] = []
        for start in range(0, n, 64):
            ids += await asyncio.gather(*(
                self.store.create_session(f"u{new_id()[:12]}", w.PERSONALITY, _CREATE)
                for _ in range(start, min(n, start + 64))))
        return ids

    async def turn(self, sid: str, i: int) -> Any:
        return await self.store.chat_turn(
            sid, [("user", w.USER[i]), ("assistant", w.ASSISTANT[i])], last=w.LAST)

    async def close(self) -> None:
        await self.store.aclose()


class LuminoraBudget(LuminoraAsync):
    """The asyncio store's ``chat_turn`` with a token ``budget`` as well as ``last``: the
    script sums the stored counts of the messages it returns. The budget is wide enough
    that the same ``last`` messages come back, so the row measures the summing alone."""

    name, label = "luminora-async-budget", "luminora-redis (asyncio, chat_turn with budget)"

    async def turn(self, sid: str, i: int) -> Any:
        return await self.store.chat_turn(
            sid, [("user", w.USER[i]), ("assistant", w.ASSISTANT[i])], last=w.LAST,
            budget=w.BUDGET)


class LuminoraBudgetBinds(LuminoraAsync):
    """``chat_turn`` with ``last`` and a budget that binds: about half the ``last``
    messages come back, so the script reads the count of each message it returns
    (and of the first that does not fit) instead of skipping them on ``tmax``."""

    name, label = ("luminora-async-budget-binds",
                   "luminora-redis (asyncio, chat_turn with a binding budget)")

    async def turn(self, sid: str, i: int) -> Any:
        return await self.store.chat_turn(
            sid, [("user", w.USER[i]), ("assistant", w.ASSISTANT[i])], last=w.LAST,
            budget=w.BINDING_BUDGET)


class LuminoraPlain(LuminoraAsync):
    """The asyncio store with ``autopipeline=False``: every call on its own connection."""

    name, label = "luminora-async-plain", "luminora-redis (asyncio, no autopipeline)"
    autopipeline = False


class LuminoraBlocking(System):
    name, label, api, facts, floor = ("luminora-blocking", "luminora-redis (blocking)",
                                      "blocking", _FACTS, "floor-blocking")

    def open(self) -> None:
        from luminora_redis import SyncSessionStore

        self.store = SyncSessionStore.from_url(self.url, prefix=self.prefix)

    def sessions(self, n: int) -> list[str]:
        return [self.store.create_session(f"u{new_id()[:12]}", w.PERSONALITY, _CREATE)
                for _ in range(n)]

    def turn(self, sid: str, i: int) -> Any:
        return self.store.chat_turn(
            sid, [("user", w.USER[i]), ("assistant", w.ASSISTANT[i])], last=w.LAST)

    def close(self) -> None:
        self.store.close()


# --------------------------------------------------------------------------- #
# The floor: the script a user would write by hand
# --------------------------------------------------------------------------- #

FLOOR_BOUND = 1000  # history bound, as the store's default live history


def floor_script() -> str:
    return resources.files("luminora_redis.bench").joinpath("floor_turn.lua").read_text("utf-8")


def _packed(role: str, content: str) -> bytes:
    packed: bytes = msgpack.packb([role, content], use_bin_type=True)
    return packed


_MESSAGES = [(_packed("user", u), _packed("assistant", a)) for u, a in zip(w.USER, w.ASSISTANT)]


def floor_messages(turn: int) -> tuple[bytes, bytes]:
    """The floor's two packed messages of a session's ``turn``."""
    return _MESSAGES[turn]

_FLOOR_FACTS = Facts(
    "one EVALSHA (redis-py register_script) of a minimal script: HMGET the deadlines, "
    "RPUSH both msgpack messages, LTRIM, PEXPIRE hash and list, LRANGE -10 -1; raw bytes back",
    "native", "Redis deletes the hash and the list: the conversation is gone")


def _floor_keys(prefix: str) -> tuple[str, str]:
    sid = new_id()
    return f"{prefix}:{sid}", f"{prefix}:{sid}:h"


def _floor_fields() -> dict[EncodableT, EncodableT]:
    import time

    return {"abs": int(time.time() * 1000) + w.TTL_SECONDS * 1000, "idle": w.TTL_SECONDS * 1000}


class FloorAsync(System):
    name, label, api, facts, floor = ("floor-async", "floor: hand-written script (asyncio)",
                                      "asyncio", _FLOOR_FACTS, "floor-async")

    async def open(self) -> None:
        self.client = aioredis.Redis.from_url(self.url)
        self.script = self.client.register_script(floor_script())

    async def sessions(self, n: int) -> list[tuple[str, str]]:
        keys = [_floor_keys(self.prefix) for _ in range(n)]
        async with self.client.pipeline(transaction=False) as pipe:
            for session, _ in keys:
                pipe.hset(session, mapping=_floor_fields())
                pipe.pexpire(session, w.TTL_SECONDS * 1000)
            await pipe.execute()
        return keys

    async def turn(self, keys: tuple[str, str], i: int) -> Any:
        reply = await self.script(keys=keys, args=[FLOOR_BOUND, w.LAST, *_MESSAGES[i]])
        if reply is None:
            raise RuntimeError("the floor's session is gone")
        return reply

    async def close(self) -> None:
        await self.client.aclose()


class FloorBlocking(System):
    name, label, api, facts, floor = ("floor-blocking", "floor: hand-written script (blocking)",
                                      "blocking", _FLOOR_FACTS, "floor-blocking")

    def open(self) -> None:
        self.client = redis.Redis.from_url(self.url)
        self.script = self.client.register_script(floor_script())

    def sessions(self, n: int) -> list[tuple[str, str]]:
        keys = [_floor_keys(self.prefix) for _ in range(n)]
        with self.client.pipeline(transaction=False) as pipe:
            for session, _ in keys:
                pipe.hset(session, mapping=_floor_fields())
                pipe.pexpire(session, w.TTL_SECONDS * 1000)
            pipe.execute()
        return keys

    def turn(self, keys: tuple[str, str], i: int) -> Any:
        reply = self.script(keys=keys, args=[FLOOR_BOUND, w.LAST, *_MESSAGES[i]])
        if reply is None:
            raise RuntimeError("the floor's session is gone")
        return reply

    def close(self) -> None:
        self.client.close()
