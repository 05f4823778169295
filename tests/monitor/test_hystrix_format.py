"""Golden checks of every document type against the reference key lists (hystrix-stream.md §1)."""

from __future__ import annotations

import threading
from typing import Any

import msgspec
import pytest

import quills
from quills.metrics import histogram
from quills.monitor.hystrix_format import (
    COLLAPSER_KEYS,
    COMMAND_KEYS,
    THREAD_POOL_KEYS,
    collapser_document,
    command_document,
    encode_events,
    thread_pool_document,
)
from quills.monitor.tick import tick_documents
from quills.testing import FakeClock

# Written out from the reference, independently of the module's constants.
GOLDEN_COMMAND = """type name group currentTime isCircuitBreakerOpen errorPercentage errorCount requestCount
rollingCountBadRequests rollingCountCollapsedRequests rollingCountEmit rollingCountExceptionsThrown
rollingCountFailure rollingCountFallbackEmit rollingCountFallbackFailure rollingCountFallbackMissing
rollingCountFallbackRejection rollingCountFallbackSuccess rollingCountResponsesFromCache
rollingCountSemaphoreRejected rollingCountShortCircuited rollingCountSuccess rollingCountThreadPoolRejected
rollingCountTimeout currentConcurrentExecutionCount rollingMaxConcurrentExecutionCount latencyExecute_mean
latencyExecute latencyTotal_mean latencyTotal propertyValue_circuitBreakerRequestVolumeThreshold
propertyValue_circuitBreakerSleepWindowInMilliseconds propertyValue_circuitBreakerErrorThresholdPercentage
propertyValue_circuitBreakerForceOpen propertyValue_circuitBreakerForceClosed
propertyValue_circuitBreakerEnabled
propertyValue_executionIsolationStrategy propertyValue_executionIsolationThreadTimeoutInMilliseconds
propertyValue_executionTimeoutInMilliseconds propertyValue_executionIsolationThreadInterruptOnTimeout
propertyValue_executionIsolationThreadPoolKeyOverride
propertyValue_executionIsolationSemaphoreMaxConcurrentRequests
propertyValue_fallbackIsolationSemaphoreMaxConcurrentRequests
propertyValue_metricsRollingStatisticalWindowInMilliseconds propertyValue_requestCacheEnabled
propertyValue_requestLogEnabled reportingHosts threadPool""".split()
GOLDEN_POOL = """type name currentTime currentActiveCount currentCompletedTaskCount currentCorePoolSize
currentLargestPoolSize currentMaximumPoolSize currentPoolSize currentQueueSize currentTaskCount
rollingCountThreadsExecuted rollingMaxActiveThreads rollingCountCommandRejections
propertyValue_queueSizeRejectionThreshold propertyValue_metricsRollingStatisticalWindowInMilliseconds
reportingHosts""".split()
GOLDEN_COLLAPSER = """type name currentTime rollingCountRequestsBatched rollingCountBatches
rollingCountResponsesFromCache batchSize_mean batchSize propertyValue_requestCacheEnabled
propertyValue_maxRequestsInBatch propertyValue_timerDelayInMilliseconds reportingHosts""".split()
PERCENTILES = ["0", "25", "50", "75", "90", "95", "99", "99.5", "100"]
# keys the stock dashboard's validateData requires (reference §4), so a tile is drawn
DASHBOARD_REQUIRED = """reportingHosts type name group isCircuitBreakerOpen errorPercentage errorCount
requestCount
rollingCountCollapsedRequests rollingCountExceptionsThrown rollingCountFailure rollingCountFallbackFailure
rollingCountFallbackRejection rollingCountFallbackSuccess rollingCountResponsesFromCache
rollingCountSemaphoreRejected rollingCountShortCircuited rollingCountSuccess rollingCountThreadPoolRejected
rollingCountTimeout rollingCountBadRequests currentConcurrentExecutionCount latencyExecute_mean
latencyExecute""".split()


def _no_floats(value: Any, path: str = "") -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _no_floats(item, f"{path}.{key}")
    else:
        assert not isinstance(value, float), f"{path} is a float ({value}); Turbine would not sum it"


