"""``RedisStorageV11``: luminora-redis as LuminoraCore's ``StorageV11Extension``.

Drop-in for LuminoraCore's storage (``LuminoraCoreClientV11(base_client,
storage_v11=RedisStorageV11.from_url(url))``): every method of the ABC with
its argument names, defaults and return shapes, following the reference
``InMemoryStorageV11``, plus ``delete_fact``. It is duck-typed (LuminoraCore
is not a dependency), connects on the first awaited call, and is always truthy.

What it remaps, and why
-----------------------
LuminoraCore's chat path (``ConversationMemoryManager``) uses the session id
as a user id: it saves conversation turns as facts of the session id and
updates affinity under the session id, so a user's relationship restarts with
every session and turns pile up as facts forever. This adapter fixes that
without touching LuminoraCore:

1. **A user id that names a known session means that session's user.** Every
   affinity, fact and episode method first looks the ``user_id`` up among the
   caller-chosen session ids given to ``save_session``; when it names one, the
   call acts on the session's persistent ``user_id``. So
   ``update_affinity(user_id=<session id>)`` accumulates under the real user,
   across sessions. Returned records carry the resolved user id.
2. **Conversation turns go to the session's history.** A ``save_fact`` of
   category ``conversation_history`` whose ``user_id`` names a live session,
   and whose value is a turn (a JSON object, or its string, with string
   ``user_message`` and ``assistant_response``), appends those two messages to
   the session (``append_messages``: it slides the idle deadline), so expiry
   archives the conversation into the user's archive. The turn's other fields
   and the fact's keyword fields ride in the user message's metadata, and
   ``get_facts(<session id>, "conversation_history")`` (or with no category)
   reads them back as the turn facts LuminoraCore wrote, in order. A value that
   is not a turn is stored as an ordinary fact of the resolved user.
3. **Caller-chosen session ids.** Our session ids are ``<bucket>-<32 hex>``;
   the caller's id is an alias of one (see ``lc_aliases``). ``expires_at``
   becomes the session's real absolute deadline and the adapter's ``max_idle``
   (default: the store's ``default_max_idle``) its sliding idle timeout;
   ``update_session_activity`` and every turn slide it. The session expires
   natively and the ``ExpiryListener`` archives it.

Departures from the reference, and why
--------------------------------------
- Errors are raised, never swallowed: Redis being down raises redis-py's
  ``ConnectionError`` (the reference and LuminoraCore's backends log and
  return ``False``/``None``/``[]``, which makes an outage look like "not
  found"). Input our store refuses raises ``InvalidInput`` with nothing
  written: empty or control-character ids, non-string titles, importance
  outside 0..10, confidence or mood intensity outside 0..1, negative affinity
  points, values that are not plain data (msgpack: str, numbers, bool, None,
  lists, dicts with string keys, bytes).
- ``get_session`` returns ``None`` once the session has expired (the
  reference keeps expired sessions until deleted); its ``last_activity`` is
  the real last activity. A second ``save_session`` of a live id with the same
  user and personality updates the recorded fields and counts as activity,
  but keeps the absolute deadline set when the session started; with another
  user or personality it starts a new session under that id. ``expires_at``
  in the past starts a session that expires at once (and is archived).
- ``get_expired_sessions`` lists the caller ids of sessions that have expired
  and are not archived yet; with the listener running they are archived
  within moments, so the list is usually empty. ``delete_session`` removes
  the session and its history without archiving (as the reference drops it).
- ``save_mood`` of a live session sets that session's mood (it ends with the
  session); a mood saved under an id that names no live session is kept under
  a key of its own that expires after the store's ``default_ttl``.
- Facts always carry ``confidence`` (1.0 when not given). Episodes are kept
  with one of our sentiments (``very_negative`` counts as negative) and read
  back with the caller's original sentiment. Facts and episodes are listed in
  save order (a replaced fact moves to the end), as the reference does.
- Conversation turns of a session that has ended read as ``[]``: they are in
  the user's archive (``SessionStore.get_archived_conversations``).
- Each call costs one extra round trip (the alias lookup of its ``user_id`` or
  session id). ``get_facts`` and ``get_episodes`` return the user's whole list,
  as LuminoraCore's interface has no paging, but read it in pages (``HSCAN``
  steps of about ``page_size`` fields, each with the adapter's record beside
  it): no script reply holds a heavy user's whole memory.
- Peripheral methods outside the ABC (snapshots, ``get_moods``,
  ``save_memory``) are not provided: nothing on the chat path calls them.
"""

from __future__ import annotations

import math
from typing import Any

from luminora_redis.compat import lc_memory, lc_sessions
from luminora_redis.core.errors import ConfigurationError
from luminora_redis.io.store import SessionStore

__all__ = ["RedisStorageV11"]

DEFAULT_ALIAS_GRACE = 24 * 3600.0


