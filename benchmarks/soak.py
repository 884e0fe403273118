"""Fault soak: chat traffic under faults, then an invariant check of everything stored.

Several asyncio tasks chat (create sessions with idle timeouts of tens of
milliseconds, so sessions keep expiring under the traffic; chat turns; some
logouts) while faults fire: ``kill -9`` of a listener subprocess (restarted),
``kill -9`` and restart of Redis (``appendonly yes``, ``appendfsync always``),
``CLIENT KILL`` of every client connection, and ``SCRIPT FLUSH``. Listeners run
as subprocesses whose ``on_archived`` hook records each delivery in a separate
sink redis-server (RPUSH, acknowledged before the hook returns). After a drain
period in which every session expires and the listeners catch up, the checker
(``benchmarks/soak_check.py``)
reads the whole keyspace and reports:

- turns: every acknowledged turn (its ``chat_turn`` returned) is in a live
  history or an archived one exactly once; a turn whose call raised a
  connection error may or may not have landed ("unknown": at most once), and so
  may one refused as expired while a fault broke connections (redis-py resent it,
  see ``FaultWindow``); any other turn refused as expired is nowhere;
- sessions: every created session is archived exactly once, with its message
  count;
- deliveries: every archive reached the sink at least once, with the same
  idempotency key each time (``ArchivedConversation.idempotency_key``, or the
  session id where the model has no such field);
- references: no index entry points at nothing, and every key belongs to the
  layout of ``luminora_redis.keys`` and has an owner.

Run: ``.venv/bin/python -m benchmarks.soak --minutes 3`` (the suite runs a
short version, ``tests/test_soak.py``). ``--cluster`` runs it on a 3-primary
cluster with a replica per primary, where ``CLUSTER FAILOVER`` of a random
primary takes the place of the Redis restart (on demand only: a failover takes
seconds). It prints the figures as a Markdown
table and exits 1 when an invariant failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis
import redis.cluster
from redis.asyncio.cluster import RedisCluster as AsyncCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from benchmarks.soak_check import SINK_KEY, Ledger, Report, check, outstanding
from luminora_redis import ArchivedConversation, ExpiryListener, SessionStore
from luminora_redis.errors import SessionNotFound
from luminora_redis.store import close_client as close_async_client
from luminora_redis.sync_store import close_client
from luminora_redis.testing import LocalCluster, RedisServer, RedisServerError

DURABLE = {"appendonly": "yes", "appendfsync": "always", "save": ""}
FAULTS = ("listener kill -9", "redis kill -9 + restart", "client kill", "script flush")
CLUSTER_FAULTS = ("listener kill -9", "failover", "client kill", "script flush")
#: Errors after which a write may or may not have landed; each is counted by name in the
#: figures. redis-py 8.1's asyncio cluster client can raise AttributeError (a connection's
#: writer is None) when a connection is killed under a command. A NOSCRIPT is not among
#: them: the store retries it, so one reaching the traffic fails the run.
UNCERTAIN = (redis.ConnectionError, redis.TimeoutError, OSError, AttributeError)
#: Faults that break client connections under commands in flight. A failover is one: a
#: cluster run without it in this set finds turns refused by a resend after they landed.
BREAKING = frozenset({"redis kill -9 + restart", "client kill", "failover"})


@dataclass
class FaultWindow:
    """When connection-breaking faults fire, so a call can tell whether it overlapped one.

    A refusal (the session expired) normally means nothing was written. But when the
    connection breaks after the script ran and before its reply arrived, redis-py's
    ``Retry`` resends the call; if the session expired in between, the resend is refused
    although the first send stored the turn, and the session hash that held the turn id
    is gone, so the store cannot tell. Such a call's outcome is unknown, exactly as if it
    had raised a connection error. Only a break while the call is in flight makes it
    ambiguous (a command sent on a connection that was already dead never ran), so a
    refusal of a call that overlapped no breaking fault must have written nothing.
    """

    started: int = 0
    finished: int = 0

    def mark(self) -> tuple[int, bool]:
        return self.started, self.started != self.finished

    def overlapped(self, mark: tuple[int, bool]) -> bool:
        started, in_progress = mark
        return in_progress or self.started != started


def delivery_key(conversation: ArchivedConversation) -> str:
    """The key a sink deduplicates on: the idempotency key where the model has one."""
    return str(getattr(conversation, "idempotency_key", conversation.session_id))


# -- the listener subprocess --------------------------------------------------------------


async def listen(url: str, sink_url: str, cluster: bool) -> None:
    """Run one ExpiryListener whose hook records every delivery in the sink server."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    sink = aioredis.Redis.from_url(sink_url)
    store = SessionStore.from_url(url, cluster=cluster)

    async def on_archived(conversation: ArchivedConversation) -> None:
        record = {"key": delivery_key(conversation), "session": conversation.session_id,
                  "user": conversation.user_id, "messages": len(conversation.messages),
                  "pid": os.getpid()}
        await sink.rpush(SINK_KEY, json.dumps(record))

    # The hook is one RPUSH, so a short lease lets the survivors take over a killed
    # listener's deliveries within the drain (the default lease is a minute).
    listener = ExpiryListener(store, sweep_interval=0.05, on_archived=on_archived,
                              delivery_lease=3.0)
    try:
        await listener.run()
    finally:
        await store.aclose()
        await sink.aclose()


