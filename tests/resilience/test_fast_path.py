"""The inlined fast paths count exactly what the generic slow paths count, for any sequence of calls."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

import quills
from quills import BreakerOptions, Registry
from quills.metrics.events import EventType

OUTCOMES = st.lists(st.sampled_from(["ok", "fail", "bad", "ignored"]), max_size=40)
# a count window with thresholds it can never reach: closed, but every call is recorded in it
COUNT_WINDOW = BreakerOptions(window_type="count", window_size=10, request_volume_threshold=10**6)


def _force_slow_path(registry: Registry, name: str) -> None:
    # white box: a closed breaker that says it does not allow all sends every call through acquire()
    # (which answers NORMAL while closed), i.e. through the generic path
    registry.get(name).core.breaker.allows_all = False


def _behaviour(outcome: str) -> int:
    if outcome == "fail":
        raise ValueError("fail")
    if outcome == "bad":
        raise quills.BadRequest("bad")
    if outcome == "ignored":
        raise KeyError("ignored")
    return 1


def _counts(registry: Registry, name: str) -> dict[EventType, int]:
    snapshot = registry.get(name).core.snapshot()
    assert sum(snapshot.latency_total.buckets.values()) >= snapshot.counts[EventType.SUCCESS]
    return snapshot.counts


@settings(max_examples=40, deadline=None)
@given(OUTCOMES)
def test_sync_fast_and_slow_paths_count_the_same(outcomes: list[str]) -> None:
    registry = Registry()
    kwargs = {"group": "g", "isolation": "semaphore", "ignore": (KeyError,), "registry": registry}
    fast = quills.command(name="fast", fallback=lambda o: 0, **kwargs)(_behaviour)  # type: ignore[arg-type]
    slow = quills.command(name="slow", fallback=lambda o: 0, breaker=COUNT_WINDOW, **kwargs)(_behaviour)  # type: ignore[arg-type]
    _force_slow_path(registry, "slow")
    for outcome in outcomes:
        results = []
        for command in (fast, slow):
            try:
                results.append(command(outcome))
            except (quills.BadRequest, KeyError) as exc:
                results.append(type(exc).__name__)
        assert results[0] == results[1]
    assert _counts(registry, "fast") == _counts(registry, "slow")


@settings(max_examples=25, deadline=None)
@given(OUTCOMES)
def test_async_fast_and_slow_paths_count_the_same(outcomes: list[str]) -> None:
    registry = Registry()

    async def behaviour(outcome: str) -> int:
        return _behaviour(outcome)

    kwargs = {"group": "g", "ignore": (KeyError,), "registry": registry}
    fast = quills.command(name="fast", fallback=lambda o: 0, **kwargs)(behaviour)  # type: ignore[arg-type]
    slow = quills.command(name="slow", fallback=lambda o: 0, breaker=COUNT_WINDOW, **kwargs)(behaviour)  # type: ignore[arg-type]
    _force_slow_path(registry, "slow")

    async def main() -> None:
        for outcome in outcomes:
            results = []
            for command in (fast, slow):
                try:
                    results.append(await command(outcome))
                except (quills.BadRequest, KeyError) as exc:
                    results.append(type(exc).__name__)
            assert results[0] == results[1]

    asyncio.run(main())
    assert _counts(registry, "fast") == _counts(registry, "slow")


def test_short_circuit_fast_rejection_counts_like_the_slow_one() -> None:
    registry = Registry()
    fast = quills.command(group="g", name="fast", isolation="semaphore", registry=registry)(_behaviour)
    with_fallback = quills.command(
        group="g", name="fb", isolation="semaphore", fallback=lambda o: 0, registry=registry
    )(_behaviour)
    registry.configure("fast", breaker_force_open=True)
    registry.configure("fb", breaker_force_open=True)
    for _ in range(3):
        try:
            fast("ok")
        except quills.CircuitOpenError as exc:
            assert exc.retry_after == 0.0 and exc.command == "fast"
            assert "fast: circuit is open" in str(exc)
        assert with_fallback("ok") == 0
    fast_counts = registry.get("fast").core.snapshot().counts
    assert fast_counts[EventType.SHORT_CIRCUITED] == 3
    assert fast_counts[EventType.FALLBACK_MISSING] == 3 and fast_counts[EventType.EXCEPTION_THROWN] == 3
    assert registry.get("fb").core.snapshot().counts[EventType.SHORT_CIRCUITED] == 3


def test_thread_isolated_open_circuit_rejects_without_touching_the_pool() -> None:
    registry = Registry()
    calls = []
    command = quills.command(group="t", name="thread_open", registry=registry)(lambda: calls.append(1))
    registry.configure("thread_open", breaker_force_open=True)
    for _ in range(5):
        try:
            command()
        except quills.CircuitOpenError as exc:
            assert exc.command == "thread_open"
    assert calls == []
    counts = registry.get("thread_open").core.snapshot().counts
    assert counts[EventType.SHORT_CIRCUITED] == 5 and counts[EventType.EXCEPTION_THROWN] == 5
    assert registry.pool_snapshots()[0].task_count == 0
