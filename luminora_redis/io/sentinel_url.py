"""``redis+sentinel://`` URLs: a Redis watched by Sentinel, as one string.

redis-py parses ``redis://``, ``rediss://`` and ``unix://`` URLs but has no URL
form for Sentinel (only ``redis.sentinel.Sentinel(...).master_for(...)``), so
the stores, the CLI and the listener would each need code of their own to
reach a Sentinel-managed primary. This module is that code, once:

    redis+sentinel://[[username]:password@]host[:port][,host[:port]...]/service[/db][?option=value&...]

- ``host:port`` pairs are the sentinels (port 26379 when left out; an IPv6
  address in brackets); ``service`` is the name the sentinels monitor
  (``sentinel monitor <service> ...``), ``db`` the database number (0).
- The user and password in front authenticate to the primary (and replicas).
- ``rediss+sentinel://`` (or ``?ssl=true``) speaks TLS to the sentinels and the
  primary alike; ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile`` and
  ``ssl_cert_reqs`` pass through.
- ``sentinel_username`` / ``sentinel_password`` authenticate to the sentinels
  when they require it; ``socket_timeout``, ``socket_connect_timeout``
  (seconds) and ``protocol`` (2 or 3) apply to every connection.

Anything else is refused with ``InvalidSettings`` naming what is wrong. The
client this makes is redis-py's ``master_for`` client: its connections ask
the sentinels for the primary's address whenever they (re)connect, so after a
failover the store, its pipelines and the listener's subscription follow the
new primary.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.sentinel import Sentinel

from luminora_redis.core.errors import InvalidSettings

__all__ = ["SCHEMES", "SentinelURL", "async_master", "is_sentinel_url", "parse_sentinel_url",
           "sentinel_clients", "sync_master"]

SCHEMES = ("redis+sentinel", "rediss+sentinel")
DEFAULT_PORT = 26379
_FORM = "redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]"
_TEXT_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs")
_SECONDS_OPTIONS = ("socket_timeout", "socket_connect_timeout")
_SENTINEL_AUTH = {"sentinel_username": "username", "sentinel_password": "password"}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclasses.dataclass(frozen=True)
class SentinelURL:
    """A parsed ``redis+sentinel://`` URL."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int
    #: Options of the connections to the primary (and of the sentinels' sockets).
    connection: dict[str, Any]
    #: Options of the connections to the sentinels.
    sentinel: dict[str, Any]


def is_sentinel_url(url: object) -> bool:
    """Whether ``url`` is a string of a Sentinel scheme."""
    return isinstance(url, str) and url.split("://", 1)[0].lower() in SCHEMES


def _refuse(url: str, why: str) -> InvalidSettings:
    return InvalidSettings(f"bad Sentinel URL {_masked(url)!r}: {why}; the form is {_FORM}")


