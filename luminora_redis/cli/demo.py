"""``luminora-redis demo``: a short live tour on a real Redis.

With no ``--url`` it starts a private redis-server on a free loopback port
and stops it afterwards, so it runs on any machine with redis-server
installed. It shows what the library is for: sessions that idle out on their
own, their conversations archived into the user's archive, and a user whose
affinity and facts survive a reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import click

from luminora_redis.cli.common import check_prefix
from luminora_redis.core.models import ArchivedConversation
from luminora_redis.io.store import SessionStore
from luminora_redis.testing import RedisServer, find_redis_server

__all__ = ["demo", "run_demo"]

IDLE_SECONDS = 1.5
#: Where the tour's keys go unless ``--prefix`` says otherwise.
DEFAULT_PREFIX = "demo"


def _say(text: str = "") -> None:
    print(text, flush=True)


@contextlib.contextmanager
def _redis(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    if find_redis_server() is None:
        raise SystemExit("redis-server is not installed; install it or pass --url redis://...")
    with RedisServer() as server:
        _say(f"started a private redis-server on {server.url}")
        yield server.url


async def _wait_archived(store: SessionStore, user_id: str, session_id: str,
                         timeout: float = 10.0) -> ArchivedConversation:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for conversation in await store.get_archived_conversations(user_id, limit=5):
            if conversation.session_id == session_id:
                return conversation
        await asyncio.sleep(0.02)
    raise RuntimeError(f"session {session_id} was not archived within {timeout} s")


async def _tour(url: str, prefix: str = DEFAULT_PREFIX) -> None:
    from luminora_redis.listener.expiry_listener import ExpiryListener

    store = SessionStore.from_url(url, prefix=prefix)
    try:
        # A refusal (a user without the rights for this prefix, say) fails here at once;
        # the listener would wait it out as an outage.
        await store.context()
    except BaseException:
        await store.aclose()
        raise
    listener = ExpiryListener(store, sweep_interval=0.1)
    listening = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.started.wait(), 10)
        _say("the expiry listener is running (keyspace notifications + deadline sweeper)\n")

        _say(f"1. carlos opens a chat with alicia (idle timeout {IDLE_SECONDS} s, ttl 1 h)")
        first = await store.create_session("carlos", "alicia",
                                           {"ttl": 3600, "max_idle": IDLE_SECONDS})
        _say(f"   session {first}")
        for user_text, reply in (("hola, soy Carlos", "¡hola Carlos! encantada"),
                                 ("me encanta la astronomía", "¡a mí también! ¿tienes telescopio?")):
            context = await store.chat_turn(first, [("user", user_text), ("assistant", reply)])
            affinity = await store.update_affinity("carlos", "alicia", 15, "friendly_chat")
            _say(f"   carlos: {user_text}\n   alicia: {reply}")
            _say(f"   (context now {len(context)} messages; affinity {affinity.points} "
                 f"= {affinity.level})")
        await store.save_fact("carlos", "personal_info", "name", "Carlos")
        await store.save_fact("carlos", "interests", "hobby", "astronomy")

        _say(f"\n2. carlos goes quiet; Redis expires the session after {IDLE_SECONDS} s idle")
        started = time.monotonic()
        archived = await _wait_archived(store, "carlos", first)
        _say(f"   expired and archived after {time.monotonic() - started:.2f} s: "
             f"reason={archived.reason.value}, {archived.message_count} messages kept")
        _say(f"   touch() on it now returns {await store.touch(first)}: it cannot be resurrected")

        _say("\n3. carlos reconnects: a new session, the same user")
        second = await store.create_session("carlos", "alicia")
        kept = await store.get_affinity("carlos", "alicia")
        assert kept is not None
        facts = await store.get_facts("carlos")
        _say(f"   session {second}")
        _say(f"   alicia still knows him: affinity {kept.points} = {kept.level}; facts "
             + ", ".join(f"{f.key}={f.value}" for f in facts))
        await store.chat_turn(second, [("user", "¡he vuelto!"), ("assistant", "¡te eché de menos!")])
        affinity = await store.update_affinity("carlos", "alicia", 25, "reunion")
        _say(f"   after a warm reunion: affinity {affinity.points} = {affinity.level}")

        _say("\n4. carlos logs out; the conversation is archived at once")
        await store.end_session(second)
        history = await store.get_archived_conversations("carlos")
        for conversation in history:
            _say(f"   {conversation.ended_at:%H:%M:%S} {conversation.reason.value:>5}: "
                 f"{conversation.message_count} messages with {conversation.personality_name}")
        evolution = await store.get_evolution("carlos")
        _say(f"   evolution log: {len(evolution)} affinity changes, never expiring")
    finally:
        await listener.stop()
        await listening
        await store.aclose()


def run_demo(url: str | None = None, prefix: str = DEFAULT_PREFIX) -> None:
    """Run the tour against ``url``, or against a private redis-server when None, with its
    keys under ``prefix``."""
    with _redis(url) as target:
        asyncio.run(_tour(target, prefix))
    _say("\ndone.")


@click.command()
@click.option("--url", envvar="REDIS_URL", default=None,
              help="use this Redis instead of a private one; REDIS_URL works too")
@click.option("--prefix", default=DEFAULT_PREFIX, show_default=True, callback=check_prefix,
              help="the key prefix of the tour's keys (a user restricted to ~lr:* "
                   "runs it with --prefix lr)")
def demo(url: str | None, prefix: str) -> None:
    """A live tour; starts a private redis-server unless --url is given."""
    run_demo(url, prefix)
