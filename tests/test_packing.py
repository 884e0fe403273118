"""The asyncio store's own client packs commands with hiredis, byte for byte as redis-py."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio.connection import Connection

from luminora_redis import SessionStore
from luminora_redis.io.packing import use_hiredis_packing

pytest.importorskip("hiredis")

ARGUMENTS = [
    ("EVALSHA", "0" * 40, 2, "lr:{0001}:s:x", "ñ", -5, 1.5, 0.1, 10**18, b"\x00\xff\x94"),
    ("SET", "k", 3.0),
    ("CONFIG GET", "maxmemory-policy"),
    ("SET", bytearray(b"ab"), memoryview(b"cd")),
]


def test_packing_with_hiredis_gives_redis_pys_bytes() -> None:
    plain = Connection()
    packed_class = type("Probe", (Connection,), {})

    class Pool:
        connection_class = packed_class

    class Client:
        connection_pool = Pool()

    client = Client()
    assert use_hiredis_packing(client)  # type: ignore[arg-type]
    pool = client.connection_pool
    packed = pool.connection_class()
    assert pool.connection_class is not packed_class and isinstance(packed, packed_class)
    for args in ARGUMENTS:
        assert b"".join(packed.pack_command(*args)) == b"".join(
            bytes(chunk) for chunk in plain.pack_command(*args))
    assert use_hiredis_packing(client)  # idempotent: no second subclass
    assert pool.connection_class.__mro__.count(packed_class) == 1


def test_a_store_made_from_a_url_talks_through_hiredis_packing(redis_url: str) -> None:
    async def run() -> None:
        async with SessionStore.from_url(redis_url) as store:
            pool = store.client.connection_pool
            assert pool.connection_class.__name__.startswith("HiredisPacking")
            sid = await store.create_session("carlos", "alicia")
            context = await store.chat_turn(sid, [("user", "hola ñ"), ("assistant", "¡hola!")])
            assert [m.content for m in context] == ["hola ñ", "¡hola!"]

    asyncio.run(run())
