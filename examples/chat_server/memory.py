"""The context calls of the chat: a turn within a token budget, the running summary,
and the listener that keeps a summary of every expired session.

Each is one call to the library: `SessionStore.chat_turn` with ``budget=`` (the
newest messages that fit, summed by the script in the turn's one round trip, after
the running summary), `SessionStore.set_summary` (refused when a newer summary is
stored) and `ExpiryListener` with ``summarize=`` (one ``session_summary`` episode
per expired session, exactly once, before ``on_archived`` sees the conversation).
What is recalled on reconnect is `SessionStore.recall`, called by `chat.Chat`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from luminora_redis import ExpiryListener, SessionStore, Summarize, SummaryOutdated
from luminora_redis.core.models import Role
from luminora_redis.listener.expiry_listener import OnArchived

__all__ = ["SESSION_SUMMARY", "Context", "Line", "context_turn", "is_summary", "listener",
           "split_summary", "store_summary"]

#: The episode type of the summary kept for each expired session.
SESSION_SUMMARY = "session_summary"


@dataclass(frozen=True)
class Line:
    """One message of the context a turn hands to the model."""

    role: str
    content: str
    tokens: int


@dataclass(frozen=True)
class Context:
    """What the model sees for a turn: the running summary (if any, covering the first
    ``through`` messages), then the newest messages that fit the token budget."""

    summary: str | None
    through: int
    lines: list[Line]
    tokens: int
    budget: int


def is_summary(message: Any) -> bool:
    """Whether a message of a context or an archive is the running summary."""
    return bool(message.role is Role.SYSTEM and (message.metadata or {}).get("summary") is True)


def split_summary(messages: Sequence[Any]) -> tuple[str | None, int, list[Any]]:
    """(summary text or None, how many messages it covers, the messages after it) of a
    context or history, which starts with the running summary once one is stored."""
    if messages and is_summary(messages[0]):
        first = messages[0]
        return first.content, int(first.metadata["through"]), list(messages[1:])
    return None, 0, list(messages)


async def context_turn(store: SessionStore, session_id: str, messages: list[tuple[str, str]], *,
                       last: int, budget: int) -> Context:
    """Append the turn and return its context within ``budget`` tokens, one round trip."""
    reply = await store.chat_turn(session_id, messages, last=last, budget=budget)
    summary, through, rest = split_summary(reply)
    return Context(summary=summary, through=through,
                   lines=[Line(m.role.value, m.content, m.tokens or 0) for m in rest],
                   tokens=sum(m.tokens or 0 for m in reply), budget=budget)


async def store_summary(store: SessionStore, session_id: str, text: str, through: int) -> bool:
    """Keep ``text`` as the summary of the session's first ``through`` messages; False when
    a summary through a later message is already stored (a slower summarizer lost)."""
    try:
        await store.set_summary(session_id, text, through)
    except SummaryOutdated:
        return False
    return True


def listener(store: SessionStore, *, summarize: Summarize, on_archived: OnArchived | None,
             sweep_interval: float) -> ExpiryListener:
    """The app's `ExpiryListener`: it archives expired sessions, keeps one
    ``session_summary`` episode per conversation that ``summarize`` finds worth keeping,
    then hands the conversation to ``on_archived``."""
    return ExpiryListener(store, sweep_interval=sweep_interval, on_archived=on_archived,
                          summarize=summarize)
