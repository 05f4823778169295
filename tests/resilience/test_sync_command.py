"""Sync commands: what the caller sees and what is counted, for each way a call can end."""

from __future__ import annotations

import inspect
import threading
import time

import pytest

import quills
from quills import BreakerOptions, Registry, ThreadPoolOptions
from quills.metrics.events import EventType
from quills.resilience.events import CallRejected, CircuitOpened, CommandEvent, FallbackUsed
from quills.testing import FakeClock


def counts(registry: Registry, name: str) -> dict[str, int]:
    snapshot = registry.get(name).core.snapshot()
    return {event.name: value for event, value in snapshot.counts.items() if value}


@pytest.mark.parametrize("isolation", ["thread", "semaphore"])
def test_success_returns_the_value_and_keeps_the_signature(registry: Registry, isolation: str) -> None:
    def add(a: int, b: int = 2) -> int:
        """Adds."""
        return a + b

    command = quills.command(group="math", isolation=isolation, registry=registry)(add)  # type: ignore[arg-type]
    assert command(1, b=5) == 6
    assert inspect.signature(command) == inspect.signature(add)
    assert command.__doc__ == "Adds." and command.__name__ == "add"
    assert counts(registry, "add") == {"SUCCESS": 1}


@pytest.mark.parametrize("isolation", ["thread", "semaphore"])
def test_failure_without_fallback_raises_the_original_exception(registry: Registry, isolation: str) -> None:
    error = LookupError("gone")

    @quills.command(group="g", name="fails", isolation=isolation, registry=registry)  # type: ignore[arg-type]
    def fails() -> None:
        raise error

    with pytest.raises(LookupError) as caught:
        fails()
    assert caught.value is error
    assert counts(registry, "fails") == {"FAILURE": 1, "FALLBACK_MISSING": 1, "EXCEPTION_THROWN": 1}


@pytest.mark.parametrize("isolation", ["thread", "semaphore"])
def test_fallback_serves_failures_and_failing_fallback_chains_the_original(
    registry: Registry, isolation: str
) -> None:
    def broken_fallback(x: int) -> int:
        raise RuntimeError("cache down too")

    @quills.command(group="g", name="ok_fb", isolation=isolation, fallback=lambda x: -x, registry=registry)  # type: ignore[arg-type]
    def primary(x: int) -> int:
        raise ValueError("api down")

    @quills.command(
        group="g", name="bad_fb", isolation=isolation, fallback=broken_fallback, registry=registry
    )  # type: ignore[arg-type]
    def primary2(x: int) -> int:
        raise ValueError("api down")

    assert primary(3) == -3
    assert counts(registry, "ok_fb") == {"FAILURE": 1, "FALLBACK_SUCCESS": 1}
    with pytest.raises(RuntimeError, match="cache down too") as caught:
        primary2(3)
    assert isinstance(caught.value.__cause__, ValueError)
    assert counts(registry, "bad_fb") == {"FAILURE": 1, "FALLBACK_FAILURE": 1, "EXCEPTION_THROWN": 1}


def test_bad_requests_pass_through_uncounted_by_health_and_never_fall_back(registry: Registry) -> None:
    class InvalidInput(Exception):
        pass

    fallback_calls = []

    @quills.command(
        group="g",
        name="br",
        isolation="semaphore",
        bad_request=(InvalidInput,),
        fallback=lambda kind: fallback_calls.append(kind),
        registry=registry,
    )
    def call(kind: str) -> None:
        raise InvalidInput() if kind == "custom" else quills.BadRequest("no")

    for kind in ("custom", "builtin"):
        with pytest.raises((InvalidInput, quills.BadRequest)):
            call(kind)
    assert fallback_calls == []
    snapshot = registry.get("br").core.snapshot()
    assert snapshot.counts[EventType.BAD_REQUEST] == 2
    assert snapshot.request_count == 0  # health counts exclude bad requests


def test_ignored_exceptions_count_as_success_and_pass_through(registry: Registry) -> None:
    @quills.command(group="g", name="ig", isolation="semaphore", ignore=(KeyError,), registry=registry)
    def lookup() -> None:
        raise KeyError("user 7")

    with pytest.raises(KeyError):
        lookup()
    assert counts(registry, "ig") == {"SUCCESS": 1}


