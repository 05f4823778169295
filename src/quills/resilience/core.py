"""The state and the slow paths shared by sync and async commands (one core, two thin front doors).

Front doors (:mod:`quills.resilience.sync_command`, :mod:`quills.resilience.async_command`) inline only the
common case: breaker closed, a free slot, the call succeeds in time. Everything else comes here, so each rule
(how an exception is classified, what is counted, when a fallback runs, what the caller sees) is written once.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Generic, NoReturn, ParamSpec, TypeVar

from quills.clock import Clock
from quills.errors import BadRequest, BulkheadFullError, CircuitOpenError, CommandTimeoutError, RejectedError
from quills.metrics import histogram
from quills.metrics.events import MAX_CONCURRENT_SLOT, EventType
from quills.metrics.rolling import RollingMetrics
from quills.resilience.breaker import BreakerSnapshot, CircuitBreaker, CircuitState, CountWindow, Permit
from quills.resilience.events import (
    CallRejected,
    CircuitClosed,
    CircuitHalfOpened,
    CircuitOpened,
    EventPublisher,
    FallbackUsed,
)
from quills.resilience.options import CommandOptions

__all__ = ("CommandCore", "CommandSnapshot", "LatencySnapshot", "Outcome", "PERCENTILES")

P = ParamSpec("P")
R = TypeVar("R")

_NEVER_COUNTED = (KeyboardInterrupt, SystemExit, GeneratorExit)
_FOREVER = 1 << 62
#: the percentiles Hystrix reports, in order
PERCENTILES = (0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 100.0)
_TICK_NS = 1024  # histograms count in units of 1024 ns (a shift instead of a division on the hot path)

# plain ints: an IntEnum member lookup goes through the enum metaclass and costs more than a whole bucket
# increment, so the recording paths index with these
_SUCCESS = int(EventType.SUCCESS)
_TIMEOUT = int(EventType.TIMEOUT)
_SLOW = int(EventType.SLOW)
_SHORT_CIRCUITED = int(EventType.SHORT_CIRCUITED)
_FALLBACK_MISSING = int(EventType.FALLBACK_MISSING)
_FALLBACK_SUCCESS = int(EventType.FALLBACK_SUCCESS)
_FALLBACK_FAILURE = int(EventType.FALLBACK_FAILURE)
_FALLBACK_REJECTION = int(EventType.FALLBACK_REJECTION)
_EXCEPTION_THROWN = int(EventType.EXCEPTION_THROWN)
_BAD_REQUEST = int(EventType.BAD_REQUEST)


class Outcome:
    """How a finished call is classified (a few ints, compared by identity on the slow path)."""

    SUCCESS = EventType.SUCCESS
    FAILURE = EventType.FAILURE
    BAD_REQUEST = EventType.BAD_REQUEST
    CANCELLED = EventType.CANCELLED
    IGNORED = -1
    NOT_COUNTED = -2


@dataclass(frozen=True, slots=True)
class LatencySnapshot:
    """Latency over the percentile window, in milliseconds: mean and the Hystrix percentiles."""

    mean: float
    percentiles: dict[float, float]
    #: the raw histogram (non-zero buckets; unit 1024 ns) so histograms of many processes can be merged
    buckets: dict[int, int]


@dataclass(frozen=True, slots=True)
class CommandSnapshot:
    """One command's metrics at an instant (everything a Hystrix stream document needs)."""

    group: str
    name: str
    pool: str
    isolation: str
    options: CommandOptions
    breaker: BreakerSnapshot
    #: rolling counts over ``options.metrics_window``, by event type
    counts: dict[EventType, int]
    #: health counts behind the breaker: requests, errors and their percentage
    request_count: int
    error_count: int
    error_percentage: int
    concurrent: int
    rolling_max_concurrent: int
    latency_execute: LatencySnapshot
    latency_total: LatencySnapshot
    at_ms: int
    #: counts by event type since the command was created (monotonic: Prometheus counters)
    lifetime_counts: dict[EventType, int]
    #: total latency since the command was created ({bucket index: count}, unit 1024 ns)
    lifetime_total: dict[int, int]


