"""The async front door: coroutine functions under an asyncio concurrency limit, cancelled at the deadline.

Deadlines are enforced by :mod:`quills.resilience.deadline`, which checks the calls in flight every ``tick``
(a twentieth of the timeout, between 1 ms and 50 ms) and cancels the tasks that passed theirs. A call
therefore costs a dict insert and delete instead of a timer handle, and a timeout fires within about one tick
of its deadline. A cancellation quills did not cause is never turned into a timeout.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Generic, ParamSpec, TypeVar

from quills.metrics import histogram
from quills.metrics.events import EventType
from quills.resilience.breaker import Permit
from quills.resilience.core import CommandCore, Outcome
from quills.resilience.deadline import Deadlines

__all__ = ("AsyncCommand",)

P = ParamSpec("P")
R = TypeVar("R")

_HIST_SIZE = histogram.SIZE
_FOREVER = 1 << 62


class AsyncCommand(Generic[P, R]):
    """An async command: ``await`` it like the coroutine function it wraps.

    ``execute`` is the call itself (what the decorator returns).
    """

    def __init__(self, core: CommandCore[P, Awaitable[R]]) -> None:
        self.core = core
        self.deadlines = Deadlines(f"{core.group}.{core.name}", core.now_ns, lambda: core.timeout_ns)
        self._fallback_is_async = core.fallback is not None and inspect.iscoroutinefunction(core.fallback)
        self.execute: Callable[P, Awaitable[R]] = self._build_call()

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return await self.execute(*args, **kwargs)

    @property
    def name(self) -> str:
        return self.core.name

    def _build_call(self) -> Callable[P, Awaitable[R]]:
        core = self.core
        fn = core.fn
        breaker = core.breaker
        metrics = core.metrics
        hist_both = metrics.hist_both
        deadlines = self.deadlines
        entries = deadlines.entries
        next_acquired = core.acquired.__next__
        next_released = core.release_counter.__next__
        now_ns = core.now_ns
        forever = _FOREVER

        async def call(*args: Any, **kwargs: Any) -> R:
            # the common case inlined, as in the sync door
            if not breaker.allows_all:
                now = now_ns()
                if now < breaker.open_until_ns and core.fallback is None:
                    raise core.short_circuited(now)
                return await self._call_slow(args, kwargs, now)
            taken = next_acquired()
            released = core.released
            if taken - released >= core.limit:
                core.released = next_released()
                return await self._call_slow(args, kwargs, now_ns(), rejected=True)
            start = now_ns()
            timed = core.timeout_ns < forever
            try:
                # the coroutine object names the call for the deadline thread (which finds the task whose
                # chain awaits it); an empty **kwargs is not forwarded (that builds a dict)
                coro = fn(*args, **kwargs) if kwargs else fn(*args)  # type: ignore[call-arg]
                if timed:
                    entries[taken] = coro
                value = await coro
            except BaseException as exc:
                end = now_ns()
                core.released = next_released()
                return await self._after_error(exc, args, kwargs, Permit.NORMAL, start, start, end, taken)
            end = now_ns()
            core.released = next_released()
            if timed:
                try:
                    del entries[taken]
                except KeyError:  # the deadline thread took it: this call timed out
                    return await self._timed_out(args, kwargs, Permit.NORMAL, start, end, taken)
            duration = end - start
            if duration >= core.attention_ns:
                core.note_concurrency(taken - released + 1, end)
                core.settle_success(Permit.NORMAL, start, start, end, end, may_be_late=False)
                return value  # type: ignore[no-any-return]
            if end >= metrics.bucket_end:
                metrics.rotate(end)
            bucket = metrics.current
            bucket[1] += 1  # EventType.SUCCESS
            if taken != released:  # others ran alongside (a lone call's 1 is implied by any execution)
                active = taken - released + 1
                if active > bucket[20]:  # MAX_CONCURRENT_SLOT
                    bucket[20] = active
            ticks = duration >> 10  # histogram.index_of, inlined
            if ticks < 128:
                hist_both[ticks] += 1
            else:
                shift = ticks.bit_length() - 7
                index = (shift << 6) + (ticks >> shift)
                hist_both[index if index < _HIST_SIZE else _HIST_SIZE - 1] += 1
            window = breaker.count_window
            if window is not None:  # a fast success is neither an error nor slow: it cannot trip
                window.record(0)
            return value  # type: ignore[no-any-return]

        return call

    async def _call_slow(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], start: int, *, rejected: bool = False
    ) -> R:
        core = self.core
        permit = Permit.NORMAL
        if rejected:
            error = core.reject(EventType.SEMAPHORE_REJECTED, permit, start)
            return await self._fallback(EventType.SEMAPHORE_REJECTED, error, args, kwargs, start)
        if not core.breaker.allows_all:
            permit = core.breaker.acquire(start)
            if permit is Permit.DENIED:
                error = core.reject(EventType.SHORT_CIRCUITED, permit, start)
                return await self._fallback(EventType.SHORT_CIRCUITED, error, args, kwargs, start)
        taken = next(core.acquired)
        if taken - core.released >= core.limit:
            core.release()
            error = core.reject(EventType.SEMAPHORE_REJECTED, permit, start)
            return await self._fallback(EventType.SEMAPHORE_REJECTED, error, args, kwargs, start)
        active = taken - core.released + 1
        exec_start = core.now_ns()
        timed = core.timeout_ns < _FOREVER
        try:
            coro = core.fn(*args, **kwargs)
            if timed:
                self.deadlines.entries[taken] = coro
            value = await coro
        except BaseException as exc:
            end = core.now_ns()
            core.release()
            return await self._after_error(exc, args, kwargs, permit, start, exec_start, end, taken)
        end = core.now_ns()
        core.release()
        if timed and self.deadlines.entries.pop(taken, None) is None:
            return await self._timed_out(args, kwargs, permit, start, end, taken)
        core.note_concurrency(active, end)
        core.settle_success(permit, start, exec_start, end, end, may_be_late=False)
        return value  # type: ignore[no-any-return]

    async def _timed_out(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        permit: Permit,
        start: int,
        end: int,
        taken: int,
    ) -> R:
        # the deadline thread cancelled this task for us: take that cancellation back, report a timeout
        self.deadlines.expired.discard(taken)
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        error = self.core.reject(EventType.TIMEOUT, permit, end)
        return await self._fallback(EventType.TIMEOUT, error, args, kwargs, start)

    async def _after_error(
        self,
        exc: BaseException,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        permit: Permit,
        start: int,
        exec_start: int,
        end: int,
        taken: int,
    ) -> R:
        if taken in self.deadlines.expired or (
            self.core.timeout_ns < _FOREVER and self.deadlines.entries.pop(taken, None) is None
        ):
            # the deadline passed: the CancelledError is ours (or the call failed as it landed): a timeout
            return await self._timed_out(args, kwargs, permit, start, end, taken)
        outcome = self.core.settle_error(exc, permit, start, exec_start, end)
        if outcome == Outcome.FAILURE:
            return await self._fallback(EventType.FAILURE, exc, args, kwargs, start)
        raise exc

    async def _fallback(
        self,
        cause_event: int,
        cause: BaseException,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        start: int,
    ) -> R:
        core = self.core
        fallback = core.enter_fallback(cause, start)
        try:
            value = fallback(*args, **kwargs)
            if self._fallback_is_async:
                value = await value
        except BaseException as error:
            core.fallback_failed(cause_event, error, cause, start)
        core.exit_fallback(cause_event, None, start)
        return value  # type: ignore[no-any-return]
