"""Fault soak: chat traffic under faults, then an invariant check of everything stored.

Several asyncio tasks chat (create sessions with idle timeouts of tens of
milliseconds, so sessions keep expiring under the traffic; chat turns; some
logouts) while faults fire one at a time: ``kill -9`` of a listener subprocess
(restarted), ``kill -9`` and restart of Redis (``appendonly yes``,
``appendfsync always``), ``CLIENT KILL`` of every client connection, ``SCRIPT
FLUSH``, ``DEBUG SLEEP``, ``CLIENT PAUSE`` (``WRITE``, then ``ALL``), ``CLIENT
KILL TYPE pubsub`` (every listener's subscription), an OOM window (``maxmemory``
set below ``used_memory`` under ``noeviction``, then restored) and a BUSY window
(a read-only script loops past ``lua-time-limit`` until ``SCRIPT KILL``); the
windows last ``windows`` seconds. Listeners run as subprocesses whose
``on_archived`` hook records each delivery in a separate sink redis-server
(RPUSH, acknowledged before the hook returns), with the conversation's turn ids;
on the first attempt of about one session in ten (``hook_hangs``) it hangs
instead, until the listener's ``hook_timeout`` abandons it. Both the clients'
and the listeners' stores keep ``archive_retention`` conversations per user
(2 by default; each chatting task has three users, so they trim all the time).
After a drain period in which every session expires and the listeners catch
up, the checker (``benchmarks/soak_check.py``) reads the whole keyspace and
the sink and reports:

- turns: every acknowledged turn (its ``chat_turn`` returned) is in a live
  history or an archived one exactly once; a turn whose call raised a
  connection error may or may not have landed ("unknown": at most once), and so
  may one refused as expired while a fault broke connections (redis-py resent it,
  see ``FaultWindow``); any other turn refused as expired is nowhere;
- sessions: every created session is archived exactly once, with its message
  count;
- deliveries: every archive reached the sink at least once, with the same
  idempotency key each time (``ArchivedConversation.idempotency_key``, or the
  session id where the model has no such field), and none is left in an
  outbox after the drain;
- retention: an archive trimmed from its user's archive must have reached the
  sink first; its turns are checked from the sink's copy, and each user's
  archive counter (``archive_seq``) says how many archives were made, so one
  trimmed before its delivery is counted, not mistaken for a session never
  archived;
- listeners: none exits unless the soak killed it;
- references: no index entry points at nothing, and every key belongs to the
  layout of ``luminora_redis.core.keys`` and has an owner.

Run: ``.venv/bin/python -m benchmarks.soak --minutes 3`` (the suite runs a
short version, ``tests/test_soak.py``). ``--cluster`` runs it on a 3-primary
cluster with a replica per primary, where ``CLUSTER FAILOVER`` of a random
primary takes the place of the Redis restart, and ``DEBUG SLEEP`` (a primary
asleep past the cluster's node timeout is failed over) and the BUSY window are left
out (on demand only: a failover takes seconds). ``--retention none`` runs without ``archive_retention``.
It prints the figures as a Markdown table and exits 1 when an invariant failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis
import redis.asyncio as aioredis
import redis.cluster
from redis.asyncio.cluster import RedisCluster as AsyncCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from benchmarks.soak_check import ATTEMPTS, SINK_KEY, Ledger, Report, check, hook_hangs, outstanding
from luminora_redis import ArchivedConversation, ExpiryListener, SessionStore
from luminora_redis.core.errors import SessionNotFound
from luminora_redis.io.store import close_client as close_async_client
from luminora_redis.io.sync_store import close_client
from luminora_redis.testing import LocalCluster, RedisServer, RedisServerError
from luminora_redis.testing.local import find_redis_server

T = TypeVar("T")

DURABLE = {"appendonly": "yes", "appendfsync": "always", "save": ""}
#: A script that runs longer than this (ms) makes Redis answer BUSY to every other client.
BUSY_AFTER_MS = 100
FAULTS = ("listener kill -9", "redis kill -9 + restart", "client kill", "script flush",
          "debug sleep", "client pause write", "client pause all", "pubsub kill", "oom window",
          "busy script")
CLUSTER_FAULTS = ("listener kill -9", "failover", "client kill", "script flush",
                  "client pause write", "client pause all", "pubsub kill", "oom window")
#: The fault the listeners' hook makes itself (``hook_hangs``), counted from the sink.
HOOK_HANG = "on_archived hangs (first attempt)"
#: Errors after which a write may or may not have landed; each is counted by name in the
#: figures. redis-py 8.1's asyncio cluster client can raise AttributeError (a connection's
#: writer is None) when a connection is killed under a command. A NOSCRIPT is not among
#: them: the store retries it, so one reaching the traffic fails the run.
UNCERTAIN = (redis.ConnectionError, redis.TimeoutError, OSError, AttributeError)
#: Faults that break client connections under commands in flight. A failover is one: a
#: cluster run without it in this set finds turns refused by a resend after they landed.
BREAKING = frozenset({"redis kill -9 + restart", "client kill", "failover"})
#: A read-only busy loop of ARGV[1] ms: Redis answers BUSY to everyone else once it has
#: run for ``lua-time-limit``, and SCRIPT KILL can end it because it writes nothing.
BUSY_SCRIPT = """
local t = redis.call('TIME')
local stop = tonumber(t[1]) * 1000000 + tonumber(t[2]) + tonumber(ARGV[1]) * 1000
repeat t = redis.call('TIME') until tonumber(t[1]) * 1000000 + tonumber(t[2]) >= stop
return 0
"""


def refusal(error: redis.ResponseError) -> str | None:
    """``"OOM"`` or ``"BUSY"`` when Redis refused the command without running it, else None.

    A script is refused at its first write while Redis is over ``maxmemory`` (nothing
    written), and every command is refused while another client's script is busy.
    """
    if isinstance(error, redis.OutOfMemoryError):
        return "OOM"
    return "BUSY" if str(error).startswith("BUSY ") else None


def server_config() -> dict[str, str]:
    """redis.conf of the server under test: durable, BUSY after ``BUSY_AFTER_MS``, and
    ``DEBUG`` allowed from loopback (Redis 7 refuses it by default)."""
    config = {**DURABLE, "lua-time-limit": str(BUSY_AFTER_MS)}
    executable = find_redis_server()
    if executable:
        version = subprocess.run([executable, "--version"], capture_output=True, text=True,
                                 check=False).stdout
        major = re.search(r"v=(\d+)\.", version)
        if major and int(major.group(1)) >= 7:
            config["enable-debug-command"] = "local"
    return config


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
    #: The number of the OOM window open right now (``maxmemory`` below ``used_memory``),
    #: 0 when none is: a call that starts and ends in one window ran over maxmemory.
    oom: int = 0
    oom_windows: int = 0

    def mark(self) -> tuple[int, bool]:
        return self.started, self.started != self.finished

    def overlapped(self, mark: tuple[int, bool]) -> bool:
        started, in_progress = mark
        return in_progress or self.started != started


def delivery_key(conversation: ArchivedConversation) -> str:
    """The key a sink deduplicates on: the idempotency key where the model has one."""
    return str(getattr(conversation, "idempotency_key", conversation.session_id))


# -- the listener subprocess --------------------------------------------------------------


async def listen(url: str, sink_url: str, cluster: bool, retention: int | None,
                 hook_timeout: float | None) -> None:
    """Run one ExpiryListener whose hook records every delivery in the sink server.

    With a ``hook_timeout``, the hook hangs on its first attempt of every session that
    ``hook_hangs`` picks (the attempts are counted in the sink, so the listener that
    retries it need not be the one that hung), and the listener abandons it.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    sink = aioredis.Redis.from_url(sink_url)
    store = SessionStore.from_url(url, cluster=cluster, archive_retention=retention)
    # Without a hook_timeout a hanging hook would hold its delivery worker for good.
    hang = hook_timeout is not None

    async def on_archived(conversation: ArchivedConversation) -> None:
        sid = conversation.session_id
        if hang and hook_hangs(sid) and await sink.incr(f"{ATTEMPTS}{sid}") == 1:
            await asyncio.Event().wait()
        turns = [m.content[:-2] for m in conversation.messages if m.content.endswith(":q")]
        record = {"key": delivery_key(conversation), "session": sid,
                  "user": conversation.user_id, "messages": len(conversation.messages),
                  "count": conversation.message_count, "turns": turns, "pid": os.getpid()}
        await sink.rpush(SINK_KEY, json.dumps(record))

    # The hook is one RPUSH, so a short lease lets the survivors take over a killed
    # listener's deliveries within the drain (the default lease is a minute).
    listener = ExpiryListener(store, sweep_interval=0.05, on_archived=on_archived,
                              delivery_lease=3.0, hook_timeout=hook_timeout)
    try:
        await listener.run()
    finally:
        await store.aclose()
        await sink.aclose()


