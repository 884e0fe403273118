"""``luminora-redis listen``: run an ExpiryListener until SIGTERM or SIGINT.

With ``--cluster`` the URL names any node of a Redis Cluster, and the
listener subscribes on every primary. It logs every session it archives;
``--hook module:function`` hands each archived conversation to a function of
yours (plain or async), ``--summarize module:function`` keeps what one returns
as the session's summary episode (see ``ExpiryListener``); with
``--metrics-port`` it serves Prometheus metrics
(``pip install 'luminora-redis[metrics]'``). A stop signal lets in-flight
archives finish, closes the connections and exits 0; sessions that expire
while no listener runs are archived by the next one's sweeper.

What the operator got wrong at start is one line and exit 2: a bad ``--url``
or ``--prefix``, a ``--buckets`` that disagrees with the one Redis recorded,
a hook that cannot be loaded, a metrics port already in use. Redis
unreachable at start is one line and exit 3. Once running, nothing the
listener raises ends the process: the listener rides out Redis outages by
itself, and should it fail all the same, the failure is logged with its
traceback and a new listener starts after a pause (`RESTART_DELAY`, doubling
up to `RESTART_DELAY_MAX` while failures repeat), until a stop signal.

Once set up, the process moves what it holds (modules, classes, the hook's
imports) out of the garbage collector's reach (``gc.freeze()``): a full
collection then walks only what was allocated since, where it would otherwise
walk some 50,000 objects, tens of milliseconds on a small machine, during
which no session is archived.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import math
import signal
from typing import TYPE_CHECKING, Any

import click
from redis.asyncio.cluster import RedisCluster

from luminora_redis.cli.common import USAGE, Failure, close_client, connection_options, make_client
from luminora_redis.core.errors import ConfigurationError
from luminora_redis.io.redis_internals import startup_nodes
from luminora_redis.io.store import SessionStore
from luminora_redis.listener.expiry_listener import ExpiryListener, ListenerObserver
from luminora_redis.listener.outages import is_outage

__all__ = ["listen", "load_hook"]

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: Seconds before a listener that failed is replaced, and the most that doubles to.
RESTART_DELAY, RESTART_DELAY_MAX = 1.0, 60.0

logger = logging.getLogger("luminora_redis.listener")


if TYPE_CHECKING:
    _FloatParam = click.ParamType[float, Any]
else:  # ParamType is generic from click 8.4 on; 8.1, the lowest supported, cannot subscript it
    _FloatParam = click.ParamType


class Seconds(_FloatParam):
    """A positive, finite number of seconds (FloatRange lets nan through)."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not (math.isfinite(seconds) and seconds > 0):
            self.fail(f"must be a positive number of seconds, not {value!r}", param, ctx)
        return seconds


