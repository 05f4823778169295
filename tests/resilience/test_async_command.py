"""Async commands: real cancellation at the deadline, limits, fallbacks, and cancellations left alone."""

from __future__ import annotations

import asyncio
import time

import pytest

import quills
from quills import Registry
from quills.metrics.events import EventType
from quills.testing import FakeClock


def counts(registry: Registry, name: str) -> dict[str, int]:
    snapshot = registry.get(name).core.snapshot()
    return {event.name: value for event, value in snapshot.counts.items() if value}


def test_success_and_signature(registry: Registry) -> None:
    @quills.command(group="g", name="a_ok", registry=registry)
    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    assert asyncio.run(double(21)) == 42
    assert counts(registry, "a_ok") == {"SUCCESS": 1}
    assert registry.get("a_ok").core.options.isolation == "async"


def test_timeout_really_cancels_the_coroutine(registry: Registry) -> None:
    observed: list[str] = []

    @quills.command(group="g", name="a_slow", timeout=0.1, registry=registry)
    async def slow() -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            observed.append("cancelled")
            raise

    async def main() -> float:
        started = time.perf_counter()
        with pytest.raises(quills.CommandTimeoutError):
            await slow()
        elapsed = time.perf_counter() - started
        # the task is usable afterwards: our cancellation was taken back
        await asyncio.sleep(0.01)
        return elapsed

    elapsed = asyncio.run(main())
    assert observed == ["cancelled"]
    assert 0.09 <= elapsed < 0.5
    assert counts(registry, "a_slow") == {"TIMEOUT": 1, "FALLBACK_MISSING": 1, "EXCEPTION_THROWN": 1}


def test_outside_cancellation_is_not_a_timeout_and_propagates(registry: Registry) -> None:
    @quills.command(group="g", name="a_cancel", timeout=5, fallback=lambda: "fb", registry=registry)
    async def slow() -> str:
        await asyncio.sleep(5)
        return "value"

    async def main() -> None:
        task = asyncio.create_task(slow())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert counts(registry, "a_cancel") == {"CANCELLED": 1}


def test_async_fallback_is_awaited_and_sync_fallback_called(registry: Registry) -> None:
    async def from_cache(key: str) -> str:
        await asyncio.sleep(0)
        return f"cached {key}"

    @quills.command(group="g", name="a_fb", fallback=from_cache, registry=registry)
    async def fetch(key: str) -> str:
        raise ConnectionError("down")

    @quills.command(group="g", name="a_fb_sync", fallback=lambda key: f"default {key}", registry=registry)
    async def fetch2(key: str) -> str:
        raise ConnectionError("down")

    assert asyncio.run(fetch("k")) == "cached k"
    assert asyncio.run(fetch2("k")) == "default k"
    assert counts(registry, "a_fb") == {"FAILURE": 1, "FALLBACK_SUCCESS": 1}


def test_async_limit_rejects_beyond_max_concurrent(registry: Registry) -> None:
    @quills.command(group="g", name="a_lim", max_concurrent=3, timeout=5, registry=registry)
    async def slow() -> str:
        await asyncio.sleep(0.1)
        return "ok"

    async def main() -> list[object]:
        return await asyncio.gather(*(slow() for _ in range(5)), return_exceptions=True)

    results = asyncio.run(main())
    assert results.count("ok") == 3
    assert sum(isinstance(r, quills.BulkheadFullError) for r in results) == 2
    assert counts(registry, "a_lim")["SEMAPHORE_REJECTED"] == 2


def test_async_breaker_trips_and_short_circuits(registry: Registry, clock: FakeClock) -> None:
    calls = []

    @quills.command(group="g", name="a_trip", clock=clock, registry=registry)
    async def flaky() -> None:
        calls.append(1)
        raise OSError("down")

    async def main() -> None:
        for _ in range(20):
            with pytest.raises(OSError):
                await flaky()
        clock.advance(0.5)
        with pytest.raises(OSError):
            await flaky()
        with pytest.raises(quills.CircuitOpenError):
            await flaky()

    asyncio.run(main())
    assert len(calls) == 21
    assert counts(registry, "a_trip")[EventType.SHORT_CIRCUITED.name] == 1


def test_fake_clock_drives_async_deadlines(registry: Registry, clock: FakeClock) -> None:
    @quills.command(group="g", name="a_fake", timeout=1.0, clock=clock, registry=registry)
    async def waits() -> None:
        await asyncio.sleep(30)

    async def main() -> None:
        task = asyncio.create_task(waits())
        await asyncio.sleep(0.12)  # more than a tick: the deadline thread has seen the call
        assert not task.done()
        clock.advance(1.0)
        with pytest.raises(quills.CommandTimeoutError):
            await asyncio.wait_for(task, 2)

    asyncio.run(main())
