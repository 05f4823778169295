"""The inlined fast paths count exactly what the generic slow paths count, for any sequence of calls."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

import quills
from quills import BreakerOptions, Registry
from quills.metrics.events import EventType

OUTCOMES = st.lists(st.sampled_from(["ok", "fail", "bad", "ignored"]), max_size=40)
# a count window keeps every call on the slow path; thresholds it can never reach keep it closed
SLOW_PATH = BreakerOptions(window_type="count", window_size=10, request_volume_threshold=10**6)


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
    slow = quills.command(name="slow", fallback=lambda o: 0, breaker=SLOW_PATH, **kwargs)(_behaviour)  # type: ignore[arg-type]
    assert registry.get("fast").core.breaker.allows_all and not registry.get("slow").core.breaker.allows_all
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
    slow = quills.command(name="slow", fallback=lambda o: 0, breaker=SLOW_PATH, **kwargs)(behaviour)  # type: ignore[arg-type]

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
