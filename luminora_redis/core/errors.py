"""The exceptions luminora-redis raises, and how script replies map to them.

A script that may refuse, or find nothing to do, replies with a flat array
whose first element is a status code: ``ReplyCode``, one table shared by all
scripts and all their callers. ``raise_for_status`` turns the
non-success ones into exceptions, so "expired" and "not found" are typed while
connection errors from redis-py propagate untouched: a Redis outage never
looks like a missing session. A refusal of the server itself (``OutOfMemory``,
and ``MissingPermission`` when its ACL refuses a command, key or channel) is
mapped once, where both stores run a step (``server_refusal``).
"""

from __future__ import annotations

from enum import IntEnum
from typing import NoReturn

from redis import exceptions as redis_errors

from luminora_redis.core import acl

__all__ = [
    "FOLLOW_UP_ERRORS",
    "ConfigurationError",
    "InvalidInput",
    "InvalidSettings",
    "LuminoraRedisError",
    "MessageTooLarge",
    "MissingPermission",
    "NotAcknowledged",
    "OutOfMemory",
    "ReplyCode",
    "ServerRefused",
    "SessionExpired",
    "SessionNotFound",
    "SummaryOutdated",
    "UnexpectedReply",
    "UnsupportedServer",
    "missing_permission",
    "raise_for_status",
    "server_refusal",
]


class ReplyCode(IntEnum):
    """The status code a script replies with first, one table for every script.

    Each ``.lua`` header lists the codes that script replies with and what each
    means there; a test holds this table and the headers to each other (every
    code a header names is here, and every code here is named by some header).
    """

    #: Done: what the call asked for happened (the rest of the reply is its result).
    OK = 1
    #: Nothing done and nothing written: no such session, record, fact or delivery, not
    #: due, or not this caller's (e.g. a sweep lease held by another listener).
    NOT_FOUND = 0
    #: The session's deadline has passed; it waits to be archived and takes no writes.
    EXPIRED = -1
    #: The session is still live; only its deadline index entry was raised (archiving
    #: in expire or cleanup mode).
    ALIVE = -2
    #: The fresh session id is taken by another call (create_session).
    EXISTS = -3
    #: A segment count (or frame count) changed since the caller read it; read again.
    STALE = -4
    #: auto_cleanup is off: left for an explicit cleanup (archiving in expire mode).
    MANUAL = -5
    #: A list's length changed since the caller read it; nothing written
    #: (compact_archive).
    CHANGED = -6
    #: The position lies in a segment the call did not name; read the owner and name it
    #: (read_history).
    SEGMENT_NEEDED = -7
    #: A newer record is stored: a summary through a later message (set_summary).
    OUTDATED = -8
    #: A position lies past the conversation's end; nothing written (set_summary).
    BEYOND_END = -9
    #: Created by an earlier send of the same call (same nonce): a resend (create_session).
    CREATED_BEFORE = 2
    #: Moved to the quarantine: a delivery out of attempts or whose body cannot be read,
    #: or a sweep entry that failed too often.
    QUARANTINED = 3


class LuminoraRedisError(Exception):
    """Base class of every error luminora-redis raises itself."""


class InvalidInput(LuminoraRedisError, ValueError):
    """An id, name, duration or payload was refused before anything was written."""


class MessageTooLarge(InvalidInput):
    """A message is larger than the store's ``max_message_bytes``."""


class ConfigurationError(LuminoraRedisError):
    """The store cannot work with the client or settings it was given."""


class InvalidSettings(ConfigurationError, ValueError):
    """A settings object (``StoreSettings``, ``SessionConfig``, ``ListenerSettings``) or a
    store or listener keyword was refused; the message names each field and what is wrong.

    It is a ``ValueError`` too, like the pydantic error it replaces (kept as ``__cause__``).
    """

    def __init__(self, message: str, reasons: str | None = None) -> None:
        super().__init__(message)
        #: What is wrong, without the name of the settings object.
        self.reasons = message if reasons is None else reasons


class UnsupportedServer(ConfigurationError):
    """The server is older than luminora-redis supports (Redis 6.2, Valkey 7.2); the
    message says what was found and what is needed."""

    def __init__(self, message: str, *, found: str, needed: str) -> None:
        super().__init__(message)
        #: What the server is, e.g. ``"redis 5.0.6"``.
        self.found = found
        #: What luminora-redis needs.
        self.needed = needed


class SessionNotFound(LuminoraRedisError, LookupError):
    """No live session has this id: it never existed, or was ended, deleted or archived."""

    def __init__(self, session_id: str, message: str | None = None) -> None:
        super().__init__(message or f"no live session {session_id!r}")
        self.session_id = session_id


class SessionExpired(SessionNotFound):
    """The session's deadline has passed; it waits to be archived and takes no writes."""

    def __init__(self, session_id: str) -> None:
        super().__init__(session_id, f"session {session_id!r} has expired")


class SummaryOutdated(LuminoraRedisError):
    """``set_summary`` was refused: the session holds a summary through a later message
    (a slower summarizer never overwrites a newer summary); nothing was written."""

    def __init__(self, session_id: str, through: int, stored: int) -> None:
        super().__init__(f"session {session_id} has a summary through message {stored}; "
                         f"one through message {through} is older")
        self.session_id, self.through, self.stored = session_id, through, stored


