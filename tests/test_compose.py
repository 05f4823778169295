"""quills.zip: concurrent, ordered results, per-part fallbacks, cancel the rest on a fatal error."""

from __future__ import annotations

import asyncio
import time

import pytest

import quills


async def _after(seconds: float, value: object) -> object:
    await asyncio.sleep(seconds)
    return value


async def _fail_after(seconds: float, error: Exception) -> object:
    await asyncio.sleep(seconds)
    raise error


def test_parts_run_concurrently_and_keep_their_order() -> None:
    async def main() -> tuple[object, ...]:
        started = time.perf_counter()
        result = await quills.zip(_after(0.2, "a"), _after(0.1, "b"), _after(0.15, "c"))
        assert time.perf_counter() - started < 0.35  # the slowest part, not the sum (0.45)
        return result

    assert asyncio.run(main()) == ("a", "b", "c")


def test_a_part_with_a_fallback_never_fails_the_whole() -> None:
    async def main() -> tuple[object, ...]:
        return await quills.zip(
            _after(0.01, "live"),
            quills.attempt(_fail_after(0.01, ConnectionError("down")), fallback=lambda exc: {"stale": True}),
        )

    assert asyncio.run(main()) == ("live", {"stale": True})


def test_a_fatal_failure_cancels_the_other_parts() -> None:
    cancelled: list[str] = []

    async def slow(name: str) -> str:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.append(name)
            raise
        return name

    async def main() -> None:
        started = time.perf_counter()
        with pytest.raises(ValueError, match="boom"):
            await quills.zip(slow("x"), _fail_after(0.05, ValueError("boom")), slow("y"))
        assert time.perf_counter() - started < 1.0

    asyncio.run(main())
    assert sorted(cancelled) == ["x", "y"]


def test_zip_of_commands_uses_their_fallbacks() -> None:
    registry = quills.Registry()

    @quills.command(group="z1", fallback=lambda: "cached", timeout=0.05, registry=registry)
    async def hangs() -> str:
        await asyncio.sleep(10)
        return "never"

    @quills.command(group="z2", registry=registry)
    async def quick() -> str:
        return "quick"

    async def main() -> tuple[str, str]:
        return await quills.zip(hangs(), quick())

    assert asyncio.run(main()) == ("cached", "quick")


def test_cancelling_zip_cancels_every_part() -> None:
    cancelled = 0

    async def slow() -> None:
        nonlocal cancelled
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled += 1
            raise

    async def main() -> None:
        task = asyncio.ensure_future(quills.zip(slow(), slow()))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert cancelled == 2
