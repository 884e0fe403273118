"""SyncSessionStore: the blocking store, a thin shell over the operations.

It has exactly the public methods and signatures of ``SessionStore`` (a test
compares them) and shares their docstrings. It sends through a blocking
redis-py client: no event loop is involved.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

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
from luminora_redis.server_checks import findings_for, policies_blocking, warn_findings
from luminora_redis.sessions import MessageLike
from luminora_redis.settings import StoreSettings
from luminora_redis.store import SessionStore

__all__ = ["SyncSessionStore"]

T = TypeVar("T")


class SyncSessionStore(StoreBase):
    """The blocking twin of ``SessionStore``: same names, same arguments, same results.

    ``SyncSessionStore(client)`` takes a ``redis.Redis`` or ``redis.cluster.RedisCluster``
    made with ``decode_responses=False``; ``SyncSessionStore.from_url(url)`` makes one.
    Safe to share between threads.
    """

    def __init__(self, client: redis.Redis | RedisCluster,
                 settings: StoreSettings | None = None, **overrides: Any) -> None:
        super().__init__(client, settings, **overrides)
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, *, cluster: bool = False, settings: StoreSettings | None = None,
                 **overrides: Any) -> SyncSessionStore:
        """A store with its own client for ``url`` (a cluster client with ``cluster=True``);
        ``close()`` closes it. Connection failures are retried three times with jittered
        backoff (so pooled connections survive a Redis restart), then raised."""
        client: redis.Redis | RedisCluster = (
            RedisCluster.from_url(url) if cluster else redis.Redis.from_url(
                url, retry=Retry(ExponentialWithJitterBackoff(base=0.01, cap=1.0), 3)))
        store = cls(client, settings, **overrides)
        store._owns_client = True
        return store

    def close(self) -> None:
        """Close the client if this store made it (``from_url``)."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> SyncSessionStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- driving operations ---------------------------------------------------

    def _context(self) -> Context:
        with self._lock:
            if self._ctx is None:
                ctx = self._drive(claim_layout(self._settings))
                warn_findings(self.check_server())
                self._ctx = ctx
        return self._ctx

    def _run(self, operation: Callable[..., Op[T]], *args: Any) -> T:
        ctx = self._ctx or self._context()
        return self._drive(operation(ctx, *args))

    def _drive(self, op: Op[T]) -> T:
        scripts = self._scripts
        try:
            step = next(op)
            while True:
                try:
                    if isinstance(step, Call):
                        reply = scripts[step.script](step.keys, step.args)
                    else:
                        reply = self._batch(step.calls)
                except Exception as error:
                    # The operation may handle it (e.g. a trim after a committed archive).
                    step = op.throw(error)
                    continue
                step = op.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def _batch(self, calls: Sequence[Call]) -> list[Any]:
        if isinstance(self._client, RedisCluster):
            return self._cluster_batch(calls)
        return self._pipeline(self._client, calls)

    def _pipeline(self, client: redis.Redis, calls: Sequence[Call]) -> list[Any]:
        with client.pipeline(transaction=False) as pipe:
            for call in calls:
                self._scripts[call.script](call.keys, call.args, client=pipe)
            return list(pipe.execute())

    def _cluster_batch(self, calls: Sequence[Call]) -> list[Any]:
        """One pipeline per node: redis-py's blocking cluster pipeline refuses EVALSHA, so
        calls are grouped by the node that serves their first key. Should the topology move
        under a node's pipeline, its calls are rerun one by one through the cluster client,
        which follows redirections."""
        client: RedisCluster = self._client
        groups: dict[str, list[int]] = {}
        nodes = {}
        for index, call in enumerate(calls):
            node = client.get_node_from_key(call.keys[0])
            nodes[node.name] = node
            groups.setdefault(node.name, []).append(index)
        replies: list[Any] = [None] * len(calls)
        for name, indexes in groups.items():
            group = [calls[i] for i in indexes]
            try:
                results = self._pipeline(nodes[name].redis_connection, group)
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
                results = [self._scripts[c.script](c.keys, c.args) for c in group]
            for index, result in zip(indexes, results):
                replies[index] = result
        return replies

    # -- sessions ---------------------------------------------------------------

    def create_session(self, user_id: str, personality_name: str,
                       session_config: dict[str, Any] | None = None) -> str:
        return self._run(sessions.create_session, user_id, personality_name, session_config)

    def get_session(self, session_id: str) -> Session | None:
        return self._run(sessions.get_session, session_id)

    def touch(self, session_id: str) -> bool:
        return self._run(sessions.touch, session_id)

    def is_session_expired(self, session_id: str) -> bool:
        return self._run(sessions.is_session_expired, session_id)

    def append_message(self, session_id: str, role: str, content: str,
                       metadata: dict[str, Any] | None = None) -> Message:
        stored = self._run(sessions.append_messages, session_id,
                           [(role, content, metadata)])
        return stored[0]

    def append_messages(self, session_id: str,
                        messages: Iterable[MessageLike]) -> list[Message]:
        return self._run(sessions.append_messages, session_id, messages)

    def get_history(self, session_id: str, last: int | None = None) -> list[Message]:
        return self._run(sessions.get_history, session_id, last)

    def chat_turn(self, session_id: str, messages: Iterable[MessageLike],
                  last: int = 10) -> list[Message]:
        return self._run(sessions.chat_turn, session_id, messages, last)

    def list_user_sessions(self, user_id: str) -> list[Session]:
        return self._run(sessions.list_user_sessions, user_id)

    def save_mood(self, session_id: str, mood: str, intensity: float = 0.5) -> Mood:
        return self._run(sessions.save_mood, session_id, mood, intensity)

    def get_mood(self, session_id: str) -> Mood | None:
        return self._run(sessions.get_mood, session_id)

    # -- ending sessions and the archive --------------------------------------

    def end_session(self, session_id: str) -> bool:
        return self._run(archive.end_session, session_id)

    def delete_session(self, session_id: str) -> bool:
        return self._run(archive.delete_session, session_id)

    def get_expired_sessions(self) -> list[str]:
        return self._run(archive.get_expired_sessions)

    def cleanup_expired_sessions(self) -> int:
        return self._run(archive.cleanup_expired_sessions)

    def get_archived_conversations(self, user_id: str,
                                   limit: int | None = 20) -> list[ArchivedConversation]:
        return self._run(archive.get_archived_conversations, user_id, limit)

    # -- user memory ------------------------------------------------------------

    def update_affinity(self, user_id: str, personality_name: str, points_delta: int,
                        interaction_type: str | None = None) -> Affinity:
        return self._run(memory.update_affinity, user_id, personality_name, points_delta,
                         interaction_type)

    def get_affinity(self, user_id: str, personality_name: str) -> Affinity | None:
        return self._run(memory.get_affinity, user_id, personality_name)

    def get_affinities(self, user_id: str) -> list[Affinity]:
        return self._run(memory.get_affinities, user_id)

    def save_fact(self, user_id: str, category: str, key: str, value: Any,
                  confidence: float = 1.0) -> Fact:
        return self._run(memory.save_fact, user_id, category, key, value, confidence)

    def get_facts(self, user_id: str, category: str | None = None) -> list[Fact]:
        return self._run(memory.get_facts, user_id, category)

    def delete_fact(self, user_id: str, category: str, key: str) -> bool:
        return self._run(memory.delete_fact, user_id, category, key)

    def save_episode(self, user_id: str, episode_type: str, title: str, summary: str,
                     importance: float = 5.0, sentiment: Sentiment | str = Sentiment.NEUTRAL,
                     personality_name: str | None = None) -> Episode:
        return self._run(memory.save_episode, user_id, episode_type, title, summary,
                         importance, sentiment, personality_name)

    def get_episodes(self, user_id: str, min_importance: float | None = None,
                     limit: int | None = None) -> list[Episode]:
        return self._run(memory.get_episodes, user_id, min_importance, limit)

    def record_trait(self, user_id: str, personality_name: str, trait: str,
                     value: float | str, reason: str | None = None) -> EvolutionEvent:
        return self._run(memory.record_trait, user_id, personality_name, trait, value,
                         reason)

    def get_evolution(self, user_id: str, personality_name: str | None = None,
                      limit: int | None = None) -> list[EvolutionEvent]:
        return self._run(memory.get_evolution, user_id, personality_name, limit)

    # -- operations -------------------------------------------------------------

    def delivery_backlog(self) -> DeliveryBacklog:
        return self._run(outbox.delivery_backlog)

    def list_quarantined(self, limit: int = 100) -> list[QuarantinedEntry]:
        return self._run(outbox.list_quarantined, limit)

    def live_listeners(self) -> list[str]:
        return self._run(liveness.live_listeners)

    def check_server(self) -> list[ServerFinding]:
        return findings_for(policies_blocking(self._client))


for _name, _method in vars(SyncSessionStore).items():
    if not _name.startswith("_") and callable(_method) and _method.__doc__ is None:
        _method.__doc__ = getattr(SessionStore, _name).__doc__
