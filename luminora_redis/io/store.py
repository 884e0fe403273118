"""SessionStore: the asyncio store, a thin shell over the operations.

Every public method hands one operation generator of ``luminora_redis.ops`` to
``run``, which sends each step through the store's one runner and redis-py's
asyncio client; ``run`` and ``context`` are public as the extension API (see
README, "Extending"). They, the runner and the store's first use are in its base,
``AsyncStoreBase`` (``io/async_base.py``); this module holds ``from_url``, closing
and the public methods. ``SyncSessionStore`` mirrors this class name for name and
signature for signature (a test compares them).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

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
from luminora_redis.io.async_base import AsyncStoreBase, close_client
from luminora_redis.io.base import check_flag, client_from_url, store_settings
from luminora_redis.io.packing import use_hiredis_packing
from luminora_redis.io.sentinel_url import async_master
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

__all__ = ["SessionStore"]


class SessionStore(AsyncStoreBase):
    """Sessions with native expiry and persistent user memory, for asyncio servers.

    ``SessionStore(client)`` takes a ``redis.asyncio.Redis`` or
    ``redis.asyncio.cluster.RedisCluster`` made with ``decode_responses=False``;
    ``SessionStore.from_url(url)`` makes one. Settings are a ``StoreSettings``
    or its fields as keyword arguments.
    """

    @classmethod
    def from_url(cls, url: str, *, cluster: bool = False, settings: StoreSettings | None = None,
                 autopipeline: bool = True, **overrides: Any) -> SessionStore:
        """A store with its own client for ``url`` (a cluster client with ``cluster=True``);
        ``aclose()`` closes it. Connection failures are retried three times with jittered
        backoff (so pooled connections survive a Redis restart), then raised. With hiredis
        installed, commands are packed by hiredis (see ``luminora_redis.io.packing``).
        By default the calls that concurrent tasks make while others are out go as one
        pipelined write (see ``luminora_redis.io.autopipeline``); a lone call goes out at once.
        ``autopipeline=False`` sends every call on its own pooled connection."""
        settings = store_settings(settings, overrides)
        check_flag(cluster, "cluster")
        check_flag(autopipeline, "autopipeline")
        client: aioredis.Redis | RedisCluster = (
            client_from_url(RedisCluster.from_url, url) if cluster else client_from_url(
                aioredis.Redis.from_url, url, sentinel=async_master,
                retry=Retry(ExponentialWithJitterBackoff(base=0.01, cap=1.0), 3)))
        if not cluster:
            use_hiredis_packing(client)  # type: ignore[arg-type]
        store = cls(client, settings, autopipeline=autopipeline)
        store._owns_client = True
        return store

    async def aclose(self) -> None:
        """Close the client if this store made it (``from_url``), sockets included."""
        await self._runner.aclose()
        if self._owns_client:
            await close_client(self._client)

    async def __aenter__(self) -> SessionStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- sessions ---------------------------------------------------------------

    async def create_session(self, user_id: str, personality_name: str,
                             session_config: dict[str, Any] | None = None) -> str:
        """Start a session for a persistent user; returns a new unguessable session id.

        ``session_config``: ``ttl`` (absolute lifetime, s), ``max_idle`` (sliding
        idle timeout, s), ``auto_cleanup`` (archive automatically on expiry).
        """
        return await self.run(sessions.create_session, user_id, personality_name, session_config)

    async def get_session(self, session_id: str) -> Session | None:
        """The live session, or None. A peek: it does not slide the idle deadline."""
        return await self.run(sessions.get_session, session_id)

    async def touch(self, session_id: str) -> bool:
        """Slide the idle deadline; False (nothing written) when the session is not live."""
        return await self.run(sessions.touch, session_id)

    async def is_session_expired(self, session_id: str) -> bool:
        """``get_session(session_id) is None``: False while the session is live, True for
        any other string: a session expired (archived or not), ended or deleted, a
        well-formed id never issued, and a malformed id (Redis is not asked then). Ids are
        random and not recorded once archived, so "never existed" is not told apart; ask
        ``peek_session`` (not archived yet) or ``get_archived_conversation``. A peek.
        A non-string raises InvalidInput."""
        return await self.run(sessions.is_session_expired, session_id)

    async def append_message(self, session_id: str, role: str, content: str,
                             metadata: dict[str, Any] | None = None, *,
                             turn_id: str | None = None) -> Message:
        """Append one message and slide the idle deadline; returns it as stored.

        Raises SessionExpired (nothing written) when the session has expired.
        ``turn_id`` makes a retry safe, as for ``chat_turn``.
        """
        stored = await self.run(sessions.append_messages, session_id,
                                 [(role, content, metadata)], turn_id)
        return stored[0]

    async def append_messages(self, session_id: str, messages: Iterable[MessageLike], *,
                              turn_id: str | None = None) -> list[Message]:
        """Append several messages atomically and slide the idle deadline; returns them as
        stored. ``turn_id`` makes a retry safe, as for ``chat_turn``."""
        return await self.run(sessions.append_messages, session_id, messages, turn_id)

    async def get_history(self, session_id: str, last: int | None = None, *,
                          budget: int | None = None) -> list[Message]:
        """The last ``last`` messages, oldest first; ``last=None``: the whole conversation
        (no cap: a session's length is bounded by its lifetime). Slides the idle deadline.
        Read in pages of at most ``page_size`` messages. ``budget``, a summary set by
        ``set_summary``: as for ``chat_turn``."""
        return await self.run(sessions.get_history, session_id, last, budget)

    async def set_summary(self, session_id: str, text: str, through: int) -> Message:
        """Store the session's running summary of its first ``through`` messages,
        atomically. From then on the context of ``chat_turn`` and ``get_history`` starts
        with it (a ``system`` message whose metadata is ``{"summary": True, "through":
        n}``), and only messages after the first ``through`` follow; none is deleted.
        Raises ``SummaryOutdated`` when a summary through a later message is stored,
        ``InvalidInput`` when the conversation holds fewer than ``through`` messages
        (nothing written either way). Does not slide the idle deadline."""
        return await self.run(sessions.set_summary, session_id, text, through)

    async def chat_turn(self, session_id: str, messages: Iterable[MessageLike],
                        last: int = 10, *, turn_id: str | None = None,
                        budget: int | None = None) -> list[ContextMessage]:
        """The hot path, one round trip: append the turn's messages, slide the idle
        deadline and return the last ``last`` messages, oldest first, as light
        ``ContextMessage`` objects (``to_message()`` gives the pydantic ``Message``).
        (More than one page or than ``max_history`` messages are read in pages after
        the turn.)

        ``budget`` (an int >= 0, else InvalidInput and nothing written): the longest run
        of the newest messages, at most ``last``, whose token counts (stored when each
        was written, ``ContextMessage.tokens``) sum to at most ``budget``; summed by the
        script, in the same round trip, over the live history and overflow. A running
        summary (``set_summary``) comes first and counts towards the budget; when it
        alone exceeds it, the context is empty.

        ``turn_id`` (1 to 64 characters of ``A-Z a-z 0-9 _ - . :``, else InvalidInput
        and nothing written) names the turn, so that calling again with the same
        ``turn_id`` after an error that leaves the outcome unknown (``NotAcknowledged``,
        a ``ConnectionError``) is safe: if the first call landed, the retry appends
        nothing and answers as it did (the last ``last`` messages; ``append_messages``
        returns the messages with the timestamp they were stored with). The session keeps
        only its last turn id: the retry must come before the next turn of that session
        (a turn by another caller in between included); after one, the same ``turn_id``
        appends again. The messages of a retry are not compared with the first call's:
        the same ``turn_id`` means the same turn. Without ``turn_id`` each call is a new
        turn."""
        return await self.run(sessions.chat_turn, session_id, messages, last, turn_id, budget)

    async def list_user_sessions(self, user_id: str) -> list[Session]:
        """The user's live sessions, oldest first, all of them, read in pages of at most
        ``page_size`` (by creation time and id: sessions ending or starting meanwhile shift
        no page). The application's view; operators have ``list_sessions``."""
        return await self.run(sessions.list_user_sessions, user_id)

    async def save_mood(self, session_id: str, mood: str, intensity: float = 0.5) -> Mood:
        """Set the personality's mood in a live session (does not slide the deadline)."""
        return await self.run(sessions.save_mood, session_id, mood, intensity)

    async def get_mood(self, session_id: str) -> Mood | None:
        """The session's mood, or None when unset or the session is not live."""
        return await self.run(sessions.get_mood, session_id)

    # -- ending sessions and the archive --------------------------------------

    async def end_session(self, session_id: str) -> bool:
        """Explicit logout: archive the session now. False when it was already gone."""
        return await self.run(archive.end_session, session_id)

    async def delete_session(self, session_id: str) -> bool:
        """Remove the session and its history without archiving. False when already gone."""
        return await self.run(archive.delete_session, session_id)

    async def get_expired_sessions(self, limit: int | None = 1000) -> list[str]:
        """Ids of sessions that have expired and are not archived yet, at most ``limit``;
        ``limit=None``: all of them up to the cap ``archive.MAX_EXPIRED`` (100,000), which
        also bounds a larger ``limit``."""
        return await self.run(archive.get_expired_sessions, limit)

    async def cleanup_expired_sessions(self, limit: int | None = None) -> int:
        """Archive expired sessions now (auto_cleanup or not); returns how many this call
        archived. ``limit=None``: every one, in bounded steps (no cap); else at most
        ``limit``, e.g. to show progress between calls."""
        return await self.run(archive.cleanup_expired_sessions, limit)

    async def get_archived_conversations(self, user_id: str, limit: int | None = 20,
                                         before: str | None = None) -> list[ArchivedConversation]:
        """A page of the user's archived conversations with their messages, newest first:
        at most ``limit``, itself at most the cap ``archive_reads.MAX_LIST`` (100;
        ``limit=None``: that many). For the next page pass ``before``, the session id of
        the last conversation of this one. Summaries without messages: ``list_archive``."""
        return await self.run(archive_reads.get_archived_conversations, user_id, limit, before)

    # -- user memory ------------------------------------------------------------

    async def update_affinity(self, user_id: str, personality_name: str, points_delta: int,
                              interaction_type: str | None = None) -> Affinity:
        """Add (or subtract) integer points atomically, never below 0; logs the change."""
        return await self.run(memory.update_affinity, user_id, personality_name, points_delta,
                               interaction_type)

    async def get_affinity(self, user_id: str, personality_name: str) -> Affinity | None:
        """The user's affinity with one personality, or None before the first update."""
        return await self.run(memory.get_affinity, user_id, personality_name)

    async def get_affinities(self, user_id: str) -> list[Affinity]:
        """The user's affinity with every personality, by personality name."""
        return await self.run(memory.get_affinities, user_id)

    async def save_fact(self, user_id: str, category: str, key: str, value: Any,
                        confidence: float = 1.0) -> Fact:
        """Remember (or replace) a fact about the user; ``value`` is plain data."""
        return await self.run(memory.save_fact, user_id, category, key, value, confidence)

    async def get_facts(self, user_id: str, category: str | None = None) -> list[Fact]:
        """The user's facts, all or of one category, by category then key."""
        return await self.run(memory.get_facts, user_id, category)

    async def delete_fact(self, user_id: str, category: str, key: str) -> bool:
        """Forget a fact; False when there was none."""
        return await self.run(memory.delete_fact, user_id, category, key)

    async def save_episode(self, user_id: str, episode_type: str, title: str, summary: str,
                           importance: float = 5.0, sentiment: Sentiment | str = Sentiment.NEUTRAL,
                           personality_name: str | None = None) -> Episode:
        """Remember an episode; ``importance`` from 0 to 10."""
        return await self.run(memory.save_episode, user_id, episode_type, title, summary,
                               importance, sentiment, personality_name)

    async def get_episodes(self, user_id: str, min_importance: float | None = None,
                           limit: int | None = None) -> list[Episode]:
        """The user's episodes, highest importance first: the ``limit`` most important;
        ``limit=None``: all of them (no cap), read in pages of at most ``page_size`` by
        (importance, id), so an episode saved or deleted meanwhile never makes the list
        skip or repeat another."""
        return await self.run(memory.get_episodes, user_id, min_importance, limit)

    async def delete_episode(self, user_id: str, episode_id: str) -> bool:
        """Forget one episode; False when the user had no such episode."""
        return await self.run(memory.delete_episode, user_id, episode_id)

    async def record_trait(self, user_id: str, personality_name: str, trait: str,
                           value: float | str, reason: str | None = None) -> EvolutionEvent:
        """Log a caller-defined change of a personality trait in the user's evolution."""
        return await self.run(memory.record_trait, user_id, personality_name, trait, value,
                               reason)

    async def get_evolution(self, user_id: str, personality_name: str | None = None,
                            limit: int | None = None,
                            after: int | None = None) -> list[EvolutionEvent]:
        """The user's evolution log (of one personality when given), oldest first: the
        newest ``limit`` records, or with ``after`` (a sequence number) the oldest ``limit``
        records after it, which pages forward through the log. ``limit`` is at most the
        cap ``memory.MAX_EVOLUTION`` (1000; ``limit=None``: that many)."""
        return await self.run(memory.get_evolution, user_id, personality_name, limit, after)

    async def recall(self, user_id: str, personality_name: str,
                     budget: int | None = None) -> Recall:
        """What ``personality_name`` remembers of the user, for a new session's system
        prompt: the affinity, facts newest first and episodes most important first
        (session summaries included), packed within ``budget`` tokens (None: no budget,
        up to the caps ``memory.MAX_RECALL_FACTS`` and ``memory.MAX_RECALL_EPISODES``), in
        one script call. How facts and episodes share the budget, and which text of each
        is counted: ``luminora_redis.ops.memory.recall``."""
        return await self.run(memory.recall, user_id, personality_name, budget)

    # -- users ------------------------------------------------------------------

    async def get_user(self, user_id: str) -> UserSummary | None:
        """First and last visit and how much is kept of each kind of data; None for a
        user of whom nothing is stored."""
        return await self.run(users.get_user, user_id)

    async def export_user(self, user_id: str) -> dict[str, Any]:
        """Everything kept about one user, JSON-serializable: the user record, affinity per
        personality, facts, episodes, the evolution log, sessions not yet archived with their
        messages, and archived conversations with theirs.

        It reads in bounded pages (a script call per page), so a heavy user never stalls
        Redis; taken while the user is active, each page is consistent but the whole is not
        one atomic snapshot. An unknown user exports as ``"user": None`` with empty lists.
        """
        return await self.run(users.export_user, user_id)

    async def erase_user(self, user_id: str) -> int:
        """Erase every key of one user; returns how many keys were removed: sessions (live
        or expired, all their keys), archived conversations, memory, index entries and
        pending, retried or quarantined deliveries or sweep entries. Nothing of any other
        user changes.

        Each session goes in one atomic step: a racing ``chat_turn`` runs before it (and
        is erased) or after it (and raises ``SessionNotFound``), and no listener archives
        an erased session afterwards. Work is chunked (at most 100 sessions or
        conversations per script call); after a crash halfway, running ``erase_user``
        again completes the erase. Sessions started while it runs are erased too.
        """
        return await self.run(erasure.erase_user, user_id)

    async def get_archived_conversation(self, user_id: str,
                                        session_id: str) -> ArchivedConversation | None:
        """One archived conversation of the user with all its messages (read in pages), or
        None when the user has no such conversation."""
        return await self.run(users.get_archived_conversation, user_id, session_id)

    async def list_archive(self, user_id: str, limit: int | None = 20,
                           before: str | None = None) -> list[ArchiveSummary]:
        """The user's archived conversations without their messages, newest first: at most
        ``limit``; ``limit=None``: all of them (no cap: summaries are small), read in pages
        of at most ``page_size``. ``before`` pages like ``get_archived_conversations``."""
        return await self.run(users.archive_summaries, user_id, limit, before)

    async def compact_archives(self, user_id: str) -> int:
        """Compress the user's archived conversations that are still message lists (archived
        with ``compress_archives=False``, or by an older version) into zstd frames; how many
        lists or list pairs it replaced. Reads return the same conversations either way."""
        return await self.run(compaction.compact_archives, user_id)

    async def list_sessions(self, user_id: str | None = None,
                            expiring_within: float | None = None,
                            limit: int | None = 50) -> list[IndexedSession]:
        """The operator's view: sessions not yet archived (live or overdue) with their
        deadlines, earliest deadline first, from the per-bucket deadline indexes, or the
        user's session set with ``user_id`` (its oldest 10,000 sessions, read in pages);
        only those ending within ``expiring_within`` seconds (or already overdue) when
        given. At most ``limit``, itself at most the cap ``overview.MAX_LIST`` (10,000;
        ``limit=None``: that many)."""
        return await self.run(overview.list_sessions, user_id, expiring_within, limit)

    async def peek_session(self, session_id: str, last: int | None = 10) -> SessionView | None:
        """The operator's look at a session not yet archived (live or overdue, where
        ``get_session`` sees live ones only) with its newest ``last`` messages, at most the
        cap ``overview.MAX_LIST`` (10,000; ``last=None``: that many), without sliding its
        idle deadline; None when there is no such session. ``message_count`` counts the
        whole conversation, segments included."""
        return await self.run(overview.peek_session, session_id, last)

    async def deadline_stats(self, window: float = 60.0) -> DeadlineStats:
        """Sessions not yet archived, overdue ones, those ending within ``window`` seconds and
        the oldest overdue deadline, from every bucket's deadline indexes."""
        return await self.run(overview.deadline_stats, window)

    async def archive_expired(self, limit: int = 100) -> int:
        """Deprecated since 0.2.0, removed in 0.3.0: ``cleanup_expired_sessions(limit)``."""
        warnings.warn("archive_expired() is deprecated; use cleanup_expired_sessions(limit)",
                      DeprecationWarning, stacklevel=2)
        return await self.cleanup_expired_sessions(limit)

    # -- operations -------------------------------------------------------------

    async def delivery_backlog(self) -> DeliveryBacklog:
        """Deliveries to ``on_archived`` waiting in the outbox: how many, the oldest one's
        age, and how many were quarantined."""
        return await self.run(outbox.delivery_backlog)

    async def list_quarantined(self, limit: int | None = 100) -> list[QuarantinedEntry]:
        """Quarantined deliveries and sweep entries, earliest first; their data is kept. At
        most ``limit``, itself at most the cap ``outbox.MAX_QUARANTINED`` (10,000;
        ``limit=None``: that many)."""
        return await self.run(outbox.list_quarantined, limit)

    async def live_listeners(self, delivering: bool = False) -> list[str]:
        """Names of the listeners running now (their heartbeat has not lapsed); with
        ``delivering``, only those that deliver to an ``on_archived`` hook."""
        return await self.run(liveness.live_listeners, 1000, delivering)
