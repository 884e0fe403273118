"""``luminora-redis listen``: run an ExpiryListener until SIGTERM or SIGINT.

With ``--cluster`` the URL names any node of a Redis Cluster, and the
listener subscribes on every primary. It logs every session it archives, and
with ``--metrics-port`` serves Prometheus metrics (``pip install
'luminora-redis[metrics]'``). A stop signal lets in-flight archives finish,
closes the connections and exits 0; sessions that expire while no listener
runs are archived by the next one's sweeper. Also runnable as ``python -m
luminora_redis.listen_cli``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import signal
import sys
from collections.abc import Sequence
from typing import Any

from redis.asyncio.cluster import RedisCluster

from luminora_redis.listener import ExpiryListener, ListenerObserver
from luminora_redis.store import SessionStore

__all__ = ["add_listen_command", "main", "run_listen"]

DEFAULT_URL = "redis://localhost:6379/0"
DESCRIPTION = ("Archive expired sessions into their users' archives as they expire (keyspace "
               "notifications, plus a sweeper for whatever they miss) until SIGTERM or SIGINT.")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

logger = logging.getLogger("luminora_redis.listener")


def _interval(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port (0 picks a free one), not {text!r}")
    return value


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=DEFAULT_URL,
                        help=f"the Redis to listen to (default {DEFAULT_URL})")
    parser.add_argument("--cluster", action="store_true",
                        help="the URL names a node of a Redis Cluster: listen on every primary")
    parser.add_argument("--sweep-interval", type=_interval, default=0.25, metavar="SECONDS",
                        help="how often the sweeper archives sessions whose notification "
                             "was lost (default 0.25)")
    parser.add_argument("--metrics-port", type=_port, default=None, metavar="PORT",
                        help="serve Prometheus metrics on this port (needs the 'metrics' extra)")
    parser.add_argument("--metrics-host", default="127.0.0.1", metavar="HOST",
                        help="address the metrics endpoint binds (default 127.0.0.1)")
    parser.add_argument("--log-level", default="INFO", choices=_LOG_LEVELS, type=str.upper,
                        help="default INFO, which logs every archived session")


def add_listen_command(subparsers: Any) -> None:
    """Add ``listen`` to the ``luminora-redis`` subcommands; it sets ``run`` to `run_listen`."""
    parser = subparsers.add_parser(
        "listen", help="archive expired sessions as they expire (notifications + sweeper)",
        description=DESCRIPTION)
    _add_arguments(parser)
    parser.set_defaults(run=run_listen)


def run_listen(args: argparse.Namespace) -> int:
    """Run the listener the parsed arguments describe; the process exit code."""
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    observer: ListenerObserver | None = None
    server = None
    if args.metrics_port is not None:
        try:
            from luminora_redis.metrics import ListenerMetrics
        except ImportError:
            print("luminora-redis listen: --metrics-port needs prometheus_client; "
                  "install it with: pip install 'luminora-redis[metrics]'", file=sys.stderr)
            return 2
        metrics = ListenerMetrics()
        server = metrics.serve(args.metrics_host, args.metrics_port)
        observer = metrics
        logger.info("metrics on http://%s:%d/metrics", server.host, server.port)
    try:
        asyncio.run(_listen(args.url, args.cluster, args.sweep_interval, observer))
    finally:
        if server is not None:
            server.close()
    return 0


async def _listen(url: str, cluster: bool, sweep_interval: float,
                  observer: ListenerObserver | None) -> None:
    store = SessionStore.from_url(url, cluster=cluster)
    listener = ExpiryListener(store, sweep_interval=sweep_interval, observer=observer)
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []

    def on_signal(signum: signal.Signals) -> None:
        if not stopping:
            logger.info("%s received, stopping", signum.name)
            stopping.append(loop.create_task(listener.stop()))

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    logger.info("listening to %s", _where(store))
    try:
        await listener.run()
        for task in stopping:
            await task
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await store.aclose()


def _where(store: SessionStore) -> str:
    client = store.client
    if isinstance(client, RedisCluster):  # not connected yet: it knows its startup node
        return f"the redis cluster at {', '.join(client.nodes_manager.startup_nodes)}"
    kwargs = client.connection_pool.connection_kwargs
    where = kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}"
    return f"redis at {where}, db {kwargs.get('db', 0)}"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m luminora_redis.listen_cli``: the same as ``luminora-redis listen``."""
    parser = argparse.ArgumentParser(prog="luminora-redis listen", description=DESCRIPTION)
    _add_arguments(parser)
    return run_listen(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
