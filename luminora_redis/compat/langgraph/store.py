"""``LuminoraStore``: LangGraph's long-term memory store (a ``BaseStore``) as a user's memory.

Needs the ``luminora-redis[langgraph]`` extra. ``namespace[0]`` is the user id
(checked like any user id), so every item lives among that user's keys, in its
hash slot: ``export_user`` lists the items and ``erase_user`` removes them with
the rest of the user. Nothing a caller passes reaches another user's keys: a
search or a namespace listing must name the user first, and never reads across
users. Values are stored as JSON (never pickle); a tuple reads back as a list,
as in LangGraph's SQL stores.

Sync methods run on a ``SyncSessionStore``, async ones on a ``SessionStore``;
give either or both (``from_url`` makes both, ``close``/``aclose`` close them).
Each op is one operation of ``store_ops`` on the store's runner: a ``get``,
``put`` or ``delete`` is one script call, a search or listing one call per
page.

TTL follows LangGraph's ``TTLConfig``: ``default_ttl`` (minutes) applies to
puts without their own ``ttl``; a read with ``refresh_ttl`` (by default
``refresh_on_read``, itself true by default) restarts an item's TTL. Expiry
works on Redis 6.2 and later (no per-field ``HEXPIRE``): a per-user sorted set
of deadlines, read by the server clock in every script, so an item past its
TTL is never returned; the scripts drop such items when they meet them, and
every put, delete and listing drops up to 100 of the user's due items.
``sweep_interval_minutes`` is not needed and is ignored.

A semantic ``query`` is not served: ``search(..., query=...)`` raises
``SemanticSearchUnsupported`` (a ``NotImplementedError``), and so does an
``index`` configuration. Search by namespace prefix and ``filter``, or keep a
vector store beside this one. Bounds are in ``store_ops``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from langgraph.store.base import BaseStore, Op, Result, TTLConfig

from luminora_redis.compat.langgraph.store_ops import SemanticSearchUnsupported, run_batch
from luminora_redis.compat.store_pair import StorePair, open_stores
from luminora_redis.core.errors import ConfigurationError
from luminora_redis.io.store import SessionStore
from luminora_redis.io.sync_store import SyncSessionStore

__all__ = ["LuminoraStore", "SemanticSearchUnsupported"]


class LuminoraStore(StorePair, BaseStore):
    """A LangGraph ``BaseStore`` whose namespaces start with the user id.

    ``LuminoraStore(store=SessionStore, sync_store=SyncSessionStore, ttl=TTLConfig)``;
    ``LuminoraStore.from_url(url, ttl=..., cluster=False, **store_settings)``.
    """

    supports_ttl = True

    def __init__(self, store: SessionStore | None = None,
                 sync_store: SyncSessionStore | None = None, *, ttl: TTLConfig | None = None,
                 index: Any = None) -> None:
        if index is not None:
            raise SemanticSearchUnsupported(
                "LuminoraStore keeps no embeddings, so index= is not served; search by "
                "namespace and filter=, or keep a vector store beside it")
        if ttl is not None and not isinstance(ttl, dict):
            raise ConfigurationError("ttl must be a TTLConfig (a dict) or None")
        self._use_stores(store, sync_store)
        self.ttl_config = ttl

    @classmethod
    def from_url(cls, url: str, *, ttl: TTLConfig | None = None, cluster: bool = False,
                 **store_settings: Any) -> LuminoraStore:
        """A store with a ``SessionStore`` and a ``SyncSessionStore`` of its own for ``url``
        (cluster clients with ``cluster=True``); ``close()``/``aclose()`` close them."""
        store, sync_store = open_stores(url, cluster=cluster, **store_settings)
        made = cls(store, sync_store, ttl=ttl)
        made._use_stores(store, sync_store, owned=True)
        return made

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run the ops in order on the blocking store; every op is checked first."""
        return self._sync().run(run_batch, list(ops))

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Run the ops in order on the asyncio store; every op is checked first."""
        return await self._async().run(run_batch, list(ops))
