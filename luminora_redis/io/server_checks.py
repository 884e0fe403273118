"""Server settings that endanger the store's data: ``maxmemory-policy`` on every primary.

Under an ``allkeys-*`` policy Redis may evict any key when it reaches
``maxmemory``, user memory included, silently. Under ``volatile-*`` it evicts
keys with a TTL first: live sessions, before their deadline, and their
conversation is lost to the archive. ``noeviction`` refuses writes instead,
which callers see as errors. Managed services may refuse ``CONFIG``; then the
finding says the policy could not be checked, why, and which right to grant.

Beside them, what ``luminora-redis check`` and ``stats`` share to work for a
restricted user or on a managed service: `refusal` tells a refused command
(``NOPERM``, or a command renamed away) from a real failure and names the ACL
right that would allow it, and `probe_expired_events` finds out by experiment
whether the server publishes ``expired`` events when ``CONFIG GET`` cannot say.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from redis.exceptions import NoPermissionError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from luminora_redis.core.models import FindingCode, ServerFinding

__all__ = ["PROBE_TIMEOUT", "Refusal", "findings_for", "policies_async", "policies_blocking",
           "probe_expired_events", "refusal", "warn_findings"]

POLICY = "maxmemory-policy"
_FIX_POLICY = (f"set {POLICY} noeviction (CONFIG SET {POLICY} noeviction, and in redis.conf "
               "or your provider's parameter group), and give Redis enough memory; use a "
               "separate Redis for caches that need eviction")

#: Policy prefix -> what it may evict.
_RISKS = {
    "allkeys-": (FindingCode.EVICTS_USER_DATA, "any key, user memory (affinity, facts, "
                 "episodes, archive) included, silently"),
    "volatile-": (FindingCode.EVICTS_SESSIONS, "live sessions before their deadline, and "
                  "their conversation never reaches the archive"),
}

logger = logging.getLogger("luminora_redis.server_checks")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


#: Seconds `probe_expired_events` waits for its key's event.
PROBE_TIMEOUT = 2.0
#: How often the probe touches its key while it waits: an access expires a due key at once,
#: so the event need not wait for Redis's active expiry cycle.
_NUDGE = 0.05
_NOPERM_COMMAND = re.compile(r"run the '([^']+)' command")


@dataclass(frozen=True)
class Refusal:
    """Why the server refused a command, and the ACL right that would allow it: None when
    no right can (the command does not exist on this server, or a key or channel was
    refused)."""

    reason: str
    right: str | None
    #: The server has no such command (renamed or disabled): no right can allow it.
    missing: bool = False


def refusal(error: ResponseError) -> Refusal | None:
    """What ``error`` says when the server refused to run a command for this user (``NOPERM``)
    or has no such command (renamed away, as managed services do with ``CONFIG``); None
    for any other error, which is a real failure for the caller to raise."""
    text = str(error)
    if isinstance(error, NoPermissionError) or text.startswith("NOPERM"):
        match = _NOPERM_COMMAND.search(text)
        return Refusal(f"the user may not run it ({text})",
                       f"+{match.group(1).lower()}" if match else None)
    lowered = text.lower()
    if "unknown command" in lowered or "unknown subcommand" in lowered:
        return Refusal(f"the server has no such command: renamed or disabled, as on managed "
                       f"services ({text})", None, missing=True)
    return None


def _refused(error: ResponseError) -> bool:
    return refusal(error) is not None


def findings_for(policies: dict[str, str | ResponseError]) -> list[ServerFinding]:
    """Findings from each server's ``maxmemory-policy`` (or the refusal to tell it)."""
    findings = []
    for server, policy in sorted(policies.items()):
        where = f" on {server}" if server else ""
        if isinstance(policy, ResponseError):
            refused = refusal(policy)
            grant = (f", or grant this user {refused.right} so it can be checked"
                     if refused is not None and refused.right else "")
            findings.append(ServerFinding(
                code=FindingCode.CONFIG_UNAVAILABLE, server=server or None,
                message=f"could not check {POLICY}{where}: the server refused CONFIG ({policy})",
                fix=f"make sure {POLICY} is noeviction in the server's configuration{grant}"))
        else:
            risk = next((risk for prefix, risk in _RISKS.items() if policy.startswith(prefix)),
                        None)
            if risk is not None:
                code, what = risk
                findings.append(ServerFinding(
                    code=code, server=server or None, fix=_FIX_POLICY,
                    message=f"{POLICY} is {policy}{where}: at maxmemory Redis evicts {what}"))
    return findings


