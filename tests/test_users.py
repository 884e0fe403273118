"""A user's rights and an operator's view: summary, export, erase, one archived
conversation, forgetting an episode; sessions from the deadline indexes.

Every test runs on both shells and on a single server and the cluster (the
``store`` fixtures). Erase tests put a neighbour in the same bucket
(``buckets=1``), so the erase works next to the neighbour's keys in the same
indexes and outbox, and prove that not one byte of the neighbour changed.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from luminora_redis import SessionStore, SyncSessionStore
from luminora_redis.core.errors import InvalidInput, SessionNotFound
from luminora_redis.core.keys import KeySpace
from luminora_redis.listener.expiry_listener import ExpiryListener
from luminora_redis.ops import erasure, users

from conftest import open_store, snapshot, wait_until

TAG = "lr:{b0000}"  # the only bucket when buckets=1


def setup_user(store: Any, raw: Any, user: str, archived_too: bool = True) -> dict[str, str]:
    """A user with everything: memory, a live session with overflowed history, an archived
    conversation, delivery and sweep entries; returns the session ids."""
    store.update_affinity(user, "alicia", 30, "chat")
    store.update_affinity(user, "bruno", 5)
    store.save_fact(user, "personal_info", "name", user.title())
    store.save_fact(user, "interests", "hobby", ["astronomy", {"level": 3}])
    store.save_episode(user, "milestone", "first chat", "said hi", importance=8.0)
    store.save_episode(user, "moment", "a joke", "laughed", importance=3.0)
    store.record_trait(user, "alicia", "warmth", 0.7, "kind words")
    ids = {}
    if archived_too:
        ended = store.create_session(user, "alicia")
        store.chat_turn(ended, [("user", f"{user} one"), ("assistant", "reply one")])
        assert store.end_session(ended)
        ids["archived"] = ended
    live = store.create_session(user, "alicia", {"ttl": 3600})
    store.chat_turn(live, [("user", f"{user} a"), ("assistant", "b"), ("user", "c")])
    ids["live"] = live
    for sid in ids.values():  # what the outbox and the sweeper keep per bucket (contract)
        raw.zadd(f"{TAG}:outbox", {sid: 1})
        raw.hset(f"{TAG}:outbox:d", sid, b"body")
        raw.zadd(f"{TAG}:outbox:dead", {sid: 2})
        raw.hset(f"{TAG}:failures", sid, 1)
        raw.zadd(f"{TAG}:quarantine", {sid: 3})
    return ids


# -- summary ------------------------------------------------------------------------


def test_get_user_counts_what_is_kept_and_knows_no_stranger(make_store: Callable[..., Any],
                                                            raw: Any) -> None:
    store = make_store(buckets=1)
    assert store.get_user("nobody") is None
    ids = setup_user(store, raw, "carlos")
    summary = store.get_user("carlos")
    assert summary.user_id == "carlos"
    assert (summary.live_sessions, summary.archived_conversations, summary.personalities,
            summary.facts, summary.episodes, summary.evolution_records) == (1, 1, 2, 2, 2, 3)
    live = store.get_session(ids["live"])
    assert summary.first_seen <= summary.last_seen == live.created_at  # may share a ms
    store.save_fact("memory-only", "k", "v", 1)
    only = store.get_user("memory-only")
    assert only.facts == 1 and only.first_seen is None and only.live_sessions == 0
    with pytest.raises(InvalidInput):
        store.get_user("")


# -- export ---------------------------------------------------------------------------


def test_export_holds_everything_of_one_user_and_is_json(make_store: Callable[..., Any],
                                                       raw: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    store = make_store(buckets=1, max_history=2)  # three messages: one overflows
    ids = setup_user(store, raw, "carlos")
    setup_user(store, raw, "dana")
    before = store.get_session(ids["live"])
    monkeypatch.setattr(users, "PAGE", 2)  # every read takes several pages
    for n in range(3):
        store.save_fact("carlos", "extra", f"k{n}", n)
        store.save_episode("carlos", "small", f"e{n}", "s", importance=1.0)
    exported = store.export_user("carlos")
    assert json.loads(json.dumps(exported)) == exported
    assert exported["user_id"] == "carlos" and exported["user"]["live_sessions"] == 1
    assert [(a["personality_name"], a["points"]) for a in exported["affinities"]] == [
        ("alicia", 30), ("bruno", 5)]
    assert len(exported["facts"]) == 5
    assert [(f["category"], f["key"]) for f in exported["facts"]][:3] == [
        ("extra", "k0"), ("extra", "k1"), ("extra", "k2")]
    assert exported["facts"][3]["value"] == ["astronomy", {"level": 3}]
    assert [e["title"] for e in exported["episodes"]][:2] == ["first chat", "a joke"]
    assert len(exported["episodes"]) == 5
    assert [e["kind"] for e in exported["evolution"]] == ["affinity", "affinity", "trait"]
    [session] = exported["sessions"]
    assert session["session_id"] == ids["live"] and session["live"] is True
    assert [m["content"] for m in session["messages"]] == ["carlos a", "b", "c"]
    [archived] = exported["archived_conversations"]
    assert archived["session_id"] == ids["archived"]
    assert [m["content"] for m in archived["messages"]] == ["carlos one", "reply one"]
    assert "dana" not in json.dumps(exported)
    assert store.get_session(ids["live"]).last_activity == before.last_activity, \
        "an export is a peek: it does not slide the idle deadline"


def test_export_of_an_unknown_user_is_empty(store: Any) -> None:
    exported = store.export_user("nobody")
    assert exported["user"] is None
    assert all(exported[part] == [] for part in (
        "affinities", "facts", "episodes", "evolution", "sessions", "archived_conversations"))


def test_export_reads_archived_segments_first(make_store: Callable[..., Any], raw: Any) -> None:
    """Bounded live conversations (contract 2) move old overflow into numbered segments
    under the user's archive area; readers take segments, then overflow, then history."""
    store = make_store(buckets=1, compress_archives=False)  # lists, built on by hand
    ids = setup_user(store, raw, "carlos")
    record = f"{KeySpace('lr', 1).user('carlos').archived_prefix}"
    first_live = raw.lindex(f"{TAG}:s:{ids['live']}:h", 0)
    raw.rpush(f"{record}{ids['live']}:g:1", first_live)
    raw.hset(f"{TAG}:s:{ids['live']}:m", "segs", 1)
    first_archived = raw.lindex(f"{record}{ids['archived']}:h", 0)
    raw.rpush(f"{record}{ids['archived']}:g:1", first_archived)
    raw.rpush(f"{record}{ids['archived']}:g:2", first_archived)
    raw.hset(f"{record}{ids['archived']}", "segs", 2)
    exported = store.export_user("carlos")
    assert [m["content"] for m in exported["sessions"][0]["messages"]] == [
        "carlos a", "carlos a", "b", "c"]
    assert [m["content"] for m in exported["archived_conversations"][0]["messages"]] == [
        "carlos one", "carlos one", "carlos one", "reply one"]
    conversation = store.get_archived_conversation("carlos", ids["archived"])
    assert len(conversation.messages) == 4
    assert store.erase_user("carlos") > 0
    assert [k for k in raw.scan_iter(match="*carlos*")] == []


