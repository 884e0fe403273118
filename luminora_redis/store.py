"""SessionStore: the asyncio store, a thin shell over the operations.

Every public method hands one operation generator to ``_run``, which sends
each step through redis-py's asyncio client. ``SyncSessionStore`` mirrors
this class name for name and signature for signature (a test compares them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import NoScriptError

from luminora_redis import archive, liveness, memory, outbox, sessions
from luminora_redis.base import StoreBase, claim_layout
from luminora_redis.context import Context
from luminora_redis.models import (
    Affinity,
    ArchivedConversation,
    DeliveryBacklog,
    Episode,
    EvolutionEvent,
    Fact,
    Message,
    Mood,
    QuarantinedEntry,
    Sentiment,
    ServerFinding,
    Session,
)
from luminora_redis.scripts import Call, Op
from luminora_redis.server_checks import findings_for, policies_async, warn_findings
from luminora_redis.sessions import MessageLike
from luminora_redis.settings import StoreSettings

__all__ = ["SessionStore"]

T = TypeVar("T")


class SessionStore(StoreBase):
    """Sessions with native expiry and persistent user memory, for asyncio servers.

    ``SessionStore(client)`` takes a ``redis.asyncio.Redis`` or
    ``redis.asyncio.cluster.RedisCluster`` made with ``decode_responses=False``;
    ``SessionStore.from_url(url)`` makes one. Settings are a ``StoreSettings``
    or its fields as keyword arguments.
    """

    def __init__(self, client: aioredis.Redis | RedisCluster,
                 settings: StoreSettings | None = None, **overrides: Any) -> None:
        super().__init__(client, settings, **overrides)
        self._lock: asyncio.Lock | None = None

    @classmethod
    def from_url(cls, url: str, *, cluster: bool = False, settings: StoreSettings | None = None,
                 **overrides: Any) -> SessionStore:
        """A store with its own client for ``url`` (a cluster client with ``cluster=True``);
        ``aclose()`` closes it. Connection failures are retried three times with jittered
        backoff (so pooled connections survive a Redis restart), then raised."""
        client: aioredis.Redis | RedisCluster = (
            RedisCluster.from_url(url) if cluster else aioredis.Redis.from_url(
                url, retry=Retry(ExponentialWithJitterBackoff(base=0.01, cap=1.0), 3)))
        store = cls(client, settings, **overrides)
        store._owns_client = True
        return store

    async def aclose(self) -> None:
        """Close the client if this store made it (``from_url``)."""
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> SessionStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- driving operations ---------------------------------------------------

    async def _context(self) -> Context:
        if self._ctx is None:
            if self._lock is None:
                self._lock = asyncio.Lock()
            async with self._lock:
                if self._ctx is None:
                    ctx = await self._drive(claim_layout(self._settings))
                    warn_findings(await self.check_server())
                    self._ctx = ctx
        return self._ctx

    async def _run(self, operation: Callable[..., Op[T]], *args: Any) -> T:
        ctx = self._ctx or await self._context()
        return await self._drive(operation(ctx, *args))

    async def _drive(self, op: Op[T]) -> T:
        scripts = self._scripts
        try:
            step = next(op)
            while True:
                try:
                    if isinstance(step, Call):
                        reply = await scripts[step.script](step.keys, step.args)
                    else:
                        reply = await self._batch(step.calls)
                except Exception as error:
                    # The operation may handle it (e.g. a trim after a committed archive).
                    step = op.throw(error)
                    continue
                step = op.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def _batch(self, calls: Sequence[Call]) -> list[Any]:
        if isinstance(self._client, RedisCluster):
            return await self._cluster_batch(calls)
        async with self._client.pipeline(transaction=False) as pipe:
            for call in calls:
                await self._scripts[call.script](call.keys, call.args, client=pipe)
            return list(await pipe.execute())

    async def _cluster_batch(self, calls: Sequence[Call]) -> list[Any]:
        """One pipeline per node. redis-py's asyncio cluster pipeline routes raw EVALSHA
        by its first key; a script a node does not know yet is rerun through ``Script``,
        which loads it on every primary."""
        pipe = self._client.pipeline()
        for call in calls:
            pipe.execute_command("EVALSHA", self._scripts[call.script].sha, len(call.keys),
                                 *call.keys, *call.args)
        replies = list(await pipe.execute(raise_on_error=False))
        for index, reply in enumerate(replies):
            if isinstance(reply, NoScriptError):
                call = calls[index]
                replies[index] = await self._scripts[call.script](call.keys, call.args)
            elif isinstance(reply, Exception):
                raise reply
        return replies

    # -- sessions ---------------------------------------------------------------

    async def create_session(self, user_id: str, personality_name: str,
                             session_config: dict[str, Any] | None = None) -> str:
        """Start a session for a persistent user; returns a new unguessable session id.

        ``session_config``: ``ttl`` (absolute lifetime, s), ``max_idle`` (sliding
        idle timeout, s), ``auto_cleanup`` (archive automatically on expiry).
        """
        return await self._run(sessions.create_session, user_id, personality_name, session_config)

    async def get_session(self, session_id: str) -> Session | None:
        """The live session, or None. A peek: it does not slide the idle deadline."""
        return await self._run(sessions.get_session, session_id)

    async def touch(self, session_id: str) -> bool:
        """Slide the idle deadline; False (nothing written) when the session is not live."""
        return await self._run(sessions.touch, session_id)

    async def is_session_expired(self, session_id: str) -> bool:
        """True unless the session is live. A peek."""
        return await self._run(sessions.is_session_expired, session_id)

    async def append_message(self, session_id: str, role: str, content: str,
                             metadata: dict[str, Any] | None = None) -> Message:
        """Append one message and slide the idle deadline; returns it as stored.

        Raises SessionExpired (nothing written) when the session has expired.
        """
        stored = await self._run(sessions.append_messages, session_id,
                                 [(role, content, metadata)])
        return stored[0]

    async def append_messages(self, session_id: str,
                              messages: Iterable[MessageLike]) -> list[Message]:
        """Append several messages atomically and slide the idle deadline."""
        return await self._run(sessions.append_messages, session_id, messages)

    async def get_history(self, session_id: str, last: int | None = None) -> list[Message]:
        """The last ``last`` messages (all when None), oldest first; slides the idle deadline."""
        return await self._run(sessions.get_history, session_id, last)

    async def chat_turn(self, session_id: str, messages: Iterable[MessageLike],
                        last: int = 10) -> list[Message]:
        """The hot path, one round trip: append the turn's messages, slide the idle
        deadline and return the last ``last`` messages, oldest first."""
        return await self._run(sessions.chat_turn, session_id, messages, last)

    async def list_user_sessions(self, user_id: str) -> list[Session]:
        """The user's live sessions, oldest first."""
        return await self._run(sessions.list_user_sessions, user_id)

    async def save_mood(self, session_id: str, mood: str, intensity: float = 0.5) -> Mood:
        """Set the personality's mood in a live session (does not slide the deadline)."""
        return await self._run(sessions.save_mood, session_id, mood, intensity)

    async def get_mood(self, session_id: str) -> Mood | None:
        """The session's mood, or None when unset or the session is not live."""
        return await self._run(sessions.get_mood, session_id)

    # -- ending sessions and the archive --------------------------------------

    async def end_session(self, session_id: str) -> bool:
        """Explicit logout: archive the session now. False when it was already gone."""
        return await self._run(archive.end_session, session_id)

    async def delete_session(self, session_id: str) -> bool:
        """Remove the session and its history without archiving. False when already gone."""
        return await self._run(archive.delete_session, session_id)

    async def get_expired_sessions(self) -> list[str]:
        """Ids of sessions that have expired and are not archived yet."""
        return await self._run(archive.get_expired_sessions)

    async def cleanup_expired_sessions(self) -> int:
        """Archive every expired session now (auto_cleanup or not); returns how many."""
        return await self._run(archive.cleanup_expired_sessions)

    async def get_archived_conversations(self, user_id: str,
                                         limit: int | None = 20) -> list[ArchivedConversation]:
        """The user's archived conversations, newest first (all when ``limit`` is None)."""
        return await self._run(archive.get_archived_conversations, user_id, limit)

    # -- user memory ------------------------------------------------------------

    async def update_affinity(self, user_id: str, personality_name: str, points_delta: int,
                              interaction_type: str | None = None) -> Affinity:
        """Add (or subtract) integer points atomically, never below 0; logs the change."""
        return await self._run(memory.update_affinity, user_id, personality_name, points_delta,
                               interaction_type)

    async def get_affinity(self, user_id: str, personality_name: str) -> Affinity | None:
        """The user's affinity with one personality, or None before the first update."""
        return await self._run(memory.get_affinity, user_id, personality_name)

    async def get_affinities(self, user_id: str) -> list[Affinity]:
        """The user's affinity with every personality, by personality name."""
        return await self._run(memory.get_affinities, user_id)

    async def save_fact(self, user_id: str, category: str, key: str, value: Any,
                        confidence: float = 1.0) -> Fact:
        """Remember (or replace) a fact about the user; ``value`` is plain data."""
        return await self._run(memory.save_fact, user_id, category, key, value, confidence)

    async def get_facts(self, user_id: str, category: str | None = None) -> list[Fact]:
        """The user's facts, all or of one category, by category then key."""
        return await self._run(memory.get_facts, user_id, category)

    async def delete_fact(self, user_id: str, category: str, key: str) -> bool:
        """Forget a fact; False when there was none."""
        return await self._run(memory.delete_fact, user_id, category, key)

    async def save_episode(self, user_id: str, episode_type: str, title: str, summary: str,
                           importance: float = 5.0, sentiment: Sentiment | str = Sentiment.NEUTRAL,
                           personality_name: str | None = None) -> Episode:
        """Remember an episode; ``importance`` from 0 to 10."""
        return await self._run(memory.save_episode, user_id, episode_type, title, summary,
                               importance, sentiment, personality_name)

    async def get_episodes(self, user_id: str, min_importance: float | None = None,
                           limit: int | None = None) -> list[Episode]:
        """The user's episodes, highest importance first."""
        return await self._run(memory.get_episodes, user_id, min_importance, limit)

    async def record_trait(self, user_id: str, personality_name: str, trait: str,
                           value: float | str, reason: str | None = None) -> EvolutionEvent:
        """Log a caller-defined change of a personality trait in the user's evolution."""
        return await self._run(memory.record_trait, user_id, personality_name, trait, value,
                               reason)

    async def get_evolution(self, user_id: str, personality_name: str | None = None,
                            limit: int | None = None) -> list[EvolutionEvent]:
        """The user's evolution log, oldest first (the newest ``limit`` records when given)."""
        return await self._run(memory.get_evolution, user_id, personality_name, limit)

    # -- operations -------------------------------------------------------------

    async def delivery_backlog(self) -> DeliveryBacklog:
        """Deliveries to ``on_archived`` waiting in the outbox: how many, the oldest one's
        age, and how many were quarantined."""
        return await self._run(outbox.delivery_backlog)

    async def list_quarantined(self, limit: int = 100) -> list[QuarantinedEntry]:
        """Quarantined deliveries and sweep entries, earliest first; their data is kept."""
        return await self._run(outbox.list_quarantined, limit)

    async def live_listeners(self) -> list[str]:
        """Names of the listeners running now (their heartbeat has not lapsed)."""
        return await self._run(liveness.live_listeners)

    async def check_server(self) -> list[ServerFinding]:
        """Server settings that endanger the data (``maxmemory-policy`` of every primary);
        the store logs them once at first use."""
        return findings_for(await policies_async(self._client))