class CommandCore(Generic[P, R]):
    """The shared state of one command: options, metrics, breaker, bulkhead counters and fallback."""

    def __init__(
        self,
        fn: Callable[P, Any],
        options: CommandOptions,
        *,
        fallback: Callable[P, Any] | None,
        clock: Clock,
        publisher: EventPublisher,
    ) -> None:
        self.fn = fn
        self.fallback = fallback
        self.group = options.group
        self.name = options.name
        self.clock = clock
        self.now_ns = clock.now_ns
        self.publisher = publisher
        # bulkhead counters: executions started and finished (itertools.count is atomic under the GIL)
        self.acquired = itertools.count()
        # counts from 1 so that ``released = next(release_counter)`` is the number given back so far
        self.release_counter = itertools.count(1)
        self.released = 0
        self.fallback_acquired = itertools.count()
        self.fallback_release_counter = itertools.count()
        self.fallback_released = 0
        self.breaker = CircuitBreaker(
            options.breaker, now_ns=self.now_ns, on_transition=self._on_transition, on_close=self._on_close
        )
        self.options = options
        self.metrics = self._new_metrics(options)
        self.limit = self.fallback_limit = 0
        self.timeout_ns = self.slow_ns = self.attention_ns = _FOREVER
        self._apply(options)

    # -- options -------------------------------------------------------------------------------------
    def _new_metrics(self, options: CommandOptions) -> RollingMetrics:
        return RollingMetrics(
            self.now_ns,
            window=options.metrics_window,
            health_interval=options.health_interval,
            percentile_window=options.percentile_window,
            percentile_buckets=options.percentile_buckets,
            on_health=self.breaker.on_health,
        )

    def _apply(self, options: CommandOptions) -> None:
        self.limit = options.max_concurrent
        self.fallback_limit = options.fallback_max_concurrent
        self.timeout_ns = _FOREVER if options.timeout is None else int(options.timeout * 1e9)
        slow = options.breaker.slow_call_duration
        self.slow_ns = _FOREVER if slow is None else int(slow * 1e9)
        # one comparison on the hot path: a call this long is either late or slow and takes the slow path
        self.attention_ns = min(self.timeout_ns + 1, self.slow_ns)
        self.bad_request: tuple[type[BaseException], ...] = (BadRequest, *options.bad_request)
        self.ignore = options.ignore

    def configure(self, **changes: Any) -> CommandOptions:
        """Change options now (validated first; an invalid change leaves the command untouched).

        ``group``, ``name`` and ``isolation`` cannot change. Window changes restart the metrics.
        """
        fixed = {"group", "name", "isolation"} & changes.keys()
        if fixed:
            from quills.errors import ConfigError

            raise ConfigError(f"command {self.name!r}: {sorted(fixed)} cannot change at runtime")
        new = replace(self.options, **changes)
        windows = ("metrics_window", "health_interval", "percentile_window", "percentile_buckets")
        if any(getattr(new, key) != getattr(self.options, key) for key in windows):
            self.metrics.reconfigure(
                window=new.metrics_window,
                health_interval=new.health_interval,
                percentile_window=new.percentile_window,
                percentile_buckets=new.percentile_buckets,
            )
        self.breaker.configure(new.breaker)
        self._apply(new)
        self.options = new
        return new

    # -- recording (slow path) -----------------------------------------------------------------------
    def record(self, event: int, now: int) -> None:
        """Count one ``event`` in the bucket of ``now``."""
        metrics = self.metrics
        if now >= metrics.bucket_end:
            metrics.rotate(now)
        metrics.current[event] += 1

    def record_latency(self, execute_ns: int | None, total_ns: int) -> None:
        """Record execute time (None when nothing ran) and total time of one call."""
        hist_execute, hist_total = self.metrics.split_histograms()
        if execute_ns is not None:
            hist_execute[histogram.index_of(execute_ns >> 10)] += 1
        hist_total[histogram.index_of(total_ns >> 10)] += 1

    def note_concurrency(self, active: int, now: int) -> None:
        metrics = self.metrics
        if now >= metrics.bucket_end:
            metrics.rotate(now)
        current = metrics.current
        if active > current[MAX_CONCURRENT_SLOT]:
            current[MAX_CONCURRENT_SLOT] = active

    def release(self) -> None:
        """Give back an execution slot."""
        self.released = next(self.release_counter)

    def classify(self, exc: BaseException) -> int:
        """How an exception raised by the user's function counts."""
        if isinstance(exc, _NEVER_COUNTED):
            return Outcome.NOT_COUNTED
        if isinstance(exc, asyncio.CancelledError):
            return Outcome.CANCELLED
        if isinstance(exc, self.bad_request):
            return Outcome.BAD_REQUEST
        if self.ignore and isinstance(exc, self.ignore):
            return Outcome.IGNORED
        return Outcome.FAILURE

    # -- outcomes ------------------------------------------------------------------------------------
    def settle_success(
        self, permit: Permit, start: int, exec_start: int, end: int, now: int, *, may_be_late: bool = True
    ) -> int:
        """Count a call that returned; returns TIMEOUT if it finished after its deadline, else SUCCESS.

        ``may_be_late`` is false where the deadline was already enforced (thread isolation).
        """
        duration = end - exec_start
        late = may_be_late and duration > self.timeout_ns
        self.record(_TIMEOUT if late else _SUCCESS, now)
        slow = duration >= self.slow_ns
        if slow:
            self.record(_SLOW, now)
        self.record_latency(duration, now - start)
        if self.breaker.count_window is not None:
            self.breaker.record((CountWindow.ERROR if late else 0) | (CountWindow.SLOW if slow else 0))
        if permit is Permit.TRIAL:
            if late:
                self.breaker.trial_failed()
            else:
                self.breaker.trial_succeeded()
        return _TIMEOUT if late else _SUCCESS

    def settle_error(self, exc: BaseException, permit: Permit, start: int, exec_start: int, end: int) -> int:
        """Count a call that raised; returns its :class:`Outcome` (FAILURE means: go to the fallback)."""
        outcome = self.classify(exc)
        now = self.now_ns()
        if outcome == Outcome.NOT_COUNTED:
            if permit is Permit.TRIAL:
                self.breaker.trial_abandoned()
            return outcome
        self.record_latency(end - exec_start, now - start)
        if outcome == Outcome.IGNORED:
            self.record(_SUCCESS, now)
            if self.breaker.count_window is not None:
                self.breaker.record(0)
            if permit is Permit.TRIAL:
                self.breaker.trial_succeeded()
            return outcome
        self.record(outcome, now)
        if outcome == Outcome.BAD_REQUEST:
            self.record(_EXCEPTION_THROWN, now)
        elif outcome == Outcome.FAILURE and self.breaker.count_window is not None:
            self.breaker.record(CountWindow.ERROR)
        if permit is Permit.TRIAL:
            self.breaker.trial_failed()
        return outcome

    def reject(self, event: EventType, permit: Permit, now: int) -> RejectedError:
        """Count a rejection (short-circuit, bulkhead full, timeout) and build the error it raises."""
        self.record(event, now)
        if event is not EventType.SHORT_CIRCUITED:
            if self.breaker.count_window is not None:
                self.breaker.record(CountWindow.ERROR)
            if permit is Permit.TRIAL:
                self.breaker.trial_failed()
        if event is not EventType.TIMEOUT and self.publisher.has_listeners:
            self.publisher.publish(CallRejected(self.group, self.name, self.clock.wall_ms(), event))
        return self.rejection_error(event, now)

    def rejection_error(self, event: EventType, now: int) -> RejectedError:
        """The error a rejection raises (when there is no fallback) or chains to the fallback's error."""
        label = f"command {self.group}.{self.name}"
        if event is EventType.SHORT_CIRCUITED:
            error: RejectedError = CircuitOpenError(
                "", group=self.group, command=self.name, retry_after=self.breaker.retry_after(now)
            )
        elif event is EventType.TIMEOUT:
            timeout = self.options.timeout or 0.0
            error = CommandTimeoutError(
                f"{label}: timed out after {timeout:g}s", group=self.group, command=self.name, timeout=timeout
            )
        else:
            kind = "thread pool" if event is EventType.THREAD_POOL_REJECTED else "concurrency limit"
            error = BulkheadFullError(
                f"{label}: {kind} is full; rejected", group=self.group, command=self.name
            )
        return error

    def short_circuited(self, now: int) -> CircuitOpenError:
        """Count a short-circuit with no fallback in one go and return the error to raise (hot-ish path:
        while a circuit is open this is every call)."""
        metrics = self.metrics
        if now >= metrics.bucket_end:
            metrics.rotate(now)
        bucket = metrics.current
        bucket[_SHORT_CIRCUITED] += 1
        bucket[_FALLBACK_MISSING] += 1
        bucket[_EXCEPTION_THROWN] += 1
        hist_total = metrics.hist_total
        if not hist_total:  # allocated on first use; a method call on every rejection costs ~50 ns
            hist_total = metrics.split_histograms()[1]
        hist_total[0] += 1
        if self.publisher.has_listeners:
            self.publisher.publish(
                CallRejected(self.group, self.name, self.clock.wall_ms(), EventType.SHORT_CIRCUITED)
            )
        # built without running __init__ (a third of the cost of a rejection); __str__ writes the message
        error = _new_error(CircuitOpenError)
        error.group = self.group
        error.command = self.name
        until = self.breaker.open_until_ns
        error.retry_after = (until - now) / 1e9 if until < _FOREVER else 0.0
        return error

    # -- fallback bookkeeping (the call itself is made by the front door: sync or awaited) ----------
    def fallback_missing(self, cause: BaseException, start: int) -> NoReturn:
        """No fallback: count it and raise the cause (the user's own exception, unchanged)."""
        now = self.now_ns()
        self.record(_FALLBACK_MISSING, now)
        self.record(_EXCEPTION_THROWN, now)
        self.record_latency(None, now - start)
        raise cause

    def enter_fallback(self, cause: BaseException, start: int) -> Callable[..., Any]:
        """Take a fallback slot and return the fallback to call.

        Raises the cause when there is no fallback (counted as FALLBACK_MISSING), or a BulkheadFullError
        chained to it when the fallback limit is reached (FALLBACK_REJECTION).
        """
        fallback = self.fallback
        if fallback is None:
            self.fallback_missing(cause, start)
        taken = next(self.fallback_acquired)
        if taken - self.fallback_released >= self.fallback_limit:
            self.fallback_released = next(self.fallback_release_counter) + 1
            now = self.now_ns()
            self.record(_FALLBACK_REJECTION, now)
            self.record(_EXCEPTION_THROWN, now)
            self.record_latency(None, now - start)
            raise BulkheadFullError(
                f"command {self.group}.{self.name}: fallback concurrency limit "
                f"({self.fallback_limit}) reached",
                group=self.group,
                command=self.name,
            ) from cause
        return fallback

    def fallback_failed(
        self, cause_event: int, error: BaseException, cause: BaseException, start: int
    ) -> NoReturn:
        """The fallback raised: count it and raise its error, chained to what caused the fallback."""
        self.exit_fallback(cause_event, error, start)
        if error.__cause__ is None and error is not cause:
            raise error from cause
        raise error

    def exit_fallback(self, cause_event: int, error: BaseException | None, start: int) -> None:
        """Give back the fallback slot and count how the fallback ended."""
        self.fallback_released = next(self.fallback_release_counter) + 1
        if error is not None and isinstance(error, _NEVER_COUNTED):
            return
        now = self.now_ns()
        self.record(_FALLBACK_SUCCESS if error is None else _FALLBACK_FAILURE, now)
        if error is not None:
            self.record(_EXCEPTION_THROWN, now)
        self.record_latency(None, now - start)
        if self.publisher.has_listeners:
            self.publisher.publish(
                FallbackUsed(
                    self.group, self.name, self.clock.wall_ms(), EventType(cause_event), error is None
                )
            )

    # -- observation ---------------------------------------------------------------------------------
    def concurrent(self) -> int:
        """Executions running now (including abandoned thread-isolated ones still running)."""
        started = int(repr(self.acquired)[6:-1])  # "count(N)": peek without taking a number
        return max(0, started - self.released)

    def snapshot(self) -> CommandSnapshot:
        """The command's metrics now."""
        counts = self.metrics.counts()
        latency = self.metrics.latency()
        lifetime = self.metrics.lifetime_counts()
        health = self.metrics.health()
        if self.breaker.count_window is not None:
            health = self.breaker.count_window.health()
        options = self.options
        return CommandSnapshot(
            group=self.group,
            name=self.name,
            pool=options.pool_name,
            isolation=options.isolation,
            options=options,
            breaker=self.breaker.snapshot(),
            counts={event: counts[event] for event in EventType},
            request_count=health.total,
            error_count=health.errors,
            error_percentage=health.error_percentage,
            concurrent=self.concurrent(),
            rolling_max_concurrent=counts[MAX_CONCURRENT_SLOT],
            latency_execute=_latency(latency.execute),
            latency_total=_latency(latency.total),
            at_ms=self.clock.wall_ms(),
            lifetime_counts={event: lifetime[event] for event in EventType},
            lifetime_total=self.metrics.lifetime_total_latency(),
        )

    def _on_transition(self, old: CircuitState, new: CircuitState, reason: str, open_for: float) -> None:
        if not self.publisher.has_listeners:
            return
        at = self.clock.wall_ms()
        if (new.is_open and not old.is_open) or new is CircuitState.OPEN:
            self.publisher.publish(CircuitOpened(self.group, self.name, at, reason, open_for))
        elif new is CircuitState.HALF_OPEN:
            self.publisher.publish(CircuitHalfOpened(self.group, self.name, at))
        elif not new.is_open and old.is_open:
            self.publisher.publish(CircuitClosed(self.group, self.name, at))

    def _on_close(self) -> None:
        self.metrics.reset_health()


_new_error = BaseException.__new__


def _latency(buckets: dict[int, int]) -> LatencySnapshot:
    to_ms = _TICK_NS / 1e6
    values = histogram.sparse_percentiles(buckets, PERCENTILES)
    return LatencySnapshot(
        mean=histogram.sparse_mean(buckets) * to_ms,
        percentiles={q: v * to_ms for q, v in zip(PERCENTILES, values, strict=True)},
        buckets=buckets,
    )
