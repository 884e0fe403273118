"""The listener's settings and the observer it reports to.

`ListenerSettings` is the typed form of every `ExpiryListener` keyword;
`ListenerObserver` is what a metrics exporter implements.
"""

from __future__ import annotations

from typing import Annotated, Protocol

from pydantic import ConfigDict, Field, StrictBool, StrictInt, model_validator

from luminora_redis.core.settings import SettingsModel

__all__ = ["ListenerObserver", "ListenerSettings"]

Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False, strict=True)]


class ListenerSettings(SettingsModel):
    """How a listener sweeps, delivers and reports; every field is also a keyword of
    `ExpiryListener`.

    ``delivery_interval`` is how often the whole outbox is scanned for deliveries
    recorded elsewhere (``end_session``, another listener's lapsed lease); what
    this listener archives it delivers at once. Of all listeners with a hook of a
    key prefix only the holder of the outbox scan lease runs those full scans;
    ``delivery_scan_lease`` is how long that lease lasts (None: 4 ×
    ``delivery_interval``, at least 1 s), so when its holder dies another takes
    over within about that long plus one ``delivery_interval`` (see
    ``luminora_redis.listener.deliveries``). It must exceed ``delivery_interval``.

    ``delivery_max_attempts`` None (the default) retries a failing sink forever, backing off to
    ``delivery_backoff_cap``: the sink sees every archive once it recovers. A
    number quarantines a delivery after that many attempts (kept, listed by
    ``list_quarantined``). ``delivery_lease`` must exceed the hook's longest
    call, or another listener delivers the same conversation again.

    ``hook_timeout`` bounds one call of an async ``on_archived``, and one call of
    ``summarize`` (seconds; None: no bound). A call that overruns is abandoned (cancelled and no longer
    awaited), counts as a failed attempt, and frees its worker, so hung calls
    never stall the other deliveries. It must be below ``delivery_lease``; left
    at its default (30 s), it is lowered to half the lease when the lease is
    shorter than a minute. A plain (non-async) hook runs on the event loop and
    cannot be timed out; a plain ``summarize`` runs in a thread, abandoned when it
    overruns.

    ``sweep_lease`` is how long the sweep lease lasts (None: 4 × ``sweep_interval``,
    at least 1 s): of all listeners of a key prefix only its holder runs the
    periodic full sweeps, and when the holder dies another takes over within
    about that long (see ``luminora_redis.listener.sweeper``). It must exceed
    ``sweep_interval``, at which the holder renews it.

    ``full_sweep_interval`` is how often that holder sweeps every bucket (seconds;
    at least ``sweep_interval``). Its other ticks read only the buckets whose
    due-bucket hint has passed; the full sweeps are what restores a lost hint.

    An invalid setting raises ``InvalidSettings``, also from ``ExpiryListener``'s keywords.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    sweep_interval: Seconds = 0.25
    sweep_batch: StrictInt = Field(500, ge=1)
    sweep_max_failures: StrictInt = Field(5, ge=1)
    sweep_lease: Seconds | None = None
    full_sweep_interval: Seconds = 30.0
    notifications: StrictBool = True
    #: Sweep at once after every (re)subscription, for what expired meanwhile. Off, the
    #: listener counts as live as soon as it is subscribed (for tests of the fast path).
    catch_up: StrictBool = True
    configure_notifications: StrictBool = True
    name: str | None = None
    delivery_interval: Seconds = 1.0
    delivery_scan_lease: Seconds | None = None
    delivery_workers: StrictInt = Field(8, ge=1, le=1024)
    delivery_lease: Seconds = 60.0
    delivery_backoff: Seconds = 0.5
    delivery_backoff_cap: Seconds = 300.0
    delivery_max_attempts: StrictInt | None = Field(None, ge=1)
    hook_timeout: Seconds | None = 30.0
    heartbeat_interval: Seconds = 2.0

    @model_validator(mode="after")
    def _lease_outlasts_the_interval(self) -> ListenerSettings:
        if self.sweep_lease is not None and self.sweep_lease <= self.sweep_interval:
            raise ValueError(f"sweep_lease ({self.sweep_lease} s) must exceed sweep_interval "
                             f"({self.sweep_interval} s), at which its holder renews it")
        if self.delivery_scan_lease is not None \
                and self.delivery_scan_lease <= self.delivery_interval:
            raise ValueError(f"delivery_scan_lease ({self.delivery_scan_lease} s) must exceed "
                             f"delivery_interval ({self.delivery_interval} s), at which its "
                             f"holder renews it")
        if self.hook_timeout is not None and self.hook_timeout >= self.delivery_lease \
                and "hook_timeout" in self.model_fields_set:
            raise ValueError(f"hook_timeout ({self.hook_timeout} s) must be below "
                             f"delivery_lease ({self.delivery_lease} s), or another listener "
                             f"delivers the same conversation while the call still runs")
        return self

    @property
    def hook_limit(self) -> float | None:
        """The effective ``hook_timeout``: as given, or its default lowered to half of a
        delivery lease shorter than a minute."""
        if self.hook_timeout is None or "hook_timeout" in self.model_fields_set:
            return self.hook_timeout
        return min(self.hook_timeout, self.delivery_lease / 2)

    @property
    def lease(self) -> float:
        """The sweep lease length in seconds, ``sweep_lease`` or its default."""
        if self.sweep_lease is not None:
            return self.sweep_lease
        return max(1.0, 4 * self.sweep_interval)

    @property
    def scan_lease(self) -> float:
        """The outbox scan lease length in seconds, ``delivery_scan_lease`` or its default."""
        if self.delivery_scan_lease is not None:
            return self.delivery_scan_lease
        return max(1.0, 4 * self.delivery_interval)


class ListenerObserver(Protocol):
    """Receives what a listener does, e.g. to export metrics (see ``luminora_redis.listener.metrics``).

    Called on the event loop: keep each call cheap and non-blocking. The
    delivery methods (``delivered(attempts)``, ``delivery_failed()``,
    ``backlog(DeliveryBacklog)``) and ``outage(active)`` (an outage began, or
    the last one ended) are called only when the observer has them.
    """

    def archived(self, path: str, lag: float) -> None:
        """A session was archived by this listener; ``lag`` is seconds past its deadline
        (this host's clock against the deadline Redis set, so it assumes synced clocks)."""

    def swept(self) -> None:
        """A sweep pass completed."""

    def error(self) -> None:
        """Something failed and was logged: a connection, an archive call, the hook."""

    def reconnected(self) -> None:
        """The notification subscription was re-established after a loss."""

