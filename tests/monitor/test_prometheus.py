"""Prometheus exposition: names, labels and values read from snapshots at scrape time."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

import quills
from quills.monitor.prometheus import prometheus_registry
from quills.testing import FakeClock


def _samples(registry: quills.Registry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(prometheus_registry(registry)).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _labels(command: str, group: str, **extra: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"group": group, "command": command, "pool": group, **extra}.items()))


def test_counts_gauges_and_circuit_state_are_exported_with_labels() -> None:
    clock = FakeClock()
    registry = quills.Registry()
    breaker = quills.BreakerOptions(window_type="count", window_size=5, request_volume_threshold=5)

    @quills.command(
        group="pay",
        name="charge",
        registry=registry,
        clock=clock,
        isolation="semaphore",
        breaker=breaker,
        fallback=lambda: 0,
    )
    def charge() -> int:
        raise ConnectionError("down")

    for _ in range(8):
        charge()
    samples = _samples(registry)
    labels = _labels("charge", "pay")
    assert samples[("quills_command_rolling_events", _labels("charge", "pay", event="failure"))] == 5
    assert samples[("quills_command_rolling_events", _labels("charge", "pay", event="short_circuited"))] == 3
    assert samples[("quills_command_circuit_open", labels)] == 1
    assert samples[("quills_command_rolling_window_seconds", labels)] == 10
    assert samples[("quills_command_timeout_seconds", labels)] == 1


def test_latency_gauge_histograms_are_cumulative_in_seconds() -> None:
    clock = FakeClock()
    registry = quills.Registry()

    @quills.command(
        group="db", name="query", registry=registry, clock=clock, isolation="semaphore", timeout=None
    )
    def query(ms: float) -> None:
        clock.advance(ms / 1000)

    for ms in (2, 2, 30, 300):
        query(ms)
    samples = _samples(registry)
    bucket = "quills_command_rolling_latency_execute_seconds_bucket"
    assert samples[(bucket, _labels("query", "db", le="0.001"))] == 0
    assert samples[(bucket, _labels("query", "db", le="0.0025"))] == 2
    assert samples[(bucket, _labels("query", "db", le="0.05"))] == 3
    assert samples[(bucket, _labels("query", "db", le="0.5"))] == 4
    assert samples[(bucket, _labels("query", "db", le="+Inf"))] == 4
    total = samples[("quills_command_rolling_latency_execute_seconds_gsum", _labels("query", "db"))]
    assert abs(total - 0.334) < 0.334 * 0.01


def test_lifetime_counters_and_histograms_keep_counting_past_the_windows() -> None:
    clock = FakeClock()
    registry = quills.Registry()

    @quills.command(
        group="db", name="query", registry=registry, clock=clock, isolation="semaphore", timeout=None
    )
    def query(ms: float) -> None:
        clock.advance(ms / 1000)

    for ms in (2, 30):
        query(ms)
    clock.advance(120.0)  # both windows have forgotten these calls
    query(300)
    samples = _samples(registry)
    labels = _labels("query", "db")
    assert samples[("quills_command_events_total", _labels("query", "db", event="success"))] == 3
    assert samples[("quills_command_rolling_events", _labels("query", "db", event="success"))] == 1
    assert samples[("quills_command_latency_seconds_count", labels)] == 3
    assert samples[("quills_command_latency_seconds_bucket", _labels("query", "db", le="0.05"))] == 2
    assert abs(samples[("quills_command_latency_seconds_sum", labels)] - 0.332) < 0.332 * 0.01


def test_thread_pools_are_exported() -> None:
    registry = quills.Registry()

    @quills.command(group="users", name="get_user", registry=registry)
    def get_user() -> int:
        return 1

    for _ in range(3):
        get_user()
    samples = _samples(registry)
    assert samples[("quills_thread_pool_completed_tasks_total", (("pool", "users"),))] == 3
    assert samples[("quills_thread_pool_core_threads", (("pool", "users"),))] == 10
    assert samples[("quills_thread_pool_rolling_executed_tasks", (("pool", "users"),))] == 3