def _registry_with_traffic() -> quills.Registry:
    """Two commands, 7 successes and 3 failures, with the health window closed over them."""
    registry = quills.Registry()
    clock = FakeClock()

    @quills.command(group="users", name="get_user", registry=registry, timeout=2.0, clock=clock)
    def get_user() -> int:
        return 1

    @quills.command(
        group="pay", name="charge", registry=registry, isolation="semaphore", fallback=lambda: 0, clock=clock
    )
    def charge() -> int:
        raise ConnectionError("down")

    for _ in range(7):
        get_user()
    for _ in range(3):
        charge()
    clock.advance(0.6)  # health counts come out every 500 ms, as in Hystrix
    return registry


def test_command_document_has_the_48_reference_keys_in_order_then_extensions() -> None:
    registry = _registry_with_traffic()
    doc = command_document(registry.snapshots()[0])
    assert len(GOLDEN_COMMAND) == 48
    assert list(doc)[:48] == GOLDEN_COMMAND
    assert list(doc)[48:] == ["quills_latencyExecute_hist", "quills_latencyTotal_hist"]
    assert list(COMMAND_KEYS) == GOLDEN_COMMAND
    assert list(command_document(registry.snapshots()[0], histograms=False)) == GOLDEN_COMMAND
    assert set(DASHBOARD_REQUIRED) <= set(doc)
    assert list(doc["latencyExecute"]) == PERCENTILES
    assert list(doc["latencyTotal"]) == PERCENTILES


def test_command_document_values_follow_the_snapshot() -> None:
    registry = _registry_with_traffic()
    by_name = {doc["name"]: doc for doc in map(command_document, registry.snapshots())}
    ok, bad = by_name["get_user"], by_name["charge"]
    assert (ok["type"], ok["group"], ok["threadPool"]) == ("HystrixCommand", "users", "users")
    assert ok["rollingCountSuccess"] == 7 and ok["requestCount"] == 7 and ok["errorPercentage"] == 0
    assert bad["rollingCountFailure"] == 3 and bad["rollingCountFallbackSuccess"] == 3
    assert bad["errorCount"] == 3 and bad["errorPercentage"] == 100
    assert bad["propertyValue_executionIsolationStrategy"] == "SEMAPHORE"
    assert ok["propertyValue_executionIsolationStrategy"] == "THREAD"
    assert ok["propertyValue_executionTimeoutInMilliseconds"] == 2000
    assert ok["propertyValue_executionIsolationThreadTimeoutInMilliseconds"] == 2000
    assert ok["propertyValue_circuitBreakerSleepWindowInMilliseconds"] == 5000
    assert ok["propertyValue_metricsRollingStatisticalWindowInMilliseconds"] == 10000
    assert ok["propertyValue_executionIsolationThreadPoolKeyOverride"] is None
    assert ok["reportingHosts"] == 1
    assert sum(ok["quills_latencyExecute_hist"].values()) == 7
    _no_floats(ok)
    _no_floats(bad)


def test_currenttime_is_epoch_milliseconds() -> None:
    clock = FakeClock(wall_ms=1_800_000_000_123)
    registry = quills.Registry()

    @quills.command(group="g", registry=registry, clock=clock, isolation="semaphore")
    def f() -> None:
        return None

    f()
    assert command_document(registry.snapshots()[0])["currentTime"] == 1_800_000_000_123


def test_latencies_are_whole_milliseconds_from_the_histogram() -> None:
    clock = FakeClock()
    registry = quills.Registry()

    @quills.command(group="g", registry=registry, clock=clock, isolation="semaphore", timeout=None)
    def slow() -> None:
        clock.advance(0.0123)  # 12.3 ms inside the call

    for _ in range(5):
        slow()
    doc = command_document(registry.snapshots()[0])
    expected = round(histogram.value_of(histogram.index_of(12_300_000 >> 10)) * 1024 / 1e6)
    assert doc["latencyExecute"]["50"] == expected == 12
    assert doc["latencyExecute_mean"] == 12
    assert isinstance(doc["latencyExecute"]["99.5"], int)