@pytest.mark.parametrize("isolation", ["thread", "semaphore"])
def test_keyboard_interrupt_is_never_counted_or_swallowed(registry: Registry, isolation: str) -> None:
    @quills.command(group="g", name="ki", isolation=isolation, fallback=lambda: "fb", registry=registry)  # type: ignore[arg-type]
    def interrupted() -> str:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    snapshot = registry.get("ki").core.snapshot()
    assert sum(snapshot.counts.values()) == 0
    assert snapshot.concurrent == 0  # the slot was given back


def test_semaphore_limit_rejects_at_once(registry: Registry) -> None:
    gate = threading.Event()
    entered = threading.Semaphore(0)

    @quills.command(
        group="g", name="sem", isolation="semaphore", max_concurrent=2, timeout=5, registry=registry
    )
    def slow() -> str:
        entered.release()
        gate.wait(5)
        return "done"

    workers = [threading.Thread(target=slow) for _ in range(2)]
    for worker in workers:
        worker.start()
    for _ in range(2):
        assert entered.acquire(timeout=5)
    started = time.perf_counter()
    with pytest.raises(quills.BulkheadFullError, match="sem: concurrency limit is full"):
        slow()
    assert time.perf_counter() - started < 0.5
    gate.set()
    for worker in workers:
        worker.join()
    assert counts(registry, "sem")["SEMAPHORE_REJECTED"] == 1
    assert registry.get("sem").core.snapshot().rolling_max_concurrent == 2


def test_thread_pool_full_rejects_and_timeout_returns_at_the_deadline(registry: Registry) -> None:
    hang = threading.Event()

    @quills.command(
        group="g",
        name="hung",
        timeout=0.2,
        pool_options=ThreadPoolOptions(core_size=2),
        registry=registry,
    )
    def hung() -> None:
        hang.wait(10)

    try:
        futures = [hung.future() for _ in range(2)]
        with pytest.raises(quills.BulkheadFullError, match="thread pool is full"):
            hung()
        started = time.perf_counter()
        for future in futures:
            with pytest.raises(quills.CommandTimeoutError) as caught:
                future.result(timeout=5)
            assert caught.value.timeout == 0.2
        assert time.perf_counter() - started < 1.0
        snapshot = registry.get("hung").core.snapshot()
        assert snapshot.counts[EventType.TIMEOUT] == 2
        assert snapshot.counts[EventType.THREAD_POOL_REJECTED] == 1
        assert snapshot.concurrent == 2  # abandoned workers are still accounted for
        pool = registry.pool_snapshots()[0]
        assert pool.active == 2 and pool.rolling_rejected == 1
    finally:
        hang.set()


def test_semaphore_call_that_finishes_late_counts_as_timeout(registry: Registry) -> None:
    @quills.command(
        group="g", name="late", isolation="semaphore", timeout=0.01, fallback=lambda: "fb", registry=registry
    )
    def late() -> str:
        time.sleep(0.03)
        return "value"

    assert late() == "fb"
    assert counts(registry, "late") == {"TIMEOUT": 1, "FALLBACK_SUCCESS": 1}


def test_breaker_trips_then_short_circuits_with_retry_after(registry: Registry, clock: FakeClock) -> None:
    calls = []

    @quills.command(group="g", name="trip", isolation="semaphore", clock=clock, registry=registry)
    def flaky() -> None:
        calls.append(1)
        raise OSError("down")

    for _ in range(20):
        with pytest.raises(OSError):
            flaky()
    clock.advance(0.5)  # the next health snapshot
    with pytest.raises(OSError):
        flaky()
    assert registry.get("trip").core.breaker.state is quills.CircuitState.OPEN
    before = len(calls)
    with pytest.raises(quills.CircuitOpenError) as caught:
        flaky()
    assert len(calls) == before
    assert caught.value.retry_after == pytest.approx(5.0)
    assert isinstance(caught.value, quills.RejectedError) and isinstance(caught.value, quills.QuillsError)
    assert counts(registry, "trip")["SHORT_CIRCUITED"] == 1


