"""Sessions against a real Redis, in both shells: ids, deadlines, expiry, history, archive.

Deadlines are checked against the server's own clock and the session hash's
PEXPIRETIME; expiry uses millisecond TTLs and polls, never sleeps.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
import redis

from luminora_redis import (
    ArchiveReason,
    InvalidInput,
    Message,
    MessageTooLarge,
    Role,
    SessionExpired,
    SessionNotFound,
    SyncSessionStore,
)

from conftest import KEYS, pexpiretime, server_ms, session_keys, snapshot, wait_until

LONG = {"ttl": 60, "max_idle": 30}


def wait_for_server_clock_past(raw: redis.Redis, ms: int) -> None:
    wait_until(lambda: server_ms(raw) > ms, timeout=5)


def to_ms(moment: Any) -> int:
    return round(moment.timestamp() * 1000)


def session_key_names(raw: redis.Redis, session_id: str) -> list[bytes]:
    return sorted(raw.scan_iter(match=f"*{session_id}*", count=1000))


def expire(store: Any, session_id: str) -> None:
    wait_until(lambda: store.is_session_expired(session_id), timeout=5)


@pytest.fixture
def expired(store: Any, raw: redis.Redis) -> str:
    """A session with one message whose absolute deadline has passed (not archived)."""
    session_id = store.create_session("carlos", "alicia", {"ttl": 0.2, "max_idle": 60})
    store.append_message(session_id, "user", "before expiry")
    expire(store, session_id)
    assert not raw.exists(session_keys(session_id).session)
    return session_id


# -- ids ---------------------------------------------------------------------------------


def test_session_ids_carry_128_random_bits_after_the_users_bucket(store: Any) -> None:
    ids = [store.create_session("carlos", "alicia", LONG) for _ in range(300)]
    assert len(set(ids)) == len(ids)
    bucket = f"{KEYS.bucket_of_user('carlos'):04x}"
    randoms = []
    for session_id in ids:
        head, _, random_part = session_id.partition("-")
        assert head == bucket
        assert len(random_part) == 32
        randoms.append(int(random_part, 16))
    # Every one of the 128 bits takes both values somewhere: no fixed or truncated bits.
    ones = 0
    zeros = 0
    for value in randoms:
        ones |= value
        zeros |= ~value & ((1 << 128) - 1)
    assert ones == zeros == (1 << 128) - 1


# -- what get_session reports ------------------------------------------------------------


def test_get_session_reports_the_session_with_aware_utc_datetimes(store: Any,
                                                                  raw: redis.Redis) -> None:
    before = server_ms(raw)
    session_id = store.create_session("carlos", "alicia", {"ttl": 60, "max_idle": 20})
    after = server_ms(raw)
    session = store.get_session(session_id)
    assert (session.session_id, session.user_id, session.personality_name) == (
        session_id, "carlos", "alicia")
    for moment in (session.created_at, session.expires_at, session.last_activity,
                   session.effective_expires_at):
        assert moment.utcoffset() == timedelta(0)
    assert before <= to_ms(session.created_at) <= after
    assert session.last_activity == session.created_at
    assert session.expires_at - session.created_at == timedelta(seconds=60)
    assert session.effective_expires_at - session.last_activity == timedelta(seconds=20)
    assert (session.ttl, session.max_idle, session.auto_cleanup) == (60, 20, True)


def test_without_config_a_session_lives_an_hour_with_half_an_hour_idle(store: Any,
                                                                      raw: redis.Redis) -> None:
    session_id = store.create_session("carlos", "alicia")
    session = store.get_session(session_id)
    assert (session.ttl, session.max_idle) == (3600, 1800)
    assert session.expires_at - session.created_at == timedelta(hours=1)
    deadline = pexpiretime(raw, session_keys(session_id).session)
    assert deadline == to_ms(session.created_at) + 1_800_000


def test_durations_may_be_fractions_of_a_second(store: Any) -> None:
    session_id = store.create_session("carlos", "alicia", {"ttl": 90.5, "max_idle": 30.25})
    session = store.get_session(session_id)
    assert session.expires_at - session.created_at == timedelta(seconds=90.5)
    assert session.effective_expires_at - session.last_activity == timedelta(seconds=30.25)
    assert (session.ttl, session.max_idle) == (90.5, 30.25)


def test_the_session_hash_expires_at_the_effective_deadline(store: Any, raw: redis.Redis) -> None:
    session_id = store.create_session("carlos", "alicia", LONG)
    store.append_message(session_id, "user", "hola")
    session = store.get_session(session_id)
    assert pexpiretime(raw, session_keys(session_id).session) == to_ms(session.effective_expires_at)
    assert session.effective_expires_at == min(
        session.last_activity + timedelta(seconds=30), session.expires_at)


def test_when_max_idle_exceeds_ttl_the_absolute_deadline_binds(store: Any,
                                                              raw: redis.Redis) -> None:
    session_id = store.create_session("carlos", "alicia", {"ttl": 60, "max_idle": 120})
    key = session_keys(session_id).session
    assert 59_000 < raw.pttl(key) <= 60_000
    assert store.touch(session_id)
    session = store.get_session(session_id)
    assert session.effective_expires_at == session.expires_at
    assert pexpiretime(raw, key) == to_ms(session.expires_at)


def test_the_idle_deadline_never_passes_the_absolute_one(store: Any, raw: redis.Redis) -> None:
    session_id = store.create_session("carlos", "alicia", {"ttl": 10, "max_idle": 9.9})
    created = to_ms(store.get_session(session_id).created_at)
    wait_for_server_clock_past(raw, created + 150)  # now + max_idle is past the absolute deadline
    assert store.touch(session_id)
    session = store.get_session(session_id)
    assert session.effective_expires_at == session.expires_at
    assert pexpiretime(raw, session_keys(session_id).session) == created + 10_000


ACTIVITY = {
    "touch": lambda store, sid: store.touch(sid),
    "append_message": lambda store, sid: store.append_message(sid, "user", "hi"),
    "append_messages": lambda store, sid: store.append_messages(sid, [("user", "hi")]),
    "get_history": lambda store, sid: store.get_history(sid),
    "chat_turn": lambda store, sid: store.chat_turn(sid, []),
}


@pytest.mark.parametrize("activity", sorted(ACTIVITY))
def test_activity_slides_the_idle_deadline(store: Any, raw: redis.Redis, activity: str) -> None:
    session_id = store.create_session("carlos", "alicia", LONG)
    key = session_keys(session_id).session
    first = store.get_session(session_id)
    wait_for_server_clock_past(raw, to_ms(first.last_activity) + 5)
    ACTIVITY[activity](store, session_id)
    later = store.get_session(session_id)
    assert later.last_activity > first.last_activity
    assert later.effective_expires_at == later.last_activity + timedelta(seconds=30)
    assert pexpiretime(raw, key) == to_ms(later.effective_expires_at)
    assert later.expires_at == first.expires_at


PEEKS = {
    "get_session": lambda store, sid: store.get_session(sid),
    "is_session_expired": lambda store, sid: store.is_session_expired(sid),
    "get_mood": lambda store, sid: store.get_mood(sid),
    "list_user_sessions": lambda store, sid: store.list_user_sessions("carlos"),
    "save_mood": lambda store, sid: store.save_mood(sid, "shy", 0.8),
}


@pytest.mark.parametrize("peek", sorted(PEEKS))
def test_reading_the_session_or_its_mood_does_not_slide_the_deadline(
        store: Any, raw: redis.Redis, peek: str) -> None:
    session_id = store.create_session("carlos", "alicia", LONG)
    key = session_keys(session_id).session
    first = store.get_session(session_id)
    deadline = pexpiretime(raw, key)
    wait_for_server_clock_past(raw, to_ms(first.last_activity) + 5)
    PEEKS[peek](store, session_id)
    assert pexpiretime(raw, key) == deadline
    assert store.get_session(session_id).last_activity == first.last_activity


# -- expiry ------------------------------------------------------------------------------


def test_a_session_expires_by_itself_at_its_idle_deadline(store: Any, raw: redis.Redis) -> None:
    session_id = store.create_session("carlos", "alicia", {"ttl": 60, "max_idle": 0.1})
    assert not store.is_session_expired(session_id)
    wait_until(lambda: not raw.exists(session_keys(session_id).session), timeout=5)
    assert store.is_session_expired(session_id)
    assert store.get_session(session_id) is None


def test_touching_an_expired_session_returns_false_and_writes_nothing(
        store: Any, raw: redis.Redis, expired: str) -> None:
    before = snapshot(raw)
    assert store.touch(expired) is False
    assert snapshot(raw) == before


WRITES = {
    "append_message": lambda store, sid: store.append_message(sid, "user", "late"),
    "append_messages": lambda store, sid: store.append_messages(sid, [("user", "late")]),
    "chat_turn": lambda store, sid: store.chat_turn(sid, [("user", "late")]),
    "chat_turn_without_messages": lambda store, sid: store.chat_turn(sid, []),
    "get_history": lambda store, sid: store.get_history(sid),
    "save_mood": lambda store, sid: store.save_mood(sid, "sad", 0.3),
}


@pytest.mark.parametrize("write", sorted(WRITES))
def test_an_expired_session_raises_session_expired_and_is_not_resurrected(
        store: Any, raw: redis.Redis, expired: str, write: str) -> None:
    before = snapshot(raw)
    with pytest.raises(SessionExpired):
        WRITES[write](store, expired)
    assert snapshot(raw) == before
    assert not raw.exists(session_keys(expired).session)
    assert store.get_session(expired) is None


def test_an_expired_session_reads_as_gone(store: Any, expired: str) -> None:
    assert store.is_session_expired(expired) is True
    assert store.get_session(expired) is None
    assert store.get_mood(expired) is None


def test_a_session_that_never_existed_is_expired_and_not_found(store: Any) -> None:
    """is_session_expired is ``get_session(...) is None``: every string that names no live
    session reads as expired (ids are random and not recorded once archived, so a
    well-formed id never issued is not told apart); a non-string is a caller's error."""
    unknown = KEYS.new_session_id("carlos")
    assert store.is_session_expired(unknown) is True
    for malformed in ("", "nonsense", "ffff-" + "0" * 32):
        assert store.is_session_expired(malformed) is True
    ended = store.create_session("carlos", "alicia", LONG)
    deleted = store.create_session("carlos", "alicia", LONG)
    assert store.is_session_expired(ended) is False
    store.end_session(ended)
    store.delete_session(deleted)
    assert store.is_session_expired(ended) is True
    assert store.is_session_expired(deleted) is True
    with pytest.raises(InvalidInput):
        store.is_session_expired(42)
    assert store.touch(unknown) is False
    with pytest.raises(SessionNotFound) as caught:
        store.append_message(unknown, "user", "hi")
    assert not isinstance(caught.value, SessionExpired)


