"""ContextMessage: the light form in which ``chat_turn`` returns a turn's context.

``chat_turn`` runs on every message a chat server handles and returns the
last N messages, which Redis just read back from what this library stored
(validated on the way in). Building a pydantic ``Message`` and an aware
``datetime`` for each of them cost more than the rest of the client's work
for a turn, so the context comes as light read-only tuples, each the decoded
stored record itself (no copy): ``role`` (a ``Role``), ``content``,
``metadata``, ``tokens`` (the count stored when the message was written; None
for a message stored before counts were) and ``timestamp_ms``, the server's
clock in Unix milliseconds. The tuple is (role, content, metadata, tokens,
timestamp_ms), as the record is stored; one stored without a count is the
4-tuple without ``tokens``, so read the fields by name.
``timestamp`` (the aware UTC datetime of ``Message``) is built when asked for,
``to_message()`` gives the pydantic model, and a ``ContextMessage`` equals the
``Message`` with the same fields.
"""

from __future__ import annotations

from datetime import datetime, timezone
from operator import itemgetter
from typing import Any

from luminora_redis.core.models import Message, Role

__all__ = ["ROLES", "ContextMessage"]

_UTC = timezone.utc
#: A stored role's value -> the Role (the codec reads roles through it too).
ROLES: dict[str, Role] = {role.value: role for role in Role}


class ContextMessage(tuple):  # type: ignore[type-arg]
    """One message of a chat turn's context, oldest first in the list: a tuple of
    (role value, content, metadata, tokens, timestamp_ms) with named, read-only fields."""

    __slots__ = ()
    _fields = ("role", "content", "metadata", "tokens", "timestamp_ms")

    def __new__(cls, role: Role | str, content: str, metadata: dict[str, Any] | None,
                timestamp_ms: int, tokens: int | None = None) -> ContextMessage:
        return tuple.__new__(cls, (Role(role).value, content, metadata, tokens, timestamp_ms))

    @property
    def role(self) -> Role:
        return ROLES[self[0]]

    content: str = property(itemgetter(1))  # type: ignore[assignment]
    metadata: dict[str, Any] | None = property(itemgetter(2))  # type: ignore[assignment]
    timestamp_ms: int = property(itemgetter(-1))  # type: ignore[assignment]

    @property
    def tokens(self) -> int | None:
        """The message's token count, stored when it was written (None: stored before
        counts were)."""
        return self[3] if len(self) == 5 else None

    @property
    def timestamp(self) -> datetime:
        """The Redis clock when the message was stored, as an aware UTC datetime."""
        return datetime.fromtimestamp(self[-1] / 1000, _UTC)

    def to_message(self) -> Message:
        """The same message as the validated public model."""
        return Message(role=self.role, content=self[1], timestamp=self.timestamp,
                       metadata=self[2], tokens=self.tokens)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Message):
            return ((self.role, self[1], self[2], self.timestamp, self.tokens)
                    == (other.role, other.content, other.metadata, other.timestamp,
                        other.tokens))
        return tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = tuple.__hash__

    def __repr__(self) -> str:
        return (f"ContextMessage(role={self[0]!r}, content={self[1]!r:.60}, "
                f"metadata={self[2]!r:.60}, tokens={self.tokens}, timestamp_ms={self[-1]})")

    def __getnewargs__(self) -> tuple[Any, ...]:
        return (self[0], self[1], self[2], self[-1], self.tokens)