class Listeners:
    """Listener subprocesses: started, killed with SIGKILL, restarted."""

    def __init__(self, url: str, sink_url: str, count: int, cluster: bool) -> None:
        self.url, self.sink_url, self.count, self.cluster = url, sink_url, count, cluster
        self.procs: list[subprocess.Popen[bytes]] = []
        self.died_alone = 0
        self.spawned = 0
        self.log_dir = tempfile.mkdtemp(prefix="luminora-soak-")

    def spawn(self) -> subprocess.Popen[bytes]:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        command = [sys.executable, "-m", "benchmarks.soak", "--listen", self.url,
                   "--sink", self.sink_url, *(["--cluster"] if self.cluster else [])]
        self.spawned += 1
        log = open(os.path.join(self.log_dir, f"listener-{self.spawned}.log"), "wb")  # noqa: SIM115
        with log:
            return subprocess.Popen(command, cwd=root, stdout=log, stderr=subprocess.STDOUT)

    def start(self) -> None:
        self.procs = [self.spawn() for _ in range(self.count)]

    def kill_one(self) -> None:
        index = random.randrange(len(self.procs))
        self.procs[index].send_signal(signal.SIGKILL)
        self.procs[index].wait()
        self.procs[index] = self.spawn()

    def keep_alive(self) -> None:
        for index, proc in enumerate(self.procs):
            if proc.poll() is not None:
                self.died_alone += 1
                self.procs[index] = self.spawn()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait()


# -- traffic ------------------------------------------------------------------------------


async def chat(store: SessionStore, ledger: Ledger, worker: int, stop: asyncio.Event,
               window: FaultWindow) -> None:
    """One chatting client: short-lived sessions, turns with pauses, some logouts."""
    rng = random.Random(worker)
    n = 0
    while not stop.is_set():
        user = f"user-{worker}-{rng.randrange(3)}"
        config = {"ttl": 3.0, "max_idle": rng.choice((0.03, 0.08, 0.2, 0.5))}
        try:
            sid = await store.create_session(user, "alicia", config)
        except UNCERTAIN as error:
            ledger.sessions_unknown += 1
            ledger.errors[type(error).__name__] += 1
            await asyncio.sleep(0.02)
            continue
        ledger.sessions.add(sid)
        for _ in range(rng.randrange(1, 6)):
            n += 1
            turn = f"w{worker}-t{n}"
            mark = window.mark()
            try:
                await store.chat_turn(sid, [("user", f"{turn}:q"), ("assistant", f"{turn}:a")],
                                      last=4)
            except SessionNotFound:  # SessionExpired included
                if window.overlapped(mark):  # maybe resent after the first send landed
                    ledger.unknown.add(turn)
                    ledger.refused_in_fault += 1
                else:  # nothing was written
                    ledger.refused.add(turn)
                break
            except UNCERTAIN as error:
                ledger.unknown.add(turn)
                ledger.errors[type(error).__name__] += 1
            else:
                ledger.acked.add(turn)
            await asyncio.sleep(rng.choice((0.0, 0.01, 0.02, 0.05, 0.1)))
        if rng.random() < 0.3:
            try:
                if await store.end_session(sid):
                    ledger.ended += 1
            except UNCERTAIN as error:
                ledger.errors[type(error).__name__] += 1