def _masked(url: str) -> str:
    """``url`` with the password of its user part hidden."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, hosts = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}{sep}{userinfo.split(':', 1)[0]}:***@{hosts}"


def _address(url: str, text: str) -> tuple[str, int]:
    if text.startswith("["):
        host, bracket, tail = text[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            raise _refuse(url, f"bad sentinel address {text!r}")
        port_text = tail[1:]
    else:
        host, _, port_text = text.partition(":")
        if ":" in port_text:
            raise _refuse(url, f"bad sentinel address {text!r} (an IPv6 address goes in brackets)")
    if not host:
        raise _refuse(url, f"a sentinel address without a host: {text!r}")
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise _refuse(url, f"bad port {port_text!r} in {text!r}")
    return host, int(port_text)


def _flag(url: str, name: str, value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise _refuse(url, f"{name} must be true or false, not {value!r}")


def parse_sentinel_url(url: object) -> SentinelURL:
    """The sentinels, service, database and connection options of a Sentinel URL;
    InvalidSettings when it is not one or is malformed."""
    if not isinstance(url, str):
        raise InvalidSettings(f"url must be a string such as "
                              f"'redis+sentinel://localhost:26379/mymaster', not {type(url).__name__}")
    if not is_sentinel_url(url):
        raise _refuse(url, "the scheme must be redis+sentinel or rediss+sentinel")
    parts = urlsplit(url)
    if parts.fragment:
        raise _refuse(url, "a URL fragment ('#...') means nothing here")
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if not hosts:
        raise _refuse(url, "no sentinel address")
    sentinels = tuple(_address(url, text) for text in hosts.split(","))
    path = [unquote(segment) for segment in parts.path.split("/")[1:]]
    if path and path[-1] == "":
        path.pop()
    if not path or not path[0]:
        raise _refuse(url, "no service name (the name in 'sentinel monitor <name> ...')")
    if len(path) > 2:
        raise _refuse(url, f"too many path parts: {parts.path!r}")
    if len(path) == 2 and not path[1].isdigit():
        raise _refuse(url, f"the database must be a number, not {path[1]!r}")
    db = int(path[1]) if len(path) == 2 else 0
    connection: dict[str, Any] = {}
    sentinel: dict[str, Any] = {}
    if at:
        username, colon, password = userinfo.partition(":")
        if username:
            connection["username"] = unquote(username)
        if colon:
            connection["password"] = unquote(password)
    ssl = parts.scheme.lower() == "rediss+sentinel"
    for name, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        if name == "ssl":
            ssl = _flag(url, name, value)
        elif name in _TEXT_OPTIONS:
            connection[name] = sentinel[name] = value
        elif name in _SECONDS_OPTIONS:
            try:
                seconds = float(value)
            except ValueError:
                raise _refuse(url, f"{name} must be a number of seconds, not {value!r}") from None
            if not seconds > 0:
                raise _refuse(url, f"{name} must be positive, not {value!r}")
            connection[name] = sentinel[name] = seconds
        elif name == "protocol":
            if value not in ("2", "3"):
                raise _refuse(url, f"protocol must be 2 or 3, not {value!r}")
            connection[name] = sentinel[name] = int(value)
        elif name in _SENTINEL_AUTH:
            sentinel[_SENTINEL_AUTH[name]] = value
        elif name in ("username", "password"):
            connection[name] = value
        else:
            raise _refuse(url, f"unknown option {name!r}")
    if ssl:
        connection["ssl"] = sentinel["ssl"] = True
    return SentinelURL(sentinels, path[0], db, connection, sentinel)


def sync_master(url: object, **options: Any) -> redis.Redis:
    """A blocking client of the primary the URL's sentinels name; ``options`` are more
    connection options (a ``retry``, timeouts)."""
    parsed = parse_sentinel_url(url)
    manager = Sentinel(list(parsed.sentinels), sentinel_kwargs=_sentinel_options(parsed, options))
    client: redis.Redis = manager.master_for(parsed.service, db=parsed.db,
                                             **{**parsed.connection, **options})
    return client


def async_master(url: object, **options: Any) -> aioredis.Redis:
    """The asyncio twin of `sync_master`."""
    parsed = parse_sentinel_url(url)
    manager = AsyncSentinel(list(parsed.sentinels), sentinel_kwargs=_sentinel_options(parsed, options))
    client: aioredis.Redis = manager.master_for(parsed.service, db=parsed.db,
                                                **{**parsed.connection, **options})
    return client


def _sentinel_options(parsed: SentinelURL, options: dict[str, Any]) -> dict[str, Any]:
    """The sentinels' connection options: the socket timeouts given in code (unless the
    URL sets its own) and the URL's sentinel options, so that an unreachable sentinel
    fails as fast as an unreachable primary."""
    timeouts = {name: value for name, value in options.items() if name.startswith("socket_")}
    return {**timeouts, **parsed.sentinel}


def sentinel_clients(client: Any) -> list[Any]:
    """The clients of the sentinels behind a ``master_for`` client (none for any other
    client), which closing the client leaves open: its owner closes them too."""
    manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
    return list(manager.sentinels) if manager is not None else []
