"""Prometheus metrics of an ExpiryListener, for ``luminora-redis listen --metrics-port``.

Built on ``prometheus_client`` (the optional extra ``metrics``) rather than
a hand-written exposition: it gets the text format, label escaping, histogram
buckets and the HTTP endpoint right, and it is what scrapers are tested
against. Each `ListenerMetrics` has its own registry, so two listeners in one
process never collide and nothing lands in the library-wide default registry.

Exported series::

    luminora_redis_archived_total{path="notification"|"sweep"}  sessions archived
    luminora_redis_archive_lag_seconds                           archive time - deadline
    luminora_redis_sweeps_total                                  completed sweep passes
    luminora_redis_errors_total                                  failures logged
    luminora_redis_reconnects_total                              resubscriptions after a loss
    luminora_redis_deliveries_total                              archives the sink took
    luminora_redis_delivery_failures_total                       sink calls that raised
    luminora_redis_deliveries_pending                            outbox backlog, every bucket
    luminora_redis_delivery_oldest_age_seconds                   age of the oldest pending one
    luminora_redis_deliveries_quarantined                        deliveries out of attempts
    luminora_redis_sessions_quarantined                          sweep entries out of attempts
    luminora_redis_outage                                        1 while Redis cannot serve
    luminora_redis_outages_total                                 outages waited out or ongoing
    luminora_redis_unreadable_records_total                      stored records reads skipped,
                                                                 in this process

The backlog gauges are refreshed every few seconds by a listener that has an
``on_archived`` hook.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from luminora_redis.core.codec import unreadable_records_total
from luminora_redis.core.models import DeliveryBacklog
from luminora_redis.listener.expiry_listener import NOTIFICATION, SWEEP

__all__ = ["LAG_BUCKETS", "ListenerMetrics", "MetricsServer"]

#: Seconds; notifications land in the first few, sweeps within one interval.
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class MetricsServer:
    """The HTTP endpoint serving one registry, in a daemon thread; `close` stops it."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        self.host = host
        self.port = int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _Unreadable(Collector):
    """The process-wide count of unreadable records (``unreadable_records_total``), read
    at each scrape."""

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "luminora_redis_unreadable_records",
            "Stored records that reads in this process skipped as unreadable (an archived "
            "conversation says how many of its messages: unreadable_messages)",
            value=unreadable_records_total())


class ListenerMetrics:
    """A `ListenerObserver` that counts into Prometheus metrics."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._archived = Counter("luminora_redis_archived", "Sessions archived by this listener",
                                 ["path"], registry=self.registry)
        for path in (NOTIFICATION, SWEEP):
            self._archived.labels(path)  # both series exist from the start, at 0
        self._lag = Histogram("luminora_redis_archive_lag_seconds",
                              "Seconds from a session's deadline to its archive",
                              buckets=LAG_BUCKETS, registry=self.registry)
        self._sweeps = Counter("luminora_redis_sweeps", "Completed sweep passes",
                               registry=self.registry)
        self._errors = Counter("luminora_redis_errors",
                               "Failures logged: connections, archive calls, on_archived hooks",
                               registry=self.registry)
        self._reconnects = Counter("luminora_redis_reconnects",
                                   "Notification subscriptions re-established after a loss",
                                   registry=self.registry)
        self._delivered = Counter("luminora_redis_deliveries",
                                  "Archived conversations the on_archived sink took",
                                  registry=self.registry)
        self._delivery_failures = Counter("luminora_redis_delivery_failures",
                                          "on_archived calls that raised (retried later)",
                                          registry=self.registry)
        self._pending = Gauge("luminora_redis_deliveries_pending",
                              "Deliveries waiting in the outbox, in flight included",
                              registry=self.registry)
        self._oldest = Gauge("luminora_redis_delivery_oldest_age_seconds",
                             "Age of the oldest pending delivery (0 when none)",
                             registry=self.registry)
        self._dead = Gauge("luminora_redis_deliveries_quarantined",
                           "Deliveries quarantined after their maximum attempts",
                           registry=self.registry)
        self._stuck = Gauge("luminora_redis_sessions_quarantined",
                            "Deadline index entries quarantined after repeated failures",
                            registry=self.registry)
        self._outage = Gauge("luminora_redis_outage",
                             "1 while Redis is unreachable or refuses (OOM, BUSY, LOADING, ...)",
                             registry=self.registry)
        self._outages = Counter("luminora_redis_outages",
                                "Outages of Redis the listener waited out or is waiting out",
                                registry=self.registry)
        self.registry.register(_Unreadable())

    def archived(self, path: str, lag: float) -> None:
        self._archived.labels(path).inc()
        self._lag.observe(lag)

    def swept(self) -> None:
        self._sweeps.inc()

    def error(self) -> None:
        self._errors.inc()

    def reconnected(self) -> None:
        self._reconnects.inc()

    def delivered(self, attempts: int) -> None:
        self._delivered.inc()

    def delivery_failed(self) -> None:
        self._delivery_failures.inc()

    def outage(self, active: bool) -> None:
        self._outage.set(1 if active else 0)
        if active:
            self._outages.inc()

    def backlog(self, backlog: DeliveryBacklog) -> None:
        self._pending.set(backlog.pending)
        self._oldest.set(backlog.oldest_age_seconds or 0.0)
        self._dead.set(backlog.quarantined)
        self._stuck.set(backlog.quarantined_sessions)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> MetricsServer:
        """Serve ``/metrics`` on ``host:port`` (0 picks a free port) until closed."""
        return MetricsServer(self.registry, host, port)
