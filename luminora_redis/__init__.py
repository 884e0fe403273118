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
    OutOfMemory,
    ServerRefused,
    SessionExpired,
    SessionNotFound,
    UnexpectedReply,
)
from luminora_redis.core.models import (
    Affinity,
    ArchivedConversation,
    ArchiveReason,
    DeliveryBacklog,
    Episode,
    EvolutionEvent,
    EvolutionKind,
    Fact,
    FindingCode,
    Message,
    Mood,
    QuarantinedEntry,
    QuarantineKind,
    Role,
    Sentiment,
    ServerFinding,
    Session,
)
from luminora_redis.core.settings import SessionConfig, StoreSettings
from luminora_redis.io.store import SessionStore
from luminora_redis.io.sync_store import SyncSessionStore
from luminora_redis.listener.expiry_listener import ExpiryListener, ListenerSettings

__all__ = [
    "Affinity",
    "ArchiveReason",
    "ArchivedConversation",
    "ConfigurationError",
    "ContextMessage",
    "DeliveryBacklog",
    "Episode",
    "EvolutionEvent",
    "EvolutionKind",
    "ExpiryListener",
    "Fact",
    "FindingCode",
    "InvalidInput",
    "InvalidSettings",
    "ListenerSettings",
    "LuminoraRedisError",
    "Message",
    "MessageTooLarge",
    "Mood",
    "OutOfMemory",
    "QuarantineKind",
    "QuarantinedEntry",
    "Role",
    "SessionConfig",
    "SessionExpired",
    "SessionNotFound",
    "SessionStore",
    "Sentiment",
    "ServerFinding",
    "ServerRefused",
    "Session",
    "StoreSettings",
    "SyncSessionStore",
    "UnexpectedReply",
    "unreadable_records_total",
]