def test_list_user_sessions_returns_only_the_users_live_sessions_oldest_first(
        store: Any, raw: redis.Redis) -> None:
    first = store.create_session("carlos", "alicia", LONG)
    wait_for_server_clock_past(raw, to_ms(store.get_session(first).created_at))
    second = store.create_session("carlos", "bruno", LONG)
    short = store.create_session("carlos", "alicia", {"ttl": 0.05})
    ended = store.create_session("carlos", "alicia", LONG)
    store.create_session("maria", "alicia", LONG)
    store.end_session(ended)
    expire(store, short)
    sessions = store.list_user_sessions("carlos")
    assert [s.session_id for s in sessions] == [first, second]
    assert [s.personality_name for s in sessions] == ["alicia", "bruno"]
    assert store.list_user_sessions("nobody") == []


# -- messages ----------------------------------------------------------------------------


def test_chat_turn_appends_and_returns_the_last_n_oldest_first(store: Any) -> None:
    session_id = store.create_session("carlos", "alicia", LONG)
    store.append_messages(session_id, [("user", f"m{n}") for n in range(5)])
    context = store.chat_turn(session_id, [("user", "m5"), ("assistant", "m6")], last=3)
    assert [m.content for m in context] == ["m4", "m5", "m6"]
    assert [m.role for m in context] == [Role.USER, Role.USER, Role.ASSISTANT]
    assert [m.content for m in store.get_history(session_id)] == [f"m{n}" for n in range(7)]


