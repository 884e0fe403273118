"""What the asyncio and blocking stores share: settings, client checks, scripts.

Neither store holds logic of its own; both drive the operation generators of
``sessions``, ``memory`` and ``archive`` and differ only in how a step runs.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar, TypeVar

from redis.exceptions import ResponseError

from luminora_redis.core.context import Context
from luminora_redis.core.errors import ConfigurationError, InvalidSettings
from luminora_redis.core.keys import HintKeys, KeySpace
from luminora_redis.core.scripts import Call, Op, script_sources
from luminora_redis.core.server import ServerIdentity, check_supported, script_sources_for, without_hello
from luminora_redis.core.settings import DEFAULT_BUCKETS, StoreSettings
from luminora_redis.core.tokens import count_tokens
from luminora_redis.io.acknowledge import acknowledgement
from luminora_redis.io.hint_slots import NodeHintKeys
from luminora_redis.io.sentinel_url import is_sentinel_url

__all__ = ["LAYOUT_VERSION", "StoreBase", "check_flag", "check_layout_version", "claim_layout",
           "client_from_url", "store_settings"]

T = TypeVar("T")

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


def claim_layout(settings: StoreSettings, cluster: bool = False,
                 hints: Callable[[KeySpace], HintKeys] | None = None) -> Op[Context]:
    """Agree with Redis on the bucket count and layout version of this prefix, then
    build the context (``cluster``: the client is a cluster client; ``hints``: its
    due-bucket hint keys, see ``Context``)."""
    wanted = settings.buckets or DEFAULT_BUCKETS
    reply = yield Call("claim_layout", (f"{settings.prefix}:layout",), (wanted, LAYOUT_VERSION))
    recorded = int(reply[0])
    check_layout_version(settings.prefix, int(reply[1]))
    if settings.buckets is not None and recorded != settings.buckets:
        raise ConfigurationError(
            f"the keyspace {settings.prefix!r} was created with {recorded} buckets, but this "
            f"store was given buckets={settings.buckets}; pass buckets={recorded} or None"
        )
    return Context(settings, recorded, cluster, hints)


def store_settings(settings: object, overrides: dict[str, Any]) -> StoreSettings:
    """A store's settings: ``settings`` (a ``StoreSettings`` or None) with ``overrides``,
    its fields as keywords. Raises InvalidSettings naming what is wrong."""
    if settings is None:
        return StoreSettings(**overrides)
    if not isinstance(settings, StoreSettings):
        raise InvalidSettings(f"settings must be a StoreSettings or None, not "
                              f"{type(settings).__name__}; or pass its fields as keywords")
    if overrides:
        return StoreSettings.model_validate({**settings.model_dump(), **overrides})
    return settings


def check_flag(value: object, what: str) -> bool:
    """``value`` if it is a bool, else InvalidSettings (a string such as "no" is truthy)."""
    if not isinstance(value, bool):
        raise InvalidSettings(f"{what} must be True or False, not {value!r:.60}")
    return value


def client_from_url(make: Callable[..., T], url: object, *,
                    sentinel: Callable[..., T] | None = None, **options: Any) -> T:
    """``make(url, **options)``, a redis-py ``from_url``, or ``sentinel(url, **options)``
    for a ``redis+sentinel://`` URL (see ``sentinel_url``; None: refused, as for a
    cluster); a URL it cannot use (not a string, an unknown scheme, a bad port) raises
    InvalidSettings instead of redis-py's error."""
    if not isinstance(url, str):
        raise InvalidSettings(f"url must be a string such as 'redis://localhost:6379/0', "
                              f"not {type(url).__name__}")
    if is_sentinel_url(url):
        if sentinel is None:
            raise InvalidSettings("a redis+sentinel:// URL names a primary watched by Sentinel, "
                                  "not a Redis Cluster: drop cluster=True (or --cluster)")
        return sentinel(url, **options)
    try:
        return make(url, **options)
    except ValueError as error:
        raise InvalidSettings(f"url: {error}") from error
    except ResponseError as error:  # a cluster client connects at once
        unsupported = without_hello(error)
        if unsupported is None:
            raise
        raise unsupported from error


class StoreBase:
    """Settings, the client and its registered scripts; shared by both stores."""

    #: The redis-py client classes a store of this shell sends through.
    _client_types: ClassVar[tuple[type, ...]] = ()
    #: Those classes as the error names them, and where another kind of client belongs.
    _client_kinds: ClassVar[str] = ""
    _client_hint: ClassVar[str] = ""

    def __init__(self, client: Any, settings: StoreSettings | None = None,
                 **overrides: Any) -> None:
        settings = store_settings(settings, overrides)
        self._check_client(client)
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
        self._identity: ServerIdentity | None = None
        self._owns_client = False
        self._cluster = hasattr(client, "get_node_from_key")  # both shells' cluster clients
        self._ack = acknowledgement(settings, script_sources(), cluster=self._cluster)
        #: A cluster store's due-bucket hint keys: one per node, from the client's slot
        #: map (``io/hint_slots.py``); None on a single server (the group keys).
        self._hints: Callable[[KeySpace], HintKeys] | None = (
            partial(NodeHintKeys, client) if self._cluster else None)

    def _check_client(self, client: object) -> None:
        """Refuse a client this shell cannot send through (the other shell's kind, or not
        a redis-py client at all) now, rather than at its first command."""
        if not isinstance(client, self._client_types):
            kind = type(client)
            raise ConfigurationError(
                f"{type(self).__name__} needs {self._client_kinds}, not "
                f"{kind.__module__}.{kind.__qualname__}; {self._client_hint}")

    def _use_identity(self, identity: ServerIdentity | None) -> None:
        """At first use, before any script runs: refuse a server older than supported
        (UnsupportedServer), and register the scripts without their flags on one that
        does not read them (Redis 6.2). ``None``: INFO and HELLO were refused, nothing
        changes.
        The runner holds ``_scripts`` itself, so it sends the new ones from now on."""
        self._identity = identity
        if identity is None:
            return
        check_supported(identity)
        if not identity.script_flags:
            self._scripts.update({name: self._client.register_script(source)
                                  for name, source in script_sources_for(False).items()})

    def count_tokens(self, text: str) -> int:
        """``text``'s tokens by this store's ``token_counter`` (see ``core.tokens``)."""
        return count_tokens(self._settings.token_counter, text)

    @property
    def settings(self) -> StoreSettings:
        """The settings this store runs with."""
        return self._settings

    @property
    def client(self) -> Any:
        """The redis-py client this store sends through."""
        return self._client
