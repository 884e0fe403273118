"""``luminora-redis check``: is this Redis ready for luminora-redis, and is archiving running?

It verifies, on every primary: the server's name and version (Redis 6.2 or
later, Valkey 7.2 or later; Valkey's own version, not its Redis one), the
``notify-keyspace-events`` flags the listener's fast path needs (``Ex``),
``maxmemory-policy`` (an eviction policy that can drop user data is reported
by the store's server checks), this prefix's layout (bucket count and
version), the permissions the listener needs (CONFIG GET and SET
of the flags, SUBSCRIBE to the expired-event channel, EVALSHA), asked with
``ACL DRYRUN`` on Redis 7 or tried where DRYRUN is missing; that the server
persists its data at all (AOF or RDB save points: user memory has no TTL and
is meant to last); whether any listener is alive (its heartbeat); and whether
deliveries to ``on_archived`` pile up with nobody to deliver them. Every
problem comes with what to change; any problem exits 1.

The heartbeat says which live listeners deliver to an ``on_archived`` hook, so
the delivery finding is a problem when deliveries are pending and no listener
with a hook is alive, or when the oldest pending one has waited longer than
`STALE_DELIVERY` while such listeners are alive (the hook keeps failing): with
a hooked listener running and a healthy sink, a delivery is made within about
a second, and a failing one is retried at least every five minutes (the
default backoff cap).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import click
from redis.exceptions import ResponseError
from rich.console import Console
from rich.table import Table

from luminora_redis.cli.common import (
    PROBLEM,
    connection_options,
    emit,
    json_option,
    literal,
    make_client,
    primaries,
)
from luminora_redis.core.models import FindingCode
from luminora_redis.io.server_identity import identity_blocking
from luminora_redis.io.sync_store import SyncSessionStore
from luminora_redis.listener.notifications import EXPIRED_FLAGS, NOTIFY_CONFIG, merged_flags

__all__ = ["check", "run_checks"]

OK, WARNING, PROBLEM_STATUS, UNKNOWN = "ok", "warning", "problem", "unknown"
#: Seconds the oldest pending delivery may wait while listeners are alive.
STALE_DELIVERY = 300.0


@dataclass
class Finding:
    check: str
    status: str
    detail: str
    fix: str | None = None


def _node_name(node: Any) -> str:
    kwargs = node.connection_pool.connection_kwargs
    return kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}"


def _version(node: Any, where: str) -> Finding:
    identity = identity_blocking(node)
    if identity is None:
        return Finding(f"version{where}", UNKNOWN, "the server refused INFO and HELLO",
                       "grant +info to the user to have the version checked")
    if not identity.supported:
        return Finding(f"version{where}", PROBLEM_STATUS, str(identity),
                       "upgrade to Redis 6.2 or later, or Valkey 7.2 or later")
    return Finding(f"version{where}", OK, str(identity))


def _config(node: Any, name: str) -> str | None:
    try:
        reply = node.config_get(name)
    except ResponseError:
        return None
    value = reply.get(name, reply.get(name.encode(), b""))
    return value.decode() if isinstance(value, bytes) else str(value)


def _flags(node: Any, where: str) -> tuple[Finding, bool]:
    current = _config(node, NOTIFY_CONFIG)
    if current is None:
        return Finding(f"notifications{where}", UNKNOWN, "CONFIG GET is not allowed here",
                       f"make sure notify-keyspace-events includes {EXPIRED_FLAGS!r} (your "
                       f"provider's settings); without it only the sweeper archives"), False
    if merged_flags(current) is None:
        return Finding(f"notifications{where}", OK, f"notify-keyspace-events={current!r}"), True
    return Finding(f"notifications{where}", PROBLEM_STATUS,
                   f"notify-keyspace-events={current!r} lacks {EXPIRED_FLAGS!r}",
                   f"start 'luminora-redis listen' (it merges the flags in), or run CONFIG SET "
                   f"notify-keyspace-events {merged_flags(current)!r}"), False


def _policy(node: Any, where: str) -> Finding:
    policy = _config(node, "maxmemory-policy")
    if policy is None:
        return Finding(f"maxmemory-policy{where}", UNKNOWN, "CONFIG GET is not allowed here",
                       "make sure the policy is noeviction or volatile-*: user memory has no TTL")
    return Finding(f"maxmemory-policy{where}", OK, policy)


def _persistence(node: Any, where: str) -> Finding:
    appendonly, save = _config(node, "appendonly"), _config(node, "save")
    fix = ("turn on AOF (CONFIG SET appendonly yes, and appendonly yes in redis.conf or your "
           "provider's settings) or RDB snapshots (save 3600 1 300 100)")
    if appendonly is None or save is None:
        try:
            aof = str(node.info("persistence").get("aof_enabled", ""))
        except ResponseError:
            aof = ""
        if aof == "1":
            return Finding(f"persistence{where}", OK, "AOF on (INFO persistence)")
        return Finding(f"persistence{where}", UNKNOWN, "could not read appendonly and save "
                       "(CONFIG GET is not allowed here)",
                       "make sure the server persists its data (AOF or RDB snapshots): user "
                       "memory has no TTL and is meant to last")
    if appendonly == "yes":
        return Finding(f"persistence{where}", OK, f"appendonly yes, save {save!r}")
    if save.strip():
        return Finding(f"persistence{where}", OK, f"RDB snapshots (save {save!r}), appendonly "
                       f"no: a crash loses what changed since the last snapshot")
    return Finding(f"persistence{where}", PROBLEM_STATUS, "none: appendonly no and save '', "
                   "so a restart loses everything, user memory included (it has no TTL and is "
                   "meant to last)", f"{fix}; nothing to do if replicas persist it by design")


def _permissions(node: Any, where: str, flags_ok: bool) -> list[Finding]:
    db = node.connection_pool.connection_kwargs.get("db", 0)
    channel = f"__keyevent@{db}__:expired"
    wanted = {
        "CONFIG GET": ["CONFIG", "GET", NOTIFY_CONFIG],
        "CONFIG SET": ["CONFIG", "SET", NOTIFY_CONFIG, "Ex"],
        "SUBSCRIBE": ["SUBSCRIBE", channel],
        "EVALSHA": ["EVALSHA", "0" * 40, "0"],
    }
    try:
        user = node.execute_command("ACL", "WHOAMI")
        user = user.decode() if isinstance(user, bytes) else str(user)
        denied = {}
        for name, command in wanted.items():
            reply = node.execute_command("ACL", "DRYRUN", user, *command)
            text = reply.decode() if isinstance(reply, bytes) else str(reply)
            if text != "OK":
                denied[name] = text
        how = f"ACL DRYRUN as {user!r}"
    except ResponseError:
        denied = _try_permissions(node, channel)
        how = "tried (ACL DRYRUN unavailable)"
    findings = []
    for name in wanted:
        if name not in denied:
            findings.append(Finding(f"permission {name}{where}", OK, how))
            continue
        optional = name.startswith("CONFIG") and flags_ok
        findings.append(Finding(
            f"permission {name}{where}", WARNING if optional else PROBLEM_STATUS,
            f"denied: {denied[name]}",
            f"grant the listener's user +{name.split()[0].lower()}"
            + (f"|{name.split()[1].lower()}" if " " in name else "")
            + (f" and &{channel}" if name == "SUBSCRIBE" else "")
            + (" (the flags are set already, so the listener can do without)" if optional
               else "")))
    return findings


def _try_permissions(node: Any, channel: str) -> dict[str, str]:
    denied: dict[str, str] = {}
    if _config(node, NOTIFY_CONFIG) is None:
        denied["CONFIG GET"] = "refused"
        denied["CONFIG SET"] = "not tried: CONFIG GET is refused"
    pubsub = node.pubsub()
    try:
        pubsub.subscribe(channel)
        pubsub.get_message(timeout=1.0)
        pubsub.unsubscribe(channel)
    except ResponseError as error:
        denied["SUBSCRIBE"] = str(error)
    finally:
        pubsub.close()
    return denied


def _layout(client: Any, prefix: str) -> tuple[Finding, int | None]:
    layout = {k.decode(): v.decode() for k, v in client.hgetall(f"{prefix}:layout").items()}
    if not layout:
        return Finding("layout", PROBLEM_STATUS, f"no {prefix}:layout key: nothing is stored "
                       f"under the prefix {prefix!r}",
                       "check --prefix and --url (the first store or listener creates it)"), None
    version = layout.get("version", "1 (unversioned)")
    return Finding("layout", OK, f"prefix {prefix!r}, {layout['buckets']} buckets, version "
                   f"{version}"), int(layout["buckets"])


def run_checks(client: Any, prefix: str) -> list[Finding]:
    """Every check, on every primary; nothing is written."""
    findings: list[Finding] = []
    nodes = primaries(client)
    for node in nodes:
        where = f" [{_node_name(node)}]" if len(nodes) > 1 else ""
        findings.append(_version(node, where))
        flags, flags_ok = _flags(node, where)
        findings.append(flags)
        findings.append(_policy(node, where))
        findings.append(_persistence(node, where))
        findings.extend(_permissions(node, where, flags_ok))
    layout, buckets = _layout(client, prefix)
    findings.append(layout)
    if buckets is None:
        return findings
    store = SyncSessionStore(client, prefix=prefix, buckets=buckets)
    if hasattr(store, "check_server"):
        server = store.check_server()
        findings.extend(Finding(f"server: {item.code.value.replace('-', ' ')}",
                                UNKNOWN if item.code is FindingCode.CONFIG_UNAVAILABLE
                                else PROBLEM_STATUS, item.message, item.fix)
                        for item in server)
        if not server:
            findings.append(Finding("server checks", OK, "no finding"))
    else:
        findings.append(Finding("server checks", UNKNOWN,
                                "this build has no store server checks (check_server)"))
    alive: list[str] | None = None
    if hasattr(store, "live_listeners"):
        alive = store.live_listeners()
        findings.append(Finding("listeners", OK, f"{len(alive)} alive: {', '.join(alive)}")
                        if alive else Finding(
                            "listeners", PROBLEM_STATUS, "no listener is alive: expired "
                            "sessions wait for a cleanup",
                            f"run 'luminora-redis listen --prefix {prefix} --url ...' "
                            f"(or ExpiryListener in the app)"))
    else:
        findings.append(Finding("listeners", UNKNOWN,
                                "this build has no listener heartbeat (live_listeners)"))
    if hasattr(store, "delivery_backlog") and alive is not None:
        findings.append(_deliveries(store, store.live_listeners(delivering=True), prefix))
    return findings


def _deliveries(store: SyncSessionStore, alive: list[str], prefix: str) -> Finding:
    """Whether the deliveries to ``on_archived`` waiting in the outboxes are being made."""
    backlog = store.delivery_backlog()
    kept = f"; {backlog.quarantined} quarantined" if backlog.quarantined else ""
    if backlog.pending == 0:
        return Finding("deliveries", OK, f"none pending{kept}")
    age = backlog.oldest_age_seconds or 0.0
    waiting = f"{backlog.pending} pending, the oldest for {age:.0f} s{kept}"
    fix = (f"run a listener with a hook ('luminora-redis listen --prefix {prefix} --hook "
           f"module:function', or ExpiryListener(on_archived=...)); if nothing takes archived "
           f"conversations, open the stores with deliveries=False so none are recorded")
    if not alive:
        return Finding("deliveries", PROBLEM_STATUS,
                       f"{waiting}, and no listener with an on_archived hook is alive to "
                       f"deliver them", fix)
    if age > STALE_DELIVERY:
        return Finding("deliveries", PROBLEM_STATUS,
                       f"{waiting} while {len(alive)} listener(s) with a hook are alive: "
                       f"the hook keeps failing", "see the listeners' logs for the hook's "
                       "errors; store.list_quarantined() lists what ran out of attempts")
    return Finding("deliveries", OK, f"{waiting}, {len(alive)} listener(s) with a hook alive "
                   f"to deliver them")


@click.command()
@connection_options
@json_option
def check(url: str, prefix: str, cluster: bool, as_json: bool) -> None:
    """Check the server for luminora-redis: version, notification flags, maxmemory-policy,
    persistence, layout, the listener's permissions, live listeners, pending deliveries.
    Exits 1 on a problem."""
    client = make_client(url, cluster)
    try:
        client.ping()
        findings = run_checks(client, prefix)
    finally:
        client.close()
    problems = [item for item in findings if item.status == PROBLEM_STATUS]

    def render(out: Console) -> None:
        table = Table("check", "status", "detail", "what to change")
        for item in findings:
            style = {"ok": "green", "problem": "bold red", "warning": "yellow"}.get(item.status)
            table.add_row(literal(item.check), literal(item.status, style or ""),
                          literal(item.detail), literal(item.fix or ""))
        out.print(table)
        out.print(f"{len(problems)} problem(s)" if problems else "no problem found")

    emit(as_json, {"ok": not problems, "findings": [asdict(item) for item in findings]}, render)
    if problems:
        raise click.exceptions.Exit(PROBLEM)