def test_future_resolves_with_the_result_or_the_fallback(registry: Registry) -> None:
    @quills.command(group="g", name="fut", timeout=0.1, fallback=lambda x: "fallback", registry=registry)
    def maybe_slow(x: float) -> str:
        time.sleep(x)
        return "value"

    assert maybe_slow.future(0).result(timeout=5) == "value"
    assert maybe_slow.future(0.5).result(timeout=5) == "fallback"


def test_fallback_concurrency_is_limited(registry: Registry) -> None:
    gate = threading.Event()
    entered = threading.Semaphore(0)

    def slow_fallback() -> str:
        entered.release()
        gate.wait(5)
        return "fb"

    @quills.command(
        group="g",
        name="fbl",
        isolation="semaphore",
        max_concurrent=10,
        fallback=slow_fallback,
        fallback_max_concurrent=1,
        registry=registry,
    )
    def fails() -> str:
        raise ValueError("x")

    worker = threading.Thread(target=fails)
    worker.start()
    assert entered.acquire(timeout=5)
    with pytest.raises(quills.BulkheadFullError, match="fallback concurrency limit") as caught:
        fails()
    assert isinstance(caught.value.__cause__, ValueError)
    gate.set()
    worker.join()
    assert counts(registry, "fbl")["FALLBACK_REJECTION"] == 1


def test_options_change_at_runtime(registry: Registry) -> None:
    @quills.command(group="g", name="rt", isolation="semaphore", timeout=0.01, registry=registry)
    def sleepy() -> str:
        time.sleep(0.03)
        return "ok"

    with pytest.raises(quills.CommandTimeoutError):
        sleepy()
    registry.configure("rt", timeout=1.0)
    assert sleepy() == "ok"
    registry.configure("rt", breaker_force_open=True)
    with pytest.raises(quills.CircuitOpenError):
        sleepy()
    with pytest.raises(quills.ConfigError, match="cannot change at runtime"):
        registry.configure("rt", isolation="thread")
    with pytest.raises(quills.ConfigError, match="timeout must be between"):
        registry.configure("rt", timeout=-1)
    assert registry.get("rt").core.options.timeout == 1.0


def test_listeners_receive_typed_events(registry: Registry, clock: FakeClock) -> None:
    events: list[CommandEvent] = []
    registry.subscribe(events.append)

    @quills.command(
        group="g",
        name="ev",
        isolation="semaphore",
        fallback=lambda: None,
        breaker=BreakerOptions(request_volume_threshold=1),
        clock=clock,
        registry=registry,
    )
    def failing() -> None:
        raise ValueError

    failing()
    clock.advance(0.5)
    failing()
    failing()
    kinds = [type(event) for event in events]
    assert CircuitOpened in kinds and FallbackUsed in kinds and CallRejected in kinds
    rejected = next(event for event in events if isinstance(event, CallRejected))
    assert rejected.event is EventType.SHORT_CIRCUITED and rejected.command == "ev"


def test_latency_percentiles_reflect_the_calls(registry: Registry) -> None:
    @quills.command(group="g", name="lat", isolation="semaphore", registry=registry)
    def sleeps(seconds: float) -> None:
        time.sleep(seconds)

    for _ in range(5):
        sleeps(0.02)
    latency = registry.get("lat").core.snapshot().latency_execute
    assert 19.0 <= latency.percentiles[50.0] <= 60.0
    assert latency.mean >= 19.0
    assert sum(latency.buckets.values()) == 5


def test_sync_command_cannot_fall_back_to_a_coroutine(registry: Registry) -> None:
    async def async_fallback() -> None:
        return None

    with pytest.raises(quills.ConfigError, match="cannot fall back to a coroutine"):
        quills.command(group="g", fallback=async_fallback, registry=registry)(lambda: None)
    with pytest.raises(quills.ConfigError, match="needs a coroutine function"):
        quills.command(group="g", isolation="async", registry=registry)(lambda: None)
