"""What the chat does, apart from how it is reached (HTTP or WebSocket): start a
session with what the personality recalls, run a turn within the token budget and
keep the running summary, and read the user's archive. The JSON shapes the page
and the HTTP API receive are the pydantic models here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel

from examples.chat_server import memory
from examples.chat_server.responder import facts_in, reply, sentiment, welcome
from examples.chat_server.summarizer import summarize_messages
from luminora_redis import SessionStore
from luminora_redis.core.errors import SessionNotFound
from luminora_redis.core.models import ArchivedConversation, Message, Role, Session

__all__ = ["Chat", "ChatSettings", "MAX_TEXT"]

MAX_TEXT = 4000  # characters of one user message


class AffinityOut(BaseModel):
    points: int
    level: str


class SessionState(BaseModel):
    """A live session's deadlines, in Unix milliseconds, with the server's clock to
    correct the page's: the idle deadline slides with each turn, the absolute one does not."""

    session_id: str
    user_id: str
    personality: str
    idle_deadline_ms: int
    absolute_deadline_ms: int
    max_idle: float
    server_now_ms: int


class FactOut(BaseModel):
    category: str
    key: str
    value: str


class EpisodeOut(BaseModel):
    episode_type: str
    created_at: str
    title: str
    summary: str
    importance: float
    sentiment: str


class RecallOut(BaseModel):
    affinity: AffinityOut
    facts: list[FactOut]
    episodes: list[EpisodeOut]


class MessageOut(BaseModel):
    role: str
    content: str


class ArchiveItem(BaseModel):
    """An archived conversation in the user's list: enough to choose one to open."""

    session_id: str
    personality: str
    reason: str
    started_at: str
    ended_at: str
    message_count: int
    first_message: str


class ArchivedOut(BaseModel):
    session_id: str
    personality: str
    reason: str
    started_at: str
    ended_at: str
    messages: list[MessageOut]


class ContextOut(BaseModel):
    """What the model saw for a turn: the running summary, then the newest messages."""

    summary: str | None
    through: int
    messages: list[MessageOut]
    tokens: int
    budget: int


class SummaryOut(BaseModel):
    """The running summary: ``text`` covers the session's first ``through`` messages."""

    text: str
    through: int


class TurnOut(BaseModel):
    reply: str
    delta: int
    affinity: AffinityOut
    session: SessionState | None = None
    context: ContextOut | None = None
    summary: SummaryOut | None = None
    learned: list[FactOut] = []


class StartOut(BaseModel):
    session_id: str
    user_id: str
    personality: str
    affinity: AffinityOut
    greeting: str
    session: SessionState
    recall: RecallOut
    archive: list[ArchiveItem]


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def messages_out(messages: list[Message]) -> list[MessageOut]:
    return [MessageOut(role=m.role.value, content=m.content) for m in messages]


def archived_out(c: ArchivedConversation) -> ArchivedOut:
    return ArchivedOut(session_id=c.session_id, personality=c.personality_name, reason=c.reason.value,
                       started_at=c.started_at.isoformat(), ended_at=c.ended_at.isoformat(),
                       messages=messages_out([m for m in c.messages if not memory.is_summary(m)]))


@dataclass(frozen=True)
class ChatSettings:
    """How a chat session is run. ``budget``: tokens of conversation context per turn;
    ``recall_budget``: tokens of memory recalled at the start; ``summarize_after``: once
    a turn's context holds this many messages (or three quarters of ``budget``), all the
    messages not yet summarized but the newest ``keep_recent`` are folded into the
    running summary."""

    ttl: float = 86400.0
    max_idle: float = 900.0
    last: int = 20
    budget: int = 400
    recall_budget: int = 300
    summarize_after: int = 12
    keep_recent: int = 4
    archive_shown: int = 10


