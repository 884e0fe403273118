"""Server settings that endanger the store's data: ``maxmemory-policy`` on every primary.

Under an ``allkeys-*`` policy Redis may evict any key when it reaches
``maxmemory``, user memory included, silently. Under ``volatile-*`` it evicts
keys with a TTL first: live sessions, before their deadline, and their
conversation is lost to the archive. ``noeviction`` refuses writes instead,
which callers see as errors. Managed services may refuse ``CONFIG``; then the
finding says the policy could not be checked.
"""

from __future__ import annotations

import logging
from typing import Any

from redis.exceptions import NoPermissionError, ResponseError

from luminora_redis.core.models import FindingCode, ServerFinding

__all__ = ["findings_for", "policies_async", "policies_blocking", "warn_findings"]

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


def _refused(error: ResponseError) -> bool:
    text = str(error).lower()
    return isinstance(error, NoPermissionError) or "unknown command" in text or \
        "unknown subcommand" in text


def findings_for(policies: dict[str, str | ResponseError]) -> list[ServerFinding]:
    """Findings from each server's ``maxmemory-policy`` (or the refusal to tell it)."""
    findings = []
    for server, policy in sorted(policies.items()):
        where = f" on {server}" if server else ""
        if isinstance(policy, ResponseError):
            findings.append(ServerFinding(
                code=FindingCode.CONFIG_UNAVAILABLE, server=server or None,
                message=f"could not check {POLICY}{where}: the server refused CONFIG ({policy})",
                fix=f"make sure {POLICY} is noeviction in the server's configuration"))
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


def warn_findings(findings: list[ServerFinding]) -> None:
    """Log each finding as a WARNING naming the fix; a policy that could not be checked
    (CONFIG refused, as on managed services) only at INFO."""
    for finding in findings:
        level = logging.INFO if finding.code is FindingCode.CONFIG_UNAVAILABLE else logging.WARNING
        logger.log(level, "%s. Fix: %s", finding.message, finding.fix)
