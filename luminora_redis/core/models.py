"""The typed values the stores accept and return.

Models the store builds from its own replies are made with ``model_construct``
(no re-validation: the data was validated on the way in); models a caller
builds are validated like any pydantic model.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictStr

__all__ = [
    "Affinity",
    "ArchiveReason",
    "ArchiveSummary",
    "ArchivedConversation",
    "DeadlineStats",
    "DeliveryBacklog",
    "Episode",
    "EvolutionEvent",
    "EvolutionKind",
    "Fact",
    "FindingCode",
    "IndexedSession",
    "Message",
    "Mood",
    "QuarantineKind",
    "QuarantinedEntry",
    "Recall",
    "Role",
    "Sentiment",
    "ServerFinding",
    "Session",
    "SessionSummary",
    "SessionView",
    "UserSummary",
    "trusted",
]

M = TypeVar("M", bound=BaseModel)


class Role(str, Enum):
    """Who spoke a message."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class Sentiment(str, Enum):
    """How an episode felt to the user."""

    POSITIVE = "positive"
    NEUTRAL = "neutral"
    NEGATIVE = "negative"
    MIXED = "mixed"


class ArchiveReason(str, Enum):
    """Why a session ended: its idle deadline, its absolute deadline, or an explicit end."""

    IDLE = "idle"
    ABSOLUTE = "absolute"
    ENDED = "ended"


class EvolutionKind(str, Enum):
    """What an evolution record describes."""

    AFFINITY = "affinity"
    TRAIT = "trait"


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, use_enum_values=False)


class Message(_Value):
    """One message of a conversation. ``timestamp`` is the Redis clock when stored;
    ``tokens`` the count the store's ``token_counter`` gave its content when it was
    written (None on a message not yet stored, or stored before counts were)."""

    role: Role
    content: str
    timestamp: datetime | None = None
    metadata: dict[str, Any] | None = None
    tokens: int | None = None


class Session(_Value):
    """A live session. All datetimes are timezone-aware UTC.

    ``expires_at`` is the absolute deadline (created + ttl); the session ends at
    ``effective_expires_at`` = min(last_activity + max_idle, expires_at).
    """

    session_id: str
    user_id: str
    personality_name: str
    created_at: datetime
    expires_at: datetime
    last_activity: datetime
    effective_expires_at: datetime
    ttl: float = Field(description="absolute lifetime, seconds")
    max_idle: float = Field(description="sliding idle timeout, seconds")
    auto_cleanup: bool


class Mood(_Value):
    """The personality's current mood in one session."""

    mood: str
    intensity: float
    updated_at: datetime


class Affinity(_Value):
    """How close a user is to one personality; survives every reconnect."""

    user_id: str
    personality_name: str
    points: int
    level: str


class Fact(_Value):
    """Something the personality knows about the user."""

    category: str
    key: str
    value: Any
    confidence: float
    updated_at: datetime


class Episode(_Value):
    """A memorable moment of the user's story."""

    episode_id: str
    episode_type: str
    title: str
    summary: str
    importance: float
    sentiment: Sentiment
    personality_name: str | None
    created_at: datetime


class EvolutionEvent(_Value):
    """One change in a user's relationship with a personality.

    Affinity records carry ``points_delta``, ``points``, ``level`` and an optional
    ``interaction_type``; trait records carry ``trait``, ``value`` and ``reason``.
    """

    kind: EvolutionKind
    personality_name: str
    timestamp: datetime
    sequence: int
    points_delta: int | None = None
    points: int | None = None
    level: str | None = None
    interaction_type: str | None = None
    trait: str | None = None
    value: float | str | None = None
    reason: str | None = None


class ArchivedConversation(_Value):
    """A session's whole conversation, moved into its user's archive when it ended.

    ``idempotency_key`` is stable across every delivery of this conversation to
    the ``on_archived`` sink (it is the session id): deliveries are at least
    once, so a sink deduplicates on it. ``mood`` is the mood the session ended
    with (None when none was saved, or it was archived before archives kept it).
    ``summary`` is the session's last running summary (``set_summary``), a system
    message whose metadata is {"summary": True, "through": n}; None when it had
    none. ``messages`` holds every message, the summarized ones included.
    """

    session_id: str
    user_id: str
    personality_name: str
    started_at: datetime
    ended_at: datetime
    reason: ArchiveReason
    message_count: int
    #: How many of its messages could not be read, so ``messages`` lacks them: stored
    #: records that do not decode, and the messages ``message_count`` counts that no
    #: stored list or frame gave back (an unreadable zstd frame: all it held). 0 when
    #: the conversation was read whole.
    unreadable_messages: int = 0
    messages: list[Message]
    idempotency_key: str = ""
    mood: Mood | None = None
    summary: Message | None = None

    def model_post_init(self, context: Any, /) -> None:
        if not self.idempotency_key:
            object.__setattr__(self, "idempotency_key", self.session_id)


class DeliveryBacklog(_Value):
    """What waits in the outboxes of every bucket.

    ``pending`` counts deliveries not yet acknowledged (in flight included),
    ``oldest_age_seconds`` is the age of the oldest of them (None when none
    is), ``quarantined`` the deliveries that failed their maximum attempts and
    ``quarantined_sessions`` the sweep entries that failed too often.
    """

    pending: int
    oldest_age_seconds: float | None
    quarantined: int
    quarantined_sessions: int = 0


