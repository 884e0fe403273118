"""What the server counts: commands, command time, bytes on the wire, read events,
process CPU, and memory; and which commands a client sent itself (MONITOR).

Every figure is a delta of ``INFO`` between two snapshots. A snapshot's own ``INFO``
shows up in the next delta (one read event, its request bytes, the previous reply's
bytes), so ``Probe`` measures that overhead once with two back-to-back snapshots and
subtracts it.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import redis

#: Commands that belong to the harness, never to a system.
OWN = {"info", "monitor", "memory|usage", "scan", "unlink", "flushall", "ping"}


@dataclass(frozen=True)
class Snapshot:
    commands: dict[str, tuple[int, int]]  # name -> (calls, usec)
    net_in: int
    net_out: int
    reads: int
    cpu: float  # seconds, user + sys
    used_memory: int


@dataclass
class Delta:
    calls: Counter[str] = field(default_factory=Counter)
    usec: Counter[str] = field(default_factory=Counter)
    net_in: int = 0
    net_out: int = 0
    reads: int = 0
    cpu: float = 0.0

    def commands(self) -> int:
        return sum(n for name, n in self.calls.items() if name not in OWN)


def snapshot(client: redis.Redis) -> Snapshot:
    info = client.execute_command("INFO", "stats", "commandstats", "cpu", "memory")
    commands = {key[len("cmdstat_"):]: (int(v["calls"]), int(v["usec"]))
                for key, v in info.items() if key.startswith("cmdstat_")}
    return Snapshot(commands, int(info["total_net_input_bytes"]),
                    int(info["total_net_output_bytes"]), int(info.get("total_reads_processed", 0)),
                    float(info["used_cpu_user"]) + float(info["used_cpu_sys"]),
                    int(info["used_memory"]))


def delta(before: Snapshot, after: Snapshot, overhead: Delta | None = None) -> Delta:
    out = Delta(net_in=after.net_in - before.net_in, net_out=after.net_out - before.net_out,
                reads=after.reads - before.reads, cpu=after.cpu - before.cpu)
    for name, (calls, usec) in after.commands.items():
        was = before.commands.get(name, (0, 0))
        if calls - was[0]:
            out.calls[name] = calls - was[0]
            out.usec[name] = usec - was[1]
    if overhead is not None:
        out.net_in -= overhead.net_in
        out.net_out -= overhead.net_out
        out.reads -= overhead.reads
    return out


class Probe:
    """A connection of the harness's own to the server under test."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = redis.Redis.from_url(url)
        first = snapshot(self.client)
        self.overhead = delta(first, snapshot(self.client))

    def snapshot(self) -> Snapshot:
        return snapshot(self.client)

    def delta(self, before: Snapshot) -> Delta:
        return delta(before, snapshot(self.client), self.overhead)

    def dataset_memory(self) -> int:
        """``used_memory_dataset``: used_memory without the server's overhead, client
        buffers included, which would otherwise move with the connections."""
        info = self.client.info("memory")
        return int(info.get("used_memory_dataset", info["used_memory"]))

    def keys_usage(self, match: str) -> tuple[int, int]:
        """(number of keys, total MEMORY USAGE bytes) of the keys matching ``match``."""
        count = total = 0
        batch: list[bytes] = []

        def weigh() -> int:
            with self.client.pipeline(transaction=False) as pipe:
                for key in batch:
                    pipe.memory_usage(key, samples=0)
                return sum(size or 0 for size in pipe.execute())

        for key in self.client.scan_iter(match=match, count=1000):
            batch.append(key)
            if len(batch) == 1000:
                total, count, batch = total + weigh(), count + len(batch), []
        if batch:
            total, count = total + weigh(), count + len(batch)
        return count, total

    def purge(self, match: str) -> None:
        """Delete every key matching ``match`` (between trials, untimed). DEL, not UNLINK:
        memory freed in the background would show up in the next memory measurement."""
        batch: list[bytes] = []
        for key in self.client.scan_iter(match=match, count=1000):
            batch.append(key)
            if len(batch) == 1000:
                self.client.delete(*batch)
                batch = []
        if batch:
            self.client.delete(*batch)

    def close(self) -> None:
        self.client.close()


class Monitor:
    """Which commands reach the server, told apart by origin: sent by a client, or run
    inside a script (MONITOR marks those ``[0 lua]``). Start it, run the turns, then
    ``stop()`` returns (client commands, script-inner commands) by lower-case name."""

    def __init__(self, url: str) -> None:
        self.pool = redis.ConnectionPool.from_url(url)
        self.connection = self.pool.make_connection()
        self.connection.connect()
        self.connection.send_command("MONITOR")
        reply = self.connection.read_response()
        if reply not in (b"OK", "OK", True):
            raise RuntimeError(f"MONITOR replied {reply!r}")

    def stop(self, settle: float = 0.2) -> tuple[Counter[str], Counter[str]]:
        outer: Counter[str] = Counter()
        inner: Counter[str] = Counter()
        deadline = time.monotonic() + 5
        try:
            while time.monotonic() < deadline and self.connection.can_read(timeout=settle):
                line = self.connection.read_response()
                text = line.decode("utf-8", "replace") if isinstance(line, bytes) else str(line)
                _, _, rest = text.partition("[")
                origin, _, command = rest.partition("]")
                name = command.strip().split(" ", 1)[0].strip('"').lower()
                if not name or name in OWN:
                    continue
                (inner if origin.endswith("lua") else outer)[name] += 1
        finally:
            self.connection.disconnect()
            self.pool.disconnect()
        return outer, inner