class UnexpectedReply(LuminoraRedisError):
    """A script answered with a code it is not documented to return."""


class ServerRefused(LuminoraRedisError):
    """Redis refused to run a script for a state of its own, not for the input: the
    script did not run and wrote nothing. The state passes (an outage to wait out);
    the redis-py error is the ``__cause__``."""


class OutOfMemory(ServerRefused, redis_errors.OutOfMemoryError):
    """Redis is over ``maxmemory`` (under ``noeviction``, or with nothing left to evict)
    and refuses every script that may write before it runs; reads keep working.

    Also a redis-py ``OutOfMemoryError``, so code that catches Redis's own refusal
    (or ``ResponseError``) still does."""


class MissingPermission(ServerRefused, redis_errors.NoPermissionError):
    """Redis's ACL refused the connection's user a command, a key or a channel the
    library needs; nothing was written. The message names what was refused (the
    command, when Redis or the script's line tells it) and the rule to add, and
    ``luminora-redis acl`` prints every rule.

    Also a redis-py ``NoPermissionError``, so code that catches Redis's own refusal
    still does; a listener waits it out like any refusal (the right may be granted)."""

    def __init__(self, message: str, *, command: str | None = None, rule: str | None = None,
                 script: str | None = None) -> None:
        super().__init__(message)
        #: The refused command in ACL form (``time``, ``config|get``), when known.
        self.command = command
        #: The ACL rule that grants it (``+time``, ``~lr:*``, ``&__keyevent@0__:expired``).
        self.rule = rule
        #: The script the command was refused in, when it was.
        self.script = script


def missing_permission(error: Exception, *, prefix: str | None = None,
                       db: int | None = None) -> MissingPermission | None:
    """``error`` as a `MissingPermission` chained to it, when it is a refusal of Redis's
    ACL (a ``NOPERM`` reply, or a script's command refused); else None. ``prefix`` and
    ``db`` complete the key and channel rules."""
    if isinstance(error, MissingPermission) or not isinstance(error, redis_errors.ResponseError):
        return None
    denial = acl.denial_of(str(error))
    if denial is None:
        return None
    where = f" in script {denial.script}" if denial.script else ""
    if denial.key:
        rule = acl.key_rule(prefix) if prefix else "~<prefix>:*"
        what = f"access to the store's keys{where}"
    elif denial.channel:
        rule = acl.channel_rule(db) if db is not None else "&__keyevent@<db>__:expired"
        what = "the expired-events channel"
    elif denial.command is not None:
        rule = f"+{denial.command}"
        what = f"the command {denial.command.upper().replace('|', ' ')}{where}"
    else:
        rule = None
        what = f"a command{where}"
    fix = (f"grant it with the ACL rule {rule}" if rule
           else "grant the rules that luminora-redis acl prints")
    command = f"luminora-redis acl --prefix {prefix}" if prefix else "luminora-redis acl"
    refused = MissingPermission(
        f"Redis's ACL refused this connection's user {what}: {fix} "
        f"(`{command}` prints every rule the store and the listener need; Redis said: "
        f"{str(error).splitlines()[0] if str(error) else type(error).__name__})",
        command=denial.command, rule=rule, script=denial.script)
    refused.__cause__ = error
    refused.__suppress_context__ = True
    return refused


class NotAcknowledged(LuminoraRedisError):
    """A write ran on the primary (or may have: the connection failed while it was out)
    but was not acknowledged as the store's ``acknowledge`` setting asks within
    ``acknowledge_timeout``: too few replicas confirmed it (``WAIT``), or the
    append-only file did not reach disk (``WAITAOF``). It may or may not survive a
    failover. The message says what the wait saw; a redis-py error the wait met is
    the ``__cause__``. Unlike ``ServerRefused``, the write may have landed."""


def server_refusal(error: Exception, *, prefix: str | None = None) -> Exception:
    """The library's exception for a refusal by Redis, chained to ``error``; any other
    error as it is. Both runners pass every failed step through it, with the store's
    ``prefix`` (for the key rule of a `MissingPermission`)."""
    if isinstance(error, redis_errors.OutOfMemoryError) and not isinstance(error, OutOfMemory):
        refused = OutOfMemory(*error.args)
        refused.__cause__ = error
        refused.__suppress_context__ = True
        return refused
    if isinstance(error, redis_errors.ResponseError):
        return missing_permission(error, prefix=prefix) or error
    return error


#: What work after a commit (compression, segment moves) may fail with without making the
#: committed operation look failed: Redis refusing or unreachable, or a library error.
#: Anything else is a bug and propagates.
FOLLOW_UP_ERRORS: tuple[type[Exception], ...] = (redis_errors.RedisError, OSError,
                                                 LuminoraRedisError)


def raise_for_status(code: int, session_id: str) -> NoReturn:
    """Raise the exception that a non-success session reply code stands for."""
    if code == ReplyCode.EXPIRED:
        raise SessionExpired(session_id)
    if code == ReplyCode.NOT_FOUND:
        raise SessionNotFound(session_id)
    raise UnexpectedReply(f"unexpected reply code {code!r} for session {session_id!r}")
