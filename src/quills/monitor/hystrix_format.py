"""Snapshots to Hystrix stream documents (pure): the wire contract of ``/hystrix.stream``.

Every document keeps the key order of Hystrix 1.5's serializer and carries only JSON integers where Hystrix
sends numbers, because Turbine 1.x treats any float as a string and would stop summing it. quills-only
extension fields come after the standard keys and start with ``quills_``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from quills.metrics.events import EventType
from quills.resilience.core import CommandSnapshot, LatencySnapshot
from quills.resilience.pool import ThreadPoolSnapshot

__all__ = (
    "COMMAND_KEYS",
    "THREAD_POOL_KEYS",
    "COLLAPSER_KEYS",
    "PERCENTILE_KEYS",
    "BATCH_PERCENTILE_KEYS",
    "EXTENSION_KEYS",
    "CIRCUIT_STATE_KEY",
    "command_document",
    "thread_pool_document",
    "collapser_document",
    "status_document",
    "encode_event",
    "encode_events",
)

#: the percentile keys of ``latencyExecute`` / ``latencyTotal``, in order
PERCENTILE_KEYS = ("0", "25", "50", "75", "90", "95", "99", "99.5", "100")
#: the collapser's ``batchSize`` keys (Hystrix sends no "0")
BATCH_PERCENTILE_KEYS = PERCENTILE_KEYS[1:]

# rolling counters of the command document, in wire order, with the event each one sums
_ROLLING = (
    ("rollingCountBadRequests", EventType.BAD_REQUEST),
    ("rollingCountCollapsedRequests", EventType.COLLAPSED),
    ("rollingCountEmit", EventType.EMIT),
    ("rollingCountExceptionsThrown", EventType.EXCEPTION_THROWN),
    ("rollingCountFailure", EventType.FAILURE),
    ("rollingCountFallbackEmit", EventType.FALLBACK_EMIT),
    ("rollingCountFallbackFailure", EventType.FALLBACK_FAILURE),
    ("rollingCountFallbackMissing", EventType.FALLBACK_MISSING),
    ("rollingCountFallbackRejection", EventType.FALLBACK_REJECTION),
    ("rollingCountFallbackSuccess", EventType.FALLBACK_SUCCESS),
    ("rollingCountResponsesFromCache", EventType.RESPONSE_FROM_CACHE),
    ("rollingCountSemaphoreRejected", EventType.SEMAPHORE_REJECTED),
    ("rollingCountShortCircuited", EventType.SHORT_CIRCUITED),
    ("rollingCountSuccess", EventType.SUCCESS),
    ("rollingCountThreadPoolRejected", EventType.THREAD_POOL_REJECTED),
    ("rollingCountTimeout", EventType.TIMEOUT),
)

#: the 48 keys of a ``HystrixCommand`` document, in wire order
COMMAND_KEYS = (
    "type",
    "name",
    "group",
    "currentTime",
    "isCircuitBreakerOpen",
    "errorPercentage",
    "errorCount",
    "requestCount",
    *(key for key, _ in _ROLLING),
    "currentConcurrentExecutionCount",
    "rollingMaxConcurrentExecutionCount",
    "latencyExecute_mean",
    "latencyExecute",
    "latencyTotal_mean",
    "latencyTotal",
    "propertyValue_circuitBreakerRequestVolumeThreshold",
    "propertyValue_circuitBreakerSleepWindowInMilliseconds",
    "propertyValue_circuitBreakerErrorThresholdPercentage",
    "propertyValue_circuitBreakerForceOpen",
    "propertyValue_circuitBreakerForceClosed",
    "propertyValue_circuitBreakerEnabled",
    "propertyValue_executionIsolationStrategy",
    "propertyValue_executionIsolationThreadTimeoutInMilliseconds",
    "propertyValue_executionTimeoutInMilliseconds",
    "propertyValue_executionIsolationThreadInterruptOnTimeout",
    "propertyValue_executionIsolationThreadPoolKeyOverride",
    "propertyValue_executionIsolationSemaphoreMaxConcurrentRequests",
    "propertyValue_fallbackIsolationSemaphoreMaxConcurrentRequests",
    "propertyValue_metricsRollingStatisticalWindowInMilliseconds",
    "propertyValue_requestCacheEnabled",
    "propertyValue_requestLogEnabled",
    "reportingHosts",
    "threadPool",
)

#: the 17 keys of a ``HystrixThreadPool`` document, in wire order
THREAD_POOL_KEYS = (
    "type",
    "name",
    "currentTime",
    "currentActiveCount",
    "currentCompletedTaskCount",
    "currentCorePoolSize",
    "currentLargestPoolSize",
    "currentMaximumPoolSize",
    "currentPoolSize",
    "currentQueueSize",
    "currentTaskCount",
    "rollingCountThreadsExecuted",
    "rollingMaxActiveThreads",
    "rollingCountCommandRejections",
    "propertyValue_queueSizeRejectionThreshold",
    "propertyValue_metricsRollingStatisticalWindowInMilliseconds",
    "reportingHosts",
)

#: the 12 keys of a ``HystrixCollapser`` document, in wire order
COLLAPSER_KEYS = (
    "type",
    "name",
    "currentTime",
    "rollingCountRequestsBatched",
    "rollingCountBatches",
    "rollingCountResponsesFromCache",
    "batchSize_mean",
    "batchSize",
    "propertyValue_requestCacheEnabled",
    "propertyValue_maxRequestsInBatch",
    "propertyValue_timerDelayInMilliseconds",
    "reportingHosts",
)

#: quills-only field with the breaker's exact state (``closed``, ``open``, ``half_open``, ``forced_open``,
#: ``forced_closed``, ``disabled``); ``isCircuitBreakerOpen`` cannot tell open from half-open. Appended last.
CIRCUIT_STATE_KEY = "quills_circuitState"

#: quills-only fields appended to a command document: the sparse latency histograms
#: ({bucket index: count}, unit 1024 ns, see :mod:`quills.metrics.histogram`). Summed key by key (Turbine's
#: rule for nested maps) they are the exact cluster histogram.
EXTENSION_KEYS = ("quills_latencyExecute_hist", "quills_latencyTotal_hist")

_ENCODER = msgspec.json.Encoder()


def _ms(value: float) -> int:
    return int(value + 0.5) if value > 0 else 0


def _percentiles(latency: LatencySnapshot) -> dict[str, int]:
    values = latency.percentiles
    return {key: _ms(values.get(float(key), 0.0)) for key in PERCENTILE_KEYS}


def command_document(
    snapshot: CommandSnapshot, *, histograms: bool = True, circuit_state: bool = False
) -> dict[str, Any]:
    """The ``HystrixCommand`` document of one command snapshot (48 standard keys, then extensions).

    ``histograms`` (default True) appends :data:`EXTENSION_KEYS`; ``circuit_state`` (default False; the
    stream turns it on) appends :data:`CIRCUIT_STATE_KEY`. Latencies are rounded to whole milliseconds; an
    empty window gives 0, as in Hystrix.
    """
    options = snapshot.options
    breaker = options.breaker
    counts = snapshot.counts
    timeout_ms = 0 if options.timeout is None else _ms(options.timeout * 1000)
    doc: dict[str, Any] = {
        "type": "HystrixCommand",
        "name": snapshot.name,
        "group": snapshot.group,
        "currentTime": snapshot.at_ms,
        # a disabled breaker reports DISABLED, whose is_open is false (Hystrix's NoOp breaker)
        "isCircuitBreakerOpen": snapshot.breaker.is_open,
        "errorPercentage": snapshot.error_percentage,
        "errorCount": snapshot.error_count,
        "requestCount": snapshot.request_count,
    }
    for key, event in _ROLLING:
        doc[key] = counts.get(event, 0)
    doc["currentConcurrentExecutionCount"] = snapshot.concurrent
    doc["rollingMaxConcurrentExecutionCount"] = snapshot.rolling_max_concurrent
    doc["latencyExecute_mean"] = _ms(snapshot.latency_execute.mean)
    doc["latencyExecute"] = _percentiles(snapshot.latency_execute)
    doc["latencyTotal_mean"] = _ms(snapshot.latency_total.mean)
    doc["latencyTotal"] = _percentiles(snapshot.latency_total)
    doc["propertyValue_circuitBreakerRequestVolumeThreshold"] = breaker.request_volume_threshold
    doc["propertyValue_circuitBreakerSleepWindowInMilliseconds"] = _ms(breaker.sleep_window * 1000)
    doc["propertyValue_circuitBreakerErrorThresholdPercentage"] = breaker.error_threshold_percentage
    doc["propertyValue_circuitBreakerForceOpen"] = breaker.force_open
    doc["propertyValue_circuitBreakerForceClosed"] = breaker.force_closed
    doc["propertyValue_circuitBreakerEnabled"] = breaker.enabled
    # asyncio limits behave like semaphores (a rejection is SEMAPHORE_REJECTED), so dashboards show them so
    doc["propertyValue_executionIsolationStrategy"] = (
        "THREAD" if snapshot.isolation == "thread" else "SEMAPHORE"
    )
    doc["propertyValue_executionIsolationThreadTimeoutInMilliseconds"] = timeout_ms
    doc["propertyValue_executionTimeoutInMilliseconds"] = timeout_ms
    # only async commands are really interrupted (cancelled); a thread-isolated call is abandoned instead
    doc["propertyValue_executionIsolationThreadInterruptOnTimeout"] = snapshot.isolation == "async"
    doc["propertyValue_executionIsolationThreadPoolKeyOverride"] = options.pool
    doc["propertyValue_executionIsolationSemaphoreMaxConcurrentRequests"] = options.max_concurrent
    doc["propertyValue_fallbackIsolationSemaphoreMaxConcurrentRequests"] = options.fallback_max_concurrent
    doc["propertyValue_metricsRollingStatisticalWindowInMilliseconds"] = _ms(options.metrics_window * 1000)
    doc["propertyValue_requestCacheEnabled"] = False  # quills has no request cache yet
    doc["propertyValue_requestLogEnabled"] = False
    doc["reportingHosts"] = 1
    doc["threadPool"] = snapshot.pool
    if histograms:
        doc["quills_latencyExecute_hist"] = snapshot.latency_execute.buckets
        doc["quills_latencyTotal_hist"] = snapshot.latency_total.buckets
    if circuit_state:
        doc[CIRCUIT_STATE_KEY] = snapshot.breaker.state.value
    return doc


def thread_pool_document(snapshot: ThreadPoolSnapshot, *, now_ms: int) -> dict[str, Any]:
    """The ``HystrixThreadPool`` document (17 keys) of one pool snapshot taken at ``now_ms``."""
    return {
        "type": "HystrixThreadPool",
        "name": snapshot.name,
        "currentTime": now_ms,
        "currentActiveCount": snapshot.active,
        "currentCompletedTaskCount": snapshot.completed,
        "currentCorePoolSize": snapshot.core_size,
        "currentLargestPoolSize": snapshot.largest_pool_size,
        # quills pools never grow past core_size (Hystrix's default: maximumSize = coreSize)
        "currentMaximumPoolSize": snapshot.core_size,
        "currentPoolSize": snapshot.pool_size,
        "currentQueueSize": snapshot.queued,
        "currentTaskCount": snapshot.task_count,
        "rollingCountThreadsExecuted": snapshot.rolling_executed,
        "rollingMaxActiveThreads": snapshot.rolling_max_active,
        "rollingCountCommandRejections": snapshot.rolling_rejected,
        "propertyValue_queueSizeRejectionThreshold": snapshot.queue_size_rejection_threshold,
        "propertyValue_metricsRollingStatisticalWindowInMilliseconds": _ms(snapshot.metrics_window * 1000),
        "reportingHosts": 1,
    }


def collapser_document(
    name: str,
    *,
    now_ms: int,
    requests_batched: int,
    batches: int,
    responses_from_cache: int,
    batch_size_mean: float,
    batch_size_percentiles: Mapping[float, float],
    request_cache_enabled: bool,
    max_requests_in_batch: int,
    timer_delay: float,
) -> dict[str, Any]:
    """The ``HystrixCollapser`` document (12 keys). quills has no collapser yet; this fixes the format.

    ``batch_size_percentiles`` is keyed by 25.0 .. 100.0 (missing ones are 0); ``timer_delay`` is in seconds.
    """
    return {
        "type": "HystrixCollapser",
        "name": name,
        "currentTime": now_ms,
        "rollingCountRequestsBatched": requests_batched,
        "rollingCountBatches": batches,
        "rollingCountResponsesFromCache": responses_from_cache,
        "batchSize_mean": _ms(batch_size_mean),
        "batchSize": {key: _ms(batch_size_percentiles.get(float(key), 0.0)) for key in BATCH_PERCENTILE_KEYS},
        "propertyValue_requestCacheEnabled": request_cache_enabled,
        "propertyValue_maxRequestsInBatch": max_requests_in_batch,
        "propertyValue_timerDelayInMilliseconds": _ms(timer_delay * 1000),
        "reportingHosts": 1,
    }


def status_document(message: str, *, now_ms: int) -> dict[str, Any]:
    """A quills-only ``quills_status`` document, sent while there is nothing else to show.

    Hystrix sends only pings before the first command runs, and dashboards sit on "Loading..." (Hystrix
    #996); a dashboard that knows this type can say why instead. Stock dashboards ignore unknown types.
    """
    return {"type": "quills_status", "name": "quills", "currentTime": now_ms, "message": message}


def encode_event(doc: Mapping[str, Any]) -> bytes:
    """One SSE event: ``data: <compact JSON>`` and a blank line."""
    return b"data: " + _ENCODER.encode(doc) + b"\n\n"


def encode_events(docs: list[dict[str, Any]]) -> bytes:
    """Several SSE events, one per document, as one buffer (one write per tick)."""
    encode = _ENCODER.encode
    return b"".join([b"data: " + encode(doc) + b"\n\n" for doc in docs])
