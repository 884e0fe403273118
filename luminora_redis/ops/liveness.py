"""Listener heartbeats: who is running, on the server's clock.

Each running listener keeps its name in ``<prefix>:listeners`` with the time
until which it counts as alive, refreshes it while it runs and removes it on a
clean stop; a killed one lapses by itself. Operators (``live_listeners``)
see whether anybody delivers the outbox.

The sweep lease (``<prefix>:sweeper``) names the one listener that runs the
periodic full sweeps; see ``luminora_redis.listener.sweeper``. The outbox scan
lease (``<prefix>:deliverer``) names the one listener with a hook that runs the
periodic full outbox scans; see ``luminora_redis.listener.deliveries``. Both are
the same script on their own key.
"""

from __future__ import annotations

from luminora_redis.core.context import Context
from luminora_redis.core.errors import InvalidInput, ReplyCode
from luminora_redis.core.scripts import Batch, Call, Op

__all__ = ["heartbeat", "live_listeners", "outbox_scan_lease", "sweep_lease"]


def heartbeat(ctx: Context, name: str, ttl_ms: int, delivers: bool = False) -> Op[int]:
    """Say ``name`` is alive for ``ttl_ms`` more (0: it stopped), and whether it delivers
    to an ``on_archived`` hook; the server clock, ms."""
    ttl = max(0, int(ttl_ms))
    # Two keys of two slots on a cluster: one call each, in one round trip per node.
    replies = yield Batch([Call("listener_heartbeat", (ctx.keys.listeners,), (name, ttl)),
                           Call("listener_heartbeat", (ctx.keys.deliverers,),
                                (name, ttl if delivers else 0))])
    return int(replies[0][0])


def live_listeners(ctx: Context, limit: int = 1000, delivering: bool = False) -> Op[list[str]]:
    """Names of the listeners whose heartbeat has not lapsed (``delivering``: only those
    with an ``on_archived`` hook)."""
    if not isinstance(delivering, bool):
        raise InvalidInput(f"delivering must be True or False, not {delivering!r}")
    key = ctx.keys.deliverers if delivering else ctx.keys.listeners
    reply = yield Call("live_listeners", (key,), (limit,))
    return [raw.decode("utf-8", "replace") for raw in reply]


def sweep_lease(ctx: Context, owner: str, lease_ms: int) -> Op[str | None]:
    """Take or renew the sweep lease for ``lease_ms`` (0: release it if held); None when
    ``owner`` holds it (or released it), else the holder's id."""
    return (yield from _lease(ctx.keys.sweeper, owner, lease_ms))


def outbox_scan_lease(ctx: Context, owner: str, lease_ms: int) -> Op[str | None]:
    """Take or renew the outbox scan lease for ``lease_ms`` (0: release it if held); None
    when ``owner`` holds it (or released it), else the holder's id."""
    return (yield from _lease(ctx.keys.deliverer, owner, lease_ms))


def _lease(key: str, owner: str, lease_ms: int) -> Op[str | None]:
    reply = yield Call("sweep_lease", (key,), (owner, max(0, int(lease_ms))))
    return None if reply[0] == ReplyCode.OK else reply[1].decode("utf-8", "replace")
