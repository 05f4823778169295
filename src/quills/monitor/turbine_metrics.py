"""The aggregator's own Prometheus metrics: instances connected, documents per second, reconnects."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

if TYPE_CHECKING:
    from quills.monitor.turbine_server import TurbineMonitor

__all__ = ("MonitorCollector", "monitor_metrics_endpoint")


class MonitorCollector(Collector):
    """Reads a :class:`TurbineMonitor`'s counters at scrape time.

    ``quills_monitor_documents_per_second`` is the rate over the last 10 s.
    """

    def __init__(self, monitor: TurbineMonitor) -> None:
        self._monitor = monitor

    def collect(self) -> Iterator[Metric]:
        monitor = self._monitor
        stats = monitor.stats
        instances = GaugeMetricFamily(
            "quills_monitor_instances", "Instances discovery reports up", labels=["cluster"]
        )
        connected = GaugeMetricFamily(
            "quills_monitor_instances_connected",
            "Instances whose stream is connected now",
            labels=["cluster"],
        )
        for name, cluster in monitor.clusters.items():
            instances.add_metric([name], len(cluster.readers))
            connected.add_metric([name], sum(1 for reader, _ in cluster.readers.values() if reader.connected))
        yield instances
        yield connected
        yield CounterMetricFamily(
            "quills_monitor_documents", "Instance documents aggregated", value=stats.documents
        )
        yield GaugeMetricFamily(
            "quills_monitor_documents_per_second",
            "Documents aggregated per second over the last 10 s",
            stats.documents_per_second(),
        )
        yield CounterMetricFamily(
            "quills_monitor_reconnects", "Reconnects to instances", value=stats.reconnects
        )
        bad = CounterMetricFamily(
            "quills_monitor_bad_input", "Instance input skipped or dropped, by reason", labels=["reason"]
        )
        for reason, count in sorted(stats.bad.items()):
            bad.add_metric([reason], count)
        yield bad
        events = CounterMetricFamily(
            "quills_monitor_host_events", "Hosts discovery reported up or down", labels=["kind"]
        )
        events.add_metric(["up"], monitor.hosts_up)
        events.add_metric(["down"], monitor.hosts_down)
        yield events
        yield CounterMetricFamily(
            "quills_monitor_discovery_errors", "Discovery polls that failed", value=monitor.discovery_errors
        )
        yield GaugeMetricFamily(
            "quills_monitor_stream_clients", "Clients reading /turbine.stream now", monitor.stream_clients
        )


def monitor_metrics_endpoint(monitor: TurbineMonitor) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint answering Prometheus scrapes with :class:`MonitorCollector`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MonitorCollector(monitor))

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return metrics
