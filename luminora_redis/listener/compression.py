"""Compressing what the listener archived, off the archive path.

Compression (``compress_archives``) rewrites a conversation the archive script
has just committed; nothing waits for it: the conversation is readable
either way, and a failed compression leaves it uncompressed until
``luminora-redis migrate`` or ``compact_archives``. Run inline, its round trips
would sit between one archive and the next of the same worker or sweep pass,
and so in every later session's lag. So the listener hands each archive to
`Compressions`, which compresses it in a task of its own; past ``BACKLOG``
tasks it compresses inline, so a flood of archives cannot queue compressions
without bound.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from luminora_redis.io.store import SessionStore
from luminora_redis.listener.outages import call
from luminora_redis.listener.stopping import cancel
from luminora_redis.ops import archive
from luminora_redis.ops.archive import Archived

__all__ = ["BACKLOG", "Compressions"]

logger = logging.getLogger("luminora_redis.listener")

#: Compressions that may run in tasks of their own; past it, the archive path waits.
BACKLOG = 64


class Compressions:
    """The compressions one listener started and has not seen end."""

    def __init__(self, store: SessionStore, on_error: Callable[[], None]) -> None:
        self._store = store
        self._on_error = on_error
        self._running: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._running)

    async def start(self, archived: Archived) -> None:
        """Compress ``archived`` in a task of its own (inline when `BACKLOG` run)."""
        if not self._store.settings.compress_archives:
            return
        if len(self._running) >= BACKLOG:
            await self._compress(archived)
            return
        task = asyncio.create_task(self._compress(archived),
                                   name=f"compress {archived.session_id}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _compress(self, archived: Archived) -> None:
        try:
            await call(self._store, archive.compress, archived)  # Redis errors: logged there
        except Exception:
            self._on_error()
            logger.exception("compressing the archive of session %s failed; it stays readable, "
                             "uncompressed", archived.session_id)

    async def drain(self, within: float, cancel_within: float) -> None:
        """Let the running compressions end for ``within`` seconds, then cancel the rest."""
        if not self._running:
            return
        await asyncio.wait(set(self._running), timeout=within)
        await cancel(set(self._running), cancel_within)