class Listeners:
    """Listener subprocesses: started, killed with SIGKILL, restarted.

    A listener stops only when asked, so one that exits without the soak having
    killed it (any exit code) is recorded in ``exited`` with its log, and restarted.
    """

    def __init__(self, url: str, sink_url: str, count: int, cluster: bool,
                 retention: int | None = None, hook_timeout: float | None = None) -> None:
        self.url, self.sink_url, self.count, self.cluster = url, sink_url, count, cluster
        self.retention, self.hook_timeout = retention, hook_timeout
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: dict[int, str] = {}  # pid -> log file
        #: Listeners that exited on their own: (log file, exit code).
        self.exited: list[tuple[str, int]] = []
        self.subscriptions_killed = 0
        self.spawned = 0
        self.log_dir = tempfile.mkdtemp(prefix="luminora-soak-")

    def spawn(self) -> subprocess.Popen[bytes]:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        command = [sys.executable, "-m", "benchmarks.soak", "--listen", self.url,
                   "--sink", self.sink_url, *(["--cluster"] if self.cluster else []),
                   "--retention", str(self.retention),
                   *(["--hook-timeout", str(self.hook_timeout)] if self.hook_timeout else [])]
        self.spawned += 1
        path = os.path.join(self.log_dir, f"listener-{self.spawned}.log")
        with open(path, "wb") as log:
            proc = subprocess.Popen(command, cwd=root, stdout=log, stderr=subprocess.STDOUT)
        self.logs[proc.pid] = path
        return proc

    def start(self) -> None:
        self.procs = [self.spawn() for _ in range(self.count)]

    def kill_one(self) -> None:
        index = random.randrange(len(self.procs))
        if not self._exited(self.procs[index]):
            self.procs[index].send_signal(signal.SIGKILL)
            self.procs[index].wait()
        self.procs[index] = self.spawn()

    def keep_alive(self) -> None:
        for index, proc in enumerate(self.procs):
            if self._exited(proc):
                self.procs[index] = self.spawn()

    def stop(self) -> None:
        for proc in self.procs:
            if not self._exited(proc):
                proc.send_signal(signal.SIGKILL)
            proc.wait()
        self.procs = []

    def _exited(self, proc: subprocess.Popen[bytes]) -> bool:
        """Whether ``proc`` has exited; recorded in ``exited`` when the soak did not kill it."""
        code = proc.poll()
        if code is None:
            return False
        self.exited.append((self.logs[proc.pid], code))
        return True


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
        except redis.ResponseError as error:
            if not refusal(error):
                raise
            ledger.errors[f"{refusal(error)} (refused)"] += 1
            await asyncio.sleep(0.02)
            continue
        ledger.sessions.add(sid)
        ledger.owners[sid] = user
        for _ in range(rng.randrange(1, 6)):
            n += 1
            turn = f"w{worker}-t{n}"
            mark, oom = window.mark(), window.oom
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
            except redis.ResponseError as error:
                if not refusal(error):
                    raise
                ledger.errors[f"{refusal(error)} (refused)"] += 1
                if window.overlapped(mark):
                    ledger.unknown.add(turn)
                else:  # refused before the script wrote anything
                    ledger.rejected.add(turn)
            else:
                ledger.acked.add(turn)
                if oom and window.oom == oom:
                    ledger.acked_over_maxmemory += 1
            await asyncio.sleep(rng.choice((0.0, 0.01, 0.02, 0.05, 0.1)))
        if rng.random() < 0.3:
            try:
                if await store.end_session(sid):
                    ledger.ended += 1
            except UNCERTAIN as error:
                ledger.errors[type(error).__name__] += 1
            except redis.ResponseError as error:
                if not refusal(error):
                    raise
                ledger.errors[f"{refusal(error)} (refused)"] += 1


