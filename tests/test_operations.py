"""The pure operation layer, without Redis: what each step asks for, and how
replies are read. Both stores only run these steps."""

from __future__ import annotations

import msgpack
import pytest

from luminora_redis.core.context import Context
from luminora_redis.core.errors import InvalidInput, SessionExpired, SessionNotFound
from luminora_redis.core.scripts import Batch, Call
from luminora_redis.core.settings import StoreSettings
from luminora_redis.ops import archive, memory, scans, sessions

CTX = Context(StoreSettings(), buckets=1024)


def first_step(op):
    return next(op)


def finish(op, reply):
    with pytest.raises(StopIteration) as done:
        op.send(reply)
    return done.value.value


def hash_tags(keys) -> set[str]:
    return {key[key.index("{"):key.index("}") + 1] for key in keys}


def test_chat_turn_is_one_call_whose_keys_share_one_slot() -> None:
    sid = CTX.keys.new_session_id("carlos")
    op = sessions.chat_turn(CTX, sid, [("user", "hola"), ("assistant", "¡hola!")], last=2)
    call = first_step(op)
    assert isinstance(call, Call) and call.script == "chat_turn"
    assert hash_tags(call.keys) == {CTX.keys.tag(CTX.keys.bucket_of_user("carlos"))[3:]}
    assert call.args[:3] == (1000, 2, -1)
    turn_id = call.args[3]
    assert isinstance(turn_id, int) and turn_id.bit_length() > 32  # random: a resend is recognised
    assert next(sessions.chat_turn(CTX, sid, [("user", "hola")])).args[3] != turn_id
    stamp = msgpack.packb(1_700_000_000_123)
    messages = finish(op, [1, 0, 1_700_000_000_123, 0, None,
                           *(entry + stamp for entry in call.args[4:])])
    assert [(m.role.value, m.content) for m in messages] == [("user", "hola"),
                                                             ("assistant", "¡hola!")]
    assert messages[0].timestamp.timestamp() == 1_700_000_000.123


@pytest.mark.parametrize(("code", "error"), [(-1, SessionExpired), (0, SessionNotFound)])
def test_reply_codes_become_typed_errors(code: int, error: type[Exception]) -> None:
    op = sessions.chat_turn(CTX, CTX.keys.new_session_id("u"), [("user", "x")])
    first_step(op)
    with pytest.raises(error):
        op.send([code])


def test_bad_input_is_refused_before_any_step() -> None:
    with pytest.raises(InvalidInput):
        first_step(sessions.chat_turn(CTX, CTX.keys.new_session_id("u"), [("robot", "x")]))
    with pytest.raises(InvalidInput):
        first_step(memory.update_affinity(CTX, "u", "p", 1.5))
    with pytest.raises(InvalidInput):
        first_step(sessions.create_session(CTX, "u", "p", {"ttl": 0}))


def test_a_malformed_session_id_never_becomes_a_step() -> None:
    for bad in ("", "*", "lr:{b0001}:s:x", "ffff-" + "0" * 32):
        with pytest.raises(StopIteration):
            first_step(sessions.touch(CTX, bad))
        with pytest.raises(StopIteration):
            first_step(sessions.get_session(CTX, bad))
    for wrong in (None, 42, b"0001-" + b"0" * 32):  # not even a string: the caller's mistake
        with pytest.raises(InvalidInput, match="session id must be a string"):
            first_step(sessions.touch(CTX, wrong))
        with pytest.raises(InvalidInput, match="session id must be a string"):
            first_step(sessions.get_session(CTX, wrong))


def test_archive_reads_the_owner_first_then_declares_the_owners_keys() -> None:
    sid = CTX.keys.new_session_id("carlos")
    op = archive.archive_session(CTX, sid, "expire")
    read = first_step(op)
    assert read.script == "read_meta"
    call = op.send([b"carlos", b"alicia", b"1", b"2", b"1"])
    assert call.script == "archive_session"
    assert CTX.keys.user("carlos").archive in call.keys
    assert len(hash_tags(call.keys)) == 1
    assert finish(op, [0]) is None  # someone else archived it first


def test_sweeping_asks_every_bucket_in_one_batch() -> None:
    op = scans.scan_due(Context(StoreSettings(), buckets=1024, cluster=True), None, manual=False)
    batch = first_step(op)
    assert isinstance(batch, Batch) and len(batch.calls) == 1024
    scan = finish(op, [[0, -1]] * 1023 + [[0, -1, b"0001-" + b"a" * 32]])
    assert scan.session_ids == ["0001-" + "a" * 32] and not scan.more


def test_a_scan_reports_each_buckets_next_deadline() -> None:
    op = scans.scan_due(CTX, [3, 7], batch=2)
    batch = first_step(op)
    assert [call.keys for call in batch.calls] == [(CTX.keys.index(3)[0],),
                                                   (CTX.keys.index(7)[0],)]
    scan = finish(op, [[1000, 1500, b"s1", b"s2"], [1001, -1]])
    assert scan.session_ids == ["s1", "s2"] and scan.more
    assert scan.now_ms == 1001 and scan.next_deadlines == {3: 1500}


def test_messages_decoded_on_the_hot_path_equal_model_construct() -> None:
    from datetime import datetime, timezone

    from luminora_redis.core.models import Message, Role, trusted

    values = {"role": Role.USER, "content": "hola", "timestamp": datetime.now(timezone.utc),
              "metadata": {"k": [1, 2]}, "tokens": 1}
    fast, slow = trusted(Message)(**values), Message.model_construct(**values)
    assert fast == slow
    assert fast.model_dump() == slow.model_dump() and fast.model_fields_set == slow.model_fields_set
    assert fast.model_copy(update={"content": "x"}).content == "x"
    assert Message.model_validate(fast.model_dump()) == fast


def test_a_full_scan_asks_every_earliest_score_first_then_only_the_due_buckets() -> None:
    op = scans.scan_due(CTX, None)
    probe = first_step(op)
    assert isinstance(probe, Batch) and [c.script for c in probe.calls] == ["scan_buckets"]
    assert list(probe.calls[0].keys) == [CTX.keys.index(b)[0] for b in range(1024)]
    earliest = [-1] * 1024
    earliest[5], earliest[9] = 999, 1500  # bucket 5 is due at 1000, bucket 9 ahead
    due = op.send([[1000, *earliest]])
    assert [call.keys for call in due.calls] == [(CTX.keys.index(5)[0],)]
    scan = finish(op, [[1001, 1200, b"s1"]])
    assert scan.session_ids == ["s1"] and not scan.more
    assert scan.now_ms == 1001 and scan.next_deadlines == {5: 1200, 9: 1500}


def test_a_cluster_scan_asks_every_bucket_since_a_script_cannot_span_slots() -> None:
    ctx = Context(StoreSettings(), buckets=1024, cluster=True)
    batch = first_step(scans.scan_due(ctx, None))
    assert [call.script for call in batch.calls] == ["due_sessions"] * 1024


def test_a_live_session_found_due_is_not_archived() -> None:
    """read_meta answers with the live session's real deadline (having raised its index
    entry): nothing more is asked."""
    sid = CTX.keys.new_session_id("carlos")
    op = archive.archive_session(CTX, sid, "expire")
    read = first_step(op)
    assert read.keys[-1] == CTX.session_keys(sid).session
    assert finish(op, [b"carlos", b"alicia", b"1", b"2", b"1", 123456]) is None
