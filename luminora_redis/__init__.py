"""luminora-redis: Redis-native sessions with real expiry and persistent user memory.

Sessions are Redis hashes that expire natively (an absolute TTL plus a sliding
idle timeout, refreshed atomically by Lua); user evolution (affinity, facts,
episodes) lives in non-expiring per-user keys under a persistent ``user_id``;
expired conversations are archived into their user's archive exactly once.
"""

from luminora_redis._version import __version__ as __version__
from luminora_redis.core.codec import unreadable_records_total
from luminora_redis.core.context_messages import ContextMessage
from luminora_redis.core.errors import (
    ConfigurationError,
    InvalidInput,
    InvalidSettings,
    LuminoraRedisError,
    MessageTooLarge,
    MissingPermission,
    NotAcknowledged,
    OutOfMemory,
    ServerRefused,
    SessionExpired,
    SessionNotFound,
    SummaryOutdated,
    UnexpectedReply,
    UnsupportedServer,
)
from luminora_redis.core.models import (
    Affinity,
    ArchivedConversation,
    ArchiveReason,
    ArchiveSummary,
    DeadlineStats,
    DeliveryBacklog,
    Episode,
    EvolutionEvent,
    EvolutionKind,
    Fact,
    FindingCode,
    IndexedSession,
    Message,
    Mood,
    QuarantinedEntry,
    QuarantineKind,
    Recall,
    Role,
    Sentiment,
    ServerFinding,
    Session,
    SessionSummary,
    SessionView,
    UserSummary,
)
from luminora_redis.core.server import ServerIdentity
from luminora_redis.core.settings import SessionConfig, StoreSettings
from luminora_redis.io.store import SessionStore
from luminora_redis.io.sync_store import SyncSessionStore
from luminora_redis.listener.deliveries import OnArchived, Summarize
from luminora_redis.listener.expiry_listener import ExpiryListener
from luminora_redis.listener.settings import ListenerObserver, ListenerSettings

__all__ = [
    "Affinity",
    "ArchiveReason",
    "ArchiveSummary",
    "ArchivedConversation",
    "ConfigurationError",
    "ContextMessage",
    "DeadlineStats",
    "DeliveryBacklog",
    "Episode",
    "EvolutionEvent",
    "EvolutionKind",
    "ExpiryListener",
    "Fact",
    "FindingCode",
    "IndexedSession",
    "InvalidInput",
    "InvalidSettings",
    "ListenerObserver",
    "ListenerSettings",
    "LuminoraRedisError",
    "Message",
    "MessageTooLarge",
    "Mood",
    "NotAcknowledged",
    "OnArchived",
    "MissingPermission",
    "OutOfMemory",
    "QuarantineKind",
    "QuarantinedEntry",
    "Recall",
    "Role",
    "SessionConfig",
    "SessionExpired",
    "SessionNotFound",
    "SessionStore",
    "SessionSummary",
    "Sentiment",
    "ServerFinding",
    "ServerIdentity",
    "ServerRefused",
    "Session",
    "SessionView",
    "StoreSettings",
    "Summarize",
    "SummaryOutdated",
    "SyncSessionStore",
    "UnexpectedReply",
    "UnsupportedServer",
    "UserSummary",
    "unreadable_records_total",
]
