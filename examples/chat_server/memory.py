"""The context calls of the chat: a turn within a token budget, the running summary,
recall on reconnect, and the listener that keeps a summary of every expired session.

Each is one call to the library (`SessionStore.chat_turn` with ``budget=``,
`SessionStore.set_summary`, `SessionStore.recall`, `ExpiryListener` with
``summarize=``). Where the installed library predates one of them, the adapter
here does the same job on the client (at the cost of the guarantees the library
gives: the summary then lives in this process only, and the summary episode is
saved by the ``on_archived`` sink, at least once rather than exactly once), so the
app runs on either. `FEATURES` says which path each one takes.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from luminora_redis import ExpiryListener, SessionStore
from luminora_redis.core.models import Affinity, ArchivedConversation, Fact, Role
from luminora_redis.listener.expiry_listener import ListenerSettings, OnArchived

__all__ = ["FEATURES", "SESSION_SUMMARY", "Context", "Remembered", "Summarize", "context_turn", "is_summary",
           "split_summary", "summary_of",
           "listener", "recall", "store_summary"]

#: The episode type of the summary kept for each expired session.
SESSION_SUMMARY = "session_summary"

#: ``fn(conversation) -> {"title", "summary", "importance", "sentiment"} | None``, plain or async.
Summarize = Callable[[ArchivedConversation], Any]


def _accepts(function: Callable[..., Any], name: str) -> bool:
    return name in inspect.signature(function).parameters


#: Which calls the library makes itself (True) and which the adapters stand in for (False).
FEATURES: dict[str, bool] = {
    "budget": _accepts(SessionStore.chat_turn, "budget"),
    "set_summary": hasattr(SessionStore, "set_summary"),
    "recall": hasattr(SessionStore, "recall"),
    "summarize": (_accepts(ExpiryListener.__init__, "summarize")
                  or "summarize" in ListenerSettings.model_fields),
}


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


# Stand-ins for set_summary while the library lacks it: session id -> (text, through).
_summaries: dict[str, tuple[str, int]] = {}


def is_summary(message: Any) -> bool:
    metadata = message.metadata or {}
    return bool(message.role is Role.SYSTEM and ("through" in metadata or metadata.get("summary")))


def split_summary(messages: Sequence[Any]) -> tuple[str | None, int, list[Any]]:
    """(summary text or None, messages it covers, the messages after it) of a context or
    history that may start with the running summary."""
    if messages and is_summary(messages[0]):
        first = messages[0]
        return first.content, int((first.metadata or {}).get("through", 0)), list(messages[1:])
    return None, 0, list(messages)


def _tokens(store: SessionStore, message: Any) -> int:
    counted = getattr(message, "tokens", None)
    return int(counted) if counted is not None else store.count_tokens(message.content)


async def context_turn(store: SessionStore, session_id: str, messages: list[tuple[str, str]], *,
                       last: int, budget: int) -> Context:
    """Append the turn and return its context within ``budget`` tokens, one round trip."""
    if FEATURES["budget"]:
        reply = await store.chat_turn(session_id, messages, last=last, budget=budget)  # type: ignore[call-arg]
        summary, through, rest = split_summary(reply)
    else:
        reply = await store.chat_turn(session_id, messages, last=last)
        summary, through = _summaries.get(session_id, (None, 0))
        _, _, rest = split_summary(reply)
        rest = _fit(store, summary, rest, budget)
    lines = [Line(m.role.value, m.content, _tokens(store, m)) for m in rest]
    used = sum(line.tokens for line in lines) + (store.count_tokens(summary) if summary else 0)
    return Context(summary=summary, through=through, lines=lines, tokens=used, budget=budget)


def _fit(store: SessionStore, summary: str | None, messages: list[Any], budget: int) -> list[Any]:
    left = budget - (store.count_tokens(summary) if summary else 0)
    kept: list[Any] = []
    for message in reversed(messages):
        left -= _tokens(store, message)
        if left < 0:
            break
        kept.append(message)
    return kept[::-1]


async def store_summary(store: SessionStore, session_id: str, text: str, through: int) -> bool:
    """Keep ``text`` as the summary of the session's first ``through`` messages; False when
    a summary through a later message is already stored."""
    if FEATURES["set_summary"]:
        return bool(await store.set_summary(session_id, text, through=through))  # type: ignore[attr-defined]
    if _summaries.get(session_id, ("", -1))[1] >= through:
        return False
    _summaries[session_id] = (text, through)
    return True


def summary_of(session_id: str) -> tuple[str | None, int]:
    """The in-process stand-in's summary of a session (None, 0 when the library keeps it)."""
    return _summaries.get(session_id, (None, 0))


@dataclass(frozen=True)
class Remembered:
    """What the personality recalls of a user on reconnect."""

    affinity: Affinity | None
    facts: list[Fact] = field(default_factory=list)
    episodes: list[Any] = field(default_factory=list)


async def recall(store: SessionStore, user_id: str, personality: str, budget: int) -> Remembered:
    """The affinity, facts and episodes (session summaries included, most important first)
    that fit ``budget`` tokens."""
    if FEATURES["recall"]:
        found = await store.recall(user_id, personality, budget=budget)  # type: ignore[attr-defined]
        return Remembered(found.affinity, list(found.facts), list(found.episodes))
    affinity = await store.get_affinity(user_id, personality)
    facts = await store.get_facts(user_id)
    episodes = [e for e in await store.get_episodes(user_id, limit=50)
                if e.personality_name in (None, personality)]
    left = budget
    kept_facts, kept_episodes = [], []
    for fact in facts:
        left -= store.count_tokens(f"{fact.key}: {fact.value}")
        if left >= 0:
            kept_facts.append(fact)
    for episode in episodes:
        left -= store.count_tokens(f"{episode.title}. {episode.summary}")
        if left >= 0:
            kept_episodes.append(episode)
    return Remembered(affinity, kept_facts, kept_episodes)


def listener(store: SessionStore, *, summarize: Summarize, on_archived: OnArchived | None,
             sweep_interval: float) -> ExpiryListener:
    """The app's `ExpiryListener`: it archives expired sessions and keeps one
    ``session_summary`` episode per conversation that ``summarize`` finds worth keeping."""
    if FEATURES["summarize"]:
        return ExpiryListener(store, sweep_interval=sweep_interval, on_archived=on_archived,
                              summarize=summarize)

    async def archived(conversation: ArchivedConversation) -> None:
        _summaries.pop(conversation.session_id, None)
        episode = summarize(conversation)
        if inspect.isawaitable(episode):
            episode = await episode
        if episode is not None:
            await store.save_episode(conversation.user_id, SESSION_SUMMARY, episode["title"],
                                     episode["summary"], episode["importance"], episode["sentiment"],
                                     conversation.personality_name)
        if on_archived is not None:
            delivered = on_archived(conversation)
            if isinstance(delivered, Awaitable):
                await delivered

    return ExpiryListener(store, sweep_interval=sweep_interval, on_archived=archived)
