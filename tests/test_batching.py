"""The rules of sending script calls (``io/batching.py``), without a server."""

from __future__ import annotations

from redis.exceptions import (
    AskError,
    ConnectionError,
    MovedError,
    NoScriptError,
    ResponseError,
    TimeoutError,
    TryAgainError,
)

from luminora_redis.io import batching
from luminora_redis.io.batching import Resend


def test_a_call_is_one_evalsha() -> None:
    assert batching.command("abc", ("k1", "k2"), (1, "a")) == ("EVALSHA", "abc", 2, "k1", "k2", 1, "a")


def test_noscript_is_sent_again_once() -> None:
    error = NoScriptError("NOSCRIPT No matching script.")
    for cluster in (False, True):
        assert batching.after_error(error, retried=False, cluster=cluster) is Resend.RELOAD
        assert batching.after_error(error, retried=True, cluster=cluster) is Resend.RAISE


def test_redirections_are_followed_on_a_cluster_only() -> None:
    for error in (MovedError("3999 127.0.0.1:6381"), AskError("3999 127.0.0.1:6381"),
                  TryAgainError("TRYAGAIN")):
        assert batching.after_error(error, retried=False, cluster=True) is Resend.REROUTE
        assert batching.after_error(error, retried=False, cluster=False) is Resend.RAISE


def test_every_other_error_is_the_calls_own_and_a_lost_connection_is_never_resent() -> None:
    for error in (ResponseError("WRONGTYPE"), ConnectionError("gone"), TimeoutError("late")):
        assert batching.after_error(error, retried=False, cluster=True) is Resend.RAISE
    assert batching.connection_lost(ConnectionError("gone"))
    assert batching.connection_lost(TimeoutError("late"))
    assert not batching.connection_lost(ResponseError("WRONGTYPE"))
    assert not batching.connection_lost(NoScriptError("NOSCRIPT"))


def test_calls_left_unanswered_by_a_failed_connection_get_its_error() -> None:
    error = ConnectionError("gone")
    assert batching.unanswered([1, 2], 4, error) == [1, 2, error, error]
    assert batching.unanswered([1, 2], 2, error) == [1, 2]


def test_a_batch_is_split_by_node_and_its_replies_merged_back_in_order() -> None:
    calls = ["a1", "b1", "a2", "c1", "b2"]
    groups = batching.split(calls, lambda call: call[0])
    assert groups == {"a": [0, 2], "b": [1, 4], "c": [3]}
    replies = batching.merge(len(calls), ((indexes, [calls[i].upper() for i in indexes])
                                          for indexes in groups.values()))
    assert replies == ["A1", "B1", "A2", "C1", "B2"]


def test_a_batch_raises_its_first_error_once_every_reply_is_read() -> None:
    first, second = ResponseError("one"), ResponseError("two")
    assert batching.first_error([1, first, 2, second]) is first
    assert batching.first_error([1, 2]) is None
