"""The chat server: FastAPI endpoints over one `SessionStore`, with the
`ExpiryListener` running in the app's lifespan so idle conversations are
archived even when nobody calls the server again.

Environment: ``REDIS_URL`` (default ``redis://127.0.0.1:6379/0``),
``CHAT_MAX_IDLE`` (seconds a session may stay idle, default 900) and
``CHAT_SWEEP_INTERVAL`` (seconds, default 1). ``uvicorn
examples.chat_server.app:app`` serves `app`; tests build their own with
`create_app`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field

from examples.chat_server.responder import reply, sentiment
from luminora_redis import ExpiryListener, SessionStore
from luminora_redis.core.errors import InvalidInput, SessionNotFound
from luminora_redis.core.models import Affinity, ArchivedConversation, Message
from luminora_redis.listener.expiry_listener import OnArchived

__all__ = ["app", "create_app"]

PAGE = Path(__file__).resolve().parent / "static" / "index.html"
STARTUP_TIMEOUT = 30.0  # seconds the listener may take to subscribe and sweep once


class StartSession(BaseModel):
    user_id: str = Field(min_length=1, max_length=128)
    personality: str = Field(min_length=1, max_length=64)


class UserMessage(BaseModel):
    text: str = Field(min_length=1, max_length=4000)


class AffinityOut(BaseModel):
    points: int
    level: str


class SessionOut(BaseModel):
    session_id: str
    user_id: str
    personality: str
    affinity: AffinityOut


class TurnOut(BaseModel):
    reply: str
    delta: int
    affinity: AffinityOut


class MessageOut(BaseModel):
    role: str
    content: str


class ArchivedOut(BaseModel):
    session_id: str
    personality: str
    reason: str
    messages: list[MessageOut]


def _messages(messages: list[Message]) -> list[MessageOut]:
    return [MessageOut(role=m.role.value, content=m.content) for m in messages]


def create_app(redis_url: str | None = None, *, prefix: str = "chat", max_idle: float | None = None,
               ttl: float = 86400.0, sweep_interval: float | None = None,
               on_archived: OnArchived | None = None) -> FastAPI:
    """The chat app over ``redis_url``; the arguments default to the environment.

    ``on_archived`` receives each conversation the listener archives (send it
    to your warehouse, or, in tests, await it).
    """
    url = redis_url or os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    idle = max_idle if max_idle is not None else float(os.environ.get("CHAT_MAX_IDLE", "900"))
    sweep = (sweep_interval if sweep_interval is not None
             else float(os.environ.get("CHAT_SWEEP_INTERVAL", "1")))
    session_config = {"ttl": ttl, "max_idle": idle}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = SessionStore.from_url(url, prefix=prefix)
        listener = ExpiryListener(store, sweep_interval=sweep, on_archived=on_archived)
        listening = asyncio.create_task(listener.run())
        try:
            started = asyncio.create_task(listener.started.wait())
            await asyncio.wait({started, listening}, timeout=STARTUP_TIMEOUT,
                               return_when=asyncio.FIRST_COMPLETED)
            started.cancel()
            if listening.done():
                listening.result()  # raises what stopped it
            app.state.store = store
            yield
        finally:
            await listener.stop()
            await listening
            await store.aclose()

    app = FastAPI(title="luminora-redis chat server example", lifespan=lifespan)

    def store_of(request: Request) -> SessionStore:
        store: SessionStore = request.app.state.store
        return store

    async def affinity_of(store: SessionStore, user_id: str, personality: str) -> AffinityOut:
        found: Affinity | None = await store.get_affinity(user_id, personality)
        if found is None:
            return AffinityOut(points=0, level=store.settings.level_for(0))
        return AffinityOut(points=found.points, level=found.level)

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
        return FileResponse(PAGE, media_type="text/html")

    @app.post("/sessions", status_code=201)
    async def start_session(body: StartSession, request: Request) -> SessionOut:
        store = store_of(request)
        session_id = await store.create_session(body.user_id, body.personality, session_config)
        return SessionOut(session_id=session_id, user_id=body.user_id, personality=body.personality,
                          affinity=await affinity_of(store, body.user_id, body.personality))

    @app.post("/sessions/{session_id}/messages")
    async def send_message(session_id: str, body: UserMessage, request: Request) -> TurnOut:
        store = store_of(request)
        session = await store.get_session(session_id)
        if session is None:
            raise SessionNotFound(session_id)
        user, personality = session.user_id, session.personality_name
        current = await affinity_of(store, user, personality)
        answer = reply(personality, body.text, current.level)
        # One round trip appends both messages and slides the idle deadline; it
        # fails as not found when the session expired since the read above.
        await store.chat_turn(session_id, [("user", body.text), ("assistant", answer)], last=1)
        delta = sentiment(body.text)
        if delta:
            changed = await store.update_affinity(user, personality, delta, "chat")
            current = AffinityOut(points=changed.points, level=changed.level)
        return TurnOut(reply=answer, delta=delta, affinity=current)

    @app.get("/sessions/{session_id}/history")
    async def history(session_id: str, request: Request) -> list[MessageOut]:
        store = store_of(request)
        if await store.get_session(session_id) is None:
            raise SessionNotFound(session_id)
        return _messages(await store.get_history(session_id))

    @app.delete("/sessions/{session_id}")
    async def end_session(session_id: str, request: Request) -> dict[str, Any]:
        if not await store_of(request).end_session(session_id):
            raise SessionNotFound(session_id)
        return {"session_id": session_id, "archived": True}

    @app.get("/users/{user_id}/affinity/{personality}")
    async def affinity(user_id: str, personality: str, request: Request) -> AffinityOut:
        return await affinity_of(store_of(request), user_id, personality)

    @app.get("/users/{user_id}/archive")
    async def archive(user_id: str, request: Request) -> list[ArchivedOut]:
        found: list[ArchivedConversation] = await store_of(request).get_archived_conversations(user_id)
        return [ArchivedOut(session_id=c.session_id, personality=c.personality_name,
                            reason=c.reason.value, messages=_messages(c.messages)) for c in found]

    return app


app = create_app()
