"""The chat server: a WebSocket chat (``/ws``) and an HTTP API over one `SessionStore`,
with the `ExpiryListener` running in the app's lifespan, so that idle conversations
are archived, and summarized into the user's memory, even when nobody calls the
server again; the page hears of it at once.

Environment: ``REDIS_URL`` (default ``redis://127.0.0.1:6379/0``),
``REDIS_CLUSTER`` (``1`` when that URL names a node of a Redis Cluster),
``CHAT_MAX_IDLE`` (seconds a session may stay idle, default 900) and
``CHAT_SWEEP_INTERVAL`` (seconds, default 1). ``uvicorn
examples.chat_server.app:app`` serves `app`; tests build their own with
`create_app`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import redis.exceptions
from fastapi import FastAPI, HTTPException, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from examples.chat_server import memory
from examples.chat_server.chat import (
    MAX_TEXT,
    AffinityOut,
    ArchivedOut,
    Chat,
    ChatSettings,
    MessageOut,
    RecallOut,
    StartOut,
    TurnOut,
    archived_out,
    messages_out,
)
from examples.chat_server.live import Hub, serve_socket
from examples.chat_server.summarizer import summarize_conversation
from luminora_redis import SessionStore, Summarize
from luminora_redis.core.errors import InvalidInput, SessionNotFound
from luminora_redis.core.models import ArchivedConversation
from luminora_redis.listener.expiry_listener import OnArchived

__all__ = ["app", "create_app", "env_flag"]

STATIC = Path(__file__).resolve().parent / "static"
STARTUP_TIMEOUT = 30.0  # seconds the listener may take to subscribe and sweep once


class StartSession(BaseModel):
    user_id: str = Field(min_length=1, max_length=128)
    personality: str = Field(min_length=1, max_length=64)


class UserMessage(BaseModel):
    text: str = Field(min_length=1, max_length=MAX_TEXT)


def readable(error: RequestValidationError) -> str:
    """A validation error as one sentence (not a list of objects)."""
    parts = []
    for problem in error.errors():
        where = ".".join(str(p) for p in problem.get("loc", ()) if p != "body")
        parts.append(f"{where}: {problem.get('msg', 'invalid')}" if where else problem.get("msg", ""))
    return "; ".join(parts) or "invalid request"


def env_flag(name: str) -> bool:
    """An on/off environment variable: unset, empty, ``0``, ``false``, ``no`` or ``off`` is
    off; ``1``, ``true``, ``yes`` or ``on`` is on; anything else is refused, not guessed."""
    value = os.environ.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{name}={value!r}: use 1 or 0")


def create_app(redis_url: str | None = None, *, cluster: bool = False, prefix: str = "chat",
               max_idle: float | None = None,
               ttl: float = 86400.0, sweep_interval: float | None = None,
               on_archived: OnArchived | None = None,
               summarize: Summarize = summarize_conversation,
               settings: ChatSettings | None = None) -> FastAPI:
    """The chat app over ``redis_url``; the arguments default to the environment.

    ``cluster=True`` when ``redis_url`` names a node of a Redis Cluster: the store
    talks to the cluster, and the listener subscribes on every primary. (It does not
    read the environment; the module's `app` passes ``REDIS_CLUSTER``.)

    ``on_archived`` receives each conversation the listener archives (send it
    to your warehouse, or, in tests, await it); ``summarize`` turns an expired
    conversation into the episode the user's memory keeps (`summarize_conversation`,
    or your model's call).
    """
    url = redis_url or os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    idle = max_idle if max_idle is not None else float(os.environ.get("CHAT_MAX_IDLE", "900"))
    sweep = (sweep_interval if sweep_interval is not None
             else float(os.environ.get("CHAT_SWEEP_INTERVAL", "1")))
    base = settings or ChatSettings()
    chat_settings = dataclasses.replace(base, ttl=ttl, max_idle=idle)
    hub = Hub()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = SessionStore.from_url(url, cluster=cluster, prefix=prefix)
        chat = Chat(store, chat_settings)

        async def archived(conversation: ArchivedConversation) -> None:
            await hub.archived(chat, conversation)
            if on_archived is not None:
                delivered = on_archived(conversation)
                if inspect.isawaitable(delivered):
                    await delivered

        listener = memory.listener(store, summarize=summarize, on_archived=archived,
                                   sweep_interval=sweep)
        listening = asyncio.create_task(listener.run())
        try:
            started = asyncio.create_task(listener.started.wait())
            await asyncio.wait({started, listening}, timeout=STARTUP_TIMEOUT,
                               return_when=asyncio.FIRST_COMPLETED)
            started.cancel()
            if listening.done():
                listening.result()  # raises what stopped it
            app.state.chat = chat
            yield
        finally:
            await hub.close()
            await listener.stop()
            await listening
            await store.aclose()

    app = FastAPI(title="luminora-redis chat server example", lifespan=lifespan)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def chat_of(request: Request) -> Chat:
        chat: Chat = request.app.state.chat
        return chat

    @app.exception_handler(RequestValidationError)
    async def refused(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": readable(exc)}, status_code=422)

    @app.exception_handler(InvalidInput)
    async def invalid(request: Request, exc: InvalidInput) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(SessionNotFound)
    async def gone(request: Request, exc: SessionNotFound) -> JSONResponse:
        return JSONResponse({"detail": "session expired or ended"}, status_code=404)

    @app.exception_handler(redis.exceptions.ConnectionError)
    async def redis_down(request: Request, exc: redis.exceptions.ConnectionError) -> JSONResponse:
        # Redis being down must never look like "not found".
        return JSONResponse({"detail": "Redis is unavailable"}, status_code=503)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.websocket("/ws")
    async def chat_socket(websocket: WebSocket) -> None:
        await serve_socket(websocket, websocket.app.state.chat, hub)

    @app.post("/sessions", status_code=201)
    async def start_session(body: StartSession, request: Request) -> StartOut:
        return await chat_of(request).start(body.user_id, body.personality)

    @app.post("/sessions/{session_id}/messages")
    async def send_message(session_id: str, body: UserMessage, request: Request) -> TurnOut:
        return await chat_of(request).say(session_id, body.text)

    @app.get("/sessions/{session_id}/history")
    async def history(session_id: str, request: Request) -> list[MessageOut]:
        return messages_out(await chat_of(request).history(session_id))

    @app.delete("/sessions/{session_id}")
    async def end_session(session_id: str, request: Request) -> dict[str, Any]:
        if not await chat_of(request).end(session_id):
            raise SessionNotFound(session_id)
        return {"session_id": session_id, "archived": True}

    @app.get("/users/{user_id}/affinity/{personality}")
    async def affinity(user_id: str, personality: str, request: Request) -> AffinityOut:
        return await chat_of(request).affinity(user_id, personality)

    @app.get("/users/{user_id}/recall/{personality}")
    async def recall(user_id: str, personality: str, request: Request) -> RecallOut:
        return await chat_of(request).recall(user_id, personality)

    @app.get("/users/{user_id}/archive")
    async def archive(user_id: str, request: Request) -> list[ArchivedOut]:
        found = await chat_of(request).store.get_archived_conversations(user_id)
        return [archived_out(c) for c in found]

    @app.get("/users/{user_id}/archive/{session_id}")
    async def archived_conversation(user_id: str, session_id: str, request: Request) -> ArchivedOut:
        found = await chat_of(request).conversation(user_id, session_id)
        if found is None:
            raise HTTPException(404, "no such archived conversation")
        return found

    return app


app = create_app(cluster=env_flag("REDIS_CLUSTER"))