def load_hook(spec: str) -> Any:
    """The callable named ``module:function`` (``module:object.attribute`` works too)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise Failure(f"--hook wants module:function, not {spec!r}", USAGE)
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as error:
        raise Failure(f"cannot load the hook {spec!r}: {error}", USAGE) from None
    if not callable(target):
        raise Failure(f"the hook {spec!r} is not callable", USAGE)
    return target


@click.command()
@connection_options
@click.option("--buckets", type=click.IntRange(1, 65536), default=None,
              help="the bucket count (only for a new prefix; default: what Redis recorded)")
@click.option("--sweep-interval", type=Seconds(), default=0.25,
              show_default=True, metavar="SECONDS",
              help="how often the sweeper archives sessions whose notification was lost")
@click.option("--full-sweep-interval", type=Seconds(), default=30.0, show_default=True,
              metavar="SECONDS",
              help="how often the sweeper asks every bucket (in between it reads the "
                   "due-bucket hints only)")
@click.option("--sweep-batch", type=click.IntRange(min=1), default=500, show_default=True,
              help="due sessions one bucket yields per round trip")
@click.option("--no-notifications", is_flag=True,
              help="run the sweeper alone (no keyspace notifications)")
@click.option("--no-configure-notifications", is_flag=True,
              help="leave the server's notify-keyspace-events untouched")
@click.option("--hook", default=None, metavar="MODULE:FUNCTION",
              help="call this with every ArchivedConversation this listener archives")
@click.option("--summarize", default=None, metavar="MODULE:FUNCTION",
              help="keep what this returns for every ArchivedConversation (title, summary, "
                   "importance, sentiment; or None) as the session's summary episode")
@click.option("--hook-timeout", type=Seconds(), default=None, metavar="SECONDS",
              help="abandon an async hook call after this long, as a failed attempt "
                   "(default 30)")
@click.option("--name", default=None, help="this listener's name (default host:pid)")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None, metavar="PORT",
              help="serve Prometheus metrics on this port (needs the 'metrics' extra)")
@click.option("--metrics-host", default="127.0.0.1", show_default=True, metavar="HOST",
              help="address the metrics endpoint binds")
@click.option("--log-level", type=click.Choice(_LOG_LEVELS, case_sensitive=False),
              default="INFO", show_default=True, help="INFO logs every archived session")
def listen(url: str, prefix: str, cluster: bool, buckets: int | None, sweep_interval: float,
           full_sweep_interval: float, sweep_batch: int, no_notifications: bool,
           no_configure_notifications: bool, hook: str | None, summarize: str | None,
           hook_timeout: float | None, name: str | None,
           metrics_port: int | None, metrics_host: str, log_level: str) -> None:
    """Archive expired sessions into their users' archives as they expire (keyspace
    notifications, plus a sweeper for whatever they miss) until SIGTERM or SIGINT."""
    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    on_archived = None if hook is None else load_hook(hook)
    summarizer = None if summarize is None else load_hook(summarize)
    probe = make_client(url, cluster)  # fail fast, in one line, when Redis is not there
    try:
        probe.ping()
    finally:
        close_client(probe)
    observer: ListenerObserver | None = None
    server = None
    if metrics_port is not None:
        try:
            from luminora_redis.listener.metrics import ListenerMetrics
        except ImportError:
            raise Failure("--metrics-port needs prometheus_client; install it with: "
                          "pip install 'luminora-redis[metrics]'", USAGE) from None
        metrics = ListenerMetrics()
        try:
            server = metrics.serve(metrics_host, metrics_port)
        except OSError as error:  # the port is taken, or the host is not an address of ours
            raise Failure(f"cannot serve metrics on {metrics_host}:{metrics_port} "
                          f"({error.strerror or error}); choose another --metrics-port or "
                          f"--metrics-host", USAGE) from None
        observer = metrics
        logger.info("metrics on http://%s:%d/metrics", server.host, server.port)
    options = {"on_archived": on_archived, "notifications": not no_notifications,
               "configure_notifications": not no_configure_notifications,
               "sweep_interval": sweep_interval,
               "full_sweep_interval": full_sweep_interval, "sweep_batch": sweep_batch, "name": name,
               "observer": observer}
    if summarizer is not None:
        options["summarize"] = summarizer
    if hook_timeout is not None:
        options["hook_timeout"] = hook_timeout
    try:
        asyncio.run(_listen(url, cluster, prefix, buckets, options))
    finally:
        if server is not None:
            server.close()


async def _listen(url: str, cluster: bool, prefix: str, buckets: int | None,
                  options: dict[str, Any]) -> None:
    store = SessionStore.from_url(url, cluster=cluster, prefix=prefix, buckets=buckets)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    current: list[ExpiryListener] = []
    stopping: list[asyncio.Task[None]] = []

    def on_signal(signum: signal.Signals) -> None:
        if not stop.is_set():
            logger.info("%s received, stopping", signum.name)
            stop.set()
            stopping.extend(loop.create_task(listener.stop()) for listener in current)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        try:
            await store.context()  # claims or checks the layout: a bad --buckets ends here
        except ConfigurationError as error:
            raise Failure(str(error), USAGE) from None
        except Exception as error:
            if not is_outage(error):
                raise
            # Redis cannot serve yet: the listener waits that out, and checks the layout then.
        gc.freeze()  # see the module docstring
        delay = RESTART_DELAY
        while not stop.is_set():
            listener = ExpiryListener(store, **options)
            current[:] = [listener]
            logger.info("listening to %s, prefix %r, as %s", _where(store), prefix, listener.name)
            started = loop.time()
            try:
                await listener.run()  # waits out outages, at start too
                break
            except ConfigurationError as error:  # e.g. a bad --buckets: no restart fixes it
                raise Failure(str(error), USAGE) from None
            except Exception:
                if stop.is_set():
                    break
                if loop.time() - started > RESTART_DELAY_MAX:
                    delay = RESTART_DELAY  # it ran well for a while: not a repeating failure
                logger.exception("listener %s failed; a new one starts in %g s",
                                 listener.name, delay)
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except asyncio.TimeoutError:
                pass
            delay = min(delay * 2, RESTART_DELAY_MAX)
        for task in stopping:
            await task
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await store.aclose()


def _where(store: SessionStore) -> str:
    client = store.client
    if isinstance(client, RedisCluster):  # not connected yet: it knows its startup node
        return f"the redis cluster at {', '.join(startup_nodes(client))}"
    kwargs = client.connection_pool.connection_kwargs
    where = kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}"
    return f"redis at {where}, db {kwargs.get('db', 0)}"