# -- one archived conversation, one episode -------------------------------------------


def test_get_archived_conversation_reads_only_the_users_own(make_store: Callable[..., Any],
                                                            raw: Any) -> None:
    store = make_store(buckets=1)
    ids = setup_user(store, raw, "carlos")
    conversation = store.get_archived_conversation("carlos", ids["archived"])
    assert conversation.session_id == ids["archived"] and conversation.user_id == "carlos"
    assert [m.content for m in conversation.messages] == ["carlos one", "reply one"]
    assert store.get_archived_conversation("dana", ids["archived"]) is None
    assert store.get_archived_conversation("carlos", ids["live"]) is None
    for bad in ("", "../x", "0000-zz", ids["archived"] + "x"):
        assert store.get_archived_conversation("carlos", bad) is None
    with pytest.raises(InvalidInput, match="session id must be a string"):
        store.get_archived_conversation("carlos", 42)
    [summary] = store.list_archive("carlos")
    assert summary.session_id == ids["archived"] and summary.message_count == 2


def test_delete_episode_forgets_one_episode(store: Any) -> None:
    keep = store.save_episode("carlos", "milestone", "keep", "k", importance=9.0)
    drop = store.save_episode("carlos", "moment", "drop", "d", importance=2.0)
    assert store.delete_episode("carlos", drop.episode_id) is True
    assert store.delete_episode("carlos", drop.episode_id) is False
    assert store.delete_episode("dana", keep.episode_id) is False
    assert [e.title for e in store.get_episodes("carlos")] == ["keep"]
    with pytest.raises(InvalidInput):
        store.delete_episode("carlos", "")


# -- erase ----------------------------------------------------------------------------