class RedisStorageV11:
    """LuminoraCore's ``StorageV11Extension`` over a luminora-redis ``SessionStore``.

    ``RedisStorageV11(store)`` uses an asyncio ``SessionStore`` (the caller
    closes it); ``RedisStorageV11.from_url(url, **settings)`` makes one
    (``StoreSettings`` fields, ``cluster=True``) and ``aclose()`` closes it.
    ``max_idle``: seconds of inactivity that end a session (default: the
    store's ``default_max_idle``); ``alias_grace``: seconds a caller's session
    id keeps resolving to its user after the session's absolute deadline.
    """

    def __init__(self, store: SessionStore, *, max_idle: float | None = None,
                 alias_grace: float = DEFAULT_ALIAS_GRACE) -> None:
        if not isinstance(store, SessionStore):
            raise ConfigurationError(
                "RedisStorageV11 needs an asyncio SessionStore (LuminoraCore's storage "
                f"interface is async), not {type(store).__name__}")
        idle = store.settings.default_max_idle if max_idle is None else max_idle
        if not (isinstance(idle, (int, float)) and math.isfinite(idle) and idle > 0):
            raise ConfigurationError(f"max_idle must be a positive number of seconds, not {idle!r}")
        if not (isinstance(alias_grace, (int, float)) and 0 <= alias_grace < math.inf):
            raise ConfigurationError(f"alias_grace must be >= 0 seconds, not {alias_grace!r}")
        self._store = store
        self._max_idle_ms = max(1, math.ceil(idle * 1000))
        self._grace_ms = math.ceil(alias_grace * 1000)
        self._owns_store = False

    @classmethod
    def from_url(cls, url: str, *, cluster: bool = False, max_idle: float | None = None,
                 alias_grace: float = DEFAULT_ALIAS_GRACE, **settings: Any) -> RedisStorageV11:
        """An adapter with its own store for ``url``; nothing connects before the first call."""
        adapter = cls(SessionStore.from_url(url, cluster=cluster, **settings),
                      max_idle=max_idle, alias_grace=alias_grace)
        adapter._owns_store = True
        return adapter

    @property
    def store(self) -> SessionStore:
        """The store underneath, for everything LuminoraCore's interface lacks."""
        return self._store

    def __bool__(self) -> bool:
        # LuminoraCore gates every storage use on ``if storage_v11``.
        return True

    async def aclose(self) -> None:
        """Close the store if this adapter made it (``from_url``)."""
        if self._owns_store:
            await self._store.aclose()

    # -- affinity ---------------------------------------------------------------

    async def save_affinity(self, user_id: str, personality_name: str, affinity_points: int,
                            current_level: str, **kwargs: Any) -> bool:
        """Set the affinity points (absolute) and level name; extra fields are kept."""
        return await self._store.run(lc_memory.save_affinity, user_id, personality_name,
                                      affinity_points, current_level, kwargs)

    async def get_affinity(self, user_id: str, personality_name: str) -> dict[str, Any] | None:
        """``{user_id, personality_name, affinity_points, current_level, updated_at, ...}``
        or None."""
        return await self._store.run(lc_memory.get_affinity, user_id, personality_name)

    # -- facts ------------------------------------------------------------------

    async def save_fact(self, user_id: str, category: str, key: str, value: Any,
                        **kwargs: Any) -> bool:
        """Insert or replace a fact (``confidence`` and other keyword fields kept)."""
        return await self._store.run(lc_memory.save_fact, user_id, category, key, value, kwargs)

    async def get_facts(self, user_id: str, category: str | None = None) -> list[dict[str, Any]]:
        """Facts in save order, all (``category`` None or empty) or of one category."""
        return await self._store.run(lc_memory.get_facts, user_id, category)

    async def delete_fact(self, user_id: str, category: str, key: str) -> bool:
        """Forget a fact; True iff there was one."""
        return await self._store.run(lc_memory.delete_fact, user_id, category, key)

    # -- episodes ---------------------------------------------------------------

    async def save_episode(self, user_id: str, episode_type: str, title: str, summary: str,
                           importance: float, sentiment: str, **kwargs: Any) -> bool:
        """Append an episode (never deduplicated)."""
        return await self._store.run(lc_memory.save_episode, user_id, episode_type, title,
                                      summary, importance, sentiment, kwargs)

    async def get_episodes(self, user_id: str,
                           min_importance: float | None = None) -> list[dict[str, Any]]:
        """Episodes in save order, those with ``importance >= min_importance`` when given."""
        return await self._store.run(lc_memory.get_episodes, user_id, min_importance)

    # -- moods ------------------------------------------------------------------

    async def save_mood(self, session_id: str, user_id: str, current_mood: str,
                        mood_intensity: float = 1.0) -> bool:
        """Set the mood of a session (one per session, overwritten)."""
        ttl_ms = math.ceil(self._store.settings.default_ttl * 1000)
        return await self._store.run(lc_sessions.save_mood, session_id, user_id, current_mood,
                                      mood_intensity, ttl_ms)

    async def get_mood(self, session_id: str) -> dict[str, Any] | None:
        """``{session_id, user_id, current_mood, mood_intensity, updated_at}`` or None."""
        return await self._store.run(lc_sessions.get_mood, session_id)

    # -- sessions ---------------------------------------------------------------

    async def save_session(self, session_id: str, user_id: str, personality_name: str,
                           created_at: str, expires_at: str, last_activity: str, status: str,
                           provider_config: dict[str, Any] | None = None) -> bool:
        """Start (or re-save) the session the caller names ``session_id``."""
        return await self._store.run(lc_sessions.save_session, session_id, user_id,
                                      personality_name, created_at, expires_at, last_activity,
                                      status, provider_config, self._max_idle_ms, self._grace_ms)

    async def get_session(self, session_id: str) -> dict[str, Any] | None:
        """The eight fields ``save_session`` took, or None unless the session is live."""
        return await self._store.run(lc_sessions.get_session, session_id)

    async def update_session_activity(self, session_id: str, last_activity: str) -> bool:
        """Slide the session's idle deadline; False when it is unknown or has expired."""
        return await self._store.run(lc_sessions.update_session_activity, session_id,
                                      last_activity)

    async def get_expired_sessions(self) -> list[str]:
        """Caller ids of sessions that have expired and are not archived yet."""
        return await self._store.run(lc_sessions.get_expired_sessions)

    async def delete_session(self, session_id: str) -> bool:
        """Remove the session and its history without archiving; False when unknown."""
        return await self._store.run(lc_sessions.delete_session, session_id)