def _policy(reply: Any) -> str:
    values = {_text(key): _text(value) for key, value in reply.items()}
    return values.get(POLICY, "")


async def policies_async(client: Any) -> dict[str, str | ResponseError]:
    """Each primary's policy through an asyncio client (a cluster: every primary)."""
    from redis.asyncio.cluster import RedisCluster

    targets: list[tuple[str, dict[str, Any]]] = [("", {})]
    if isinstance(client, RedisCluster):
        await client.initialize()
        targets = [(node.name, {"target_nodes": node}) for node in client.get_primaries()]
    found: dict[str, str | ResponseError] = {}
    for name, target in targets:
        try:
            found[name] = _policy(await client.config_get(POLICY, **target))
        except ResponseError as error:
            if not _refused(error):
                raise
            found[name] = error
    return found


def policies_blocking(client: Any) -> dict[str, str | ResponseError]:
    """Each primary's policy through a blocking client (a cluster: every primary)."""
    from redis.cluster import RedisCluster

    targets: list[tuple[str, dict[str, Any]]] = [("", {})]
    cluster = isinstance(client, RedisCluster)  # not narrowed: its methods are untyped
    if cluster:
        targets = [(node.name, {"target_nodes": node}) for node in client.get_primaries()]
    found: dict[str, str | ResponseError] = {}
    for name, target in targets:
        try:
            found[name] = _policy(client.config_get(POLICY, **target))
        except ResponseError as error:
            if not _refused(error):
                raise
            found[name] = error
    return found


def probe_expired_events(client: Any, key: str, timeout: float = PROBE_TIMEOUT) -> float | None:
    """Whether the server behind the blocking, single-node ``client`` publishes ``expired``
    events on ``__keyevent@<db>__:expired``, found by experiment: subscribe, set ``key``
    with a 1 ms TTL, and wait at most ``timeout`` seconds for its event (and as long for
    the subscription to be confirmed first). Returns the seconds the event took, or None
    when none came (the flags lack ``Ex``).

    It writes ``key`` (choose one the user may write, under the store's prefix, that
    nothing else uses; on a cluster one this node serves) and deletes it afterwards. A
    refused ``SUBSCRIBE`` or ``SET`` raises the server's error."""
    db = client.connection_pool.connection_kwargs.get("db", 0)
    channel = f"__keyevent@{db}__:expired"
    pubsub = client.pubsub()
    written = False
    try:
        pubsub.subscribe(channel)
        deadline = time.monotonic() + timeout
        while True:  # the confirmation: from then on the event cannot be missed
            left = deadline - time.monotonic()
            message = pubsub.get_message(timeout=max(left, 0.0))
            if message is not None and message["type"] == "subscribe":
                break
            if left <= 0:
                raise RedisTimeoutError(f"SUBSCRIBE {channel} was not confirmed within {timeout} s")
        started = time.monotonic()
        deadline = started + timeout
        client.set(key, b"probe", px=1)
        written = True
        while (left := deadline - time.monotonic()) > 0:
            message = pubsub.get_message(timeout=min(left, _NUDGE))
            if message is None:
                client.exists(key)
            elif message["type"] == "message" and _text(message["data"]) == key:
                return time.monotonic() - started
        return None
    finally:
        try:
            if written:
                client.delete(key)
        finally:
            pubsub.close()


def warn_findings(findings: list[ServerFinding]) -> None:
    """Log each finding as a WARNING naming the fix; a policy that could not be checked
    (CONFIG refused, as on managed services) only at INFO."""
    for finding in findings:
        level = logging.INFO if finding.code is FindingCode.CONFIG_UNAVAILABLE else logging.WARNING
        logger.log(level, "%s. Fix: %s", finding.message, finding.fix)