def test_chat_turn_with_last_zero_appends_and_returns_nothing(store: Any) -> None:
    session_id = store.create_session("carlos", "alicia", LONG)
    assert store.chat_turn(session_id, [("user", "hola")], last=0) == []
    assert [m.content for m in store.get_history(session_id)] == ["hola"]


def test_a_turn_with_one_bad_message_writes_none_of_them(store: Any, raw: redis.Redis) -> None:
    session_id = store.create_session("carlos", "alicia", LONG)
    store.chat_turn(session_id, [("user", "first")])
    before = snapshot(raw)
    with pytest.raises(InvalidInput):
        store.chat_turn(session_id, [("user", "fine"), ("wizard", "bad role")])
    assert snapshot(raw) == before


def test_the_messages_of_one_turn_share_one_server_timestamp(store: Any, raw: redis.Redis) -> None:
    session_id = store.create_session("carlos", "alicia", LONG)
    before = server_ms(raw)
    context = store.chat_turn(session_id, [("user", "a"), ("assistant", "b"), ("tool", "c")])
    after = server_ms(raw)
    stamps = {m.timestamp for m in context}
    assert len(stamps) == 1
    stamp = stamps.pop()
    assert stamp.utcoffset() == timedelta(0)
    assert before <= to_ms(stamp) <= after


