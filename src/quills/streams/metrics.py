"""What a consumer reports: a frozen ``ConsumerSnapshot``, and a Prometheus collector over consumers."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ("ConsumerSnapshot", "StreamsCollector")


@dataclass(frozen=True)
class ConsumerSnapshot:
    """A consumer's numbers at one moment (counters since it was made).

    ``lag`` is the broker's count of messages not yet read by this member (None until known; on Kafka it
    is computed from the high watermark, which some Kafka-protocol brokers report short).
    ``batch_size_max`` is the largest batch handled; ``messages / batches`` is the mean.
    ``is_healthy`` is False while a batch is parked (the handler kept failing) or after a fatal error.
    """

    topic: str
    group: str
    batches: int
    messages: int
    last_batch_size: int
    batch_size_max: int
    processing_seconds_total: float
    last_processing_seconds: float
    dlq_messages: int
    handler_failures: int
    retries: int
    stale_batches: int
    lag: int | None
    is_running: bool
    is_healthy: bool
    is_parked: bool
    last_error: str


class _HasSnapshot(Protocol):
    def snapshot(self) -> ConsumerSnapshot: ...


class StreamsCollector(Collector):
    """Prometheus metrics for consumers: ``REGISTRY.register(StreamsCollector([consumer, ...]))``.

    Every metric carries ``topic`` and ``group`` labels: ``quills_stream_messages_total``,
    ``quills_stream_batches_total``, ``quills_stream_processing_seconds_total``,
    ``quills_stream_dlq_messages_total``, ``quills_stream_handler_failures_total``,
    ``quills_stream_retries_total``, ``quills_stream_stale_batches_total``, ``quills_stream_batch_size``
    (last), ``quills_stream_batch_size_max``, ``quills_stream_lag_messages``, ``quills_stream_healthy``
    and ``quills_stream_parked`` (1 or 0).
    """

    def __init__(self, consumers: Iterable[_HasSnapshot] = ()) -> None:
        self._consumers = list(consumers)

    def add(self, consumer: _HasSnapshot) -> None:
        """Report ``consumer`` too."""
        self._consumers.append(consumer)

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        labels = ["topic", "group"]
        counters = {
            "messages": CounterMetricFamily("quills_stream_messages", "Messages handled", labels=labels),
            "batches": CounterMetricFamily("quills_stream_batches", "Batches handled", labels=labels),
            "processing_seconds_total": CounterMetricFamily(
                "quills_stream_processing_seconds",
                "Seconds spent handling and storing batches",
                labels=labels,
            ),
            "dlq_messages": CounterMetricFamily(
                "quills_stream_dlq_messages", "Messages sent to the dead-letter topic", labels=labels
            ),
            "handler_failures": CounterMetricFamily(
                "quills_stream_handler_failures", "Handler calls that raised", labels=labels
            ),
            "retries": CounterMetricFamily("quills_stream_retries", "Batch retries", labels=labels),
            "stale_batches": CounterMetricFamily(
                "quills_stream_stale_batches", "Batches refused by the sink as already stored", labels=labels
            ),
        }
        gauges = {
            "last_batch_size": GaugeMetricFamily(
                "quills_stream_batch_size", "Last batch size", labels=labels
            ),
            "batch_size_max": GaugeMetricFamily(
                "quills_stream_batch_size_max", "Largest batch size", labels=labels
            ),
            "lag": GaugeMetricFamily("quills_stream_lag_messages", "Messages not yet read", labels=labels),
            "is_healthy": GaugeMetricFamily("quills_stream_healthy", "1 if healthy", labels=labels),
            "is_parked": GaugeMetricFamily("quills_stream_parked", "1 if a batch is parked", labels=labels),
        }
        for consumer in self._consumers:
            snap = consumer.snapshot()
            values = [snap.topic, snap.group]
            for name, family in counters.items():
                family.add_metric(values, float(getattr(snap, name)))
            for name, gauge in gauges.items():
                value = getattr(snap, name)
                if value is not None:
                    gauge.add_metric(values, float(value))
        yield from counters.values()
        yield from gauges.values()
