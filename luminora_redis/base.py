"""What the asyncio and blocking stores share: settings, client checks, scripts.

Neither store holds logic of its own; both drive the operation generators of
``sessions``, ``memory`` and ``archive`` and differ only in how a step runs.
"""

from __future__ import annotations

from typing import Any

from luminora_redis.context import Context
from luminora_redis.errors import ConfigurationError
from luminora_redis.scripts import Call, Op, script_sources
from luminora_redis.settings import DEFAULT_BUCKETS, StoreSettings

__all__ = ["LAYOUT_VERSION", "StoreBase", "check_layout_version", "claim_layout"]

#: The key layout this code reads and writes. A layout recorded before versions
#: were recorded is version 1; ``luminora-redis migrate`` upgrades older ones.
#: Version 2 compresses archived conversations into zstd frames.
LAYOUT_VERSION = 2


def check_layout_version(prefix: str, recorded: int) -> None:
    """Refuse a keyspace whose layout this code does not read."""
    if recorded > LAYOUT_VERSION:
        raise ConfigurationError(
            f"the keyspace {prefix!r} has layout version {recorded}, newer than this "
            f"luminora-redis understands ({LAYOUT_VERSION}); upgrade luminora-redis")
    if recorded < LAYOUT_VERSION:
        raise ConfigurationError(
            f"the keyspace {prefix!r} has layout version {recorded}, older than this "
            f"luminora-redis writes ({LAYOUT_VERSION}); run `luminora-redis migrate "
            f"--prefix {prefix}` first")


def claim_layout(settings: StoreSettings, cluster: bool = False) -> Op[Context]:
    """Agree with Redis on the bucket count and layout version of this prefix, then
    build the context (``cluster``: the client is a cluster client)."""
    wanted = settings.buckets or DEFAULT_BUCKETS
    reply = yield Call("claim_layout", (f"{settings.prefix}:layout",), (wanted, LAYOUT_VERSION))
    recorded = int(reply[0])
    check_layout_version(settings.prefix, int(reply[1]))
    if settings.buckets is not None and recorded != settings.buckets:
        raise ConfigurationError(
            f"the keyspace {settings.prefix!r} was created with {recorded} buckets, but this "
            f"store was given buckets={settings.buckets}; pass buckets={recorded} or None"
        )
    return Context(settings, recorded, cluster)


class StoreBase:
    """Settings, the client and its registered scripts; shared by both stores."""

    def __init__(self, client: Any, settings: StoreSettings | None = None,
                 **overrides: Any) -> None:
        if settings is None:
            settings = StoreSettings(**overrides)
        elif overrides:
            settings = settings.model_copy(update=overrides)
            settings = StoreSettings.model_validate(settings.model_dump())
        encoder = client.get_encoder()
        if getattr(encoder, "decode_responses", False):
            raise ConfigurationError(
                "this Redis client decodes responses (decode_responses=True), but messages "
                "are stored as msgpack bytes; give the store a client made with "
                "decode_responses=False (the default), or use from_url()"
            )
        self._client = client
        self._settings = settings
        self._scripts = {name: client.register_script(source)
                         for name, source in script_sources().items()}
        self._ctx: Context | None = None
        self._owns_client = False
        self._cluster = hasattr(client, "get_node_from_key")  # both shells' cluster clients

    @property
    def settings(self) -> StoreSettings:
        """The settings this store runs with."""
        return self._settings

    @property
    def client(self) -> Any:
        """The redis-py client this store sends through."""
        return self._client
