"""Session operations: create, read, refresh, chat, mood. Each written once.

Every function here is an operation generator (see ``scripts``): it validates
its input before yielding anything, so a refused input writes nothing.

The writes a connection break can make redis-py resend are idempotent: each
create carries a random nonce and each appending turn a random turn id, and the
scripts recognise a resend of what they already stored (see their headers). A
refusal (``SessionExpired``, ``SessionNotFound``) of an appending call means
nothing was written, except when the connection broke during the call: then an
earlier send may have landed just before the session expired, and, as with a
connection error, the outcome is unknown (the session hash that held the turn id
is gone, so the resend cannot tell).

A caller's own retry is recognised the same way when it names the turn: the
appending operations take ``turn_id``, used as the script's turn id in place of
a random one (``core.ids.caller_turn_id``).

Each message's token count is computed once, here, when it is encoded (the
store's ``token_counter``, ``core.tokens``), and stored in its record; a token
``budget`` is summed by ``chat_turn.lua`` in the turn's own round trip. A session's
running summary (``set_summary``) starts the context that ``chat_turn`` and
``get_history`` return, and only the messages after it follow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from luminora_redis.core.codec import (
    decode_context,
    decode_message,
    decode_messages,
    decode_stored_mood,
    encode_message,
    from_ms,
    pack,
    prefix,
    unpack,
)
from luminora_redis.core.context import Context
from luminora_redis.core.context_messages import ContextMessage
from luminora_redis.core.errors import (
    InvalidInput,
    ReplyCode,
    SummaryOutdated,
    UnexpectedReply,
    raise_for_status,
)
from luminora_redis.core.ids import caller_turn_id, new_nonce, new_turn_id
from luminora_redis.core.keys import UserKeys
from luminora_redis.core.models import Message, Mood, Session
from luminora_redis.core.scripts import Batch, Call, Op
from luminora_redis.core.settings import parse_session_config
from luminora_redis.core.tokens import count_tokens
from luminora_redis.core.validation import check_number
from luminora_redis.ops import scans
from luminora_redis.ops.segments import follow_up, read_conversation

__all__ = [
    "append_messages",
    "chat_turn",
    "create_session",
    "get_history",
    "get_mood",
    "get_session",
    "is_session_expired",
    "list_user_sessions",
    "save_mood",
    "set_summary",
    "touch",
    "user_session_ids",
]

OK = ReplyCode.OK
MessageLike = Message | tuple[Any, ...] | Mapping[str, Any]


def create_session(ctx: Context, user_id: object, personality_name: object,
                   session_config: object = None) -> Op[str]:
    user_id = ctx.user_id(user_id)
    personality = ctx.name(personality_name, "personality_name")
    config = parse_session_config(ctx.settings, session_config)
    user = ctx.keys.user(user_id)
    for _ in range(3):
        session_id = ctx.keys.new_session_id(user_id)
        keys = ctx.session_keys(session_id)
        assert keys is not None
        create = Call("create_session",
                      (keys.session, keys.meta,
                       keys.deadlines if config.auto_cleanup else keys.manual,
                       user.sessions, user.user, user.archived(session_id)[0]),
                      (session_id, user_id, personality, config.ttl_ms, config.max_idle_ms,
                       1 if config.auto_cleanup else 0, new_nonce()))
        if config.auto_cleanup:  # the sweeper's hint of the new deadline goes with it
            bucket = ctx.keys.bucket_of_session(session_id)
            assert bucket is not None
            reply = yield from scans.create_hinted(
                ctx, create, bucket, min(config.ttl_ms, config.max_idle_ms))
        else:
            reply = yield create
        if reply[0] in (OK, ReplyCode.CREATED_BEFORE):
            return session_id
    raise UnexpectedReply("three fresh random session ids were all taken")


def encode_messages(ctx: Context, messages: Iterable[MessageLike]) -> list[bytes]:
    """Validate and encode a caller's messages: Message objects, (role, content[, metadata])
    tuples, or mappings with role, content and optional metadata."""
    limit, counter = ctx.settings.max_message_bytes, ctx.settings.token_counter
    if type(messages) is not list:
        if isinstance(messages, (str, bytes, bytearray, Mapping, Message)):
            raise InvalidInput("messages must be a sequence of messages, not a single one")
        if not isinstance(messages, Iterable):
            raise InvalidInput(f"messages must be a list of messages, not {type(messages).__name__}")
    encoded = []
    for message in messages:
        if isinstance(message, tuple) and len(message) in (2, 3):
            role, content, metadata = message[0], message[1], (message[2] if len(message) == 3
                                                               else None)
        elif isinstance(message, Message):
            role, content, metadata = message.role, message.content, message.metadata
        elif isinstance(message, Mapping) and "role" in message and "content" in message:
            role, content, metadata = message["role"], message["content"], message.get("metadata")
        else:
            raise InvalidInput(f"not a message: {message!r:.80}; use (role, content) or Message")
        if not isinstance(content, str):
            raise InvalidInput(f"message content must be a string, not {type(content).__name__}")
        encoded.append(encode_message(role, content, metadata, limit,
                                      count_tokens(counter, content)))
    return encoded


def check_budget(budget: object) -> int:
    """A token budget: an int >= 0 (-1 stands for None, no budget, in the script's
    arguments)."""
    if budget is None:
        return -1
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        raise InvalidInput(f"budget must be an int >= 0 or None, not {budget!r:.40}")
    return budget


def _turn(ctx: Context, session_id: object, entries: list[bytes], want: int,
          turn: str | None = None, budget: int = -1
          ) -> Op[tuple[int, bytes | None, list[bytes]]]:
    """Run chat_turn (append, slide the idle deadline, read; raises when the session
    is not live) and return the timestamp, the summary record (None when the session
    has none, or it does not fit the budget) and the messages wanted (the last
    ``want`` after the summary; all when negative), oldest first. One round trip
    when they fit one page and lie in the live history, and always with a
    ``budget`` (>= 0: the script sums the stored counts); else the first page comes
    with the turn and the rest by pages. A turn that filled the overflow is followed
    by its move into a segment. ``turn``: the script's turn id (a checked
    ``caller_turn_id``), else a random one."""
    keys = ctx.session_keys(session_id)
    if keys is None:
        raise_for_status(ReplyCode.NOT_FOUND, str(session_id))
    settings = ctx.settings
    paged = budget < 0 and not 0 <= want <= ctx.turn_page
    asked = -settings.page_size if paged else want
    reply = yield Call("chat_turn", (*keys[:4], keys.summary),
                       (settings.max_history, asked, budget,
                        new_turn_id() if turn is None else turn, *entries) if entries
                       else (settings.max_history, asked, budget))
    if reply[0] != OK:
        raise_for_status(reply[0], str(session_id))
    summary: bytes | None = None
    if paged:
        summary = reply[6] or None
        through = 0 if summary is None else _through(summary)
        raws = yield from read_conversation(ctx, keys, str(session_id), reply, want, through)
    elif want != 0:
        summary, raws = reply[4] or None, reply[5:]
    else:
        raws = []
    if entries and reply[3] >= settings.max_overflow:
        yield from follow_up(ctx, keys, str(session_id), reply[3])
    return reply[2], summary, raws


def _through(summary: bytes) -> int:
    """How many messages a stored summary record covers (its metadata says)."""
    metadata = unpack(summary)[2]
    return int(metadata["through"])


def _context(raws: list[bytes], summary: bytes | None) -> list[bytes]:
    return raws if summary is None else [summary, *raws]


def chat_turn(ctx: Context, session_id: object, messages: Iterable[MessageLike],
              last: int = 10, turn_id: object = None,
              budget: int | None = None) -> Op[list[ContextMessage]]:
    """Append the turn's messages, slide the idle deadline and return the last ``last``;
    with ``budget``, the longest run of the newest (at most ``last``) whose stored token
    counts sum to at most ``budget``, summed by the script in the same round trip.
    A session's running summary comes first, charged to the budget (one that does not
    fit leaves the context empty), followed by messages after it only.
    With ``turn_id`` (see ``core.ids.caller_turn_id``) a call that repeats the session's
    last turn id appends nothing and answers as that turn did."""
    want = ctx.count(last, "last")
    tokens = check_budget(budget)
    turn = None if turn_id is None else caller_turn_id(turn_id)
    _, summary, raws = yield from _turn(ctx, session_id, encode_messages(ctx, messages), want,
                                        turn, tokens)
    return decode_context(_context(raws, summary), str(session_id))


def append_messages(ctx: Context, session_id: object, messages: Iterable[MessageLike],
                    turn_id: object = None) -> Op[list[Message]]:
    """Append the messages and slide the idle deadline; they are returned as stored.
    ``turn_id`` as for ``chat_turn``."""
    turn = None if turn_id is None else caller_turn_id(turn_id)
    entries = encode_messages(ctx, messages)
    if not entries:
        raise InvalidInput("no messages to append")
    now, _, _ = yield from _turn(ctx, session_id, entries, 0, turn)
    stamp = pack(now)
    return [decode_message(entry + stamp) for entry in entries]


def get_history(ctx: Context, session_id: object, last: int | None = None,
                budget: int | None = None) -> Op[list[Message]]:
    """The whole conversation (segments, overflow, history) when ``last`` is None,
    read in pages of at most ``page_size`` messages; the first page slides the idle
    deadline, atomically with reading it. With ``budget``, as for ``chat_turn``: one
    script call, over the live history and overflow. A running summary starts it, as
    for ``chat_turn``."""
    tokens = check_budget(budget)
    _, summary, raws = yield from _turn(ctx, session_id, [], ctx.limit(last, "last"),
                                        budget=tokens)
    return decode_messages(_context(raws, summary), str(session_id))


def set_summary(ctx: Context, session_id: object, text: object, through: object) -> Op[Message]:
    """Store the session's running summary of its first ``through`` messages, atomically;
    refused with ``SummaryOutdated`` when a summary through a later message is stored,
    and with ``InvalidInput`` when the conversation holds fewer than ``through``
    messages. Its tokens are counted once, here. Returns the summary as the context
    starts with it (a system message whose metadata is {"summary": True, "through": n})."""
    if not isinstance(text, str):
        raise InvalidInput(f"summary text must be a string, not {type(text).__name__}")
    if isinstance(through, bool) or not isinstance(through, int) or through < 1:
        raise InvalidInput(f"through must be an int >= 1, not {through!r:.40}")
    keys = ctx.session_keys(session_id)
    if keys is None:
        raise_for_status(ReplyCode.NOT_FOUND, str(session_id))
    record = encode_message("system", text, {"summary": True, "through": through},
                            ctx.settings.max_message_bytes,
                            count_tokens(ctx.settings.token_counter, text))
    reply = yield Call("set_summary",
                       (keys.session, keys.meta, keys.overflow, keys.history, keys.summary),
                       (through, record))
    if reply[0] == ReplyCode.OUTDATED:
        raise SummaryOutdated(str(session_id), through, int(reply[1]))
    if reply[0] == ReplyCode.BEYOND_END:
        raise InvalidInput(f"through={through}, but session {session_id} holds "
                           f"{reply[1]} messages; nothing written")
    if reply[0] != OK:
        raise_for_status(reply[0], str(session_id))
    return decode_message(record + pack(reply[1]))


def touch(ctx: Context, session_id: object) -> Op[bool]:
    keys = ctx.session_keys(session_id)
    if keys is None:
        return False
    reply = yield Call("chat_turn", keys[:4], (ctx.settings.max_history, 0))
    return bool(reply[0] == OK)


def _session(session_id: str, fields: list[Any]) -> Session | None:
    user, personality, created, absolute, idle, last, auto, _mood = fields
    if user is None:
        return None
    absolute, idle, last = int(absolute), int(idle), int(last)
    created = int(created)
    return Session.model_construct(
        session_id=session_id, user_id=user.decode(), personality_name=personality.decode(),
        created_at=from_ms(created), expires_at=from_ms(absolute), last_activity=from_ms(last),
        effective_expires_at=from_ms(min(last + idle, absolute)),
        ttl=(absolute - created) / 1000, max_idle=idle / 1000, auto_cleanup=auto == b"1",
    )


def _live_keys(ctx: Context, session_id: str) -> tuple[str, str]:
    keys = ctx.session_keys(session_id)
    if keys is None:
        raise UnexpectedReply(f"an index holds a malformed session id {session_id!r}")
    return keys.session, keys.meta


def get_session(ctx: Context, session_id: object) -> Op[Session | None]:
    keys = ctx.session_keys(session_id)
    if keys is None:
        return None
    reply = yield Call("get_sessions", (keys.session, keys.meta), ())
    return _session(str(session_id), reply[0])


def is_session_expired(ctx: Context, session_id: object) -> Op[bool]:
    session = yield from get_session(ctx, session_id)
    return session is None


def user_session_ids(ctx: Context, user: UserKeys, limit: int | None = None) -> Op[list[str]]:
    """The ids of a user's sessions not yet archived, oldest first (the oldest ``limit``
    when given), in pages of at most ``page_size``. Each page starts after the (creation
    time, id) of the last session of the one before, so sessions archived or created
    meanwhile never make it skip or repeat one (see ``range_zset.lua``)."""
    ids: list[str] = []
    score: bytes | str = ""
    last: bytes | str = ""
    while limit is None or len(ids) < limit:
        count = ctx.settings.page_size if limit is None else min(ctx.settings.page_size,
                                                                 limit - len(ids))
        more, score, last, *page = yield Call("range_zset", (user.sessions,),
                                              ("asc", count, score, last, ""))
        ids.extend(raw.decode() for raw in page)
        if not more:
            break
    return ids


def list_user_sessions(ctx: Context, user_id: object) -> Op[list[Session]]:
    """The user's live sessions, oldest first: their ids in pages of at most ``page_size``,
    then the sessions in script calls of at most ``page_size`` each (one round trip)."""
    user = ctx.user_keys(user_id)
    ids = yield from user_session_ids(ctx, user)
    if not ids:
        return []
    keys = [key for sid in ids for key in _live_keys(ctx, sid)]
    step = 2 * ctx.settings.page_size  # a session and its meta hash: one entry of a reply
    replies = yield Batch([Call("get_sessions", keys[start:start + step], ())
                           for start in range(0, len(keys), step)])
    fields = [entry for reply in replies for entry in reply]
    sessions = (_session(sid, entry) for sid, entry in zip(ids, fields))
    return [session for session in sessions if session is not None]


def save_mood(ctx: Context, session_id: object, mood: object, intensity: object = 0.5) -> Op[Mood]:
    name = ctx.name(mood, "mood")
    level = check_number(intensity, "intensity", 0.0, 1.0)
    keys = ctx.session_keys(session_id)
    if keys is None:
        raise_for_status(ReplyCode.NOT_FOUND, str(session_id))
    reply = yield Call("save_mood", (keys.session, keys.meta), (prefix(3, (name, level)),))
    if reply[0] != OK:
        raise_for_status(reply[0], str(session_id))
    return Mood.model_construct(mood=name, intensity=level, updated_at=from_ms(reply[1]))


def get_mood(ctx: Context, session_id: object) -> Op[Mood | None]:
    keys = ctx.session_keys(session_id)
    if keys is None:
        return None
    reply = yield Call("get_sessions", (keys.session, keys.meta), ())
    return decode_stored_mood(reply[0][7], keys.session)
