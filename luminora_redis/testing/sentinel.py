"""A primary, its replica and three sentinels: Redis Sentinel on loopback.

The Sentinel tests and the plugin's ``luminora_redis_sentinel`` fixture need a
real failover: sentinels that agree the primary is gone (or are told to fail
over), promote the replica, and turn the old primary into a replica of the new
one. Every process is a `RedisServer`; the sentinels are the same binary run
with ``--sentinel``. The failover settings are fast (a primary is down after
1 s without answers, a failover times out after 3 s) so a test that fails over
stays short.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import redis

from luminora_redis.testing.local import (
    POLL_INTERVAL,
    RedisServerError,
    StartStop,
    check_loopback,
    fast_client,
    normalise_config,
    register,
    unregister,
    url_host,
)
from luminora_redis.testing.server import RedisServer

__all__ = ["LocalSentinel", "SentinelProcess"]

#: Replication settings that let a replica attach and catch up within a second.
_FAST_REPLICATION = {"repl-diskless-sync-delay": "0", "repl-ping-replica-period": "1"}


class SentinelProcess(RedisServer):
    """One sentinel: a `RedisServer` run with ``--sentinel`` and the ``sentinel``
    directives given (``monitor``, ``down-after-milliseconds`` and the like)."""

    def __init__(self, directives: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._directives = list(directives)

    def _write_config(self) -> Path:
        path = super()._write_config()
        with open(path, "a", encoding="utf-8") as conf:
            conf.writelines(f"sentinel {line}\n" for line in self._directives)
        return path

    def _launch_args(self, executable: str, conf: Path) -> list[str]:
        return [executable, str(conf), "--sentinel"]


class LocalSentinel(StartStop):
    """Redis Sentinel on loopback: one primary, one replica, three sentinels (quorum 2).

    `url` is the ``redis+sentinel://`` URL of the service; `primary` and `replica`
    are the servers in those roles now (they swap on a failover); `failover`
    runs ``SENTINEL FAILOVER`` and returns once the new primary takes writes.
    """

    def __init__(
        self,
        *,
        service: str = "mymaster",
        host: str = "127.0.0.1",
        config: Mapping[str, str] | None = None,
        executable: str | None = None,
        down_after: float = 1.0,
        failover_timeout: float = 3.0,
        timeout: float = 30.0,
    ) -> None:
        """Describe the deployment; nothing is started until `start`.

        ``config`` adds redis.conf directives to the primary and the replica (for
        example ``{"appendonly": "yes"}``). ``down_after`` and ``failover_timeout``
        (seconds) are the sentinels' ``down-after-milliseconds`` and
        ``failover-timeout``; ``timeout`` bounds `start` and `failover`.
        """
        check_loopback(host)
        if not service or any(ch.isspace() for ch in service):
            raise ValueError(f"service must be a name without spaces, got {service!r}")
        self.service: str = service
        self.host: str = host
        self.timeout: float = timeout
        self._down_after_ms = max(1, round(down_after * 1000))
        self._failover_timeout_ms = max(1, round(failover_timeout * 1000))
        self._config = {**_FAST_REPLICATION, **normalise_config(config)}
        self._executable = executable
        #: The two data servers (primary first at start; roles change on failover).
        self.servers: list[RedisServer] = []
        self.sentinels: list[SentinelProcess] = []

    # -- addresses ---------------------------------------------------------- #

    @property
    def url(self) -> str:
        """``redis+sentinel://host:port,host:port,host:port/service/0``."""
        if not self.sentinels:
            raise RedisServerError("sentinel deployment not started")
        hosts = ",".join(f"{url_host(s.host)}:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service}/0"

    @property
    def primary(self) -> RedisServer:
        """The server the sentinels name as primary now."""
        if not self.sentinels:
            raise RedisServerError("sentinel deployment not started")
        return self._server_at(self._master_address(self.sentinels[0]))

    @property
    def replica(self) -> RedisServer:
        """The server that is not the primary."""
        primary = self.primary
        return next(server for server in self.servers if server is not primary)

    def __repr__(self) -> str:
        return (f"LocalSentinel(service={self.service!r}, "
                f"servers={[s._port for s in self.servers]!r}, "
                f"sentinels={[s._port for s in self.sentinels]!r})")

    # -- lifecycle ---------------------------------------------------------- #

    def start(self) -> LocalSentinel:
        """Start the primary, the replica and the sentinels, and wait until the replica
        is in sync and every sentinel knows the primary, the replica and the other two
        sentinels."""
        if self.servers or self.sentinels:
            raise RedisServerError(f"{self!r} is already started")
        register(self)
        try:
            primary = RedisServer(host=self.host, config=self._config,
                                  executable=self._executable)
            self.servers.append(primary)
            primary.start()
            replica = RedisServer(host=self.host, executable=self._executable, config={
                **self._config, "replicaof": f"{self.host} {primary.port}"})
            self.servers.append(replica)
            replica.start()
            directives = [
                f"monitor {self.service} {self.host} {primary.port} 2",
                f"down-after-milliseconds {self.service} {self._down_after_ms}",
                f"failover-timeout {self.service} {self._failover_timeout_ms}",
                f"parallel-syncs {self.service} 1",
            ]
            for _ in range(3):
                sentinel = SentinelProcess(directives, host=self.host, executable=self._executable)
                self.sentinels.append(sentinel)
                sentinel.start()
            self.wait_settled()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the sentinels first (so they fail nothing over), then the servers. Safe
        to call twice."""
        try:
            for process in [*self.sentinels, *self.servers]:
                process.stop()
        finally:
            self.sentinels = []
            self.servers = []
            unregister(self)

    # -- failover ------------------------------------------------------------- #

    def failover(self) -> RedisServer:
        """``SENTINEL FAILOVER``: the replica becomes the primary. Returns it once a
        sentinel announced the switch (``+switch-master``, no polling), every sentinel
        names it and it takes writes. The old primary becomes its replica some seconds
        later: `wait_settled` waits for that."""
        old = self.primary
        announcer = self.sentinels[0].client(socket_timeout=self.timeout)
        pubsub = announcer.pubsub()
        try:
            pubsub.subscribe("+switch-master")
            pubsub.get_message(timeout=self.timeout)  # the subscription's confirmation
            announcer.execute_command("SENTINEL", "FAILOVER", self.service)
            deadline = time.monotonic() + self.timeout
            while True:
                left = deadline - time.monotonic()
                message = pubsub.get_message(ignore_subscribe_messages=True,
                                             timeout=max(0.0, left))
                if message is not None and message["data"].split()[0].decode() == self.service:
                    break
                if left <= 0:
                    raise RedisServerError(f"no +switch-master within {self.timeout:g}s")
        finally:
            pubsub.close()
            announcer.close()
        new = next(server for server in self.servers if server is not old)
        self.wait_settled(primary=new, replica=False)
        return new

    def wait_settled(self, primary: RedisServer | None = None, *, replica: bool = True) -> None:
        """Wait until every sentinel names ``primary`` (default: the first server) and
        knows the two other sentinels, and the primary takes writes; with ``replica``,
        also until every sentinel sees the other server up as its replica and that
        server's link to the primary is up.

        After a failover the sentinels turn the old primary into a replica only once
        it has reported the wrong role for 8 s (Sentinel's fixed delay), so
        `failover` does not wait for that; ``wait_settled(primary)`` does."""
        primary = primary or self.servers[0]
        other = next(server for server in self.servers if server is not primary)
        deadline = time.monotonic() + self.timeout
        last = "nothing checked yet"
        while True:
            try:
                last = self._unsettled(primary, other if replica else None) or ""
            except (redis.RedisError, OSError) as error:
                last = repr(error)
            if not last:
                return
            if time.monotonic() >= deadline:
                raise RedisServerError(f"{self!r} did not settle within {self.timeout:g}s: {last}")
            time.sleep(POLL_INTERVAL)

    def _unsettled(self, primary: RedisServer, replica: RedisServer | None) -> str | None:
        """What is not yet as `wait_settled` wants it, or None."""
        for sentinel in self.sentinels:
            probe = fast_client(sentinel.host, sentinel.port)
            try:
                if self._master_address(sentinel, probe) != (primary.host, primary.port):
                    return f"sentinel {sentinel.port} names another primary"
                replicas = probe.execute_command("SENTINEL", "REPLICAS", self.service)
                if replica is not None and not any(_field(entry, "port") == str(replica.port)
                           and "s_down" not in _field(entry, "flags") for entry in replicas):
                    return f"sentinel {sentinel.port} does not see the replica up"
                if len(probe.execute_command("SENTINEL", "SENTINELS", self.service)) < 2:
                    return f"sentinel {sentinel.port} does not know the other sentinels"
            finally:
                probe.close()
        roles = [(primary, "master")] + ([] if replica is None else [(replica, "slave")])
        for server, role in roles:
            probe = fast_client(server.host, server.port)
            try:
                info = probe.info("replication")
                if info.get("role") != role:
                    return f"{server.port} is not yet a {role}"
                if role == "slave" and (info.get("master_port") != primary.port
                                        or info.get("master_link_status") != "up"):
                    return f"{server.port} does not replicate from {primary.port} yet"
                if role == "master":
                    probe.set("__luminora_sentinel_probe__", 1, px=1)
            finally:
                probe.close()
        return None

    def _master_address(self, sentinel: RedisServer,
                        probe: redis.Redis | None = None) -> tuple[str, int]:
        client = probe or fast_client(sentinel.host, sentinel.port)
        try:
            host, port = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
        finally:
            if probe is None:
                client.close()
        return str(host), int(port)

    def _server_at(self, address: tuple[str, int]) -> RedisServer:
        for server in self.servers:
            if (server.host, server.port) == address:
                return server
        raise RedisServerError(f"the sentinels name {address}, which is none of {self!r}")


def _field(entry: Any, name: str) -> str:
    """A field of one ``SENTINEL REPLICAS`` entry (a flat list in RESP2, a dict otherwise)."""
    if isinstance(entry, dict):
        return str(entry.get(name, ""))
    pairs = dict(zip(entry[::2], entry[1::2]))
    return str(pairs.get(name, ""))