async def inject(target: Target, listeners: Listeners, stop: asyncio.Event,
                 faults: Counter[str], every: float, only: list[str] | None = None,
                 window: FaultWindow | None = None) -> None:
    """Fire one fault of each kind in turn (or of the ``only`` kinds), about every
    ``every`` seconds."""
    kinds = [kind for kind in target.faults if not only or kind in only]
    window = window or FaultWindow()
    rng = random.Random(7)
    index = 0
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), every * rng.uniform(0.5, 1.5))
            return
        except asyncio.TimeoutError:
            pass
        kind = kinds[index % len(kinds)]
        index += 1
        breaking = kind in BREAKING
        if breaking:
            window.started += 1
        try:
            await asyncio.to_thread(fire, kind, target, listeners)
        except (redis.RedisError, RedisServerError) as error:
            faults[f"{kind} (failed: {type(error).__name__})"] += 1
            continue
        finally:
            if breaking:
                window.finished += 1
        faults[kind] += 1
        listeners.keep_alive()


def fire(kind: str, target: Target, listeners: Listeners) -> None:
    if kind == "listener kill -9":
        listeners.kill_one()
    elif kind == "redis kill -9 + restart":
        assert isinstance(target.redis, RedisServer)
        target.redis.kill()
        target.redis.restart()
    elif kind == "failover":
        failover(target.redis)
    else:
        for server in target.nodes():
            with server.client() as admin:
                if kind == "client kill":
                    admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
                elif server in target.primaries():
                    admin.script_flush()


def failover(cluster: Any, timeout: float = 30.0) -> None:
    """CLUSTER FAILOVER on the replica of a random primary; wait until the cluster healed."""
    primary = random.choice(cluster.primaries())
    with primary.client(decode_responses=True) as client:
        attached = client.info("replication").get("slave0")
    by_port = {server.port: server for server in cluster.servers if server.running}
    if not attached or int(attached["port"]) not in by_port:
        raise RedisServerError(f"no replica attached to {primary!r}")
    replica = by_port[int(attached["port"])]
    with replica.client() as client:
        client.execute_command("CLUSTER", "FAILOVER")
    deadline = time.monotonic() + timeout
    while replica not in cluster.primaries():
        if time.monotonic() > deadline:
            raise RedisServerError(f"{replica!r} did not take over")
        time.sleep(0.05)
    cluster.wait_until_ok(timeout=max(1.0, deadline - time.monotonic()))


@dataclass
class Target:
    """The Redis under test: one server, or a cluster with a replica per primary."""

    redis: Any  # RedisServer | LocalCluster
    cluster: bool

    @property
    def url(self) -> str:
        return str(self.redis.url)

    @property
    def faults(self) -> tuple[str, ...]:
        return CLUSTER_FAULTS if self.cluster else FAULTS

    def nodes(self) -> list[RedisServer]:
        return [s for s in self.redis.servers if s.running] if self.cluster else [self.redis]

    def primaries(self) -> list[RedisServer]:
        return self.redis.primaries() if self.cluster else [self.redis]

    def traffic_client(self) -> Any:
        retry = Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.5), 20 if self.cluster else 3)
        if self.cluster:
            return AsyncCluster.from_url(self.url, retry=retry)
        return aioredis.Redis.from_url(self.url, retry=retry)

    def admin(self) -> Any:
        if self.cluster:
            return redis.cluster.RedisCluster.from_url(self.url)
        return redis.Redis.from_url(self.url)


