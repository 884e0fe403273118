"""When a write counts as done: on the primary, on replicas (``WAIT``), or on disk
(``WAITAOF``), the store's ``acknowledge`` setting.

A write acknowledged by the primary alone can be lost by a failover: the
replica that takes over may not have it yet, and the old primary, once turned
into a replica, drops what the new one never had. With ``acknowledge="replicas"``
each write is followed by ``WAIT numreplicas timeout``, with ``"aof"`` by
``WAITAOF 1 0 timeout``, written in the same pipelined write as the calls it
covers, on the same connection: it costs no extra round trip, and one wait
covers every call of a batch (an auto-pipelined batch included). ``WAIT``
answers once every write the connection made before it has reached that many
replicas, or at the timeout with how many it reached.

Only scripts that may write wait: a script declared ``flags=no-writes``
(``core.scripts.script_flags``) never does. A write whose wait falls short, or
whose wait's reply never came, raises ``NotAcknowledged``: it ran on the
primary (or may have), but is not known to survive a failover; its connection
is dropped, so that the next call asks the sentinels for the primary again
(`Acknowledgement.fell_short`).

These are the rules only; the runners (``runner``, ``autopipeline``,
``sync_runner``) do the I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from redis.exceptions import ResponseError

from luminora_redis.core.errors import ConfigurationError, NotAcknowledged
from luminora_redis.core.scripts import script_flags
from luminora_redis.core.settings import StoreSettings

__all__ = ["Acknowledgement", "acknowledgement", "aof_refusal"]


class Acknowledgement:
    """The wait that follows writes under one store's settings."""

    def __init__(self, settings: StoreSettings, sources: Mapping[str, str]) -> None:
        self.mode = settings.acknowledge
        self.replicas = settings.acknowledge_replicas
        timeout_ms = max(1, math.ceil(settings.acknowledge_timeout * 1000))
        self.timeout = settings.acknowledge_timeout
        #: The command written after the calls it covers.
        self.command: tuple[Any, ...] = (
            ("WAIT", self.replicas, timeout_ms) if self.mode == "replicas"
            else ("WAITAOF", 1, 0, timeout_ms))
        self._reads = frozenset(name for name, source in sources.items()
                                if "no-writes" in script_flags(name, source))

    def writes(self, script: str) -> bool:
        """Whether a call of ``script`` waits (the script may write)."""
        return script not in self._reads

    def shortfall(self, reply: Any) -> str | None:
        """What the wait's ``reply`` (or the error in its place) says is missing, or None
        when the writes before it are acknowledged."""
        if isinstance(reply, BaseException):
            return f"its {self.command[0]} failed ({reply})"
        if self.mode == "replicas":
            if int(reply) >= self.replicas:
                return None
            return (f"{int(reply)} of the {self.replicas} replicas it waits for confirmed it "
                    f"within {self.timeout:g} s")
        local = int(reply[0])
        if local >= 1:
            return None
        return f"the primary's append-only file did not reach disk within {self.timeout:g} s"

    def fell_short(self, reply: Any) -> bool:
        """Whether the wait's ``reply`` leaves its writes unacknowledged. The runner then
        drops the connection as well: the primary it reached may have been replaced by
        a failover (an old primary takes writes for seconds before the sentinels turn
        it into a replica), and a ``master_for`` client's next connection asks the
        sentinels where the primary is."""
        return self.shortfall(reply) is not None

    def apply(self, replies: list[Any], waits: Sequence[bool], reply: Any) -> list[Any]:
        """``replies`` of a write whose calls ``waits`` said waited, with ``reply`` the
        wait's own: each waiting call that succeeded becomes a ``NotAcknowledged`` when
        the wait fell short (one exception per call, so no traceback is shared)."""
        why = self.shortfall(reply)
        if why is None:
            return replies
        for index, waited in enumerate(waits):
            if waited and not isinstance(replies[index], BaseException):
                error = NotAcknowledged(
                    f"the write ran on the primary but is not acknowledged: {why}; it may or "
                    f"may not survive a failover (acknowledge={self.mode!r})")
                if isinstance(reply, BaseException):
                    error.__cause__ = reply
                replies[index] = error
        return replies


def acknowledgement(settings: StoreSettings, sources: Mapping[str, str], *,
                    cluster: bool) -> Acknowledgement | None:
    """The wait a store's writes need (None for ``acknowledge="primary"``); a
    ConfigurationError on Redis Cluster, where a batch's wait would have to follow
    every redirected call to its node."""
    if settings.acknowledge == "primary":
        return None
    if cluster:
        raise ConfigurationError(
            f"acknowledge={settings.acknowledge!r} is not supported on Redis Cluster; use "
            f"acknowledge='primary' there (a cluster replica is promoted with the writes it "
            f"has, as with Sentinel)")
    return Acknowledgement(settings, sources)


def aof_refusal(error: ResponseError) -> ConfigurationError:
    """The error of a store with ``acknowledge="aof"`` whose server refused ``WAITAOF``:
    older than Redis 7.2, or ``appendonly no``."""
    return ConfigurationError(
        f"acknowledge='aof' needs WAITAOF (Redis 7.2 or later) with appendonly yes; this "
        f"server refused it: {error}")
