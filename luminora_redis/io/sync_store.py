"""SyncSessionStore: the blocking store, a thin shell over the operations.

It has exactly the public methods and signatures of ``SessionStore`` (a test
compares them) and shares their docstrings. It sends through a blocking
redis-py client: no event loop is involved. Like ``SessionStore``, it stands on
a base, ``SyncStoreBase`` (``io/sync_base.py``): the client, the runner, first
use and ``run``; this module holds ``from_url``, closing and the public methods.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from luminora_redis.core.context_messages import ContextMessage
from luminora_redis.core.models import (
    Affinity,
    ArchivedConversation,
    ArchiveSummary,
    DeadlineStats,
    DeliveryBacklog,
    Episode,
    EvolutionEvent,
    Fact,
    IndexedSession,
    Message,
    Mood,
    QuarantinedEntry,
    Recall,
    Sentiment,
    Session,
    SessionView,
    UserSummary,
)
from luminora_redis.core.settings import StoreSettings
from luminora_redis.io.base import check_flag, client_from_url, store_settings
from luminora_redis.io.sentinel_url import sync_master
from luminora_redis.io.store import SessionStore
from luminora_redis.io.sync_base import SyncStoreBase, close_client
from luminora_redis.ops import (
    archive,
    archive_reads,
    compaction,
    erasure,
    liveness,
    memory,
    outbox,
    overview,
    sessions,
    users,
)
from luminora_redis.ops.sessions import MessageLike

__all__ = ["SyncSessionStore"]


class SyncSessionStore(SyncStoreBase):
    """The blocking twin of ``SessionStore``: same names, same arguments, same results.

    ``SyncSessionStore(client)`` takes a ``redis.Redis`` or ``redis.cluster.RedisCluster``
    made with ``decode_responses=False``; ``SyncSessionStore.from_url(url)`` makes one.
    Safe to share between threads.
    """

    @classmethod
    def from_url(cls, url: str, *, cluster: bool = False, settings: StoreSettings | None = None,
                 **overrides: Any) -> SyncSessionStore:
        """A store with its own client for ``url`` (a cluster client with ``cluster=True``);
        ``close()`` closes it. Connection failures are retried three times with jittered
        backoff (so pooled connections survive a Redis restart), then raised."""
        settings = store_settings(settings, overrides)
        check_flag(cluster, "cluster")
        client: redis.Redis | RedisCluster = (
            client_from_url(RedisCluster.from_url, url) if cluster else client_from_url(
                redis.Redis.from_url, url, sentinel=sync_master,
                retry=Retry(ExponentialWithJitterBackoff(base=0.01, cap=1.0), 3)))
        store = cls(client, settings)
        store._owns_client = True
        return store

    def close(self) -> None:
        """Close the client if this store made it (``from_url``), sockets included."""
        if self._owns_client:
            close_client(self._client)

    def __enter__(self) -> SyncSessionStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- sessions ---------------------------------------------------------------

    def create_session(self, user_id: str, personality_name: str,
                       session_config: dict[str, Any] | None = None) -> str:
        return self.run(sessions.create_session, user_id, personality_name, session_config)

    def get_session(self, session_id: str) -> Session | None:
        return self.run(sessions.get_session, session_id)

    def touch(self, session_id: str) -> bool:
        return self.run(sessions.touch, session_id)

    def is_session_expired(self, session_id: str) -> bool:
        return self.run(sessions.is_session_expired, session_id)

    def append_message(self, session_id: str, role: str, content: str,
                       metadata: dict[str, Any] | None = None, *,
                       turn_id: str | None = None) -> Message:
        stored = self.run(sessions.append_messages, session_id,
                           [(role, content, metadata)], turn_id)
        return stored[0]

    def append_messages(self, session_id: str, messages: Iterable[MessageLike], *,
                        turn_id: str | None = None) -> list[Message]:
        return self.run(sessions.append_messages, session_id, messages, turn_id)

    def get_history(self, session_id: str, last: int | None = None, *,
                    budget: int | None = None) -> list[Message]:
        return self.run(sessions.get_history, session_id, last, budget)

    def chat_turn(self, session_id: str, messages: Iterable[MessageLike],
                  last: int = 10, *, turn_id: str | None = None,
                  budget: int | None = None) -> list[ContextMessage]:
        return self.run(sessions.chat_turn, session_id, messages, last, turn_id, budget)

    def set_summary(self, session_id: str, text: str, through: int) -> Message:
        return self.run(sessions.set_summary, session_id, text, through)

    def list_user_sessions(self, user_id: str) -> list[Session]:
        return self.run(sessions.list_user_sessions, user_id)

    def save_mood(self, session_id: str, mood: str, intensity: float = 0.5) -> Mood:
        return self.run(sessions.save_mood, session_id, mood, intensity)

    def get_mood(self, session_id: str) -> Mood | None:
        return self.run(sessions.get_mood, session_id)

    # -- ending sessions and the archive --------------------------------------

    def end_session(self, session_id: str) -> bool:
        return self.run(archive.end_session, session_id)

    def delete_session(self, session_id: str) -> bool:
        return self.run(archive.delete_session, session_id)

    def get_expired_sessions(self, limit: int | None = 1000) -> list[str]:
        return self.run(archive.get_expired_sessions, limit)

    def cleanup_expired_sessions(self, limit: int | None = None) -> int:
        return self.run(archive.cleanup_expired_sessions, limit)

    def get_archived_conversations(self, user_id: str, limit: int | None = 20,
                                   before: str | None = None) -> list[ArchivedConversation]:
        return self.run(archive_reads.get_archived_conversations, user_id, limit, before)

    # -- user memory ------------------------------------------------------------

    def update_affinity(self, user_id: str, personality_name: str, points_delta: int,
                        interaction_type: str | None = None) -> Affinity:
        return self.run(memory.update_affinity, user_id, personality_name, points_delta,
                         interaction_type)

    def get_affinity(self, user_id: str, personality_name: str) -> Affinity | None:
        return self.run(memory.get_affinity, user_id, personality_name)

    def get_affinities(self, user_id: str) -> list[Affinity]:
        return self.run(memory.get_affinities, user_id)

    def save_fact(self, user_id: str, category: str, key: str, value: Any,
                  confidence: float = 1.0) -> Fact:
        return self.run(memory.save_fact, user_id, category, key, value, confidence)

    def get_facts(self, user_id: str, category: str | None = None) -> list[Fact]:
        return self.run(memory.get_facts, user_id, category)

    def delete_fact(self, user_id: str, category: str, key: str) -> bool:
        return self.run(memory.delete_fact, user_id, category, key)

    def save_episode(self, user_id: str, episode_type: str, title: str, summary: str,
                     importance: float = 5.0, sentiment: Sentiment | str = Sentiment.NEUTRAL,
                     personality_name: str | None = None) -> Episode:
        return self.run(memory.save_episode, user_id, episode_type, title, summary,
                         importance, sentiment, personality_name)

    def get_episodes(self, user_id: str, min_importance: float | None = None,
                     limit: int | None = None) -> list[Episode]:
        return self.run(memory.get_episodes, user_id, min_importance, limit)

    def delete_episode(self, user_id: str, episode_id: str) -> bool:
        return self.run(memory.delete_episode, user_id, episode_id)

    def recall(self, user_id: str, personality_name: str,
               budget: int | None = None) -> Recall:
        return self.run(memory.recall, user_id, personality_name, budget)

    def record_trait(self, user_id: str, personality_name: str, trait: str,
                     value: float | str, reason: str | None = None) -> EvolutionEvent:
        return self.run(memory.record_trait, user_id, personality_name, trait, value,
                         reason)

    def get_evolution(self, user_id: str, personality_name: str | None = None,
                      limit: int | None = None,
                      after: int | None = None) -> list[EvolutionEvent]:
        return self.run(memory.get_evolution, user_id, personality_name, limit, after)

    # -- users ------------------------------------------------------------------

    def get_user(self, user_id: str) -> UserSummary | None:
        return self.run(users.get_user, user_id)

    def export_user(self, user_id: str) -> dict[str, Any]:
        return self.run(users.export_user, user_id)

    def erase_user(self, user_id: str) -> int:
        return self.run(erasure.erase_user, user_id)

    def get_archived_conversation(self, user_id: str,
                                  session_id: str) -> ArchivedConversation | None:
        return self.run(users.get_archived_conversation, user_id, session_id)

    def list_archive(self, user_id: str, limit: int | None = 20,
                     before: str | None = None) -> list[ArchiveSummary]:
        return self.run(users.archive_summaries, user_id, limit, before)

    def compact_archives(self, user_id: str) -> int:
        return self.run(compaction.compact_archives, user_id)

    def list_sessions(self, user_id: str | None = None,
                      expiring_within: float | None = None,
                      limit: int | None = 50) -> list[IndexedSession]:
        return self.run(overview.list_sessions, user_id, expiring_within, limit)

    def peek_session(self, session_id: str, last: int | None = 10) -> SessionView | None:
        return self.run(overview.peek_session, session_id, last)

    def deadline_stats(self, window: float = 60.0) -> DeadlineStats:
        return self.run(overview.deadline_stats, window)

    def archive_expired(self, limit: int = 100) -> int:
        warnings.warn("archive_expired() is deprecated; use cleanup_expired_sessions(limit)",
                      DeprecationWarning, stacklevel=2)
        return self.cleanup_expired_sessions(limit)

    # -- operations -------------------------------------------------------------

    def delivery_backlog(self) -> DeliveryBacklog:
        return self.run(outbox.delivery_backlog)

    def list_quarantined(self, limit: int | None = 100) -> list[QuarantinedEntry]:
        return self.run(outbox.list_quarantined, limit)

    def live_listeners(self, delivering: bool = False) -> list[str]:
        return self.run(liveness.live_listeners, 1000, delivering)


for _name, _method in {**vars(SyncStoreBase), **vars(SyncSessionStore)}.items():
    if not _name.startswith("_") and callable(_method) and _method.__doc__ is None:
        _method.__doc__ = getattr(SessionStore, _name).__doc__