async def inject(target: Target, listeners: Listeners, stop: asyncio.Event,
                 faults: Counter[str], every: float, only: list[str] | None = None,
                 window: FaultWindow | None = None,
                 windows: tuple[float, float] = (0.3, 1.5)) -> None:
    """Fire one fault of each kind in turn (or of the ``only`` kinds), about every
    ``every`` seconds; one at a time, so no two faults overlap (a Redis restart never
    meets a BUSY script or an OOM window). Faults that hold Redis last ``windows``
    seconds (from, to)."""
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
            await asyncio.to_thread(fire, kind, target, listeners, rng.uniform(*windows), window)
        except (redis.RedisError, RedisServerError) as error:
            faults[f"{kind} (failed: {type(error).__name__})"] += 1
            continue
        finally:
            if breaking:
                window.finished += 1
        faults[kind] += 1
        listeners.keep_alive()


def fire(kind: str, target: Target, listeners: Listeners, seconds: float,
         window: FaultWindow) -> None:
    """Fire one fault; one that holds Redis holds it for ``seconds``, then lets go."""
    if kind == "listener kill -9":
        listeners.kill_one()
    elif kind == "debug sleep":
        for server in target.primaries():
            with server.client(socket_timeout=seconds + 30) as admin:
                admin.execute_command("DEBUG", "SLEEP", f"{seconds:.3f}")
    elif kind in ("client pause write", "client pause all"):
        for server in target.primaries():
            with server.client() as admin:
                admin.execute_command("CLIENT", "PAUSE", int(seconds * 1000),
                                      kind.rsplit(" ", 1)[1].upper())
        time.sleep(seconds)
    elif kind == "pubsub kill":
        for server in target.nodes():
            with server.client() as admin:
                listeners.subscriptions_killed += int(
                    admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub"))
    elif kind == "oom window":
        oom_window(target.primaries(), seconds, window)
    elif kind == "busy script":
        assert isinstance(target.redis, RedisServer)
        busy_window(target.redis, max(seconds, 2 * BUSY_AFTER_MS / 1000))
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


def oom_window(servers: list[RedisServer], seconds: float, window: FaultWindow) -> None:
    """``maxmemory`` at half of ``used_memory`` under ``noeviction`` for ``seconds``, so
    Redis refuses writes; then the settings it had."""
    admins = [server.client(decode_responses=True) for server in servers]
    saved = [(str(admin.config_get("maxmemory")["maxmemory"]),
              str(admin.config_get("maxmemory-policy")["maxmemory-policy"])) for admin in admins]
    try:
        for admin in admins:
            admin.config_set("maxmemory-policy", "noeviction")
            admin.config_set("maxmemory", max(1, int(admin.info("memory")["used_memory"]) // 2))
        window.oom_windows += 1
        window.oom = window.oom_windows
        time.sleep(seconds)
    finally:
        window.oom = 0
        for admin, (limit, policy) in zip(admins, saved):
            admin.config_set("maxmemory", limit)
            admin.config_set("maxmemory-policy", policy)
            admin.close()


def busy_window(server: RedisServer, seconds: float) -> None:
    """Run ``BUSY_SCRIPT`` from a client of its own for ``seconds``, then SCRIPT KILL it.

    Both connections are made first: while the script is busy, Redis answers BUSY to
    a new connection's handshake too. The loop ends by itself 10 s later should the
    kill fail; a script that was not killed fails the fault.
    """
    outcome: list[object] = []

    def loop() -> None:
        try:
            outcome.append(looper.eval(BUSY_SCRIPT, 0, int((seconds + 10) * 1000)))
        except redis.ResponseError as error:
            outcome.append(error)

    with server.client(socket_timeout=seconds + 30) as looper, server.client() as admin:
        looper.ping()
        admin.ping()
        thread = threading.Thread(target=loop, name="soak-busy-script")
        thread.start()
        time.sleep(seconds)
        deadline = time.monotonic() + 15
        while thread.is_alive():
            try:
                admin.script_kill()
                break
            except redis.ResponseError as error:  # NOTBUSY: not started, or not busy yet
                if "NOTBUSY" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        thread.join()
    if not (outcome and isinstance(outcome[0], redis.ResponseError)):
        raise RedisServerError(f"the busy script was not killed: {outcome!r}")


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
               drain: float = 60.0, cluster: bool = False, only: list[str] | None = None,
               retention: int | None = 2, hook_timeout: float | None = 0.5,
               windows: tuple[float, float] = (0.3, 1.5)) -> Report:
    """Run traffic and faults for ``seconds``, drain, check; the report holds the figures.

    ``retention`` is the stores' ``archive_retention`` (None: keep every archive);
    ``hook_timeout`` None keeps the listeners' hook from hanging; ``windows`` bounds
    how long a fault holds Redis (a sleep, a pause, an OOM or BUSY window), in seconds.
    """
    report = Report()
    ledger = Ledger()
    started = time.monotonic()
    redis_under_test: Any = (LocalCluster(primaries=3, replicas=1, config=DURABLE) if cluster
                             else RedisServer(config=server_config()))
    with redis_under_test, RedisServer(config=DURABLE) as sink_server:
        target = Target(redis_under_test, cluster)
        processes = Listeners(target.url, sink_server.url, listeners, cluster, retention,
                              hook_timeout)
        processes.start()
        store = SessionStore(target.traffic_client(), archive_retention=retention)
        stop = asyncio.Event()
        try:
            window = FaultWindow()
            tasks = [asyncio.create_task(chat(store, ledger, n, stop, window))
                     for n in range(workers)]
            faults = asyncio.create_task(inject(target, processes, stop, report.faults,
                                                fault_every, only, window, windows))
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
                    check(admin, sink, ledger, report, retention=retention)
                    hung = sum(1 for _ in sink.scan_iter(match=f"{ATTEMPTS}*", count=1000))
                    if hung:
                        report.faults[HOOK_HANG] = hung
            finally:
                close_client(admin)
        finally:
            processes.stop()
            await close_async_client(store.client)
    report.count("listener subscriptions killed", processes.subscriptions_killed)
    report.count("listeners exited on their own", len(processes.exited))
    if processes.exited:
        report.problems.append(f"{len(processes.exited)} listeners exited on their own "
                               f"(log, exit code): {processes.exited[:3]}")
    report.count("turns acknowledged over maxmemory (OOM window)", ledger.acked_over_maxmemory)
    if ledger.acked_over_maxmemory:
        report.findings.append(f"{ledger.acked_over_maxmemory} chat turns were stored while "
                               "Redis was over maxmemory: writes are not refused at the door")
    report.log_dir = processes.log_dir
    report.count("logouts", ledger.ended)
    for name, count in ledger.errors.items():
        report.count(f"client errors: {name}", count)
    report.seconds = time.monotonic() - started
    return report


def optional(kind: Callable[[str], T]) -> Callable[[str], T | None]:
    """An argparse type: ``kind`` of the argument, or None for ``none``."""
    def parse(text: str) -> T | None:
        return None if text.lower() == "none" else kind(text)
    return parse


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
    parser.add_argument("--retention", type=optional(int), default=2,
                        help="the stores' archive_retention, or none (default 2)")
    parser.add_argument("--hook-timeout", type=optional(float), default=0.5,
                        help="the listeners' hook_timeout, or none: then no hook hangs "
                             "(default 0.5)")
    parser.add_argument("--windows", type=float, nargs=2, default=(0.3, 1.5),
                        metavar=("FROM", "TO"),
                        help="seconds a sleep, pause, OOM or BUSY window lasts (default 0.3 1.5)")
    parser.add_argument("--listen", help=argparse.SUPPRESS)
    parser.add_argument("--sink", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.listen:
        asyncio.run(listen(args.listen, args.sink, args.cluster, args.retention,
                           args.hook_timeout))
        return 0
    report = asyncio.run(soak(args.minutes * 60, workers=args.workers, listeners=args.listeners,
                              fault_every=args.fault_every, cluster=args.cluster,
                              only=args.only, retention=args.retention,
                              hook_timeout=args.hook_timeout,
                              windows=(args.windows[0], args.windows[1])))
    where = "a 3-primary cluster" if args.cluster else "one server"
    print(f"soak on {where}: {args.minutes * 60:.0f} s of traffic, {report.seconds:.0f} s in all\n")
    print(report.table())
    for finding in report.findings:
        print(f"finding: {finding}")
    for problem in report.problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    if report.problems:
        print(f"listener logs: {report.log_dir}", file=sys.stderr)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