def test_concurrent_turns_never_interleave(redis_url: str) -> None:
    """chat_turn appends a turn in one script: another turn cannot land in the middle."""
    with SyncSessionStore.from_url(redis_url) as store:
        session_id = store.create_session("carlos", "alicia", LONG)

        def talk(worker: int) -> None:
            for turn in range(10):
                store.chat_turn(session_id, [("user", f"{worker}:{turn}:q"),
                                             ("assistant", f"{worker}:{turn}:a")], last=0)

        threads = [threading.Thread(target=talk, args=(n,)) for n in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        history = [m.content for m in store.get_history(session_id)]
    assert len(history) == 320
    for question, answer in zip(history[::2], history[1::2]):
        assert question.endswith(":q") and answer == question[:-1] + "a"


def test_a_message_carries_role_content_metadata_and_server_timestamp(
        store: Any, raw: redis.Redis) -> None:
    session_id = store.create_session("carlos", "alicia", LONG)
    before = server_ms(raw)
    stored = store.append_message(session_id, "assistant", "¡hola! 😀",
                                  metadata={"tokens": 3, "tags": ["greeting"], "ok": True})
    after = server_ms(raw)
    (read,) = store.get_history(session_id)
    assert read == stored
    assert read.role is Role.ASSISTANT
    assert read.content == "¡hola! 😀"
    assert read.metadata == {"tokens": 3, "tags": ["greeting"], "ok": True}
    assert read.timestamp.utcoffset() == timedelta(0)
    assert before <= to_ms(read.timestamp) <= after


def test_append_messages_accepts_tuples_mappings_and_message_objects_in_order(store: Any) -> None:
    session_id = store.create_session("carlos", "alicia", LONG)
    stored = store.append_messages(session_id, [
        ("system", "be kind"),
        ("user", "hola", {"lang": "es"}),
        {"role": "assistant", "content": "¡hola!"},
        Message(role=Role.TOOL, content="{}", metadata={"tool": "x"}),
    ])
    history = store.get_history(session_id)
    assert history == stored
    assert [(m.role.value, m.content, m.metadata) for m in history] == [
        ("system", "be kind", None), ("user", "hola", {"lang": "es"}),
        ("assistant", "¡hola!", None), ("tool", "{}", {"tool": "x"})]


def test_append_messages_refuses_an_empty_batch(store: Any) -> None:
    session_id = store.create_session("carlos", "alicia", LONG)
    with pytest.raises(InvalidInput):
        store.append_messages(session_id, [])


def test_a_one_mebibyte_message_is_accepted_by_default(store: Any) -> None:
    session_id = store.create_session("carlos", "alicia", LONG)
    content = "é" * (512 * 1024)  # 1 MiB of UTF-8
    store.append_message(session_id, "user", content)
    (read,) = store.get_history(session_id)
    assert read.content == content


def test_a_message_above_max_message_bytes_is_refused_and_nothing_is_written(
        make_store: Any, raw: redis.Redis) -> None:
    store = make_store(max_message_bytes=1000)
    session_id = store.create_session("carlos", "alicia", LONG)
    store.append_message(session_id, "user", "x" * 900)
    before = snapshot(raw)
    with pytest.raises(MessageTooLarge):
        store.append_message(session_id, "user", "x" * 1001)
    with pytest.raises(MessageTooLarge):
        store.chat_turn(session_id, [("user", "small"), ("user", "x" * 1001)])
    assert snapshot(raw) == before


def test_history_keeps_every_message_that_overflowed_max_history(
        make_store: Any, raw: redis.Redis) -> None:
    store = make_store(max_history=3)
    session_id = store.create_session("carlos", "alicia", LONG)
    for n in range(7):
        store.append_message(session_id, "user", f"m{n}")
    assert [m.content for m in store.get_history(session_id)] == [f"m{n}" for n in range(7)]
    assert [m.content for m in store.get_history(session_id, last=5)] == [
        f"m{n}" for n in range(2, 7)]
    assert [m.content for m in store.chat_turn(session_id, [], last=2)] == ["m5", "m6"]
    keys = session_keys(session_id)
    assert raw.llen(keys.history) == 3
    assert raw.llen(keys.overflow) == 4


# -- mood --------------------------------------------------------------------------------


def test_mood_is_saved_and_read_back(store: Any, raw: redis.Redis) -> None:
    session_id = store.create_session("carlos", "alicia", LONG)
    assert store.get_mood(session_id) is None
    before = server_ms(raw)
    saved = store.save_mood(session_id, "shy", 0.8)
    store.save_mood(session_id, "happy", 0.25)
    mood = store.get_mood(session_id)
    assert (saved.mood, saved.intensity) == ("shy", 0.8)
    assert (mood.mood, mood.intensity) == ("happy", 0.25)
    assert mood.updated_at.utcoffset() == timedelta(0)
    assert to_ms(mood.updated_at) >= before


@pytest.mark.parametrize("intensity", [-0.1, 1.5, float("nan"), "0.5", True])
def test_a_mood_intensity_outside_zero_to_one_is_refused(store: Any, intensity: object) -> None:
    session_id = store.create_session("carlos", "alicia", LONG)
    with pytest.raises(InvalidInput):
        store.save_mood(session_id, "shy", intensity)
    assert store.get_mood(session_id) is None


# -- ending and deleting -----------------------------------------------------------------


def test_end_session_archives_now_as_ended(store: Any, raw: redis.Redis) -> None:
    session_id = store.create_session("carlos", "alicia", LONG)
    store.chat_turn(session_id, [("user", "hola"), ("assistant", "¡hola!")])
    before = server_ms(raw)
    assert store.end_session(session_id) is True
    after = server_ms(raw)
    assert store.end_session(session_id) is False
    assert store.get_session(session_id) is None
    with pytest.raises(SessionNotFound) as caught:
        store.append_message(session_id, "user", "still there?")
    assert not isinstance(caught.value, SessionExpired)
    (archived,) = store.get_archived_conversations("carlos")
    assert archived.session_id == session_id
    assert archived.reason is ArchiveReason.ENDED
    assert before <= to_ms(archived.ended_at) <= after
    assert [m.content for m in archived.messages] == ["hola", "¡hola!"]
    assert session_key_names(raw, session_id) == sorted(
        key.encode() for key in KEYS.user("carlos").archived(session_id)[:2])


def test_delete_session_removes_every_key_of_the_session_and_archives_nothing(
        make_store: Any, raw: redis.Redis) -> None:
    store = make_store(max_history=2)
    session_id = store.create_session("carlos", "alicia", LONG)
    store.append_messages(session_id, [("user", f"m{n}") for n in range(5)])
    store.save_mood(session_id, "shy")
    keys = session_keys(session_id)
    assert session_key_names(raw, session_id) == sorted(
        key.encode() for key in (keys.session, keys.meta, keys.history, keys.overflow))
    assert raw.zscore(keys.deadlines, session_id) is not None
    assert store.delete_session(session_id) is True
    assert store.delete_session(session_id) is False
    assert session_key_names(raw, session_id) == []
    for key in raw.scan_iter(count=1000):
        if raw.type(key) == b"zset":
            assert raw.zscore(key, session_id) is None
    assert store.get_archived_conversations("carlos") == []
    assert store.list_user_sessions("carlos") == []
    assert store.get_expired_sessions() == []


# -- expired sessions and cleanup --------------------------------------------------------


def test_get_expired_sessions_lists_only_sessions_past_their_deadline(store: Any) -> None:
    live = store.create_session("carlos", "alicia", LONG)
    short = store.create_session("carlos", "alicia", {"ttl": 0.05})
    expire(store, short)
    assert store.get_expired_sessions() == [short]
    assert live not in store.get_expired_sessions()


def test_a_manual_session_waits_for_cleanup_to_be_archived(store: Any, raw: redis.Redis) -> None:
    session_id = store.create_session("carlos", "alicia",
                                      {"ttl": 0.2, "max_idle": 60, "auto_cleanup": False})
    store.append_message(session_id, "user", "hola")
    expire(store, session_id)
    assert store.get_expired_sessions() == [session_id]
    assert store.get_expired_sessions() == [session_id]  # listing archives nothing
    assert store.get_archived_conversations("carlos") == []
    assert store.cleanup_expired_sessions() == 1
    assert store.get_expired_sessions() == []
    assert store.cleanup_expired_sessions() == 0
    (archived,) = store.get_archived_conversations("carlos")
    assert archived.session_id == session_id
    assert archived.reason is ArchiveReason.ABSOLUTE
    assert [m.content for m in archived.messages] == ["hola"]


def test_archive_tells_idle_from_absolute_expiry_newest_first(store: Any) -> None:
    by_ttl = store.create_session("carlos", "alicia", {"ttl": 0.2, "max_idle": 60})
    by_idle = store.create_session("carlos", "bruno", {"ttl": 60, "max_idle": 0.3})
    store.append_message(by_ttl, "user", "absolute")
    store.chat_turn(by_idle, [("user", "idle"), ("assistant", "ok")])
    ttl_deadline = store.get_session(by_ttl).expires_at
    idle_deadline = store.get_session(by_idle).effective_expires_at
    assert idle_deadline > ttl_deadline
    expire(store, by_ttl)
    expire(store, by_idle)
    assert store.cleanup_expired_sessions() == 2
    newest, oldest = store.get_archived_conversations("carlos")
    assert (newest.session_id, newest.reason, newest.ended_at) == (
        by_idle, ArchiveReason.IDLE, idle_deadline)
    assert (oldest.session_id, oldest.reason, oldest.ended_at) == (
        by_ttl, ArchiveReason.ABSOLUTE, ttl_deadline)
    assert (newest.personality_name, newest.user_id, newest.message_count) == ("bruno", "carlos", 2)
    assert [m.content for m in newest.messages] == ["idle", "ok"]
    assert [m.content for m in oldest.messages] == ["absolute"]
    assert newest.started_at < newest.ended_at


def test_a_session_without_messages_is_archived_too(store: Any) -> None:
    ended = store.create_session("carlos", "alicia", LONG)
    lapsed = store.create_session("carlos", "alicia", {"ttl": 0.05})
    assert store.end_session(ended)
    expire(store, lapsed)
    assert store.cleanup_expired_sessions() == 1
    archived = store.get_archived_conversations("carlos")
    assert {a.session_id for a in archived} == {ended, lapsed}
    assert all(a.messages == [] and a.message_count == 0 for a in archived)


def test_the_archive_holds_the_whole_conversation_including_the_overflow(make_store: Any) -> None:
    store = make_store(max_history=3)
    session_id = store.create_session("carlos", "alicia", LONG)
    for n in range(8):
        store.append_message(session_id, "user", f"m{n}")
    store.end_session(session_id)
    (archived,) = store.get_archived_conversations("carlos")
    assert archived.message_count == 8
    assert [m.content for m in archived.messages] == [f"m{n}" for n in range(8)]


def test_archive_retention_keeps_only_the_newest_conversations(
        make_store: Any, raw: redis.Redis) -> None:
    # Without deliveries: with them, retention waits for the sink (test_deliveries.py).
    store = make_store(archive_retention=2, deliveries=False)
    ids = []
    for n in range(4):
        session_id = store.create_session("carlos", "alicia", LONG)
        store.append_message(session_id, "user", f"visit {n}")
        store.end_session(session_id)
        ids.append(session_id)
        wait_for_server_clock_past(raw, server_ms(raw))  # distinct end times
    archived = store.get_archived_conversations("carlos", limit=None)
    assert [a.session_id for a in archived] == [ids[3], ids[2]]
    assert [a.messages[0].content for a in archived] == ["visit 3", "visit 2"]
    user = KEYS.user("carlos")
    assert raw.zcard(user.archive) == 2
    for dropped in ids[:2]:
        assert raw.exists(*user.archived(dropped)) == 0
        assert session_key_names(raw, dropped) == []


def test_get_archived_conversations_honours_its_limit(store: Any, raw: redis.Redis) -> None:
    ids = []
    for _ in range(3):
        session_id = store.create_session("carlos", "alicia", LONG)
        store.end_session(session_id)
        ids.append(session_id)
        wait_for_server_clock_past(raw, server_ms(raw))
    assert [a.session_id for a in store.get_archived_conversations("carlos", limit=2)] == [
        ids[2], ids[1]]
    assert len(store.get_archived_conversations("carlos", limit=None)) == 3


def test_conversations_ended_in_the_same_millisecond_still_come_back_newest_first(
        store: Any, raw: redis.Redis) -> None:
    """An expired session is archived with its indexed deadline as its end time, so
    sessions whose deadline is set to one millisecond end in that millisecond, however
    slowly they are archived; the archive then orders them by archiving order alone."""
    ids = [store.create_session("carlos", "alicia", {"ttl": 60, "auto_cleanup": False})
           for _ in range(12)]
    same_ms = server_ms(raw) - 1000
    for session_id in ids:
        keys = session_keys(session_id)
        # The archive takes the end from the meta hash: min(last + idle, abs).
        raw.hset(keys.meta, mapping={"last": same_ms, "idle": 0})
        assert raw.pexpireat(keys.session, same_ms)  # in the past: Redis deletes it now
        assert not raw.exists(keys.session)
    archiving_order = ids[5:] + ids[:5]
    for session_id in archiving_order:
        assert store.end_session(session_id) is True
    archived = store.get_archived_conversations("carlos", limit=None)
    assert {to_ms(a.ended_at) for a in archived} == {same_ms}
    assert [a.session_id for a in archived] == archiving_order[::-1]
    assert [a.session_id for a in store.get_archived_conversations("carlos", limit=3)] == (
        archiving_order[:-4:-1])


def test_after_archiving_no_session_key_is_left_and_no_user_key_expires(
        store: Any, raw: redis.Redis) -> None:
    ended = store.create_session("carlos", "alicia", LONG)
    lapsed = store.create_session("carlos", "alicia", {"ttl": 0.2, "auto_cleanup": False})
    for session_id in (ended, lapsed):
        store.chat_turn(session_id, [("user", "hola")])
    store.update_affinity("carlos", "alicia", 5)
    store.save_fact("carlos", "personal_info", "name", "Carlos")
    store.save_episode("carlos", "milestone", "t", "s")
    store.end_session(ended)
    expire(store, lapsed)
    assert store.cleanup_expired_sessions() == 1
    assert list(raw.scan_iter(match="lr:{b*}:s:*", count=1000)) == []
    for index in raw.scan_iter(match="lr:{b*}:deadlines", count=1000):
        assert raw.zcard(index) == 0
    user_keys = list(raw.scan_iter(match="*:u:*", count=1000))
    assert len(user_keys) >= 8
    assert {raw.pttl(key) for key in user_keys} == {-1}
    assert len(store.get_archived_conversations("carlos")) == 2


def test_an_index_entry_that_outlived_its_session_is_dropped_not_retried_forever(
        store: Any, raw: redis.Redis, expired: str) -> None:
    """Keys deleted by hand (or evicted) must not hold up a bucket's sweep."""
    keys = session_keys(expired)
    raw.delete(keys.meta, keys.history)
    assert raw.zscore(keys.deadlines, expired) is not None
    assert expired not in store.get_expired_sessions()  # it can never be archived
    assert raw.zscore(keys.deadlines, expired) is None
    assert store.cleanup_expired_sessions() == 0


def test_a_scan_tells_when_each_bucket_next_has_a_session_due(store: Any) -> None:
    from luminora_redis.ops import scans

    session_id = store.create_session("carlos", "alicia", LONG)
    store.create_session("carlos", "alicia", {"ttl": 120, "max_idle": 60, "auto_cleanup": False})
    session = store.get_session(session_id)
    scan = store.run(scans.scan_due, None)
    assert scan.session_ids == [] and not scan.more
    assert scan.next_deadlines == {KEYS.bucket_of_session(session_id):
                                   to_ms(session.effective_expires_at)}