def test_erase_removes_every_key_of_the_user_and_nothing_of_a_neighbour(
        make_store: Callable[..., Any], raw: Any) -> None:
    store = make_store(buckets=1, max_history=2)
    neighbour = setup_user(store, raw, "dana")
    before = snapshot(raw)
    mine = setup_user(store, raw, "carlos")
    expired = store.create_session("carlos", "alicia", {"auto_cleanup": False})
    store.append_message(expired, "user", "late")
    raw.pexpire(f"{TAG}:s:{expired}", 1)  # Redis expires it: it waits for cleanup
    wait_until(lambda: store.get_session(expired) is None)
    middle = snapshot(raw)
    removed = store.erase_user("carlos")
    after = snapshot(raw)
    assert after == before, "the neighbour's keys, indexes and deliveries are untouched"
    assert removed == len(middle) - len(after) > 10
    assert store.get_user("carlos") is None
    assert store.export_user("carlos")["archived_conversations"] == []
    for sid in (*mine.values(), expired):
        assert store.get_session(sid) is None
    with pytest.raises(SessionNotFound):
        store.chat_turn(mine["live"], [("user", "still there?")])
    assert store.get_session(neighbour["live"]) is not None
    assert store.erase_user("carlos") == 0, "erasing again finds nothing"
    for hostile in ("{b0000}", "*", "dana:sessions", "dana%3A"):
        assert store.erase_user(hostile) == 0
    for bad in ("", 42, None, "dana\x00"):
        with pytest.raises(InvalidInput):
            store.erase_user(bad)
    assert snapshot(raw) == before


def test_erase_works_in_chunks_and_a_rerun_completes_a_crashed_one(
        make_store: Callable[..., Any], raw: Any, monkeypatch: pytest.MonkeyPatch,
        store_url: str, topology: str) -> None:
    store = make_store(buckets=1)
    setup_user(store, raw, "dana")
    before = snapshot(raw)
    for _ in range(5):
        store.create_session("carlos", "alicia")
        store.end_session(store.create_session("carlos", "bruno"))
    store.update_affinity("carlos", "alicia", 1)
    monkeypatch.setattr(erasure, "ERASE_CHUNK", 2)
    # A process that dies once the sessions are erased, before the archive is.
    crashing, close = open_store("blocking", store_url, cluster=topology == "cluster", buckets=1)
    archive_key = KeySpace("lr", 1).user("carlos").archive
    op = erasure.erase_user(crashing.context(), "carlos")
    step, calls = next(op), 0
    while not (step.script == "range_zset" and step.keys[0] == archive_key):
        calls += step.script == "erase_sessions"
        step = op.send(crashing._scripts[step.script](step.keys, step.args))
    op.close()
    close()
    assert calls == 3, "five sessions, two per call"
    half = store.get_user("carlos")
    assert half.live_sessions == 0 and half.archived_conversations == 5 and half.personalities == 1
    assert store.erase_user("carlos") > 0
    assert store.get_user("carlos") is None
    assert snapshot(raw) == before


def test_a_chat_turn_racing_the_erase_lands_before_it_or_fails(
        make_store: Callable[..., Any], raw: Any, shell: str, topology: str,
        store_url: str) -> None:
    store = make_store(buckets=1)
    setup_user(store, raw, "dana")
    before = snapshot(raw)
    sids = [store.create_session("carlos", "alicia") for _ in range(20)]
    racer, close = open_store("blocking", store_url, cluster=topology == "cluster", buckets=1)
    landed, refused = [0], [0]
    go = threading.Event()

    def chat() -> None:
        for n in range(10_000):
            for sid in sids:
                try:
                    racer.chat_turn(sid, [("user", f"m{n}")], last=1)
                    landed[0] += 1
                except SessionNotFound:
                    refused[0] += 1
            go.set()  # every session has taken a turn: erase while the turns go on
            if refused[0] >= len(sids):
                return

    thread = threading.Thread(target=chat)
    thread.start()
    go.wait(5)
    store.erase_user("carlos")
    thread.join(60)
    close()
    assert not thread.is_alive()
    assert landed[0] > 0 and refused[0] >= len(sids)
    for sid in sids:  # every session refuses writes once erased: nothing was recreated
        with pytest.raises(SessionNotFound):
            store.chat_turn(sid, [("user", "after")])
    assert snapshot(raw) == before


