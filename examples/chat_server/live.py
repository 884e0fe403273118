"""The WebSocket chat (``/ws``): one JSON message per event, both ways, so the page hears
of its session's end the moment the listener archives it.

The page sends::

    {"type": "start", "user_id": "...", "personality": "..."}   -> "started"
    {"type": "say", "id": 3, "text": "..."}                      -> "turn" or "refused" (same id)
    {"type": "end"}                                              -> "ended"
    {"type": "open", "session_id": "..."}                        -> "conversation"
    {"type": "memory"}                                           -> "memory"

and receives, besides the answers: ``ended`` when its session expires (pushed by the
listener's archive), ``memory`` (what the personality recalls and the archive list)
after any of the user's conversations is archived, and ``error`` for anything that
is not about one message. Every refusal carries readable text in ``error``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis.exceptions
from fastapi import WebSocket, WebSocketDisconnect
from pydantic import BaseModel

from examples.chat_server.chat import MAX_TEXT, Chat
from luminora_redis.core.errors import InvalidInput, SessionNotFound
from luminora_redis.core.models import ArchivedConversation

__all__ = ["Hub", "serve_socket"]

logger = logging.getLogger("examples.chat_server")

EXPIRED = "The session expired or ended; start a new one (what the personality knows of you is kept)."
REDIS_DOWN = "Redis is unavailable; try again in a moment."


class Connection:
    """One page's socket and the session it chats in."""

    def __init__(self, socket: WebSocket) -> None:
        self.socket = socket
        self.user_id: str | None = None
        self.personality: str | None = None
        self.session_id: str | None = None
        self._sending = asyncio.Lock()  # the listener's pushes and the answers share the socket

    async def send(self, kind: str, **body: Any) -> None:
        payload = {"type": kind, **{k: v.model_dump() if isinstance(v, BaseModel) else v
                                    for k, v in body.items()}}
        async with self._sending:
            await self.socket.send_json(payload)


class Hub:
    """The open sockets, so that an archive reaches the pages that show it."""

    def __init__(self) -> None:
        self.connections: set[Connection] = set()

    async def archived(self, chat: Chat, conversation: ArchivedConversation) -> None:
        """Tell the pages of this conversation it ended, and its user's pages what the
        personality now recalls."""
        for connection in list(self.connections):
            if connection.user_id != conversation.user_id:
                continue
            try:
                if connection.session_id == conversation.session_id:
                    connection.session_id = None
                    await connection.send("ended", session_id=conversation.session_id,
                                          reason=conversation.reason.value)
                await send_memory(connection, chat)
            except (WebSocketDisconnect, RuntimeError, OSError):
                self.connections.discard(connection)  # the page went away meanwhile

    async def close(self) -> None:
        self.connections.clear()


async def send_memory(connection: Connection, chat: Chat) -> None:
    if connection.user_id is None or connection.personality is None:
        return
    await connection.send("memory", recall=await chat.recall(connection.user_id, connection.personality),
                          archive=[a.model_dump() for a in await chat.archive(connection.user_id)])


async def serve_socket(socket: WebSocket, chat: Chat, hub: Hub) -> None:
    """Run one page's chat until it disconnects."""
    await socket.accept()
    connection = Connection(socket)
    hub.connections.add(connection)
    try:
        while True:
            try:
                data = await socket.receive_json()
            except WebSocketDisconnect:
                return
            except ValueError:
                await connection.send("error", error="That was not a JSON message.")
                continue
            await _handle(connection, chat, data if isinstance(data, dict) else {})
    finally:
        hub.connections.discard(connection)


async def _handle(connection: Connection, chat: Chat, data: dict[str, Any]) -> None:
    kind = data.get("type")
    message_id = data.get("id")
    try:
        if kind == "say":
            await _say(connection, chat, message_id, data.get("text"))
        elif kind == "start":
            await _start(connection, chat, data)
        elif kind == "end":
            await _end(connection, chat)
        elif kind == "open":
            await _open(connection, chat, str(data.get("session_id", "")))
        elif kind == "memory":
            await send_memory(connection, chat)
        else:
            await connection.send("error", error=f"Unknown request {kind!r}.")
    except SessionNotFound:
        connection.session_id = None
        await _refuse(connection, kind, message_id, EXPIRED)
    except InvalidInput as error:
        await _refuse(connection, kind, message_id, str(error))
    except redis.exceptions.ConnectionError:
        await _refuse(connection, kind, message_id, REDIS_DOWN)
    except redis.exceptions.RedisError as error:
        logger.exception("Redis refused a %s request", kind)
        await _refuse(connection, kind, message_id, f"Redis refused the request: {error}")


async def _refuse(connection: Connection, kind: Any, message_id: Any, text: str) -> None:
    if kind == "say":
        await connection.send("refused", id=message_id, error=text)
    else:
        await connection.send("error", error=text)


async def _start(connection: Connection, chat: Chat, data: dict[str, Any]) -> None:
    user_id = str(data.get("user_id", "")).strip()
    personality = str(data.get("personality", "")).strip()
    if not user_id or not personality:
        await connection.send("error", error="Give your name and a personality to start.")
        return
    if connection.session_id is not None:
        await chat.end(connection.session_id)
    started = await chat.start(user_id, personality)
    connection.user_id, connection.personality = user_id, personality
    connection.session_id = started.session_id
    await connection.send("started", **started.model_dump())


async def _end(connection: Connection, chat: Chat) -> None:
    session_id, connection.session_id = connection.session_id, None
    if session_id is None:
        await connection.send("error", error="No session to end.")
        return
    await chat.end(session_id)
    # The archive's delivery then brings the "memory" update (the hub skips the "ended").
    await connection.send("ended", session_id=session_id, reason="ended")


async def _say(connection: Connection, chat: Chat, message_id: Any, text: Any) -> None:
    text = text.strip() if isinstance(text, str) else ""
    if connection.session_id is None:
        await _refuse(connection, "say", message_id, "No session: start one first.")
    elif not text:
        await _refuse(connection, "say", message_id, "An empty message is not sent.")
    elif len(text) > MAX_TEXT:
        await _refuse(connection, "say", message_id,
                      f"Too long: a message has at most {MAX_TEXT} characters, this one has {len(text)}.")
    else:
        turn = await chat.say(connection.session_id, text)
        await connection.send("turn", id=message_id, **turn.model_dump())
        if turn.learned:
            await send_memory(connection, chat)


async def _open(connection: Connection, chat: Chat, session_id: str) -> None:
    if connection.user_id is None:
        await connection.send("error", error="Start a session to see your archive.")
        return
    found = await chat.conversation(connection.user_id, session_id)
    if found is None:
        await connection.send("error", error="That conversation is not in your archive.")
    else:
        await connection.send("conversation", conversation=found)
