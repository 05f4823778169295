"""Concurrent composition without callback tangles: ``quills.zip`` runs awaitables together and joins them.

Each part may carry its own fallback (:func:`attempt`); a part that fails without one is fatal: the other
parts are cancelled at once and its exception reaches the caller (not wrapped in an ExceptionGroup).
Cancelling ``zip`` cancels every part. The latency of ``zip`` is that of its slowest part, not the sum.

Example::

    totals, stats, config = await quills.zip(
        report_totals(app_id),                                   # a command: fatal if it fails
        quills.attempt(delivery_stats(app_id), fallback=lambda exc: {"stale": True}),
        app_config(app_id),
    )
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

__all__ = ("zip", "attempt")

T = TypeVar("T")
A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")
D = TypeVar("D")


async def attempt(part: Awaitable[T], *, fallback: Callable[[Exception], T]) -> T:
    """Await ``part``; if it raises an ``Exception``, return ``fallback(exc)`` instead.

    Cancellation, KeyboardInterrupt and SystemExit are never caught.
    """
    try:
        return await part
    except Exception as exc:
        return fallback(exc)


@overload
async def zip(a: Awaitable[A], /) -> tuple[A]: ...
@overload
async def zip(a: Awaitable[A], b: Awaitable[B], /) -> tuple[A, B]: ...
@overload
async def zip(a: Awaitable[A], b: Awaitable[B], c: Awaitable[C], /) -> tuple[A, B, C]: ...
@overload
async def zip(a: Awaitable[A], b: Awaitable[B], c: Awaitable[C], d: Awaitable[D], /) -> tuple[A, B, C, D]: ...
@overload
async def zip(*parts: Awaitable[Any]) -> tuple[Any, ...]: ...


async def zip(*parts: Awaitable[Any]) -> tuple[Any, ...]:
    """Run ``parts`` concurrently and return their results in order.

    The first part to fail (one without a fallback) cancels the others; its exception is raised once they
    have all stopped.
    """
    tasks = [asyncio.ensure_future(part) for part in parts]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    failed = next(
        (task for task in tasks if task in done and not task.cancelled() and task.exception()), None
    )
    if failed is not None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        error = failed.exception()
        assert error is not None
        raise error
    return tuple(task.result() for task in tasks)
