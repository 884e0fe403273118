"""Small fixed-field records read whole, and what they say about a session.

Session hashes, meta hashes and archived records have a fixed set of fields,
so reading one whole (``read_hashes.lua``) is a bounded reply; hashes that grow
with a user's lifetime are never read this way. Several operations (the user
export, the operator's overview, erasure) read these records and ask the same
questions of them: when was the session last active and when does it end, and
does a session id belong to a user at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from luminora_redis.core.context import Context
from luminora_redis.core.scripts import Batch, Call, Op

__all__ = ["hash_fields", "live_activity", "owns_session", "read_hashes"]


def hash_fields(flat: Sequence[Any]) -> dict[str, bytes]:
    """An HGETALL reply as a dict of field name to raw value."""
    return {field.decode(): value for field, value in zip(flat[::2], flat[1::2])}


def read_hashes(ctx: Context, keys: Sequence[str]) -> Op[list[dict[str, bytes]]]:
    """Small hashes of one slot (fixed fields: sessions, meta hashes, archived records),
    each whole, in key order: one round trip of ``read_hashes`` calls of at most
    ``page_size`` keys each."""
    if not keys:
        return []
    page = ctx.settings.page_size
    replies = yield Batch([Call("read_hashes", keys[start:start + page], ())
                           for start in range(0, len(keys), page)])
    return [hash_fields(flat) for reply in replies for flat in reply]


def live_activity(state: dict[str, bytes], meta: dict[str, bytes]) -> tuple[int, int] | None:
    """A live session's last activity and effective deadline (ms) from its session and
    meta hashes, as read by read_hashes; None when the session hash is gone. chat_turn
    keeps the activity in the meta hash; a session not written since an older version
    created it has it in the session hash."""
    if "abs" not in state:
        return None
    last = int(meta.get("last") or state["last"])
    return last, min(last + int(state["idle"]), int(state["abs"]))


def owns_session(ctx: Context, user_id: str, session_id: object) -> bool:
    """Whether a session id routes to the user's bucket (a precondition of being theirs)."""
    bucket = ctx.keys.bucket_of_session(session_id)
    return bucket is not None and bucket == ctx.keys.bucket_of_user(user_id)
