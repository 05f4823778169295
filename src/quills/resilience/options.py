"""Frozen, validated options for commands, circuit breakers and thread pools (Hystrix defaults)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from quills.errors import ConfigError

__all__ = ("BreakerOptions", "ThreadPoolOptions", "CommandOptions", "Isolation", "WindowType")

Isolation = Literal["thread", "semaphore", "async"]
WindowType = Literal["time", "count"]
_DAY = 86_400.0


def _check_range(owner: str, name: str, value: float, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(f"{owner}.{name} must be a number, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{owner}.{name} must be between {low:g} and {high:g}, got {value!r}")


def _check_int(owner: str, name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{owner}.{name} must be an int, got {value!r}")
    _check_range(owner, name, value, low, high)


@dataclass(frozen=True, slots=True)
class BreakerOptions:
    """How a command's circuit breaker decides to open and to close.

    The defaults are Hystrix 1.5's: a time window of 10 s evaluated every 500 ms, trip at >= 20 requests
    and >= 50 % errors, one trial call after a 5 s sleep window, close on its success.

    Attributes:
        enabled: False installs no breaker at all (calls are never short-circuited). Default True.
        request_volume_threshold: minimum requests in the window before the breaker may trip, 1..1e9.
            Default 20. For a count window this is resilience4j's ``minimumNumberOfCalls``.
        error_threshold_percentage: trip when errors are at least this share of requests, 0..100
            (0 trips on any request volume). Default 50.
        sleep_window: seconds the circuit stays open before a trial, 0.001..86400. Default 5.0.
        window_type: ``"time"`` (the rolling window of the command's metrics, Hystrix) or ``"count"``
            (the last ``window_size`` calls, resilience4j). Default "time".
        window_size: calls in a count window, 1..1_000_000. Default 100; ignored for a time window.
        slow_call_duration: calls slower than this many seconds count as slow; None (default) disables
            slow-call tripping. Range 0.000001..86400.
        slow_call_rate_threshold: trip when slow calls are at least this share of requests, 1..100.
            Default 100.
        half_open_max_calls: trial calls allowed at once while half-open, 1..10000. Default 1 (Hystrix).
        half_open_success_threshold: successful trials needed to close, 1..10000. Default 1. Any failed
            trial reopens the circuit.
        open_wait_multiplier: each consecutive reopening multiplies the sleep window by this, 1..100.
            Default 1.0 (a fixed window, as Hystrix).
        max_open_wait: upper bound, seconds, of the grown sleep window, >= sleep_window. Default 300.0.
        force_open: reject every call (fallbacks still run). Default False.
        force_closed: allow every call whatever the health (metrics still recorded). Default False.
    """

    enabled: bool = True
    request_volume_threshold: int = 20
    error_threshold_percentage: int = 50
    sleep_window: float = 5.0
    window_type: WindowType = "time"
    window_size: int = 100
    slow_call_duration: float | None = None
    slow_call_rate_threshold: int = 100
    half_open_max_calls: int = 1
    half_open_success_threshold: int = 1
    open_wait_multiplier: float = 1.0
    max_open_wait: float = 300.0
    force_open: bool = False
    force_closed: bool = False

    def __post_init__(self) -> None:
        owner = "BreakerOptions"
        _check_int(owner, "request_volume_threshold", self.request_volume_threshold, 1, 10**9)
        _check_int(owner, "error_threshold_percentage", self.error_threshold_percentage, 0, 100)
        _check_range(owner, "sleep_window", self.sleep_window, 0.001, _DAY)
        if self.window_type not in ("time", "count"):
            raise ConfigError(f"{owner}.window_type must be 'time' or 'count', got {self.window_type!r}")
        _check_int(owner, "window_size", self.window_size, 1, 1_000_000)
        if self.slow_call_duration is not None:
            _check_range(owner, "slow_call_duration", self.slow_call_duration, 1e-6, _DAY)
        _check_int(owner, "slow_call_rate_threshold", self.slow_call_rate_threshold, 1, 100)
        _check_int(owner, "half_open_max_calls", self.half_open_max_calls, 1, 10_000)
        _check_int(owner, "half_open_success_threshold", self.half_open_success_threshold, 1, 10_000)
        _check_range(owner, "open_wait_multiplier", self.open_wait_multiplier, 1.0, 100.0)
        _check_range(owner, "max_open_wait", self.max_open_wait, self.sleep_window, _DAY)
        if self.force_open and self.force_closed:
            raise ConfigError(f"{owner}: force_open and force_closed cannot both be set")


@dataclass(frozen=True, slots=True)
class ThreadPoolOptions:
    """A named, bounded thread pool (Hystrix ``HystrixThreadPoolProperties`` defaults).

    Attributes:
        core_size: worker threads, 1..10000. Default 10.
        max_queue_size: -1 (default) for no queue: a call is rejected as soon as every thread is busy.
            Otherwise 1..1_000_000, the hard bound of the queue.
        queue_size_rejection_threshold: with a queue, reject once this many calls wait, 0..1_000_000.
            Default 5. Can be changed at runtime (the queue bound cannot, as in Hystrix).
        metrics_window: rolling window of pool statistics, seconds, 1..3600. Default 10.0.
    """

    core_size: int = 10
    max_queue_size: int = -1
    queue_size_rejection_threshold: int = 5
    metrics_window: float = 10.0

    def __post_init__(self) -> None:
        owner = "ThreadPoolOptions"
        _check_int(owner, "core_size", self.core_size, 1, 10_000)
        if self.max_queue_size != -1:
            _check_int(owner, "max_queue_size", self.max_queue_size, 1, 1_000_000)
        _check_int(owner, "queue_size_rejection_threshold", self.queue_size_rejection_threshold, 0, 1_000_000)
        _check_range(owner, "metrics_window", self.metrics_window, 1.0, 3600.0)

    @property
    def queue_capacity(self) -> int:
        """How many calls may wait: 0 without a queue, else the smaller of the bound and the threshold."""
        if self.max_queue_size == -1:
            return 0
        return min(self.max_queue_size, self.queue_size_rejection_threshold)


@dataclass(frozen=True, slots=True)
class CommandOptions:
    """Everything that shapes one command. Built by :func:`quills.command`; changeable at runtime through
    :meth:`quills.resilience.Registry.configure`.

    Attributes:
        group: the dependency this command belongs to (dashboard grouping, default pool name). Required.
        name: the command key; unique in a registry. Default: the function's qualified name.
        timeout: seconds before the call is given up, 0.000001..86400, or None for no timeout.
            Default 1.0 (Hystrix). Async commands are cancelled at the deadline; thread-isolated commands
            return to the caller at the deadline; semaphore-isolated commands cannot be interrupted and
            count as timed out when they finish late.
        isolation: ``"thread"`` (default for plain functions), ``"semaphore"`` or ``"async"`` (default for
            coroutine functions, and the only choice for them).
        max_concurrent: concurrent calls allowed by a semaphore or asyncio limit, 1..1_000_000. Default 10.
        pool: the thread pool name for thread isolation. Default: the group.
        fallback_max_concurrent: fallbacks allowed at once, 1..1_000_000. Default 10 (Hystrix).
        breaker: the circuit breaker's options.
        ignore: exception types that are a normal outcome of the call (for example "not found"): they
            reach the caller unchanged and the call counts as a success.
        bad_request: exception types caused by the caller's input (besides :class:`quills.BadRequest`):
            they reach the caller unchanged, count as BAD_REQUEST and never fall back or trip the breaker.
        metrics_window: rolling statistics window, seconds, a multiple of ``health_interval``,
            0.1..3600. Default 10.0.
        health_interval: health snapshot period and counter bucket width, seconds, 0.01..60. Default 0.5.
        percentile_window: latency percentile window, seconds, 1..3600. Default 60.0.
        percentile_buckets: buckets in the percentile window, 1..60. Default 6.
    """

    group: str
    name: str
    timeout: float | None = 1.0
    isolation: Isolation = "thread"
    max_concurrent: int = 10
    pool: str | None = None
    fallback_max_concurrent: int = 10
    breaker: BreakerOptions = field(default_factory=BreakerOptions)
    ignore: tuple[type[BaseException], ...] = ()
    bad_request: tuple[type[BaseException], ...] = ()
    metrics_window: float = 10.0
    health_interval: float = 0.5
    percentile_window: float = 60.0
    percentile_buckets: int = 6

    def __post_init__(self) -> None:
        owner = f"CommandOptions({self.name!r})"
        for label, text in (("group", self.group), ("name", self.name)):
            if not isinstance(text, str) or not text.strip():
                raise ConfigError(f"{owner}.{label} must be a non-empty string, got {text!r}")
        if self.timeout is not None:
            _check_range(owner, "timeout", self.timeout, 1e-6, _DAY)
        if self.isolation not in ("thread", "semaphore", "async"):
            raise ConfigError(
                f"{owner}.isolation must be 'thread', 'semaphore' or 'async', got {self.isolation!r}"
            )
        _check_int(owner, "max_concurrent", self.max_concurrent, 1, 1_000_000)
        _check_int(owner, "fallback_max_concurrent", self.fallback_max_concurrent, 1, 1_000_000)
        if not isinstance(self.breaker, BreakerOptions):
            raise ConfigError(f"{owner}.breaker must be BreakerOptions, got {type(self.breaker).__name__}")
        for label, types in (("ignore", self.ignore), ("bad_request", self.bad_request)):
            if not all(isinstance(t, type) and issubclass(t, BaseException) for t in types):
                raise ConfigError(f"{owner}.{label} must be a tuple of exception types, got {types!r}")
        _check_range(owner, "health_interval", self.health_interval, 0.01, 60.0)
        _check_range(owner, "metrics_window", self.metrics_window, 0.1, 3600.0)
        ratio = self.metrics_window / self.health_interval
        if abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
            raise ConfigError(
                f"{owner}.metrics_window ({self.metrics_window:g}) must be a whole multiple of "
                f"health_interval ({self.health_interval:g})"
            )
        _check_range(owner, "percentile_window", self.percentile_window, 1.0, 3600.0)
        _check_int(owner, "percentile_buckets", self.percentile_buckets, 1, 60)

    @property
    def pool_name(self) -> str:
        """The thread pool this command runs on (its ``pool`` or, by default, its group)."""
        return self.pool or self.group
