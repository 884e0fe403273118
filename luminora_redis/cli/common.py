"""What every ``luminora-redis`` command shares: the connection options, opening
a store without writing anything, the exit codes, and output for people (rich)
or scripts (``--json``).

Exit codes: 0 ok, 1 a problem found or an operation failed, 2 usage error,
3 Redis unreachable, 4 not found. Usage errors (2) are also an invalid
argument: a ``--prefix`` the store would refuse, an id that is not of the
form the store hands out, a metrics port already in use. An expected failure
is one line on stderr that says what to do, never a traceback.

Everything a command prints that came from Redis (user ids, messages, facts,
episode titles, personality names, moods, listener names) was written by
someone else: tables show it through `literal`, which never lets it act as
markup or as terminal control sequences, and `--json` output escapes the
same characters.
"""

from __future__ import annotations

import json
import re
import ssl
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
import redis
from redis.cluster import RedisCluster
from redis.exceptions import AuthenticationError, RedisClusterException, RedisError, ResponseError
from rich.console import Console
from rich.text import Text

from luminora_redis.core.errors import (
    ConfigurationError,
    InvalidInput,
    InvalidSettings,
    MissingPermission,
    missing_permission,
)
from luminora_redis.core.server import without_hello
from luminora_redis.core.settings import StoreSettings
from luminora_redis.io.sentinel_url import is_sentinel_url, sentinel_clients, sync_master
from luminora_redis.io.sync_store import SyncSessionStore

__all__ = [
    "DEFAULT_URL",
    "Failure",
    "check_prefix",
    "LuminoraGroup",
    "close_client",
    "connection_options",
    "console",
    "emit",
    "dumps",
    "json_option",
    "literal",
    "make_client",
    "open_store",
    "prefix_option",
    "primaries",
]

DEFAULT_URL = "redis://localhost:6379/0"
OK, PROBLEM, USAGE, UNREACHABLE, NOT_FOUND = 0, 1, 2, 3, 4

F = TypeVar("F", bound=Callable[..., Any])

#: What a terminal would act on instead of showing: C0 controls but newline and tab,
#: DEL, C1 controls (0x9b is a one-byte CSI), and the bidirectional overrides and
#: isolates, which reorder the text around them.
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    return repr(match.group())[1:-1]


def literal(value: object, style: str = "") -> Text:
    """``value`` as text a terminal shows exactly as it is: a `rich.text.Text`, so
    rich parses no markup and no ``:emoji:`` code in it, with every control
    character written out as its Python escape (ESC shows as the four characters
    ``\\x1b``, a carriage return as ``\\r``). Newlines and tabs are kept, so a
    multi-line message stays readable in its table cell. ``None`` shows as ``-``."""
    return Text("-" if value is None else _UNSAFE.sub(_visible, str(value)), style=style)


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def dumps(data: Any) -> str:
    """``data`` as indented JSON for scripts. json escapes C0 controls by itself; the
    other characters `literal` makes visible become ``\\uXXXX`` escapes too (they
    can only occur inside strings), so the output is safe to print and parses to
    the same data."""
    return _UNSAFE.sub(_json_escape, json.dumps(data, indent=2, ensure_ascii=False))


class Failure(click.ClickException):
    """An expected failure: one line on stderr and its exit code. The message is shown
    as `literal` shows text, with newlines escaped too, so it stays one line."""

    def __init__(self, message: str, exit_code: int = PROBLEM) -> None:
        super().__init__(message)
        self._exit_code = exit_code

    # click declares ``exit_code`` a class variable; a Failure carries its own code.
    @property
    def exit_code(self) -> int:  # type: ignore[override]
        return self._exit_code

    def show(self, file: Any = None) -> None:
        line = _UNSAFE.sub(_visible, self.message).replace("\n", "\\n")
        click.echo(f"luminora-redis: {line}", err=True)