def test_circuit_is_reported_open_while_half_open() -> None:
    clock = FakeClock()
    registry = quills.Registry()
    fail = threading.Event()
    fail.set()
    entered, release = threading.Event(), threading.Event()
    breaker = quills.BreakerOptions(window_type="count", window_size=4, request_volume_threshold=2)

    @quills.command(
        group="g", registry=registry, clock=clock, isolation="semaphore", breaker=breaker, fallback=lambda: 0
    )
    def flaky() -> int:
        if fail.is_set():
            raise ConnectionError("down")
        entered.set()
        release.wait(5)
        return 1

    for _ in range(4):
        flaky()
    assert command_document(registry.snapshots()[0])["isCircuitBreakerOpen"] is True
    clock.advance(6.0)  # past the 5 s sleep window: the next call is the trial
    fail.clear()
    trial = threading.Thread(target=flaky)
    trial.start()
    assert entered.wait(5)
    try:
        snapshot = registry.snapshots()[0]
        assert snapshot.breaker.state is quills.CircuitState.HALF_OPEN
        assert command_document(snapshot)["isCircuitBreakerOpen"] is True
    finally:
        release.set()
        trial.join(5)
    assert command_document(registry.snapshots()[0])["isCircuitBreakerOpen"] is False


def test_disabled_breaker_is_never_reported_open() -> None:
    registry = quills.Registry()
    breaker = quills.BreakerOptions(enabled=False)

    @quills.command(group="g", registry=registry, isolation="semaphore", breaker=breaker, fallback=lambda: 0)
    def f() -> int:
        raise ConnectionError("down")

    for _ in range(30):
        f()
    doc = command_document(registry.snapshots()[0])
    assert doc["isCircuitBreakerOpen"] is False
    assert doc["propertyValue_circuitBreakerEnabled"] is False


def test_thread_pool_document_has_the_17_reference_keys_in_order() -> None:
    registry = _registry_with_traffic()
    pool = registry.pool_snapshots()[0]
    doc = thread_pool_document(pool, now_ms=1_700_000_000_000)
    assert len(GOLDEN_POOL) == 17
    assert list(doc) == GOLDEN_POOL == list(THREAD_POOL_KEYS)
    assert doc["name"] == "users" and doc["type"] == "HystrixThreadPool"
    assert doc["rollingCountThreadsExecuted"] == 7 and doc["currentCompletedTaskCount"] == 7
    assert doc["currentCorePoolSize"] == 10 and doc["reportingHosts"] == 1
    _no_floats(doc)


def test_collapser_document_has_the_12_reference_keys_and_no_zero_percentile() -> None:
    doc = collapser_document(
        "batch-users",
        now_ms=1_700_000_000_000,
        requests_batched=40,
        batches=4,
        responses_from_cache=2,
        batch_size_mean=10.4,
        batch_size_percentiles={25.0: 8.0, 50.0: 10.0, 100.0: 14.6},
        request_cache_enabled=True,
        max_requests_in_batch=2**31 - 1,
        timer_delay=0.01,
    )
    assert len(GOLDEN_COLLAPSER) == 12
    assert list(doc) == GOLDEN_COLLAPSER == list(COLLAPSER_KEYS)
    assert list(doc["batchSize"]) == PERCENTILES[1:]
    assert doc["batchSize"]["100"] == 15 and doc["batchSize"]["90"] == 0 and doc["batchSize_mean"] == 10
    assert doc["propertyValue_timerDelayInMilliseconds"] == 10
    _no_floats(doc)


def test_tick_before_any_command_says_no_commands_yet() -> None:
    docs = tick_documents(quills.Registry())
    assert len(docs) == 1
    assert docs[0]["type"] == "quills_status" and docs[0]["message"] == "no commands yet"


def test_tick_lists_commands_then_pools_and_encodes_one_event_each() -> None:
    registry = _registry_with_traffic()
    docs = tick_documents(registry)
    assert [doc["type"] for doc in docs] == ["HystrixCommand", "HystrixCommand", "HystrixThreadPool"]
    payload = encode_events(docs)
    events = payload.split(b"\n\n")
    assert events[-1] == b"" and len(events) == 4
    for event, doc in zip(events, docs, strict=False):
        assert event.startswith(b"data: {") and b"\n" not in event
        assert msgspec.json.decode(event[6:]) == msgspec.json.decode(msgspec.json.encode(doc))


@pytest.mark.parametrize("timeout", [None, 0.25])
def test_timeouts_are_echoed_as_integers(timeout: float | None) -> None:
    registry = quills.Registry()

    @quills.command(group="g", registry=registry, isolation="semaphore", timeout=timeout)
    def f() -> None:
        return None

    doc = command_document(registry.snapshots()[0])
    assert doc["propertyValue_executionTimeoutInMilliseconds"] == (0 if timeout is None else 250)
