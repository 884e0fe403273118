"""Real LuminoraCore chat turns over ``RedisStorageV11``: affinity accumulates under the
real user across two sessions, turns land in the session's history and its archive.

Imports LuminoraCore's SDK from ``LUMINORACORE_PATH``; it needs the SDK's own
dependencies (boto3, structlog, opentelemetry, ...), which
``.ci/luminoracore.sh`` installs into ``.venv-luminoracore``
and then runs this file too. Elsewhere it skips with one line.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from luminora_redis.compat.luminoracore import RedisStorageV11
from luminora_redis.testing import RedisServer, find_redis_server

_ROOT = os.environ.get("LUMINORACORE_PATH", "")
_SDK = Path(_ROOT) / "luminoracore-sdk-python"
if not _ROOT or not _SDK.is_dir():
    pytest.skip("LuminoraCore snapshot absent: set LUMINORACORE_PATH", allow_module_level=True)
sys.path.insert(0, str(_SDK))
try:
    from luminoracore_sdk.client_v1_1 import LuminoraCoreClientV11
    from luminoracore_sdk.providers.base import BaseProvider
    from luminoracore_sdk.providers.factory import ProviderFactory
    from luminoracore_sdk.types.provider import ChatResponse, ProviderConfig
except ImportError as missing:
    pytest.skip(f"LuminoraCore's SDK needs {missing.name}; run .ci/luminoracore.sh",
                allow_module_level=True)


class StubProvider(BaseProvider):
    """An LLM that answers at once: a reply, a fact it learns, a rating of 4."""

    def get_default_model(self) -> str:
        return "stub"

    async def chat(self, messages: list[Any], **kwargs: Any) -> ChatResponse:
        prompt = messages[-1].content
        if "Rate the interaction quality" in prompt:
            return ChatResponse(content="4")
        if '"facts"' in prompt or "Extract" in prompt or "extract" in prompt:
            return ChatResponse(content='{"facts": [{"category": "personal_info", "key": "name", '
                                        '"value": "Carlos", "confidence": 0.95}]}')
        return ChatResponse(content="¡Hola, Carlos!")

    async def stream_chat(self, messages: list[Any], **kwargs: Any) -> Any:
        yield ChatResponse(content="¡Hola, Carlos!")


class BaseClient:
    """LuminoraCore's base client, unused on the memory chat path."""


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    """A private redis-server. Without one the test fails, as the rest of the suite does
    under CI: this file runs only where LuminoraCore was set up on purpose, and a
    missing server must not pass for a skipped check. (It runs under LuminoraCore's
    rootdir, where the suite's conftest.py is not loaded, so it starts its own.)"""
    if find_redis_server() is None:
        pytest.fail("redis-server is not installed, and these tests need a real one", pytrace=False)
    with RedisServer() as running:
        yield running


async def _two_sessions(url: str) -> dict[str, Any]:
    ProviderFactory.register_provider("stub", StubProvider)
    storage = RedisStorageV11.from_url(url, prefix="chat")
    client = LuminoraCoreClientV11(BaseClient(), storage_v11=storage)
    # A ProviderConfig, not a dict: LuminoraCore's fact extraction reads ``.name`` first.
    stub = ProviderConfig(name="stub", api_key="none", model="stub")
    results = []
    try:
        for session_id in ("session_first", "session_second"):
            for text in ("hola, soy Carlos", "¿qué tal?"):
                results.append(await client.send_message_with_memory(
                    session_id=session_id, user_message=text, user_id="carlos",
                    personality_name="alicia", provider_config=stub))
        store = storage.store
        first = await storage.get_session("session_first")
        assert first is not None
        ended = await store.end_session(
            (await store.list_user_sessions("carlos"))[0].session_id)
        return {
            "results": results,
            "affinity": await storage.get_affinity("carlos", "alicia"),
            "native": await store.get_affinity("carlos", "alicia"),
            "by_session": await storage.get_affinity("session_second", "alicia"),
            "turns": await storage.get_facts("session_second", "conversation_history"),
            "user_facts": await storage.get_facts("carlos"),
            "sessions": await store.list_user_sessions("carlos"),
            "ended": ended,
            "archive": await store.get_archived_conversations("carlos"),
        }
    finally:
        await storage.aclose()


def test_chat_turns_accumulate_affinity_under_the_real_user(server: RedisServer) -> None:
    seen = asyncio.run(_two_sessions(server.url))
    assert [result["success"] for result in seen["results"]] == [True] * 4, seen["results"]
    # Four turns rated 4 each, under "carlos", across both sessions; LuminoraCore
    # itself would have left "carlos" at 0 and counted per session id.
    assert seen["affinity"]["affinity_points"] == 16
    assert seen["native"].points == 16
    assert seen["by_session"]["user_id"] == "carlos"
    assert seen["results"][2]["affinity_points"] == 8  # the second session starts where the first ended
    turns = seen["turns"]
    assert [turn["key"].startswith("turn_") for turn in turns] == [True, True]
    assert '"user_message": "hola, soy Carlos"' in turns[0]["value"]
    assert [fact["key"] for fact in seen["user_facts"]
            if fact["category"] == "conversation_history"] == []
    assert any(fact["key"] == "name" and fact["value"] == "Carlos"
               for fact in seen["user_facts"])
    assert len(seen["sessions"]) == 1 and seen["ended"]
    archived = seen["archive"][0]
    assert archived.session_id != "session_first"  # ours; the alias names it
    assert [message.content for message in archived.messages] == [
        "hola, soy Carlos", "¡Hola, Carlos!", "¿qué tal?", "¡Hola, Carlos!"]