class Chat:
    """The chat over one store."""

    def __init__(self, store: SessionStore, settings: ChatSettings) -> None:
        self.store = store
        self.settings = settings

    async def affinity(self, user_id: str, personality: str) -> AffinityOut:
        found = await self.store.get_affinity(user_id, personality)
        if found is None:
            return AffinityOut(points=0, level=self.store.settings.level_for(0))
        return AffinityOut(points=found.points, level=found.level)

    def state(self, session: Session) -> SessionState:
        return SessionState(
            session_id=session.session_id, user_id=session.user_id,
            personality=session.personality_name,
            idle_deadline_ms=_ms(session.effective_expires_at),
            absolute_deadline_ms=_ms(session.expires_at), max_idle=session.max_idle,
            server_now_ms=int(time.time() * 1000))

    async def session(self, session_id: str) -> Session:
        """The live session; SessionNotFound once it expired or ended."""
        found = await self.store.get_session(session_id)
        if found is None:
            raise SessionNotFound(session_id)
        return found

    async def recall(self, user_id: str, personality: str) -> RecallOut:
        # One script call: the affinity, facts and episodes that fit the recall budget.
        found = await self.store.recall(user_id, personality, budget=self.settings.recall_budget)
        affinity = (AffinityOut(points=found.affinity.points, level=found.affinity.level)
                    if found.affinity is not None
                    else AffinityOut(points=0, level=self.store.settings.level_for(0)))
        return RecallOut(
            affinity=affinity,
            facts=[FactOut(category=f.category, key=f.key, value=str(f.value)) for f in found.facts],
            episodes=[EpisodeOut(episode_type=e.episode_type, created_at=e.created_at.isoformat(),
                                 title=e.title, summary=e.summary,
                                 importance=e.importance, sentiment=e.sentiment.value)
                      for e in found.episodes])

    async def archive(self, user_id: str) -> list[ArchiveItem]:
        """The user's archived conversations, newest first."""
        found = await self.store.get_archived_conversations(user_id, limit=self.settings.archive_shown)
        return [ArchiveItem(
            session_id=c.session_id, personality=c.personality_name, reason=c.reason.value,
            started_at=c.started_at.isoformat(), ended_at=c.ended_at.isoformat(),
            message_count=c.message_count,
            first_message=next((m.content for m in c.messages if m.role is Role.USER), ""))
            for c in found]

    async def start(self, user_id: str, personality: str) -> StartOut:
        """A new session, with what the personality recalls of the user."""
        session_id = await self.store.create_session(
            user_id, personality, {"ttl": self.settings.ttl, "max_idle": self.settings.max_idle})
        remembered = await self.recall(user_id, personality)
        name = next((f.value for f in remembered.facts if f.key == "name"), None)
        summaries = [e for e in remembered.episodes if e.episode_type == memory.SESSION_SUMMARY]
        last = max(summaries, key=lambda e: e.created_at).title if summaries else None
        return StartOut(session_id=session_id, user_id=user_id, personality=personality,
                        affinity=remembered.affinity, greeting=welcome(personality, name, last),
                        session=self.state(await self.session(session_id)), recall=remembered,
                        archive=await self.archive(user_id))

    async def say(self, session_id: str, text: str) -> TurnOut:
        """One turn: the reply, the affinity change, the session's new deadlines and the
        context the model saw. SessionNotFound when the session expired or ended."""
        session = await self.session(session_id)
        user, personality = session.user_id, session.personality_name
        current = await self.affinity(user, personality)
        answer = reply(personality, text, current.level)
        context = await memory.context_turn(self.store, session_id, [("user", text), ("assistant", answer)],
                                            last=self.settings.last, budget=self.settings.budget)
        delta = sentiment(text)
        if delta:
            changed = await self.store.update_affinity(user, personality, delta, "chat")
            current = AffinityOut(points=changed.points, level=changed.level)
        learned = [FactOut(category=category, key=key, value=value)
                   for category, key, value in facts_in(text)]
        for fact in learned:
            await self.store.save_fact(user, fact.category, fact.key, fact.value)
        return TurnOut(reply=answer, delta=delta, affinity=current, learned=learned,
                       session=self.state(await self.session(session_id)),
                       summary=await self._summarize(session_id, context),
                       context=ContextOut(summary=context.summary, through=context.through,
                                          messages=[MessageOut(role=m.role, content=m.content)
                                                    for m in context.lines],
                                          tokens=context.tokens, budget=context.budget))

    async def _summarize(self, session_id: str, context: memory.Context) -> SummaryOut | None:
        """Fold the older messages into the running summary once the context is full
        (``summarize_after`` messages, or three quarters of the budget); the new summary,
        or None when nothing changed."""
        s = self.settings
        if len(context.lines) < s.summarize_after and context.tokens * 4 < s.budget * 3:
            return None
        history = await self.store.get_history(session_id)
        summary, through, rest = memory.split_summary(history)
        if len(rest) <= s.keep_recent:
            return None
        folded = rest[:len(rest) - s.keep_recent]
        texts = ([summary] if summary else []) + [m.content for m in folded if m.role is Role.USER]
        text = summarize_messages(texts) or summary or ""
        if text and await memory.store_summary(self.store, session_id, text, through + len(folded)):
            return SummaryOut(text=text, through=through + len(folded))
        return None

    async def end(self, session_id: str) -> bool:
        return bool(await self.store.end_session(session_id))

    async def history(self, session_id: str) -> list[Message]:
        """The conversation as the model sees it next: the running summary first (a system
        message), if one is stored, then the messages after it."""
        await self.session(session_id)
        return await self.store.get_history(session_id)

    async def conversation(self, user_id: str, session_id: str) -> ArchivedOut | None:
        found = await self.store.get_archived_conversation(user_id, session_id)
        return archived_out(found) if found is not None else None