# -- the run ------------------------------------------------------------------------------


async def soak(seconds: float, *, workers: int = 6, listeners: int = 2, fault_every: float = 1.0,
               drain: float = 60.0, cluster: bool = False,
               only: list[str] | None = None) -> Report:
    """Run traffic and faults for ``seconds``, drain, check; the report holds the figures."""
    report = Report()
    ledger = Ledger()
    started = time.monotonic()
    redis_under_test: Any = (LocalCluster(primaries=3, replicas=1, config=DURABLE) if cluster
                             else RedisServer(config=DURABLE))
    with redis_under_test, RedisServer(config=DURABLE) as sink_server:
        target = Target(redis_under_test, cluster)
        processes = Listeners(target.url, sink_server.url, listeners, cluster)
        processes.start()
        store = SessionStore(target.traffic_client())
        stop = asyncio.Event()
        try:
            window = FaultWindow()
            tasks = [asyncio.create_task(chat(store, ledger, n, stop, window))
                     for n in range(workers)]
            faults = asyncio.create_task(inject(target, processes, stop, report.faults,
                                                fault_every, only, window))
            await asyncio.sleep(seconds)
            stop.set()
            await asyncio.gather(*tasks, faults)
            processes.keep_alive()
            admin = target.admin()
            try:
                deadline = time.monotonic() + drain
                while outstanding(admin) and time.monotonic() < deadline:
                    processes.keep_alive()
                    await asyncio.sleep(0.1)
                # Let the hooks of the last archives reach the sink.
                await asyncio.sleep(0.5)
                processes.stop()
                with sink_server.client() as sink:
                    check(admin, sink, ledger, report)
            finally:
                close_client(admin)
        finally:
            processes.stop()
            await close_async_client(store.client)
    report.count("listener restarts after dying alone", processes.died_alone)
    report.log_dir = processes.log_dir
    report.count("logouts", ledger.ended)
    for name, count in ledger.errors.items():
        report.count(f"client errors: {name}", count)
    report.seconds = time.monotonic() - started
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="traffic time (default 3)")
    parser.add_argument("--workers", type=int, default=6, help="chatting asyncio tasks")
    parser.add_argument("--listeners", type=int, default=2, help="listener subprocesses")
    parser.add_argument("--fault-every", type=float, default=1.0, help="seconds between faults")
    parser.add_argument("--cluster", action="store_true",
                        help="a 3-primary cluster with replicas; failovers instead of restarts")
    parser.add_argument("--only", action="append", choices=sorted({*FAULTS, *CLUSTER_FAULTS}),
                        help="fire only this kind of fault (repeatable)")
    parser.add_argument("--listen", help=argparse.SUPPRESS)
    parser.add_argument("--sink", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.listen:
        asyncio.run(listen(args.listen, args.sink, args.cluster))
        return 0
    report = asyncio.run(soak(args.minutes * 60, workers=args.workers, listeners=args.listeners,
                              fault_every=args.fault_every, cluster=args.cluster,
                              only=args.only))
    where = "a 3-primary cluster" if args.cluster else "one server"
    print(f"soak on {where}: {args.minutes * 60:.0f} s of traffic, {report.seconds:.0f} s in all\n")
    print(report.table())
    if not report.deliveries_asserted:
        print("\nDeliveries are reported, not asserted: ArchivedConversation has no "
              "idempotency_key, so the hook is at most once.")
    for finding in report.findings:
        print(f"finding: {finding}")
    for problem in report.problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    if report.problems:
        print(f"listener logs: {report.log_dir}", file=sys.stderr)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