class LuminoraGroup(click.Group):
    """A click group that turns the expected failures of any command below it into
    one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except AuthenticationError as error:
            raise Failure(f"Redis refused the credentials: {error}; fix the user/password "
                          f"in --url or REDIS_URL", UNREACHABLE) from None
        except (redis.ConnectionError, redis.TimeoutError, RedisClusterException) as error:
            if _tls_failure(error):
                raise Failure(f"the TLS handshake with Redis failed ({error}); a rediss:// URL "
                              f"verifies the server: name the CA that signed its certificate "
                              f"with ?ssl_ca_certs=/path/to/ca.pem and use a host name or "
                              f"address the certificate lists", UNREACHABLE) from None
            raise Failure(f"cannot reach Redis ({error}); start it, or point --url or "
                          f"REDIS_URL at it", UNREACHABLE) from None
        except (InvalidInput, InvalidSettings) as error:
            raise Failure(str(error), USAGE) from None
        except ConfigurationError as error:
            raise Failure(str(error), PROBLEM) from None
        except MissingPermission as error:
            raise Failure(str(error), PROBLEM) from None
        except ResponseError as error:
            refused = missing_permission(error)
            if refused is not None:
                raise Failure(str(refused), PROBLEM) from None
            unsupported = without_hello(error)  # any command's first connection: Redis < 6
            if unsupported is not None:
                raise Failure(str(unsupported), PROBLEM) from None
            raise Failure(f"Redis refused a command: {error}", PROBLEM) from None
        except RedisError as error:
            raise Failure(f"Redis failed: {error}", PROBLEM) from None


def _tls_failure(error: BaseException) -> bool:
    """Whether ``error`` came from a failed TLS handshake (redis-py keeps the
    ``ssl.SSLError`` as the cause or context of its ConnectionError)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def check_prefix(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A prefix the store accepts, or a usage error in one line."""
    try:
        StoreSettings.model_validate({"prefix": value})
    except InvalidSettings:
        raise Failure(f"bad --prefix {value!r}: a prefix is 1 to 32 letters, digits, '_', '.' "
                      f"or '-'", USAGE) from None
    return value


def prefix_option(function: F) -> F:
    """``--prefix``, checked as the store checks it (default ``lr``)."""
    return click.option("--prefix", default="lr", show_default=True, callback=check_prefix,
                        help="the key prefix the store was configured with")(function)


def connection_options(function: F) -> F:
    """``--url`` (or ``REDIS_URL``), ``--prefix`` (checked as the store checks it) and
    ``--cluster``."""
    function = click.option("--cluster", is_flag=True,
                            help="the URL names a node of a Redis Cluster")(function)
    function = prefix_option(function)
    function = click.option("--url", envvar="REDIS_URL", default=DEFAULT_URL,
                            show_default=True, help="the Redis to use (or REDIS_URL)")(function)
    return function


def json_option(function: F) -> F:
    """``--json``: print JSON for scripts instead of tables."""
    return click.option("--json", "as_json", is_flag=True,
                        help="print JSON instead of tables")(function)


def console() -> Console:
    """Where tables go: stdout, as wide as the terminal (or 120 columns when piped)."""
    return Console(width=None if sys.stdout.isatty() else 120, highlight=False)


def emit(as_json: bool, data: Any, render: Callable[[Console], None]) -> None:
    """Print ``data`` as JSON, or let ``render`` draw it for people."""
    if as_json:
        click.echo(dumps(data))
    else:
        render(console())


def make_client(url: str, cluster: bool) -> Any:
    """A blocking client for ``url``: a cluster client with ``cluster``, the primary a
    ``redis+sentinel://`` URL's sentinels name, or a plain client."""
    if is_sentinel_url(url):
        if cluster:
            raise Failure("a redis+sentinel:// URL names a primary watched by Sentinel, not a "
                          "Redis Cluster: drop --cluster", USAGE)
        return sync_master(url, socket_connect_timeout=5)  # InvalidSettings: a usage error
    try:
        if cluster:
            return RedisCluster.from_url(url)
        return redis.Redis.from_url(url, socket_connect_timeout=5)
    except (ValueError, TypeError) as error:
        raise Failure(f"bad Redis URL {url!r} ({error}); use redis://host:port/db, "
                      f"rediss://..., unix:///path or redis+sentinel://host:port/service",
                      USAGE) from None


@contextmanager
def open_store(url: str, prefix: str, cluster: bool, *, create: bool = False,
               **settings: Any) -> Iterator[SyncSessionStore]:
    """A blocking store over ``url``. Unless ``create``, a prefix with no data (no layout
    key) is "not found" (exit 4), and the store uses the recorded bucket count, so a
    read-only command never writes."""
    client = make_client(url, cluster)
    try:
        client.ping()
        if not create:
            layout = client.hgetall(f"{prefix}:layout")
            if not layout:
                raise Failure(f"nothing is stored under the prefix {prefix!r} at this Redis "
                              f"(no {prefix}:layout key); check --prefix and --url", NOT_FOUND)
            settings["buckets"] = int(layout[b"buckets"])
        try:
            store = SyncSessionStore(client, prefix=prefix, **settings)
        except ValueError as error:  # pydantic: a bad prefix or bucket count
            raise Failure(f"bad settings: {error}".splitlines()[0], USAGE) from None
        yield store
    finally:
        close_client(client)


def close_client(client: Any) -> None:
    """Close a client `make_client` made, with the sentinel clients behind it."""
    client.close()
    for sentinel in sentinel_clients(client):
        sentinel.close()


def primaries(client: Any) -> list[Any]:
    """One plain client per primary (the client itself on a single server)."""
    if isinstance(client, RedisCluster):
        return [client.get_redis_connection(node) for node in client.get_primaries()]
    return [client]
