"""ContextMessage: the light form in which ``chat_turn`` returns a turn's context.

``chat_turn`` runs on every message a chat server handles and returns the
last N messages, which Redis just read back from what this library stored
(validated on the way in). Building a pydantic ``Message`` and an aware
``datetime`` for each of them cost more than the rest of the client's work
for a turn, so the context comes as named tuples: ``role``, ``content``,
``metadata``, and ``timestamp_ms``, the server's clock in Unix milliseconds.
``timestamp`` (the aware UTC datetime of ``Message``) is built when asked for,
``to_message()`` gives the pydantic model, and a ``ContextMessage`` equals the
``Message`` with the same fields.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, NamedTuple

from luminora_redis.models import Message, Role

__all__ = ["ContextMessage"]

_UTC = timezone.utc


class ContextMessage(NamedTuple):
    """One message of a chat turn's context, oldest first in the list."""

    role: Role
    content: str
    metadata: dict[str, Any] | None
    timestamp_ms: int

    @property
    def timestamp(self) -> datetime:
        """The Redis clock when the message was stored, as an aware UTC datetime."""
        return datetime.fromtimestamp(self.timestamp_ms / 1000, _UTC)

    def to_message(self) -> Message:
        """The same message as the validated public model."""
        return Message(role=self.role, content=self.content, timestamp=self.timestamp,
                       metadata=self.metadata)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Message):
            return ((self.role, self.content, self.metadata, self.timestamp)
                    == (other.role, other.content, other.metadata, other.timestamp))
        return tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = tuple.__hash__
