"""LuminoraCore's chat turn on its own legacy Redis backend, ``FlexibleRedisStorageV11``,
which is what LuminoraCore's users run today.

The backend is not on PyPI: it is loaded from a snapshot of the LuminoraCore repository
found through ``LUMINORACORE_PATH`` (a directory holding ``luminoracore-sdk-python/``).
Only its two storage modules are loaded, under a private package name, so the SDK's
heavy package imports do not run. A turn makes the storage calls that
``send_message_with_memory`` makes, in its order (``ensure_session_exists``, the history
and fact reads, the turn record, the affinity update), with no LLM and no facts
extracted. The backend swallows its own errors into log lines, so those are silenced.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import types
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from luminora_redis.bench import workload as w
from luminora_redis.bench.systems import Facts, System, Unavailable

_PACKAGE = "_luminoracore_legacy_session"


def _session_dir() -> Path:
    root = os.environ.get("LUMINORACORE_PATH")
    if not root:
        raise Unavailable("LUMINORACORE_PATH is not set (a directory holding "
                          "luminoracore-sdk-python/ from the LuminoraCore repository)")
    path = Path(root) / "luminoracore-sdk-python" / "luminoracore_sdk" / "session"
    if not (path / "storage_redis_flexible.py").is_file():
        raise Unavailable(f"no luminoracore-sdk-python/luminoracore_sdk/session/"
                          f"storage_redis_flexible.py under LUMINORACORE_PATH={root}")
    return path


def load_backend() -> type:
    """FlexibleRedisStorageV11 from the snapshot."""
    path = _session_dir()
    if _PACKAGE not in sys.modules:
        package = types.ModuleType(_PACKAGE)
        package.__path__ = [str(path)]
        sys.modules[_PACKAGE] = package
    module = importlib.import_module(f"{_PACKAGE}.storage_redis_flexible")
    logging.getLogger(module.__name__).setLevel(logging.CRITICAL + 1)
    backend: type = module.FlexibleRedisStorageV11
    return backend


class LuminoraCoreLegacy(System):
    name, label, api, floor = ("luminoracore", "LuminoraCore on its legacy Redis backend",
                               "asyncio", "floor-async")
    facts = Facts(
        "the storage calls of send_message_with_memory, each its own sequential command(s): "
        "session check, affinity check, session-metadata fact (SET + SADD + 2 EXPIRE), "
        "the whole history (SMEMBERS + one GET per turn ever stored), every user fact, "
        "affinity, the turn record as a fact, affinity read-write-read",
        "none",
        "nothing tied to the session expires: every key gets a 365-day TTL, the session hash "
        "is never written (its key method is missing) and history grows without a bound")

    @classmethod
    def check(cls) -> None:
        _session_dir()

    def versions(self) -> dict[str, str]:
        return {"luminoracore snapshot": os.environ.get("LUMINORACORE_PATH", "")}

    async def open(self) -> None:
        backend = load_backend()
        parts = urlsplit(self.url)
        db = int(parts.path.strip("/") or 0)
        self.storage = backend(host=parts.hostname or "localhost", port=parts.port or 6379,
                               db=db, password=parts.password, key_prefix=self.prefix)

    async def sessions(self, n: int) -> list[tuple[str, str]]:
        return [(f"s{uuid.uuid4().hex}", f"u{uuid.uuid4().hex[:12]}") for _ in range(n)]

    async def turn(self, handle: tuple[str, str], i: int) -> Any:
        session_id, user_id = handle
        storage, personality = self.storage, w.PERSONALITY
        # ensure_session_exists
        if await storage.get_session(session_id) is None:
            if await storage.get_affinity(user_id, personality) is None:
                now = datetime.now().isoformat()
                await storage.save_affinity(user_id, personality, 0, "stranger",
                                            total_interactions=0, positive_interactions=0,
                                            created_at=now, last_interaction=now)
                await storage.save_fact(user_id, "user_metadata", "created_at", now)
                await storage.save_fact(user_id, "user_metadata", "default_personality",
                                        personality)
            created = datetime.now()
            expires = created + timedelta(seconds=3600)
            await storage.save_session(session_id, user_id, personality,
                                       created_at=created.isoformat(),
                                       expires_at=expires.isoformat(),
                                       last_activity=created.isoformat(), status="active",
                                       provider_config=None)
            await storage.save_fact(user_id, "session_metadata", f"session_{session_id}", {
                "session_id": session_id, "personality_name": personality,
                "created_at": created.isoformat(), "expires_at": expires.isoformat(),
                "provider_config": None})
        # send_message_with_full_context
        history = await storage.get_facts(session_id, "conversation_history")
        turns = sorted((f for f in history if f["key"].startswith("turn_")),
                       key=lambda f: json.loads(f["value"])["timestamp"])[-20:]
        facts = [f for f in await storage.get_facts(user_id)
                 if f["category"] != "conversation_history"]
        await storage.get_affinity(user_id, personality)
        stamp = datetime.now()
        record = {"user_message": w.USER[i], "assistant_response": w.ASSISTANT[i],
                  "personality_name": personality, "timestamp": stamp.isoformat(),
                  "facts_learned": []}
        await storage.save_fact(session_id, "conversation_history",
                                f"turn_{stamp.strftime('%Y%m%d_%H%M%S_%f')}", json.dumps(record))
        # the affinity update, keyed by the session id as the SDK does it
        current = await storage.get_affinity(session_id, personality) or {}
        points = int(current.get("affinity_points", 0)) + 1
        await storage.save_affinity(session_id, personality, points, "stranger")
        await storage.get_affinity(session_id, personality)
        messages = []
        for fact in turns:
            value = json.loads(fact["value"])
            messages += [value["user_message"], value["assistant_response"]]
        messages += [record["user_message"], record["assistant_response"]]
        return messages[-w.LAST:], facts

    async def close(self) -> None:
        if self.storage.redis is not None:
            await self.storage.redis.aclose()
