"""Running summaries against a real Redis, both shells, the cluster included.

``set_summary(sid, text, through)`` stores a summary of the first ``through``
messages atomically, refused when a later one is stored; the context of
``chat_turn`` and ``get_history`` then starts with it and counts it towards the
budget; the summarized messages stay, in the history and in the archive.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from luminora_redis import InvalidInput, Role, SessionExpired, SessionNotFound, SummaryOutdated

from conftest import session_keys, wait_until

LONG = {"ttl": 60, "max_idle": 30}


@pytest.fixture
def counted(make_store: Callable[..., Any]) -> Any:
    """A store that counts one token per character."""
    return make_store(token_counter=len)


def conversation(store: Any, count: int = 6) -> str:
    sid = store.create_session("carlos", "alicia", LONG)
    store.append_messages(sid, [("user" if n % 2 == 0 else "assistant", f"m{n}")
                                for n in range(count)])
    return sid


def is_summary(message: Any, text: str, through: int) -> bool:
    return bool(message.role == Role.SYSTEM and message.content == text
                and message.metadata == {"summary": True, "through": through})


def test_the_context_starts_with_the_summary_and_only_later_messages_follow(counted: Any) -> None:
    sid = conversation(counted)
    stored = counted.set_summary(sid, "they greeted", through=4)
    assert is_summary(stored, "they greeted", 4) and stored.tokens == len("they greeted")
    context = counted.chat_turn(sid, [("user", "m6")], last=10)
    assert is_summary(context[0], "they greeted", 4) and context[0].tokens == 12
    assert context[0].timestamp == stored.timestamp
    assert [m.content for m in context[1:]] == ["m4", "m5", "m6"]
    assert [m.content for m in counted.chat_turn(sid, [], last=2)[1:]] == ["m5", "m6"]
    history = counted.get_history(sid)
    assert is_summary(history[0], "they greeted", 4)
    assert [m.content for m in history[1:]] == ["m4", "m5", "m6"]
    assert [m.content for m in counted.get_history(sid, last=1)[1:]] == ["m6"]


def test_a_summary_of_everything_leaves_only_itself(counted: Any) -> None:
    sid = conversation(counted, 3)
    counted.set_summary(sid, "all of it", through=3)
    context = counted.chat_turn(sid, [], last=10)
    assert len(context) == 1 and is_summary(context[0], "all of it", 3)


def test_the_summary_counts_towards_the_budget(counted: Any) -> None:
    sid = conversation(counted)  # m0..m5, two tokens each
    counted.set_summary(sid, "x" * 10, through=2)
    context = counted.chat_turn(sid, [], last=10, budget=14)
    assert is_summary(context[0], "x" * 10, 2)
    assert [m.content for m in context[1:]] == ["m4", "m5"]
    everything = counted.get_history(sid, budget=1000)
    assert [m.content for m in everything[1:]] == ["m2", "m3", "m4", "m5"]
    assert [m.content for m in counted.chat_turn(sid, [], budget=10)] == ["x" * 10]
    assert counted.chat_turn(sid, [], budget=9) == []  # the summary alone does not fit


def test_a_later_summary_wins_and_an_earlier_one_is_refused(counted: Any) -> None:
    sid = conversation(counted)
    counted.set_summary(sid, "first four", through=4)
    with pytest.raises(SummaryOutdated) as refused:
        counted.set_summary(sid, "first two", through=2)
    assert refused.value.stored == 4 and refused.value.through == 2
    assert is_summary(counted.chat_turn(sid, [])[0], "first four", 4)
    counted.set_summary(sid, "first four, again", through=4)  # the same message: replaced
    counted.set_summary(sid, "first five", through=5)
    assert is_summary(counted.chat_turn(sid, [])[0], "first five", 5)


@pytest.mark.parametrize("through", [0, -1, 7, 1.0, True, "3"])
def test_through_must_lie_within_the_conversation(counted: Any, raw: Any, through: object) -> None:
    sid = conversation(counted)
    with pytest.raises(InvalidInput):
        counted.set_summary(sid, "summary", through=through)
    assert not raw.exists(session_keys(sid).summary)
    assert len(counted.chat_turn(sid, [])) == 6


def test_a_summary_of_no_live_session_is_refused(counted: Any) -> None:
    with pytest.raises(SessionNotFound):
        counted.set_summary("0001-" + "0" * 32, "summary", through=1)
    sid = counted.create_session("carlos", "alicia", {"ttl": 0.2, "max_idle": 60})
    counted.append_message(sid, "user", "hola")
    wait_until(lambda: counted.is_session_expired(sid), timeout=5)
    with pytest.raises(SessionExpired):
        counted.set_summary(sid, "summary", through=1)


def test_the_archive_keeps_every_message_and_the_last_summary(counted: Any, raw: Any) -> None:
    sid = conversation(counted)
    counted.set_summary(sid, "first three", through=3)
    counted.set_summary(sid, "first five", through=5)
    assert counted.end_session(sid)
    assert not raw.exists(session_keys(sid).summary)
    archived = counted.get_archived_conversation("carlos", sid)
    assert [m.content for m in archived.messages] == [f"m{n}" for n in range(6)]
    assert archived.summary is not None and is_summary(archived.summary, "first five", 5)
    assert archived.summary.tokens == len("first five")
    plain = conversation(counted)
    counted.end_session(plain)
    assert counted.get_archived_conversation("carlos", plain).summary is None


def test_deleting_or_erasing_removes_the_summary(counted: Any, raw: Any) -> None:
    sid = conversation(counted)
    counted.set_summary(sid, "summary", through=2)
    assert counted.delete_session(sid)
    assert not raw.exists(session_keys(sid).summary)
    other = conversation(counted)
    counted.set_summary(other, "summary", through=2)
    counted.erase_user("carlos")
    assert not raw.exists(session_keys(other).summary)