class QuarantineKind(str, Enum):
    """What was quarantined: a delivery to the sink, or a deadline index entry."""

    DELIVERY = "delivery"
    SESSION = "session"


class QuarantinedEntry(_Value):
    """One quarantined delivery or sweep entry; its data is kept in Redis."""

    kind: QuarantineKind
    session_id: str
    user_id: str | None
    #: Delivery attempts, or sweep failures.
    attempts: int
    quarantined_at: datetime


class FindingCode(str, Enum):
    """What `check_server` found."""

    EVICTS_USER_DATA = "evicts-user-data"
    EVICTS_SESSIONS = "evicts-sessions"
    CONFIG_UNAVAILABLE = "config-unavailable"

    def __str__(self) -> str:
        """The code itself (``config-unavailable``), in ``str()``, f-strings and ``%s``
        alike, never the enum's repr, wherever a finding is printed or logged."""
        return str(self.value)


class ServerFinding(_Value):
    """A server setting that endangers the store's data, or could not be checked."""

    code: FindingCode
    message: str
    fix: str
    server: str | None = None


def trusted(cls: type[M]) -> Callable[..., M]:
    """A constructor for ``cls`` from trusted data that gives every field.

    It does what ``model_construct`` does for a model without aliases,
    private attributes or post-init hooks, minus the per-field lookups that
    make ``model_construct`` cost more than decoding the message itself; it is
    used on the hot path only. For any other model it is ``model_construct``.
    A test checks that both build equal models.
    """
    plain = (
        not cls.__pydantic_post_init__
        and not cls.__private_attributes__
        and cls.model_config.get("extra") != "allow"
        and all(f.alias is None and f.validation_alias is None for f in cls.model_fields.values())
    )
    if not plain:
        return cls.model_construct
    fields_set = set(cls.model_fields)
    new = cls.__new__
    set_attribute = object.__setattr__

    def build(**values: Any) -> M:
        model = new(cls)
        set_attribute(model, "__dict__", values)
        set_attribute(model, "__pydantic_fields_set__", fields_set)
        set_attribute(model, "__pydantic_extra__", None)
        set_attribute(model, "__pydantic_private__", None)
        return model

    return build


# -- users and operations ------------------------------------------------------


class UserSummary(_Value):
    """One user at a glance: first and last visit, and how much of each kind of data is kept.

    ``first_seen`` and ``last_seen`` are the user's first and latest session start
    (None for a user who only has memory written by the application).
    """

    user_id: str
    first_seen: datetime | None
    last_seen: datetime | None
    live_sessions: int = Field(description="sessions not yet archived (live or just expired)")
    archived_conversations: int
    personalities: int = Field(description="personalities with an affinity record")
    facts: int
    episodes: int
    evolution_records: int


class ArchiveSummary(_Value):
    """An archived conversation without its messages."""

    session_id: str
    personality_name: str
    started_at: datetime
    ended_at: datetime
    reason: ArchiveReason
    message_count: int


class IndexedSession(_Value):
    """A session as the deadline indexes see it: not archived yet, live or overdue."""

    session_id: str
    user_id: str | None = Field(description="None when its keys are gone (a stale index entry)")
    personality_name: str | None
    deadline: datetime | None = Field(description="when it ends (ended) on the server clock")
    expired: bool
    auto_cleanup: bool


class SessionView(_Value):
    """An operator's look at a session, live or expired and not yet archived; a peek."""

    session: IndexedSession
    created_at: datetime
    expires_at: datetime = Field(description="the absolute deadline")
    last_activity: datetime | None = Field(description="None once the session hash is gone")
    message_count: int
    tail: list[Message] = Field(description="the newest messages, oldest first")


class DeadlineStats(_Value):
    """What the per-bucket deadline indexes say about sessions not yet archived."""

    sessions: int
    overdue: int = Field(description="sessions past their deadline, not yet archived")
    ending_soon: int = Field(description="sessions whose deadline falls within the window")
    window_seconds: float
    oldest_overdue_seconds: float | None = Field(
        description="how long ago the oldest overdue deadline passed: the archive backlog")
    buckets: int


# -- what a personality remembers ------------------------------------------------


class SessionSummary(_Value):
    """What a ``summarize`` function returns for an expired session (or a mapping with
    these keys, or any object with these attributes): kept as the session's one
    ``session_summary`` episode. ``importance`` is 0 to 10, like every episode's."""

    model_config = ConfigDict(frozen=True, from_attributes=True)

    title: StrictStr
    summary: StrictStr
    importance: float = Field(ge=0.0, le=10.0, allow_inf_nan=False)
    sentiment: Sentiment = Sentiment.NEUTRAL


class Recall(_Value):
    """What a personality remembers of a user on reconnect, packed within a token budget
    (see ``SessionStore.recall``): what an app puts into a new session's system prompt.

    ``facts`` newest first, ``episodes`` most important first (newest first among equals,
    session summaries included); ``tokens`` is the sum of their stored token counts,
    ``left_out`` how many facts and episodes were considered and did not fit (or were
    over the caps), so 0 means nothing was left out.
    """

    user_id: str
    personality_name: str
    affinity: Affinity | None
    facts: list[Fact]
    episodes: list[Episode]
    tokens: int
    budget: int | None
    left_out: int
