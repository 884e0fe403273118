"""Token budgets against a real Redis, both shells, the cluster included.

Each message's count is computed once, when it is written, by the store's
``token_counter``, and stored with the record; ``chat_turn`` and ``get_history``
with a ``budget`` return the longest run of newest messages whose stored counts
fit, summed by the script in the turn's own round trip.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack
import pytest

from luminora_redis import InvalidInput, Message

from conftest import server_ms, session_keys

LONG = {"ttl": 60, "max_idle": 30}


class Counter:
    """A token counter that counts its calls: one token per character."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def __call__(self, text: str) -> int:
        self.texts.append(text)
        return len(text)


@pytest.fixture
def counter() -> Counter:
    return Counter()


@pytest.fixture
def counted(make_store: Callable[..., Any], counter: Counter) -> Any:
    return make_store(token_counter=counter)


def contents(context: list[Any]) -> list[str]:
    return [message.content for message in context]


def test_each_message_is_counted_once_when_written_and_never_again(counted: Any,
                                                                  counter: Counter) -> None:
    sid = counted.create_session("carlos", "alicia", LONG)
    stored = counted.append_message(sid, "user", "hola")
    assert stored.tokens == 4 and counter.texts == ["hola"]
    context = counted.chat_turn(sid, [("user", "¿qué tal?"), ("assistant", "bien")], last=10,
                                budget=100)
    assert counter.texts == ["hola", "¿qué tal?", "bien"]
    assert [m.tokens for m in context] == [4, 9, 4]
    history = counted.get_history(sid, budget=100)
    assert [m.tokens for m in history] == [4, 9, 4]
    assert all(isinstance(m, Message) for m in history)
    counted.chat_turn(sid, [], last=3, budget=5)
    counted.get_history(sid)
    assert counter.texts == ["hola", "¿qué tal?", "bien"]  # reads never count again


def test_the_budget_keeps_the_longest_newest_run_that_fits_exactly(counted: Any) -> None:
    sid = counted.create_session("carlos", "alicia", LONG)
    counted.append_messages(sid, [("user", "a" * 5), ("assistant", "b" * 3),
                                  ("user", "c" * 4), ("assistant", "d" * 2)])
    assert contents(counted.chat_turn(sid, [], budget=9)) == ["bbb", "cccc", "dd"]
    assert contents(counted.chat_turn(sid, [], budget=8)) == ["cccc", "dd"]
    assert contents(counted.get_history(sid, budget=14)) == ["aaaaa", "bbb", "cccc", "dd"]
    assert contents(counted.get_history(sid, budget=13)) == ["bbb", "cccc", "dd"]
    # the run stops at the first message that does not fit, even if an older one would
    assert contents(counted.chat_turn(sid, [], budget=2)) == ["dd"]
    assert contents(counted.chat_turn(sid, [], budget=1)) == []
    assert counted.chat_turn(sid, [], budget=0) == []


def test_a_newest_message_over_the_budget_leaves_the_run_empty(counted: Any) -> None:
    sid = counted.create_session("carlos", "alicia", LONG)
    context = counted.chat_turn(sid, [("user", "short"), ("assistant", "x" * 50)], budget=49)
    assert context == []
    assert len(counted.get_history(sid)) == 2  # written all the same


def test_last_caps_the_run_as_well(counted: Any) -> None:
    sid = counted.create_session("carlos", "alicia", LONG)
    counted.append_messages(sid, [("user", f"m{n}") for n in range(6)])
    assert contents(counted.chat_turn(sid, [], last=2, budget=1000)) == ["m4", "m5"]
    assert contents(counted.get_history(sid, last=4, budget=6)) == ["m3", "m4", "m5"]
    assert counted.chat_turn(sid, [], last=0, budget=1000) == []


def test_the_run_reaches_into_the_overflow(make_store: Callable[..., Any],
                                           counter: Counter) -> None:
    store = make_store(token_counter=counter, max_history=3)
    sid = store.create_session("carlos", "alicia", LONG)
    for n in range(7):
        store.chat_turn(sid, [("user", f"m{n}")], last=1)
    assert contents(store.chat_turn(sid, [], last=100, budget=10)) == [
        "m2", "m3", "m4", "m5", "m6"]
    assert contents(store.get_history(sid, budget=1000)) == [f"m{n}" for n in range(7)]


@pytest.mark.parametrize("budget", [-1, 1.5, True, "10", [3]])
def test_an_invalid_budget_is_refused_and_nothing_is_written(counted: Any, budget: object,
                                                             raw: Any) -> None:
    sid = counted.create_session("carlos", "alicia", LONG)
    with pytest.raises(InvalidInput, match="budget"):
        counted.chat_turn(sid, [("user", "hola")], budget=budget)
    with pytest.raises(InvalidInput, match="budget"):
        counted.get_history(sid, budget=budget)
    assert raw.llen(session_keys(sid).history) == 0


