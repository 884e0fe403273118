"""Resent writes: when the connection breaks after a script ran and before its reply
arrived, redis-py's ``Retry`` sends the same EVALSHA again. Each write a resend can
repeat recognises it (a turn id, a creation nonce, an operation id) and is stored
once; a NOSCRIPT that reaches a single call is retried through ``Script``.

The resend is made here by running one operation step twice through the store's own
runner, exactly what redis-py's retry sends; ``tests/test_soak.py`` makes it happen
with real Redis restarts and killed connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from redis.exceptions import NoScriptError

from luminora_redis import SyncSessionStore
from luminora_redis.core.errors import ReplyCode
from luminora_redis.core.ids import new_nonce, new_turn_id
from luminora_redis.core.scripts import Batch, Call
from luminora_redis.io.runner import AsyncRunner
from luminora_redis.io.sync_runner import SyncRunner
from luminora_redis.ops import memory, sessions

from conftest import snapshot

LONG = {"ttl": 60, "max_idle": 30}


@pytest.fixture
def blocking(store_url: str, topology: str) -> Iterator[SyncSessionStore]:
    store = SyncSessionStore.from_url(store_url, cluster=topology == "cluster")
    yield store
    store.close()


def finish(op: Any, reply: Any) -> Any:
    with pytest.raises(StopIteration) as done:
        op.send(reply)
    return done.value.value


def contents(store: SyncSessionStore, session_id: str) -> list[str]:
    return [message.content for message in store.get_history(session_id)]


def test_a_resent_turn_is_stored_once_and_answered_as_the_first(
        blocking: SyncSessionStore) -> None:
    sid = blocking.create_session("carlos", "alicia", LONG)
    blocking.chat_turn(sid, [("user", "earlier")])
    op = sessions.chat_turn(blocking.context(), sid, [("user", "hola"), ("assistant", "¡hola!")],
                            last=3)
    call = next(op)
    first = blocking._runner.call(call)
    again = blocking._runner.call(call)
    assert again == first  # same deadline, timestamp and context
    assert contents(blocking, sid) == ["earlier", "hola", "¡hola!"]
    assert finish(op, again) == blocking.get_history(sid)
    # The next turn, with its own id, is appended as usual.
    blocking.chat_turn(sid, [("user", "hola")])
    assert contents(blocking, sid) == ["earlier", "hola", "¡hola!", "hola"]


def test_a_resent_append_writes_nothing(blocking: SyncSessionStore, raw: Any) -> None:
    sid = blocking.create_session("carlos", "alicia", LONG)
    op = sessions.append_messages(blocking.context(), sid, [("user", "once")])
    call = next(op)
    first = blocking._runner.call(call)
    before = snapshot(raw)
    again = blocking._runner.call(call)
    assert snapshot(raw) == before
    assert again == first
    # The caller gets the timestamp that was stored, not the resend's clock.
    assert finish(op, again) == blocking.get_history(sid)
    assert contents(blocking, sid) == ["once"]


def test_turns_with_the_same_messages_are_each_stored(blocking: SyncSessionStore) -> None:
    sid = blocking.create_session("carlos", "alicia", LONG)
    for _ in range(2):
        blocking.chat_turn(sid, [("user", "ok")])
        blocking.append_message(sid, "assistant", "ok")
    assert contents(blocking, sid) == ["ok"] * 4


def test_a_resent_affinity_change_is_applied_once(blocking: SyncSessionStore) -> None:
    blocking.update_affinity("carlos", "alicia", 10)
    op = memory.update_affinity(blocking.context(), "carlos", "alicia", 20)
    call = next(op)
    first = blocking._runner.call(call)
    again = blocking._runner.call(call)
    assert again == first  # same points, level and time
    assert finish(op, again).points == 30
    assert blocking.get_affinity("carlos", "alicia").points == 30
    assert len(blocking.get_evolution("carlos", "alicia")) == 2
    # Another personality's change, and the next change, apply as usual.
    assert blocking.update_affinity("carlos", "bruno", 5).points == 5
    assert blocking.update_affinity("carlos", "alicia", 20).points == 50


def test_a_resent_trait_change_is_logged_once(blocking: SyncSessionStore) -> None:
    op = memory.record_trait(blocking.context(), "carlos", "alicia", "humor", "dry")
    call = next(op)
    first = blocking._runner.call(call)
    assert blocking._runner.call(call) == first
    assert finish(op, first).sequence == 1
    blocking.record_trait("carlos", "alicia", "humor", "warm")
    assert [e.value for e in blocking.get_evolution("carlos", "alicia")] == ["dry", "warm"]


def send_create(store: SyncSessionStore, step: Call | Batch) -> Any:
    """Send a create step as the runner would: one call on a single server (the hint rides
    in the script), a batch of the create and its hint call on a cluster."""
    if isinstance(step, Batch):
        return store._runner.batch(step.calls)
    return store._runner.call(step)


def create_of(step: Call | Batch) -> Call:
    """The ``create_session`` call of a create step."""
    return step.calls[0] if isinstance(step, Batch) else step


def create_of_reply(step: Call | Batch, reply: Any) -> Any:
    """The create script's reply within a step's reply."""
    return reply[0] if isinstance(step, Batch) else reply


def with_nonce(step: Call | Batch, nonce: str) -> Call | Batch:
    """The same create step with another creation nonce (ARGV[7])."""
    create = create_of(step)
    other = create._replace(args=(*create.args[:6], nonce, *create.args[7:]))
    return Batch([other, *step.calls[1:]]) if isinstance(step, Batch) else other


def test_a_resent_create_returns_the_created_id_and_leaves_one_session(
        blocking: SyncSessionStore, raw: Any) -> None:
    op = sessions.create_session(blocking.context(), "carlos", "alicia", LONG)
    step = next(op)
    sid = create_of(step).args[0]
    first = send_create(blocking, step)
    assert create_of_reply(step, first)[0] == ReplyCode.OK
    before = snapshot(raw)
    again = send_create(blocking, step)
    assert snapshot(raw) == before  # nothing written
    assert finish(op, again) == sid
    assert [s.session_id for s in blocking.list_user_sessions("carlos")] == [sid]


def test_a_create_resent_after_its_session_was_archived_does_not_revive_it(
        blocking: SyncSessionStore, raw: Any) -> None:
    op = sessions.create_session(blocking.context(), "carlos", "alicia", LONG)
    step = next(op)
    send_create(blocking, step)
    sid = create_of(step).args[0]
    assert blocking.end_session(sid)
    before = snapshot(raw)
    assert finish(op, send_create(blocking, step)) == sid
    assert snapshot(raw) == before
    assert blocking.get_session(sid) is None
    assert [c.session_id for c in blocking.get_archived_conversations("carlos")] == [sid]


def test_another_create_drawing_a_taken_id_is_refused(blocking: SyncSessionStore) -> None:
    step = next(sessions.create_session(blocking.context(), "carlos", "alicia", LONG))
    send_create(blocking, step)
    other = with_nonce(step, new_nonce())
    assert create_of_reply(other, send_create(blocking, other)) == [ReplyCode.EXISTS]
    assert blocking.end_session(create_of(step).args[0])
    assert create_of_reply(other, send_create(blocking, other)) == [ReplyCode.EXISTS]


class FlakyScript:
    """A script whose first ``failures`` calls raise NOSCRIPT, as when Redis restarts
    between ``Script``'s SCRIPT LOAD and its EVALSHA."""

    sha = "0" * 40

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self, keys: Any, args: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise NoScriptError("NOSCRIPT No matching script.")
        return [1, list(keys), list(args)]


