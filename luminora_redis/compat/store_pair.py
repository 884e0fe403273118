"""StorePair: the asyncio and blocking stores a framework adapter sends through.

LangChain's history, LangGraph's checkpointer and LangGraph's store each serve
their framework's sync methods on a ``SyncSessionStore`` (a real blocking
client) and its async methods on a ``SessionStore``. Either may be absent when
the app gives only one; ``from_url`` makes both and the adapter closes what it
made. That bookkeeping lives here once.
"""

from __future__ import annotations

from typing import Any

from luminora_redis.core.errors import ConfigurationError
from luminora_redis.io.store import SessionStore
from luminora_redis.io.sync_store import SyncSessionStore

__all__ = ["StorePair", "open_stores"]


def open_stores(url: str, *, cluster: bool = False,
                **settings: Any) -> tuple[SessionStore, SyncSessionStore]:
    """Both stores for ``url``, each with its own client (nothing is left open when the
    second cannot be made)."""
    sync_store = SyncSessionStore.from_url(url, cluster=cluster, **settings)
    try:
        store = SessionStore.from_url(url, cluster=cluster, **settings)
    except BaseException:
        sync_store.close()
        raise
    return store, sync_store


class StorePair:
    """An adapter's ``store`` (asyncio) and ``sync_store`` (blocking), and which it owns."""

    store: SessionStore | None
    sync_store: SyncSessionStore | None

    def _use_stores(self, store: SessionStore | None, sync_store: SyncSessionStore | None,
                    *, owned: bool = False) -> None:
        """Keep the stores, checked: at least one, each of its kind (``owned``: made by
        ``from_url``, closed by ``close``/``aclose``)."""
        if store is None and sync_store is None:
            raise ConfigurationError("give store= (a SessionStore), sync_store= "
                                     "(a SyncSessionStore), or both")
        if store is not None and not isinstance(store, SessionStore):
            raise ConfigurationError("store must be a SessionStore (sync_store takes the "
                                     "SyncSessionStore)")
        if sync_store is not None and not isinstance(sync_store, SyncSessionStore):
            raise ConfigurationError("sync_store must be a SyncSessionStore (store takes the "
                                     "SessionStore)")
        self.store = store
        self.sync_store = sync_store
        self._owned: list[SessionStore | SyncSessionStore] = (
            [s for s in (store, sync_store) if s is not None] if owned else [])

    def _sync(self) -> SyncSessionStore:
        if self.sync_store is None:
            raise ConfigurationError(f"this {type(self).__name__} has no sync_store; use the "
                                     "async methods or give sync_store=")
        return self.sync_store

    def _async(self) -> SessionStore:
        if self.store is None:
            raise ConfigurationError(f"this {type(self).__name__} has no asyncio store; use the "
                                     "sync methods or give store=")
        return self.store

    def close(self) -> None:
        """Close the blocking store if ``from_url`` made it."""
        for owned in self._owned:
            if isinstance(owned, SyncSessionStore):
                owned.close()

    async def aclose(self) -> None:
        """Close both stores if ``from_url`` made them."""
        for owned in self._owned:
            if isinstance(owned, SessionStore):
                await owned.aclose()
            else:
                owned.close()
