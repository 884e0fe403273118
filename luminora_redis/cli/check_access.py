"""The checks of ``luminora-redis check`` that depend on what the server lets this user
read and do: the notification flags (tested by a probe where ``CONFIG GET`` is refused),
``maxmemory-policy``, persistence, and the permissions the listener needs.

A refused read (``NOPERM``, or ``CONFIG`` renamed away as managed services do) is
never an error here: it becomes an ``unknown`` finding with the server's reason and
the ACL right to grant (`refusal`), or a warning where the listener can do without.
Any other error propagates.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.cluster import RedisCluster
from redis.exceptions import NoScriptError, ResponseError

from luminora_redis.io.server_checks import PROBE_TIMEOUT, Refusal, probe_expired_events, refusal
from luminora_redis.listener.notifications import EXPIRED_FLAGS, NOTIFY_CONFIG, merged_flags

__all__ = ["OK", "PROBLEM_STATUS", "UNKNOWN", "WARNING", "Finding", "flags_finding", "node_name",
           "permission_findings", "persistence_finding", "policy_finding", "probe_key",
           "readable"]

OK, WARNING, PROBLEM_STATUS, UNKNOWN = "ok", "warning", "problem", "unknown"


@dataclass
class Finding:
    """One row of the report: what was checked, its status, what was seen, what to change."""

    check: str
    status: str
    detail: str
    fix: str | None = None


def node_name(node: Any) -> str:
    """``host:port`` (or the socket path) of a plain client, to label per-node findings."""
    kwargs = node.connection_pool.connection_kwargs
    return kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}"


def readable(check: str, what: str, read: Callable[..., Finding], *args: Any) -> Finding:
    """``read(*args)``, or an unknown finding that says why the server refused it and which
    right to grant; any other error propagates."""
    try:
        return read(*args)
    except ResponseError as error:
        refused = refusal(error)
        if refused is None:
            raise
        return Finding(check, UNKNOWN, f"could not read {what}: {refused.reason}",
                       f"grant this user {refused.right} so check can read it"
                       if refused.right else None)


def _config(node: Any, name: str) -> str | Refusal:
    """``CONFIG GET name``, or why the server refused it; any other error propagates."""
    try:
        reply = node.config_get(name)
    except ResponseError as error:
        refused = refusal(error)
        if refused is None:
            raise
        return refused
    value = reply.get(name, reply.get(name.encode(), b""))
    return value.decode() if isinstance(value, bytes) else str(value)


def _grant(refused: Refusal, purpose: str) -> str:
    """The advice to grant the refused right, when one would help."""
    return f"; or grant this user {refused.right} {purpose}" if refused.right else ""


def probe_key(client: Any, node: Any, prefix: str) -> str:
    """A fresh key under the prefix (a restricted user may write it) that ``node`` serves."""
    base = f"{prefix}:check-probe:{secrets.token_hex(8)}"
    if not isinstance(client, RedisCluster):
        return base
    name = node_name(node)
    return next(key for key in (f"{base}:{n}" for n in range(1 << 20))
                if client.get_node_from_key(key).name == name)


def flags_finding(node: Any, where: str, key: str) -> tuple[Finding, bool]:
    """Whether ``notify-keyspace-events`` holds ``Ex``, and True when it surely does. Read
    with ``CONFIG GET``, or where that is refused tested by a probe that writes ``key``."""
    current = _config(node, NOTIFY_CONFIG)
    if isinstance(current, Refusal):
        return _probed_flags(node, f"notifications{where}", key, current)
    if merged_flags(current) is None:
        return Finding(f"notifications{where}", OK, f"notify-keyspace-events={current!r}"), True
    return Finding(f"notifications{where}", PROBLEM_STATUS,
                   f"notify-keyspace-events={current!r} lacks {EXPIRED_FLAGS!r}",
                   f"start 'luminora-redis listen' (it merges the flags in), or run CONFIG SET "
                   f"notify-keyspace-events {merged_flags(current)!r}"), False


def _probed_flags(node: Any, check: str, key: str, refused: Refusal) -> tuple[Finding, bool]:
    """The flags tested by `probe_expired_events`, since ``CONFIG GET`` was refused."""
    unread = f"CONFIG GET {NOTIFY_CONFIG} was refused: {refused.reason}"
    needed = (f"set {NOTIFY_CONFIG} to include {EXPIRED_FLAGS!r} in the server's configuration "
              f"(redis.conf, or your provider's settings)")
    try:
        took = probe_expired_events(node, key)
    except ResponseError as error:
        cannot = refusal(error)
        if cannot is None:
            raise
        db = node.connection_pool.connection_kwargs.get("db", 0)
        allow = (f"grant this user {cannot.right}" if cannot.right else
                 f"grant this user the keys ~{key.split(':')[0]}:* and the channel "
                 f"&__keyevent@{db}__:expired")
        return Finding(check, UNKNOWN, f"could not verify the flags: {unread}; and the probe "
                       f"(SUBSCRIBE to the expired events, then SET {key!r} with a 1 ms TTL) "
                       f"was refused: {cannot.reason}",
                       f"make sure {NOTIFY_CONFIG} includes {EXPIRED_FLAGS!r}: without it the "
                       f"listener archives by sweeper only; {allow} so check can test it"), False
    if took is not None:
        return Finding(check, OK, f"expired events are published: one came for a probe key "
                       f"within {took * 1000:.0f} ms (tested, not read: CONFIG GET is refused)"
                       ), True
    return Finding(check, PROBLEM_STATUS, f"expired events are off: none came for a probe key "
                   f"within {PROBE_TIMEOUT:g} s, and {unread}; so neither check nor the "
                   f"listener can verify or turn them on, and the listener will archive by "
                   f"sweeper only (an expired session waits for the next sweep)",
                   needed + _grant(refused, "and +config|set so the listener sets them")), False


def policy_finding(node: Any, where: str) -> Finding:
    """``maxmemory-policy`` as read (the store's server checks judge it), or why not."""
    policy = _config(node, "maxmemory-policy")
    if isinstance(policy, Refusal):
        return Finding(f"maxmemory-policy{where}", UNKNOWN,
                       f"could not read it: CONFIG GET was refused: {policy.reason}",
                       "make sure the policy is noeviction or volatile-*: user memory has no TTL"
                       + _grant(policy, "so check can read it"))
    return Finding(f"maxmemory-policy{where}", OK, policy)


def persistence_finding(node: Any, where: str) -> Finding:
    """Whether the server persists at all: AOF or RDB save points (user memory has no TTL)."""
    appendonly, save = _config(node, "appendonly"), _config(node, "save")
    fix = ("turn on AOF (CONFIG SET appendonly yes, and appendonly yes in redis.conf or your "
           "provider's settings) or RDB snapshots (save 3600 1 300 100)")
    if isinstance(appendonly, Refusal) or isinstance(save, Refusal):
        refused = appendonly if isinstance(appendonly, Refusal) else save
        assert isinstance(refused, Refusal)
        why = f"CONFIG GET was refused: {refused.reason}"
        rights = [refused.right] if refused.right else []
        try:
            aof = str(node.info("persistence").get("aof_enabled", ""))
        except ResponseError as error:
            info = refusal(error)
            if info is None:
                raise
            aof = ""
            why += f"; INFO persistence was refused: {info.reason}"
            rights += [info.right] if info.right else []
        if aof == "1":
            return Finding(f"persistence{where}", OK, "AOF on (INFO persistence)")
        return Finding(f"persistence{where}", UNKNOWN, f"could not read appendonly and save "
                       f"({why})",
                       "make sure the server persists its data (AOF or RDB snapshots): user "
                       "memory has no TTL and is meant to last"
                       + (f"; or grant this user {' or '.join(rights)} so check can tell"
                          if rights else ""))
    if appendonly == "yes":
        return Finding(f"persistence{where}", OK, f"appendonly yes, save {save!r}")
    if save.strip():
        return Finding(f"persistence{where}", OK, f"RDB snapshots (save {save!r}), appendonly "
                       f"no: a crash loses what changed since the last snapshot")
    return Finding(f"persistence{where}", PROBLEM_STATUS, "none: appendonly no and save '', "
                   "so a restart loses everything, user memory included (it has no TTL and is "
                   "meant to last)", f"{fix}; nothing to do if replicas persist it by design")


def permission_findings(node: Any, where: str, flags_ok: bool) -> list[Finding]:
    """The listener's rights (CONFIG GET and SET of the flags, SUBSCRIBE to the expired
    events, EVALSHA): asked with ACL DRYRUN, or tried where that is refused or missing.
    A missing CONFIG is only a warning when ``flags_ok``: the listener can do without."""
    db = node.connection_pool.connection_kwargs.get("db", 0)
    channel = f"__keyevent@{db}__:expired"
    wanted = {
        "CONFIG GET": ["CONFIG", "GET", NOTIFY_CONFIG],
        "CONFIG SET": ["CONFIG", "SET", NOTIFY_CONFIG, "Ex"],
        "SUBSCRIBE": ["SUBSCRIBE", channel],
        "EVALSHA": ["EVALSHA", "0" * 40, "0"],
    }
    denied: dict[str, Refusal | str]
    try:
        user = node.execute_command("ACL", "WHOAMI")
        user = user.decode() if isinstance(user, bytes) else str(user)
        denied = {}
        for name, command in wanted.items():
            reply = node.execute_command("ACL", "DRYRUN", user, *command)
            text = reply.decode() if isinstance(reply, bytes) else str(reply)
            if text != "OK":
                denied[name] = Refusal(text, "+" + name.lower().replace(" ", "|"))
        how = f"ACL DRYRUN as {user!r}"
    except ResponseError as error:  # Redis 6.2, or a user without +acl: try instead
        denied = _try_permissions(node, channel)
        how = f"tried (ACL DRYRUN unavailable: {error})"
    findings = []
    for name in wanted:
        check = f"permission {name}{where}"
        outcome = denied.get(name)
        if outcome is None:
            findings.append(Finding(check, OK, how))
            continue
        if isinstance(outcome, str):
            findings.append(Finding(check, UNKNOWN, f"not tried: {outcome}",
                                    "grant the listener's user +config|set only if it should "
                                    "set the flags itself" if name == "CONFIG SET" else None))
            continue
        optional = name.startswith("CONFIG") and flags_ok
        if outcome.missing:  # nothing to grant: the notifications finding says what to do
            findings.append(Finding(check, WARNING, f"unavailable: {outcome.reason}",
                                    "nothing to grant; the flags are set already, so the "
                                    "listener can do without" if flags_ok else
                                    f"nothing to grant; set {NOTIFY_CONFIG} in the server's "
                                    f"configuration instead (see notifications)"))
            continue
        findings.append(Finding(
            check, WARNING if optional else PROBLEM_STATUS,
            f"denied: {outcome.reason}",
            f"grant the listener's user +{name.split()[0].lower()}"
            + (f"|{name.split()[1].lower()}" if " " in name else "")
            + (f" and &{channel}" if name == "SUBSCRIBE" else "")
            + (" (the flags are set already, so the listener can do without)" if optional
               else "")))
    return findings


def _try_permissions(node: Any, channel: str) -> dict[str, Refusal | str]:
    """The listener's commands tried where ACL DRYRUN cannot ask: each refused one with
    the refusal, or a reason it was not tried."""
    denied: dict[str, Refusal | str] = {}
    current = _config(node, NOTIFY_CONFIG)
    if isinstance(current, Refusal):
        denied["CONFIG GET"] = current
        denied["CONFIG SET"] = current if current.missing else "CONFIG GET is refused"
    else:
        denied["CONFIG SET"] = "setting it would change the server's configuration"
    pubsub = node.pubsub()
    try:
        pubsub.subscribe(channel)
        pubsub.get_message(timeout=1.0)
        pubsub.unsubscribe(channel)
    except ResponseError as error:
        denied["SUBSCRIBE"] = refusal(error) or Refusal(str(error), "+subscribe")
    finally:
        pubsub.close()
    try:
        node.evalsha("0" * 40, 0)
    except NoScriptError:
        pass  # allowed: there is just no such script
    except ResponseError as error:
        denied["EVALSHA"] = refusal(error) or Refusal(str(error), "+evalsha")
    return denied
