"""Prometheus exposition of command and thread-pool metrics (read from snapshots at scrape time).

Counters and histograms follow Prometheus conventions: ``quills_command_events_total{event}`` and the
``quills_command_latency_seconds`` histogram (total latency, as callers see it) count since the command
was created (use ``rate()``). The Hystrix views are there too, as gauges: counts over the rolling window
(``..._rolling_...``, with the window length as a metric of its own) and gauge histograms over the
percentile window (``quills_command_rolling_latency_*_seconds``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, make_asgi_app, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from quills.metrics import histogram
from quills.metrics.events import EventType
from quills.resilience.decorator import resolve_registry
from quills.resilience.registry import Registry

__all__ = ("QuillsCollector", "LATENCY_BUCKETS", "prometheus_registry", "prometheus_app", "prometheus_wsgi")

#: upper bounds (seconds) of the exported latency buckets; +Inf is added
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_TICK_S = 1024e-9  # a histogram bucket unit (1024 ns) in seconds
_LABELS = ("group", "command", "pool")


def _buckets(buckets: dict[int, int]) -> tuple[list[tuple[str, float]], float]:
    """Cumulative (le, count) pairs and the sum (seconds) of a sparse histogram."""
    counts = [0] * (len(LATENCY_BUCKETS) + 1)
    total = 0.0
    for index, count in buckets.items():
        seconds = histogram.value_of(index) * _TICK_S
        total += seconds * count
        slot = 0
        while slot < len(LATENCY_BUCKETS) and seconds > LATENCY_BUCKETS[slot]:
            slot += 1
        counts[slot] += count
    out: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip((*(repr(b) for b in LATENCY_BUCKETS), "+Inf"), counts, strict=True):
        running += count
        out.append((bound, running))
    return out, total


class QuillsCollector(Collector):
    """A prometheus-client collector over a :class:`quills.Registry` (register it in any CollectorRegistry).

    Metric names: ``quills_command_events_total{group,command,pool,event}``,
    ``quills_command_latency_seconds`` (histogram of total latency),
    ``quills_command_rolling_events{group,command,pool,event}``,
    ``quills_command_rolling_window_seconds``, ``quills_command_requests``, ``quills_command_errors``,
    ``quills_command_error_ratio``, ``quills_command_concurrent_executions``,
    ``quills_command_rolling_max_concurrent_executions``, ``quills_command_circuit_open``,
    ``quills_command_rolling_latency_execute_seconds`` and ``..._total_seconds`` (gauge histograms),
    ``quills_command_timeout_seconds``; and per pool ``quills_thread_pool_*``.
    """

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        snapshots = self._registry.snapshots()
        events = GaugeMetricFamily(
            "quills_command_rolling_events",
            "Command events in the rolling window, by Hystrix event type",
            labels=(*_LABELS, "event"),
        )
        window = GaugeMetricFamily(
            "quills_command_rolling_window_seconds", "Length of the rolling window", labels=_LABELS
        )
        requests = GaugeMetricFamily(
            "quills_command_requests", "Requests in the health window (what the breaker sees)", labels=_LABELS
        )
        errors = GaugeMetricFamily("quills_command_errors", "Errors in the health window", labels=_LABELS)
        error_ratio = GaugeMetricFamily(
            "quills_command_error_ratio", "Errors / requests in the health window, 0..1", labels=_LABELS
        )
        concurrent = GaugeMetricFamily(
            "quills_command_concurrent_executions", "Executions running now", labels=_LABELS
        )
        max_concurrent = GaugeMetricFamily(
            "quills_command_rolling_max_concurrent_executions",
            "Highest concurrent executions in the rolling window",
            labels=_LABELS,
        )
        circuit = GaugeMetricFamily(
            "quills_command_circuit_open",
            "1 while the circuit is open, half-open or forced open",
            labels=_LABELS,
        )
        timeout = GaugeMetricFamily(
            "quills_command_timeout_seconds", "Configured timeout (0 for none)", labels=_LABELS
        )
        hists = {
            kind: GaugeHistogramMetricFamily(
                f"quills_command_rolling_latency_{kind}_seconds",
                f"Latency ({kind}) over the percentile window",
                labels=_LABELS,
            )
            for kind in ("execute", "total")
        }
        lifetime_events = CounterMetricFamily(
            "quills_command_events",
            "Command events since start, by Hystrix event type",
            labels=(*_LABELS, "event"),
        )
        lifetime_latency = HistogramMetricFamily(
            "quills_command_latency_seconds", "Latency as callers see it (total) since start", labels=_LABELS
        )
        for snap in snapshots:
            labels = [snap.group, snap.name, snap.pool]
            for event in EventType:
                events.add_metric([*labels, event.name.lower()], snap.counts.get(event, 0))
            window.add_metric(labels, snap.options.metrics_window)
            requests.add_metric(labels, snap.request_count)
            errors.add_metric(labels, snap.error_count)
            error_ratio.add_metric(
                labels, snap.error_count / snap.request_count if snap.request_count else 0.0
            )
            concurrent.add_metric(labels, snap.concurrent)
            max_concurrent.add_metric(labels, snap.rolling_max_concurrent)
            circuit.add_metric(labels, 1.0 if snap.breaker.is_open else 0.0)
            timeout.add_metric(labels, snap.options.timeout or 0.0)
            for kind, latency in (("execute", snap.latency_execute), ("total", snap.latency_total)):
                buckets, total = _buckets(latency.buckets)
                hists[kind].add_metric(labels, buckets, total)
            for event in EventType:
                lifetime_events.add_metric([*labels, event.name.lower()], snap.lifetime_counts.get(event, 0))
            buckets, total = _buckets(snap.lifetime_total)
            lifetime_latency.add_metric(labels, buckets, total)
        yield from (
            events,
            window,
            requests,
            errors,
            error_ratio,
            concurrent,
            max_concurrent,
            circuit,
            timeout,
        )
        yield from hists.values()
        yield lifetime_events
        yield lifetime_latency
        yield from self._pools()

    def _pools(self) -> Iterable[Metric]:
        pools = self._registry.pool_snapshots()
        gauges = {
            "active_threads": ("Threads running a task now", "active"),
            "queued_tasks": ("Tasks waiting for a thread", "queued"),
            "threads": ("Worker threads alive", "pool_size"),
            "core_threads": ("Configured core size", "core_size"),
            "largest_threads": ("Most worker threads ever alive", "largest_pool_size"),
            "rolling_executed_tasks": ("Tasks executed in the rolling window", "rolling_executed"),
            "rolling_rejected_tasks": ("Tasks rejected in the rolling window", "rolling_rejected"),
            "rolling_max_active_threads": ("Most active threads in the rolling window", "rolling_max_active"),
        }
        for suffix, (doc, field) in gauges.items():
            family = GaugeMetricFamily(f"quills_thread_pool_{suffix}", doc, labels=["pool"])
            for pool in pools:
                family.add_metric([pool.name], getattr(pool, field))
            yield family
        completed = CounterMetricFamily(
            "quills_thread_pool_completed_tasks", "Tasks completed since the pool started", labels=["pool"]
        )
        for pool in pools:
            completed.add_metric([pool.name], pool.completed)
        yield completed


def prometheus_registry(registry: Registry) -> CollectorRegistry:
    """A fresh prometheus-client registry holding only a :class:`QuillsCollector` for ``registry``."""
    collectors = CollectorRegistry(auto_describe=False)
    collectors.register(QuillsCollector(registry))
    return collectors


def prometheus_app(registry: Registry | None = None) -> Callable[..., Any]:
    """An ASGI app answering Prometheus scrapes for ``registry`` (default ``quills.registry``)."""
    return make_asgi_app(registry=prometheus_registry(resolve_registry(registry)))


def prometheus_wsgi(registry: Registry | None = None) -> Callable[..., Any]:
    """A WSGI app answering Prometheus scrapes for ``registry`` (default ``quills.registry``)."""
    return make_wsgi_app(registry=prometheus_registry(resolve_registry(registry)))