async def test_no_listener_recreates_an_erased_user(store_url: str, topology: str,
                                                    raw: Any) -> None:
    store = SessionStore.from_url(store_url, cluster=topology == "cluster", buckets=1)
    try:
        gone = await store.create_session("carlos", "alicia")
        await store.append_message(gone, "user", "hola")
        await store.update_affinity("carlos", "alicia", 5)
        raw.pexpire(f"{TAG}:s:{gone}", 1)
        deadline = time.monotonic() + 10
        while await store.get_session(gone) is not None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert raw.exists(f"{TAG}:s:{gone}:m"), "expired, waiting for its archive"
        assert await store.erase_user("carlos") > 0
        raw.zadd(f"{TAG}:deadlines", {gone: 1})  # a stale index entry, as if written late
        listener = ExpiryListener(store, notifications=False)
        assert await listener.sweep_once() == 0
        # Left: the prefix's own keys (the layout, the sweeper's due-bucket hint: a bucket
        # number and a time, nobody's data).
        hint = (await store.context()).hints.of_bucket(0).encode()  # on a cluster, its node's
        assert [key for key in raw.scan_iter(match="*") if key not in (b"lr:layout", hint)] == []
    finally:
        await store.aclose()


# -- sessions from the indexes ----------------------------------------------------------


def test_sessions_are_listed_from_the_indexes_with_their_deadlines(
        make_store: Callable[..., Any]) -> None:
    store = make_store(buckets=4)
    soon = store.create_session("carlos", "alicia", {"ttl": 30})
    later = store.create_session("dana", "alicia", {"ttl": 3600})
    manual = store.create_session("eve", "bruno", {"ttl": 0.01, "auto_cleanup": False})
    wait_until(lambda: store.get_session(manual) is None)
    listed = store.list_sessions()
    assert [entry.session_id for entry in listed] == [manual, soon, later]
    assert [entry.expired for entry in listed] == [True, False, False]
    assert listed[0].auto_cleanup is False and listed[0].user_id == "eve"
    assert listed[1].deadline == store.get_session(soon).effective_expires_at
    assert [e.session_id for e in store.list_sessions(expiring_within=60)] == [manual, soon]
    assert [e.session_id for e in store.list_sessions(limit=1)] == [manual]
    assert [e.session_id for e in store.list_sessions(user_id="dana")] == [later]
    assert store.list_sessions(user_id="dana", expiring_within=60) == []
    stats = store.deadline_stats(window=60)
    assert (stats.sessions, stats.overdue, stats.ending_soon, stats.buckets) == (3, 1, 1, 4)
    assert stats.oldest_overdue_seconds >= 0
    view = store.peek_session(manual, last=5)
    assert view.session.expired and view.last_activity is None and view.message_count == 0
    assert store.cleanup_expired_sessions(limit=10) == 1
    assert store.deadline_stats().overdue == 0
    assert store.deadline_stats().oldest_overdue_seconds is None
    assert store.list_sessions(limit=0) == []
    assert [e.session_id for e in store.list_sessions(limit=None)] == [soon, later]
    with pytest.raises(InvalidInput):
        store.list_sessions(limit=-1)


def test_archive_expired_is_a_deprecated_cleanup_expired_sessions(
        make_store: Callable[..., Any]) -> None:
    store = make_store(buckets=4)
    manual = [store.create_session("eve", "bruno", {"ttl": 0.01, "auto_cleanup": False})
              for _ in range(3)]
    wait_until(lambda: all(store.get_session(sid) is None for sid in manual))
    with pytest.warns(DeprecationWarning, match="cleanup_expired_sessions") as caught:
        assert store.archive_expired(2) == 2
    if isinstance(store, SyncSessionStore):
        assert caught[0].filename == __file__  # stacklevel: the caller's line
    assert store.cleanup_expired_sessions(None) == 1
    assert store.get_expired_sessions() == []
    assert len(store.list_archive("eve")) == 3


def test_peek_shows_the_tail_without_sliding_the_deadline(make_store: Callable[..., Any]) -> None:
    store = make_store(max_history=2)
    sid = store.create_session("carlos", "alicia", {"ttl": 3600, "max_idle": 600})
    store.chat_turn(sid, [("user", f"m{n}") for n in range(5)])
    before = store.get_session(sid)
    view = store.peek_session(sid, last=3)
    assert [m.content for m in view.tail] == ["m2", "m3", "m4"]
    assert view.message_count == 5 and not view.session.expired
    assert view.session.deadline == before.effective_expires_at
    assert [m.content for m in store.peek_session(sid, last=10).tail] == [
        f"m{n}" for n in range(5)]
    assert store.peek_session(sid, last=0).tail == []
    assert store.get_session(sid).last_activity == before.last_activity
    assert store.peek_session("0000-" + "0" * 32) is None
    assert store.peek_session("nonsense") is None
