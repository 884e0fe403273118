"""Which server a store talks to, whether this library supports it, and how its
scripts are sent there.

``INFO server`` names the server: Redis reports ``redis_version`` only; Valkey
reports ``server_name:valkey`` and ``valkey_version`` as well, while its
``redis_version`` stays at 7.2.4 for clients that compare versions, so the
real version is the one under the server's own name. `parse_identity` reads
either, from redis-py's parsed dict or from the raw text. ``HELLO`` names
both too (`parse_hello`), and any user may send it, so it is asked first
(``io.server_identity``).

The supported minimum is Redis 6.2 (Valkey: 7.2, its first release). On an
older server the store refuses to start with `UnsupportedServer`, which says
what was found and what is needed, instead of failing later on a command or
script error that names something else.

Redis 7.0 added script flags, the ``#!lua`` shebang every script starts with
(see ``scripts``). Redis 6.2 refuses a script that starts with a shebang, so
there each script is sent with its first line turned into a comment
(`script_sources_for`; line numbers in Redis's error messages stay the same).
What is lost on 6.2: the early refusal over ``maxmemory``. With flags, Redis
refuses a script that may write before it runs; without them, only at its
first command that Redis marks deny-oom (``PEXPIREAT`` and ``DEL`` are not),
so a script may have done part of its writes when it is refused. A
``no-writes`` script is never refused on either.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

from luminora_redis.core.errors import UnsupportedServer
from luminora_redis.core.scripts import SHEBANG, script_sources

__all__ = ["MINIMUM_REDIS", "MINIMUM_VALKEY", "SCRIPT_FLAGS_SINCE", "ServerIdentity",
           "check_supported", "parse_hello", "parse_identity", "script_sources_for",
           "without_hello"]

#: The oldest Redis this library supports (its scripts and commands are tested there).
MINIMUM_REDIS = (6, 2)
#: The oldest Valkey: its first release, forked from Redis 7.2.4.
MINIMUM_VALKEY = (7, 2)
#: The first Redis version that reads script flags (the ``#!lua`` shebang line).
SCRIPT_FLAGS_SINCE = (7, 0)

_VERSION = re.compile(r"\d+(?:\.\d+)*")
_NEEDED = "Redis 6.2 or later, or Valkey 7.2 or later"


@dataclass(frozen=True)
class ServerIdentity:
    """A server's name (``"redis"``, ``"valkey"``, ...) and version, e.g. ``(8, 1, 8)``."""

    name: str
    version: tuple[int, ...]

    @property
    def version_text(self) -> str:
        """The version as Redis writes it, e.g. ``"6.2.14"``."""
        return ".".join(map(str, self.version))

    def __str__(self) -> str:
        return f"{self.name} {self.version_text}"

    @property
    def minimum(self) -> tuple[int, ...]:
        """The oldest version of this server that is supported."""
        return MINIMUM_VALKEY if self.name == "valkey" else MINIMUM_REDIS

    @property
    def supported(self) -> bool:
        """Whether this library supports this server."""
        return self.version >= self.minimum

    @property
    def script_flags(self) -> bool:
        """Whether the server reads script flags: every Valkey, Redis from 7.0. Another
        server reporting only ``redis_version`` is taken at that version."""
        return self.name == "valkey" or self.version >= SCRIPT_FLAGS_SINCE


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _fields(info: Mapping[object, object] | str | bytes) -> dict[str, str]:
    if isinstance(info, str | bytes):
        fields: dict[str, str] = {}
        for line in _text(info).splitlines():
            key, colon, value = line.strip().partition(":")
            if colon and not key.startswith("#"):
                fields[key] = value
        return fields
    return {_text(key): _text(value) for key, value in info.items()}


def parse_identity(info: Mapping[object, object] | str | bytes) -> ServerIdentity:
    """The identity in an ``INFO server`` reply: redis-py's parsed dict (whose values it
    may have turned into numbers) or the raw text. A ValueError when it has no version."""
    fields = _fields(info)
    name = fields.get("server_name", "").strip().lower() or "redis"
    text = fields.get(f"{name}_version") or fields.get("redis_version")
    found = _VERSION.match((text or "").strip())
    if found is None:
        raise ValueError(f"INFO server names no version of {name} (redis_version: {text!r})")
    return ServerIdentity(name, tuple(int(part) for part in found.group().split(".")))


def parse_hello(reply: Mapping[object, object] | Sequence[object]) -> ServerIdentity:
    """The identity in a ``HELLO`` reply (``server``, ``version``): a map over RESP3, a flat
    list of names and values over RESP2. A ValueError when it names no version."""
    items = reply.items() if isinstance(reply, Mapping) else zip(reply[::2], reply[1::2])
    fields = {_text(key): value for key, value in items}
    name = _text(fields.get("server", "redis")).strip().lower() or "redis"
    found = _VERSION.match(_text(fields.get("version", "")).strip())
    if found is None:
        raise ValueError(f"HELLO names no version of {name}")
    return ServerIdentity(name, tuple(int(part) for part in found.group().split(".")))


def check_supported(identity: ServerIdentity) -> None:
    """Refuse a server below the supported minimum with UnsupportedServer."""
    if not identity.supported:
        minimum = ".".join(map(str, identity.minimum))
        raise UnsupportedServer(
            f"the server is {identity}, older than luminora-redis supports ({identity.name} "
            f"{minimum}; in all {_NEEDED}): upgrade the server", found=str(identity),
            needed=_NEEDED)


def without_hello(error: Exception) -> UnsupportedServer | None:
    """The UnsupportedServer for ``error`` when it is the server refusing ``HELLO`` (which
    redis-py sends first to speak RESP3): a server older than Redis 6.0; else None."""
    text = str(error).lower()
    if "unknown command" not in text or "hello" not in text:
        return None
    return UnsupportedServer(
        f"the server does not know HELLO ({error}), so it is older than Redis 6.0; "
        f"luminora-redis needs {_NEEDED}: upgrade the server",
        found="a server older than Redis 6.0 (no HELLO)", needed=_NEEDED)


def _comment_out_shebang(source: str) -> str:
    if not source.startswith(SHEBANG):
        raise RuntimeError(f"a script does not start with {SHEBANG!r}")
    return "-- " + source


@cache
def script_sources_for(flags: bool) -> dict[str, str]:
    """Every script's source as a server is sent it: as written when it reads script
    flags (``flags``), else with the shebang line turned into a Lua comment."""
    sources = script_sources()
    if flags:
        return sources
    return {name: _comment_out_shebang(source) for name, source in sources.items()}