class AsyncFlakyScript(FlakyScript):
    async def __call__(self, keys: Any, args: Any) -> Any:  # type: ignore[override]
        return super().__call__(keys, args)


class Flushed:
    """A client whose server knows no script: every EVALSHA meets NOSCRIPT."""

    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []

    def execute_command(self, *command: Any) -> Any:
        self.sent.append(command)
        raise NoScriptError("NOSCRIPT No matching script.")


class AsyncFlushed(Flushed):
    async def execute_command(self, *command: Any) -> Any:  # type: ignore[override]
        return super().execute_command(*command)


def test_a_noscript_reaching_a_single_call_is_retried_once() -> None:
    """The runner's own EVALSHA meets NOSCRIPT; ``Script`` then loads and runs it, and
    when Redis restarted in between, once more."""
    client = Flushed()
    call = Call("s", ("k",), ("a",))
    script = FlakyScript(failures=1)
    assert SyncRunner(client, {"s": script}).call(call) == [1, ["k"], ["a"]]  # type: ignore[arg-type]
    assert client.sent == [("EVALSHA", "0" * 40, 1, "k", "a")]
    assert script.calls == 2
    twice = FlakyScript(failures=2)
    with pytest.raises(NoScriptError):
        SyncRunner(client, {"s": twice}).call(call)  # type: ignore[arg-type]
    assert twice.calls == 2


def test_a_noscript_reaching_a_single_async_call_is_retried_once() -> None:
    async def run() -> None:
        client = AsyncFlushed()
        call = Call("s", ("k",), ("a",))
        script = AsyncFlakyScript(failures=1)
        assert await AsyncRunner(client, {"s": script}).call(call) == [1, ["k"], ["a"]]  # type: ignore[arg-type]
        assert script.calls == 2 and len(client.sent) == 1
        with pytest.raises(NoScriptError):
            await AsyncRunner(client, {"s": AsyncFlakyScript(failures=2)}).call(call)  # type: ignore[arg-type]

    asyncio.run(run())


def test_turn_ids_ignore_the_global_random_seed_and_differ_after_a_fork() -> None:
    """A process that seeds ``random`` (as test tools do) or forks workers must not
    repeat ids: a repeated id makes a new write look like a resend of the last one."""
    import os
    import random

    random.seed(7)
    first = new_turn_id()
    random.seed(7)
    assert new_turn_id() != first
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        os.write(write, str(new_turn_id()).encode())
        os._exit(0)
    os.close(write)
    mine = new_turn_id()
    with os.fdopen(read) as pipe:
        theirs = int(pipe.read())
    os.waitpid(child, 0)
    assert theirs != mine