@pytest.mark.parametrize("text", ["x" * 40, "x" * 36 + "λab"])  # "λ" is 0xce 0xbb in UTF-8
def test_a_record_stored_without_a_count_costs_an_estimate(counted: Any, raw: Any,
                                                           text: str) -> None:
    sid = counted.create_session("carlos", "alicia", LONG)
    raw.hdel(session_keys(sid).meta, "tk")  # as a session created by 0.2
    old = msgpack.packb(["user", text, None, server_ms(raw)])  # as 0.2 stored it
    raw.rpush(session_keys(sid).history, old)
    counted.append_message(sid, "assistant", "new")
    context = counted.chat_turn(sid, [], budget=1000)
    assert [(m.content, m.tokens) for m in context] == [(text, None), ("new", 3)]
    # the estimate: a quarter of the record's bytes less the 12 that are not content
    estimate = -(-(len(old) - 12) // 4)
    assert contents(counted.chat_turn(sid, [], budget=3 + estimate)) == [text, "new"]
    assert contents(counted.chat_turn(sid, [], budget=2 + estimate)) == ["new"]


def test_the_default_counter_is_the_estimate(make_store: Callable[..., Any]) -> None:
    store = make_store()
    sid = store.create_session("carlos", "alicia", LONG)
    context = store.chat_turn(sid, [("user", "a" * 9), ("assistant", "ñ" * 4)])
    assert [m.tokens for m in context] == [3, 2]
    assert store.count_tokens("a" * 9) == 3


def test_archive_frames_keep_the_counts_byte_for_byte() -> None:
    from luminora_redis.core import frames
    from luminora_redis.core.codec import encode_message

    stamp = msgpack.packb(1_700_000_000_123)
    counted = [encode_message("user", "hola", None, 1 << 20, 7) + stamp,
               encode_message("assistant", "qué tal", {"k": 1}, 1 << 20, 0) + stamp]
    old = msgpack.packb(["user", "antes", None, 1_700_000_000_000])
    for raws in (counted, [old, *counted], [old]):
        frame = frames.pack_frame(raws)
        assert frames.read_frame(frame) == raws
        layout = msgpack.unpackb(frames._decompressor().decompress(frame))[0]
        assert layout == (frames.COLUMNS if raws == [old] else frames.COUNTED)


def test_tiktoken_counter_works_with_no_network(tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                                make_store: Callable[..., Any]) -> None:
    import socket

    pytest.importorskip("tiktoken", reason="the tokens extra is part of the test extra")
    from luminora_redis.tokens import tiktoken_counter

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))  # empty: nothing cached

    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("tiktoken_counter reached for the network")

    with monkeypatch.context() as blocked:
        blocked.setattr(socket.socket, "connect", no_network)
        blocked.setattr(socket, "create_connection", no_network)
        count = tiktoken_counter("cl100k_base")
        assert count("hello world") == 2
        assert count("<|endoftext|>") > 1  # special tokens count as plain text
    store = make_store(token_counter=count)
    sid = store.create_session("carlos", "alicia", LONG)
    assert [m.tokens for m in store.chat_turn(sid, [("user", "hello world")])] == [2]


def test_tiktoken_counter_refuses_an_encoding_no_package_ships() -> None:
    pytest.importorskip("tiktoken", reason="the tokens extra is part of the test extra")
    from luminora_redis.core.errors import ConfigurationError
    from luminora_redis.tokens import tiktoken_counter

    with pytest.raises(ConfigurationError, match="allow_download"):
        tiktoken_counter("o200k_base")


def test_the_langchain_adapter_counts_each_message_once(store_url: str, topology: str,
                                                        counter: Counter) -> None:
    pytest.importorskip("langchain_core")
    from langchain_core.messages import AIMessage, HumanMessage

    from luminora_redis import SyncSessionStore
    from luminora_redis.compat.langchain import LuminoraChatMessageHistory

    store = SyncSessionStore.from_url(store_url, cluster=topology == "cluster",
                                      token_counter=counter)
    try:
        sid = store.create_session("carlos", "alicia", LONG)
        history = LuminoraChatMessageHistory(sid, sync_store=store)
        history.add_messages([HumanMessage("hola"), AIMessage("¿qué tal?")])
        assert [m.content for m in history.messages] == ["hola", "¿qué tal?"]
        assert counter.texts == ["hola", "¿qué tal?"]
        assert [m.tokens for m in store.get_history(sid, budget=100)] == [4, 9]
    finally:
        store.close()


def test_a_turn_that_brings_a_larger_message_is_summed_in_full(counted: Any) -> None:
    """The script skips reading counts when the messages asked for times the largest
    count ever appended fit the budget; a turn's own larger message must count."""
    sid = counted.create_session("carlos", "alicia", LONG)
    counted.append_messages(sid, [("user", "ab"), ("assistant", "cd")])
    assert contents(counted.chat_turn(sid, [], budget=4)) == ["ab", "cd"]
    context = counted.chat_turn(sid, [("user", "x" * 30)], budget=20)
    assert context == []
    assert contents(counted.chat_turn(sid, [("assistant", "ok")], budget=33)) == [
        "x" * 30, "ok"]
    assert contents(counted.chat_turn(sid, [], last=2, budget=31)) == ["ok"]  # 32 > 31
