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

Nothing is written, but for one probe: where ``CONFIG GET`` is refused (an
ACL user without ``+config``, or a managed service that renamed ``CONFIG``
away), the flags are tested instead of read, by setting a key under the
prefix with a 1 ms TTL and waiting (at most `PROBE_TIMEOUT` seconds) for its
``expired`` event. Events on: notifications are ok, and the missing ``CONFIG``
is a warning (the listener can do without it). No event: a problem, since
neither ``check`` nor the listener can turn them on, and the listener will
archive by its sweeper only. Whatever the user may not read (``INFO``,
``CONFIG``, ``ACL``) is reported as unknown with the server's reason and the
right to grant; it never fails the whole command.

The heartbeat says which live listeners deliver to an ``on_archived`` hook, so
the delivery finding is a problem when deliveries are pending and no listener
with a hook is alive, or when the oldest pending one has waited longer than
`STALE_DELIVERY` while such listeners are alive (the hook keeps failing): with
a hooked listener running and a healthy sink, a delivery is made within about
a second, and a failing one is retried at least every five minutes (the
default backoff cap).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from luminora_redis.cli.check_access import (
    OK,
    PROBLEM_STATUS,
    UNKNOWN,
    Finding,
    flags_finding,
    node_name,
    permission_findings,
    persistence_finding,
    policy_finding,
    probe_key,
    readable,
)
from luminora_redis.cli.common import (
    PROBLEM,
    close_client,
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

__all__ = ["check", "run_checks"]

#: Seconds the oldest pending delivery may wait while listeners are alive.
STALE_DELIVERY = 300.0


def _version(node: Any, where: str) -> Finding:
    identity = identity_blocking(node)
    if identity is None:
        return Finding(f"version{where}", UNKNOWN, "the server refused HELLO and INFO",
                       "grant +info to the user to have the version checked")
    if not identity.supported:
        return Finding(f"version{where}", PROBLEM_STATUS, str(identity),
                       "upgrade to Redis 6.2 or later, or Valkey 7.2 or later")
    return Finding(f"version{where}", OK, str(identity))


def _layout(client: Any, prefix: str) -> tuple[Finding, int | None]:
    layout = {k.decode(): v.decode() for k, v in client.hgetall(f"{prefix}:layout").items()}
    if not layout:
        return Finding("layout", PROBLEM_STATUS, f"no {prefix}:layout key: nothing is stored "
                       f"under the prefix {prefix!r}",
                       "check --prefix and --url (the first store or listener creates it)"), None
    version = layout.get("version", "1 (unversioned)")
    return Finding("layout", OK, f"prefix {prefix!r}, {layout['buckets']} buckets, version "
                   f"{version}"), int(layout["buckets"])


def _words(code: FindingCode) -> str:
    """A finding code as words for a label (``evicts user data``), never the enum's repr."""
    return str(code.value).replace("-", " ")


def run_checks(client: Any, prefix: str) -> list[Finding]:
    """Every check, on every primary; nothing is written but the flags probe of
    `check_access.flags_finding` where ``CONFIG GET`` is refused."""
    findings: list[Finding] = []
    nodes = primaries(client)
    for node in nodes:
        where = f" [{node_name(node)}]" if len(nodes) > 1 else ""
        findings.append(readable(f"version{where}", "the server's version (HELLO, INFO server)",
                                 _version, node, where))
        flags, flags_ok = flags_finding(node, where, probe_key(client, node, prefix))
        findings.append(flags)
        findings.append(policy_finding(node, where))
        findings.append(persistence_finding(node, where))
        findings.extend(permission_findings(node, where, flags_ok))
    layout, buckets = _layout(client, prefix)
    findings.append(layout)
    if buckets is None:
        return findings
    store = SyncSessionStore(client, prefix=prefix, buckets=buckets)
    if hasattr(store, "check_server"):
        server = store.check_server()
        # A policy CONFIG refused to tell is the maxmemory-policy finding above already.
        findings.extend(Finding(f"server: {_words(item.code)}", PROBLEM_STATUS, item.message,
                                item.fix)
                        for item in server if item.code is not FindingCode.CONFIG_UNAVAILABLE)
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
        close_client(client)
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


