"""Consumer numbers reach Prometheus through StreamsCollector."""

from __future__ import annotations

import dataclasses

from prometheus_client import CollectorRegistry, generate_latest

from quills.streams import ConsumerSnapshot, StreamsCollector

SNAP = ConsumerSnapshot(
    topic="installs",
    group="reports",
    batches=3,
    messages=25_000,
    last_batch_size=5_000,
    batch_size_max=10_000,
    processing_seconds_total=0.5,
    last_processing_seconds=0.1,
    dlq_messages=2,
    handler_failures=1,
    retries=1,
    stale_batches=0,
    lag=None,
    is_running=True,
    is_healthy=False,
    is_parked=True,
    last_error="ValueError: bug",
)


class Fixed:
    def __init__(self, snap: ConsumerSnapshot) -> None:
        self.snap = snap

    def snapshot(self) -> ConsumerSnapshot:
        return self.snap


def test_collector_exports_every_counter_and_gauge_with_topic_and_group_labels() -> None:
    registry = CollectorRegistry()
    collector = StreamsCollector([Fixed(SNAP)])
    collector.add(Fixed(dataclasses.replace(SNAP, group="other", lag=7, is_healthy=True, is_parked=False)))
    registry.register(collector)
    text = generate_latest(registry).decode()
    assert 'quills_stream_messages_total{group="reports",topic="installs"} 25000.0' in text
    assert 'quills_stream_dlq_messages_total{group="reports",topic="installs"} 2.0' in text
    assert 'quills_stream_processing_seconds_total{group="reports",topic="installs"} 0.5' in text
    assert 'quills_stream_batch_size{group="reports",topic="installs"} 5000.0' in text
    assert 'quills_stream_healthy{group="reports",topic="installs"} 0.0' in text
    assert 'quills_stream_parked{group="reports",topic="installs"} 1.0' in text
    assert 'quills_stream_lag_messages{group="other",topic="installs"} 7.0' in text
    assert 'quills_stream_lag_messages{group="reports"' not in text  # unknown lag is left out
