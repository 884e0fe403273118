"""Keyspace notification flags: merge ours into the server's, never overwrite them.

Redis publishes ``expired`` on ``__keyevent@<db>__:expired`` only when its
``notify-keyspace-events`` holds both a channel class and the event type:

- ``K`` publishes on ``__keyspace@<db>__:<key>`` and ``E`` on
  ``__keyevent@<db>__:<event>``; they are independent classes, so a server
  with ``K`` only still needs ``E`` for the listener.
- ``x`` is the expired event type. ``A`` is an alias for ``g$lshzxetd`` and so
  covers ``x``; it covers neither ``K`` nor ``E``.

Other applications may rely on flags already set, so `merged_flags` only ever
adds what is missing. Managed Redis services and ACL users without ``CONFIG``
refuse the command (or it is renamed away); then the flags cannot be read
either, so whether the server publishes expired events is unknown: they may be
preset (a provider's parameter group). `ensure_flags` logs one WARNING that
says so and exactly what to set; the listener archives on notification if the
events come, and its sweeper catches whatever they do not. A listener whose
first session archived by notification shows the flags are set logs that once.

On Redis Cluster every node has its own configuration and publishes only the
events of the keys it serves, so `ensure_flags` merges the flags on every
primary the client knows. A replica promoted by a failover has its own
configuration too: the listener calls `ensure_flags` again whenever the set of
primaries changes. A running listener also checks the flags every heartbeat
interval (`check_flags`), and puts them back when someone removed them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import NoPermissionError, ResponseError

from luminora_redis.listener.outages import Outage, keep_trying

__all__ = ["EXPIRED_FLAGS", "NOTIFY_CONFIG", "FlagCheck", "FlagKeeper", "check_flags",
           "ensure_flags", "merged_flags", "refusal_warning"]

NOTIFY_CONFIG = "notify-keyspace-events"
#: What the listener needs: the keyevent class and the expired event type.
EXPIRED_FLAGS = "Ex"

_ALL_TYPES = "g$lshzxetd"  # what "A" stands for
_KNOWN = frozenset("KE" + _ALL_TYPES + "Amn")

logger = logging.getLogger("luminora_redis.notifications")


def _flags_of(value: str) -> set[str]:
    flags = set(value)
    if "A" in flags:
        flags.update(_ALL_TYPES)
    elif flags.issuperset(_ALL_TYPES):
        flags.add("A")
    return flags


def merged_flags(current: str, needed: str = EXPIRED_FLAGS) -> str | None:
    """The server's ``current`` flags plus whatever of ``needed`` they lack, or None
    when nothing is missing.

    ``current`` is kept verbatim, flags this module does not know included, and
    the missing flags are appended in the order of ``needed``. Flags are case
    sensitive (``e`` is evicted, ``E`` the keyevent class).
    """
    unknown = set(needed) - _KNOWN
    if unknown:
        raise ValueError(f"unknown notify-keyspace-events flags {''.join(sorted(unknown))!r}")
    have = _flags_of(current)
    missing = "".join(dict.fromkeys(flag for flag in needed if flag not in have))
    return current + missing if missing else None


def refusal_warning(needed: str, error: BaseException) -> str:
    """The one WARNING logged when the server refuses CONFIG: the flags are unknown, what
    to set, and what happens either way."""
    flags = ", ".join(repr(f) for f in needed)
    return (
        f"cannot read or set {NOTIFY_CONFIG}: the server refused CONFIG ({error}), so "
        f"whether it publishes expired events is unknown. If {NOTIFY_CONFIG} includes "
        f"{flags}, expired sessions are archived on notification; if not, the sweeper archives "
        f"them, within one sweep interval of their deadline. Make sure {NOTIFY_CONFIG} "
        f"includes {flags} in the server's configuration (redis.conf, or your provider's "
        f"parameter group), keeping any flags already there: e.g. {NOTIFY_CONFIG} {needed} "
        f"when it is empty."
    )


def _is_refusal(error: ResponseError) -> bool:
    if isinstance(error, NoPermissionError):
        return True
    text = str(error).lower()
    return "unknown command" in text or "unknown subcommand" in text


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class FlagCheck:
    """What `check_flags` found: the servers where it added missing flags, and the
    first refusal of ``CONFIG`` (then ``warning`` says what to set)."""

    needed: str
    restored: list[str] = field(default_factory=list)
    refusal: ResponseError | None = None

    @property
    def warning(self) -> str:
        return refusal_warning(self.needed, self.refusal) if self.refusal is not None else ""


async def check_flags(client: Any, needed: str = EXPIRED_FLAGS) -> FlagCheck:
    """Merge the ``needed`` flags into every server's (see `ensure_flags`), and say where
    they were missing. Logs nothing; any error but a refusal of ``CONFIG`` propagates."""
    check = FlagCheck(needed)
    if not isinstance(client, RedisCluster):
        targets: list[ClusterNode | None] = [None]
    else:
        await client.initialize()  # a client that sent nothing yet knows no primaries
        targets = list(client.get_primaries())
    for node in targets:
        outcome = await _merge_on(client, needed, node)
        if isinstance(outcome, ResponseError):
            check.refusal = check.refusal or outcome
        elif outcome:
            check.restored.append("server" if node is None else node.name)
    return check


async def ensure_flags(client: Any, needed: str = EXPIRED_FLAGS, *, warn: bool = True) -> bool:
    """Make the server publish the ``needed`` events, adding only missing flags.

    ``client`` is a ``redis.asyncio.Redis``, or a ``redis.asyncio.cluster.RedisCluster``:
    then the flags are merged on every primary it knows, each keeping its own
    other flags. Returns True when every server publishes them (already, or
    after this call), False when one refused ``CONFIG``; then one WARNING
    naming what to set is logged, unless ``warn`` is False (a listener
    re-checking after a reconnect has warned already). Any other error,
    connection errors included, propagates.
    """
    check = await check_flags(client, needed)
    if check.refusal is None:
        return True
    if warn:
        logger.warning(check.warning)
    return False


async def _merge_on(client: Any, needed: str, node: ClusterNode | None) -> ResponseError | bool:
    """Merge the flags on one server (one cluster ``node``): whether some were missing,
    or the refusal, if it refused."""
    target: dict[str, Any] = {} if node is None else {"target_nodes": node}
    where = "" if node is None else f" on {node.name}"
    try:
        reply = await client.config_get(NOTIFY_CONFIG, **target)
        values = {_text(key): _text(value) for key, value in reply.items()}
        current = values.get(NOTIFY_CONFIG, "")
        merged = merged_flags(current, needed)
        if merged is not None:
            await client.config_set(NOTIFY_CONFIG, merged, **target)
            logger.info("%s was %r%s, set it to %r", NOTIFY_CONFIG, current, where, merged)
    except ResponseError as error:
        if not _is_refusal(error):
            raise
        return error
    return merged is not None


class FlagKeeper:
    """Keeps one listener's notification flags set: at every subscription (`ensure`) and
    every interval while it runs (`keep`), logging a refusal of ``CONFIG`` once and
    each time it had to put removed flags back."""

    def __init__(self, client: Any, name: str) -> None:
        self._client = client
        self._name = name
        self._warned = False
        self._confirmed = False

    @property
    def unknown(self) -> bool:
        """Whether the server refused ``CONFIG``, so that the flags could not be read."""
        return self._warned

    def confirmed(self) -> None:
        """An expired event arrived: the flags are set, whatever ``CONFIG`` said. Logged
        once when they were unknown."""
        if self._warned and not self._confirmed:
            self._confirmed = True
            logger.info("listener %s: expired events arrive although CONFIG is refused: %s "
                        "is set, sessions are archived on notification", self._name,
                        NOTIFY_CONFIG)

    async def ensure(self) -> bool:
        """Merge the flags into every server's; whether some server lacked them."""
        check = await check_flags(self._client)
        if check.refusal is not None and not self._warned:
            self._warned = True
            logger.warning(check.warning)
        return bool(check.restored)

    async def keep(self, interval: float, stop: asyncio.Event, outage: Outage, *,
                   listening: Callable[[], bool], on_restored: Callable[[], None]) -> None:
        """Until ``stop``: every ``interval`` seconds while ``listening()``, put back flags
        someone removed (``CONFIG SET notify-keyspace-events ""``) and call
        ``on_restored``: whatever expired meanwhile went unannounced."""
        async def check() -> float:
            if listening() and await self.ensure():
                logger.warning("listener %s: the server's %s lacked the expired events "
                               "(someone changed it); restored them, catching up",
                               self._name, NOTIFY_CONFIG)
                on_restored()
            return interval

        await keep_trying(outage, stop, check)
