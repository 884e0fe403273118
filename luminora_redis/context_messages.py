"""ContextMessage: the light form in which ``chat_turn`` returns a turn's context.

``chat_turn`` runs on every message a chat server handles and returns the
last N messages, which Redis just read back from what this library stored
(validated on the way in). Building a pydantic ``Message`` and an aware
``datetime`` for each of them cost more than the rest of the client's work
for a turn, so the context comes as slotted objects: ``role``, ``content``
and ``metadata`` are plain attributes, ``timestamp_ms`` is the server's clock
in Unix milliseconds, and ``timestamp`` (the aware UTC datetime of
``Message``) is built on first use. ``to_message()`` gives the pydantic
model, and a ``ContextMessage`` equals the ``Message`` with the same fields.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from luminora_redis.models import Message, Role

__all__ = ["ContextMessage"]

_UTC = timezone.utc
_UNSET: Any = object()


class ContextMessage:
    """One message of a chat turn's context, oldest first in the list."""

    __slots__ = ("_timestamp", "content", "metadata", "role", "timestamp_ms")

    role: Role
    content: str
    metadata: dict[str, Any] | None
    timestamp_ms: int

    def __init__(self, role: Role, content: str, metadata: dict[str, Any] | None,
                 timestamp_ms: int) -> None:
        self.role = role
        self.content = content
        self.metadata = metadata
        self.timestamp_ms = timestamp_ms
        self._timestamp = _UNSET

    @property
    def timestamp(self) -> datetime:
        """The Redis clock when the message was stored, as an aware UTC datetime."""
        if self._timestamp is _UNSET:
            self._timestamp = datetime.fromtimestamp(self.timestamp_ms / 1000, _UTC)
        return self._timestamp  # type: ignore[no-any-return]

    def to_message(self) -> Message:
        """The same message as the validated public model."""
        return Message(role=self.role, content=self.content, timestamp=self.timestamp,
                       metadata=self.metadata)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ContextMessage):
            return ((self.role, self.content, self.metadata, self.timestamp_ms)
                    == (other.role, other.content, other.metadata, other.timestamp_ms))
        if isinstance(other, Message):
            return ((self.role, self.content, self.metadata, self.timestamp)
                    == (other.role, other.content, other.metadata, other.timestamp))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, as Message is

    def __repr__(self) -> str:
        return (f"ContextMessage(role={self.role.value!r}, content={self.content!r:.60}, "
                f"timestamp_ms={self.timestamp_ms}, metadata={self.metadata!r:.60})")
