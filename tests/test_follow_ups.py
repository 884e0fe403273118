"""Work after a commit (a full overflow's move into a segment after a chat turn, the
compression of a conversation just archived) never makes the committed operation
look failed when Redis or the library fails it: that is logged. A bug in it (any
other exception) propagates. Both shells, single server and cluster."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from luminora_redis import InvalidInput, UnexpectedReply
from luminora_redis.core.context import Context
from luminora_redis.core.keys import UserKeys
from luminora_redis.core.scripts import Call, Op
from luminora_redis.core.settings import StoreSettings
from luminora_redis.ops import compaction, segments, sessions

from conftest import user_keys

LONG = {"ttl": 60, "max_idle": 30}
SMALL = {"max_history": 3, "max_overflow": 4, "page_size": 2}


def contents(messages: list[Any]) -> list[str]:
    return [message.content for message in messages]


def raising(error: BaseException) -> Callable[..., Op[Any]]:
    """An operation that fails with ``error`` before its first step."""
    def operation(*_: Any) -> Op[Any]:
        raise error
        yield  # a generator, like the operation it replaces

    return operation


def _full_turn() -> tuple[Any, Any]:
    """A chat turn whose reply shows a full overflow, driven by hand up to its follow-up."""
    ctx = Context(StoreSettings(max_overflow=4), 1024)
    turn = sessions.chat_turn(ctx, ctx.keys.new_session_id("carlos"), [("user", "x")], last=0)
    next(turn)
    follow_up = turn.send([1, 0, 1_700_000_000_000, 4])
    assert isinstance(follow_up, Call) and follow_up.script == "read_segments"
    return turn, follow_up


@pytest.mark.parametrize("error", [redis.ConnectionError("gone"), redis.ResponseError("OOM"),
                                   ConnectionResetError(), TimeoutError(),
                                   UnexpectedReply("odd"), InvalidInput("bad")],
                         ids=lambda error: type(error).__name__)
def test_a_redis_or_library_error_in_the_segment_move_is_not_the_turns(error: Exception) -> None:
    turn, _ = _full_turn()
    with pytest.raises(StopIteration) as done:
        turn.throw(error)
    assert done.value.value == []


@pytest.mark.parametrize("error", [KeyError("x"), AttributeError("x"), TypeError("x")],
                         ids=lambda error: type(error).__name__)
def test_a_bug_in_the_segment_move_propagates(error: Exception) -> None:
    turn, _ = _full_turn()
    with pytest.raises(type(error)):
        turn.throw(error)


def test_a_bug_in_the_segment_move_reaches_the_caller_of_the_committed_turn(
        make_store: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    store = make_store(**SMALL)
    sid = store.create_session("carlos", "alicia", LONG)
    store.chat_turn(sid, [("user", f"m{n}") for n in range(3)])
    monkeypatch.setattr(segments, "archive_segment", raising(AttributeError("a bug")))
    with pytest.raises(AttributeError, match="a bug"):
        store.chat_turn(sid, [("user", f"m{n}") for n in range(3, 8)])  # fills the overflow
    assert contents(store.get_history(sid)) == [f"m{n}" for n in range(8)]  # it committed


# -- compression after an archive ----------------------------------------------------------


@pytest.fixture
def wrong_type_compaction(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Compaction whose first script call fails on the server (WRONGTYPE): a real Redis error."""
    def failing(user: UserKeys, session_id: str, page: int = 0) -> Op[int]:
        yield Call("range_list", (user.archive,), (0, 0))  # LLEN of a sorted set
        raise AssertionError("the call above fails")

    monkeypatch.setattr(compaction, "compact_conversation", failing)
    yield


def test_a_redis_error_compressing_an_archive_is_logged_and_the_end_succeeds(
        make_store: Callable[..., Any], raw: Any, wrong_type_compaction: None,
        caplog: pytest.LogCaptureFixture) -> None:
    store = make_store()
    sid = store.create_session("carlos", "alicia", LONG)
    store.chat_turn(sid, [("user", "hola"), ("assistant", "¡hola!")])
    with caplog.at_level(logging.WARNING, logger="luminora_redis.archive"):
        assert store.end_session(sid) is True
    assert "ResponseError" in caplog.text and "stays readable uncompressed" in caplog.text
    assert raw.type(user_keys("carlos").archived(sid)[1]) == b"list"
    (conversation,) = store.get_archived_conversations("carlos")
    assert contents(conversation.messages) == ["hola", "¡hola!"]


@pytest.mark.parametrize("bug", [KeyError("frame"), AttributeError("pack")],
                         ids=lambda error: type(error).__name__)
def test_a_bug_compressing_an_archive_propagates_after_the_commit(
        make_store: Callable[..., Any], monkeypatch: pytest.MonkeyPatch,
        bug: Exception) -> None:
    store = make_store()
    sid = store.create_session("carlos", "alicia", LONG)
    store.chat_turn(sid, [("user", "hola")])
    monkeypatch.setattr(compaction, "compact_conversation", raising(bug))
    with pytest.raises(type(bug)):
        store.end_session(sid)
    (conversation,) = store.get_archived_conversations("carlos")  # the archive committed
    assert conversation.session_id == sid and contents(conversation.messages) == ["hola"]
    assert store.end_session(sid) is False
