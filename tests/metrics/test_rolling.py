"""Rolling windows: sums equal what was recorded, old buckets fall out, health drives the breaker."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from quills.metrics.events import EventType
from quills.metrics.rolling import HealthCounts, RollingMetrics
from quills.testing import FakeClock


def _record(metrics: RollingMetrics, clock: FakeClock, event: EventType) -> None:
    now = clock.now_ns()
    if now >= metrics.bucket_end:
        metrics.rotate(now)
    metrics.current[event] += 1


@given(st.lists(st.tuples(st.sampled_from(list(EventType)), st.floats(0.0, 0.3)), max_size=200))
def test_window_sums_equal_recorded_totals_within_the_window(steps: list[tuple[EventType, float]]) -> None:
    clock = FakeClock()
    metrics = RollingMetrics(clock.now_ns)
    recorded: list[tuple[int, EventType]] = []
    for event, pause in steps:
        clock.advance(pause)
        _record(metrics, clock, event)
        recorded.append((clock.now_ns(), event))
    counts = metrics.counts()
    # the window holds the current bucket plus the 20 closed 500 ms buckets before it
    window_start = metrics.bucket_end - 21 * 500_000_000
    for event in EventType:
        expected = sum(1 for at, e in recorded if e is event and at >= window_start)
        assert counts[event] == expected


def test_events_older_than_the_window_are_forgotten() -> None:
    clock = FakeClock()
    metrics = RollingMetrics(clock.now_ns)
    for _ in range(5):
        _record(metrics, clock, EventType.FAILURE)
    assert metrics.counts()[EventType.FAILURE] == 5
    clock.advance(11.0)
    assert metrics.counts()[EventType.FAILURE] == 0


def test_health_counts_follow_hystrix_definition() -> None:
    clock = FakeClock()
    seen: list[HealthCounts] = []
    metrics = RollingMetrics(clock.now_ns, on_health=seen.append)
    for event, times in (
        (EventType.SUCCESS, 6),
        (EventType.FAILURE, 2),
        (EventType.TIMEOUT, 1),
        (EventType.SEMAPHORE_REJECTED, 1),
        (EventType.SHORT_CIRCUITED, 7),  # not a health event
        (EventType.BAD_REQUEST, 3),  # not a health event
    ):
        for _ in range(times):
            _record(metrics, clock, event)
    clock.advance(0.5)
    metrics.rotate(clock.now_ns())
    assert seen[-1] == HealthCounts(total=10, errors=4, slow=0)
    assert seen[-1].error_percentage == 40


def test_reset_health_keeps_dashboard_counters() -> None:
    clock = FakeClock()
    metrics = RollingMetrics(clock.now_ns)
    for _ in range(4):
        _record(metrics, clock, EventType.FAILURE)
    clock.advance(0.6)
    metrics.rotate(clock.now_ns())
    assert metrics.health().total == 4
    metrics.reset_health()
    assert metrics.health() == HealthCounts(0, 0, 0)
    assert metrics.counts()[EventType.FAILURE] == 4
    _record(metrics, clock, EventType.SUCCESS)
    clock.advance(0.5)
    metrics.rotate(clock.now_ns())
    assert metrics.health() == HealthCounts(1, 0, 0)
    # once the pre-reset bucket leaves the window, nothing is subtracted twice
    clock.advance(11.0)
    metrics.rotate(clock.now_ns())
    assert metrics.health() == HealthCounts(0, 0, 0)


def test_latency_window_drops_buckets_older_than_sixty_seconds() -> None:
    clock = FakeClock()
    metrics = RollingMetrics(clock.now_ns)
    metrics.rotate(clock.now_ns())
    metrics.hist_both[100] += 1
    clock.advance(30.0)
    metrics.rotate(clock.now_ns())
    metrics.split_histograms()[0][200] += 1
    window = metrics.latency()
    assert window.execute == {100: 1, 200: 1}
    assert window.total == {100: 1}
    clock.advance(40.0)
    window = metrics.latency()
    assert window.execute == {200: 1}
    clock.advance(60.0)
    assert metrics.latency().execute == {}


def test_lifetime_counts_and_latency_outlive_the_windows() -> None:
    clock = FakeClock()
    metrics = RollingMetrics(clock.now_ns)
    for _ in range(3):
        _record(metrics, clock, EventType.SUCCESS)
    metrics.hist_both[50] += 3
    assert metrics.lifetime_counts()[EventType.SUCCESS] == 3  # the open bucket counts too
    clock.advance(100.0)  # past both the 10 s and the 60 s windows
    _record(metrics, clock, EventType.FAILURE)
    metrics.split_histograms()[0][70] += 1
    assert metrics.counts()[EventType.SUCCESS] == 0
    lifetime = metrics.lifetime_counts()
    assert (lifetime[EventType.SUCCESS], lifetime[EventType.FAILURE]) == (3, 1)
    assert metrics.latency().execute == {70: 1}
    assert metrics.lifetime_total_latency() == {50: 3}  # execute-only latencies are not in the total
