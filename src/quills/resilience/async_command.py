"""The async front door: coroutine functions under an asyncio concurrency limit, cancelled at the deadline.

Deadlines are enforced by a watchdog per command and event loop that scans the calls in flight every
``tick`` (a twentieth of the timeout, between 1 ms and 50 ms) and cancels the tasks that passed theirs. A call
therefore costs a dict insert and delete instead of a timer handle, and a timeout fires within one tick of
its deadline. A cancellation the watchdog did not cause is never turned into a timeout.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Generic, ParamSpec, TypeVar

from quills.metrics import histogram
from quills.metrics.events import MAX_CONCURRENT_SLOT, EventType
from quills.resilience.breaker import Permit
from quills.resilience.core import CommandCore, Outcome

__all__ = ("AsyncCommand",)

P = ParamSpec("P")
R = TypeVar("R")

_SUCCESS = EventType.SUCCESS
_SLOW = EventType.SLOW
_MAXC = MAX_CONCURRENT_SLOT
_index_of = histogram.index_of
_current_task = asyncio.current_task
_running_loop = asyncio.get_running_loop


class _Watchdog:
    """Calls in flight on one loop, by slot number, with their deadlines."""

    __slots__ = ("armed", "entries", "expired", "loop", "name", "now_ns")

    def __init__(self, loop: asyncio.AbstractEventLoop, now_ns: Callable[[], int], name: str) -> None:
        self.loop = loop
        self.now_ns = now_ns
        self.name = name
        self.entries: dict[int, tuple[int, asyncio.Task[Any]]] = {}
        self.expired: set[int] = set()
        self.armed = False

    def arm(self, tick: float) -> None:
        self.armed = True
        self.loop.call_later(tick, self._scan, tick)

    def _scan(self, tick: float) -> None:
        now = self.now_ns()
        for key, (deadline, task) in list(self.entries.items()):
            if now >= deadline:
                del self.entries[key]
                self.expired.add(key)
                task.cancel(f"quills: command {self.name} timed out")
        if self.entries:
            self.loop.call_later(tick, self._scan, tick)
        else:
            self.armed = False


class AsyncCommand(Generic[P, R]):
    """An async command: ``await`` it like the coroutine function it wraps.

    ``execute`` is the call itself (what the decorator returns).
    """

    def __init__(self, core: CommandCore[P, Awaitable[R]]) -> None:
        self.core = core
        self._watchdog: _Watchdog | None = None
        self._fallback_is_async = core.fallback is not None and inspect.iscoroutinefunction(core.fallback)
        self.execute: Callable[P, Awaitable[R]] = self._build_call()

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return await self.execute(*args, **kwargs)

    @property
    def name(self) -> str:
        return self.core.name

    def _watch(self) -> _Watchdog:
        loop = _running_loop()
        watchdog = self._watchdog
        if watchdog is None or watchdog.loop is not loop:
            watchdog = self._watchdog = _Watchdog(
                loop, self.core.now_ns, f"{self.core.group}.{self.core.name}"
            )
        return watchdog

    def _tick(self) -> float:
        return min(0.05, max(0.001, self.core.timeout_ns / 20e9))

    def _build_call(self) -> Callable[P, Awaitable[R]]:
        core = self.core
        fn = core.fn
        breaker = core.breaker
        next_acquired = core.acquired.__next__
        next_released = core.release_counter.__next__
        now_ns = core.now_ns
        forever = 1 << 62

        async def call(*args: Any, **kwargs: Any) -> R:
            if not breaker.allows_all:
                return await self._call_slow(args, kwargs, now_ns())
            taken = next_acquired()
            released = core.released
            if taken - released >= core.limit:
                core.released = next_released() + 1
                return await self._call_slow(args, kwargs, now_ns(), rejected=True)
            start = now_ns()
            timeout_ns = core.timeout_ns
            watchdog = None
            if timeout_ns < forever:
                watchdog = self._watchdog
                if watchdog is None or watchdog.loop is not _running_loop():
                    watchdog = self._watch()
                watchdog.entries[taken] = (start + timeout_ns, _current_task())  # type: ignore[assignment]
                if not watchdog.armed:
                    watchdog.arm(self._tick())
            try:
                value = await fn(*args, **kwargs)
            except BaseException as exc:
                end = now_ns()
                core.released = next_released() + 1
                return await self._after_error(
                    exc, args, kwargs, Permit.NORMAL, start, start, end, taken, watchdog
                )
            end = now_ns()
            core.released = next_released() + 1
            if watchdog is not None and watchdog.entries.pop(taken, None) is None:
                return await self._timed_out(args, kwargs, Permit.NORMAL, start, end, taken, watchdog)
            duration = end - start
            metrics = core.metrics
            if end >= metrics.bucket_end:
                metrics.rotate(end)
            bucket = metrics.current
            bucket[_SUCCESS] += 1
            active = taken - released + 1
            if active > bucket[_MAXC]:
                bucket[_MAXC] = active
            if duration >= core.slow_ns:
                bucket[_SLOW] += 1
            metrics.hist_both[_index_of(duration >> 10)] += 1
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
        watchdog = None
        exec_start = core.now_ns()
        if core.timeout_ns < 1 << 62:
            watchdog = self._watch()
            task = _current_task()
            assert task is not None
            watchdog.entries[taken] = (exec_start + core.timeout_ns, task)
            if not watchdog.armed:
                watchdog.arm(self._tick())
        try:
            value = await core.fn(*args, **kwargs)
        except BaseException as exc:
            end = core.now_ns()
            core.release()
            return await self._after_error(exc, args, kwargs, permit, start, exec_start, end, taken, watchdog)
        end = core.now_ns()
        core.release()
        if watchdog is not None and watchdog.entries.pop(taken, None) is None:
            return await self._timed_out(args, kwargs, permit, start, end, taken, watchdog)
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
        watchdog: _Watchdog,
    ) -> R:
        # the watchdog cancelled this task for us: take that cancellation back and report a timeout
        watchdog.expired.discard(taken)
        task = _current_task()
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
        watchdog: _Watchdog | None,
    ) -> R:
        if watchdog is not None and watchdog.entries.pop(taken, None) is None:
            # the watchdog fired: the CancelledError is ours (or the call failed as it landed): a timeout
            return await self._timed_out(args, kwargs, permit, start, end, taken, watchdog)
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
        fallback = core.fallback
        if fallback is None:
            core.fallback_missing(cause, start)
        core.enter_fallback(cause, start)
        try:
            value = fallback(*args, **kwargs)
            if self._fallback_is_async:
                value = await value
        except BaseException as error:
            core.exit_fallback(cause_event, error, start)
            if error.__cause__ is None and error is not cause:
                raise error from cause
            raise
        core.exit_fallback(cause_event, None, start)
        return value  # type: ignore[no-any-return]
