"""The sync front door: plain functions, isolated on a thread pool (default) or by a semaphore."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Generic, ParamSpec, TypeVar

from quills.metrics import histogram
from quills.metrics.events import MAX_CONCURRENT_SLOT, EventType
from quills.resilience.breaker import Permit
from quills.resilience.core import CommandCore, Outcome
from quills.resilience.pool import ThreadPool
from quills.resilience.timer import shared_timer

__all__ = ("Command",)

P = ParamSpec("P")
R = TypeVar("R")

_HIST_SIZE = histogram.SIZE
# the fast paths index buckets with these as literals
assert int(EventType.SUCCESS) == 1 and MAX_CONCURRENT_SLOT == 20


class _ThreadRun:
    """One call handed to a pool worker; the worker fills in the outcome and signals ``done``."""

    __slots__ = (
        "args",
        "core",
        "done",
        "error",
        "exec_end",
        "exec_start",
        "fn",
        "kwargs",
        "on_done",
        "value",
    )

    def __init__(self, core: CommandCore[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.core = core
        self.fn = core.fn
        self.args = args
        self.kwargs = kwargs
        self.done = threading.Lock()
        self.done.acquire()
        self.exec_start = self.exec_end = 0
        self.value: Any = None
        self.error: BaseException | None = None
        self.on_done: Callable[[], None] | None = None

    def __call__(self) -> None:
        now_ns = self.core.now_ns
        self.exec_start = now_ns()
        try:
            self.value = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:  # handed to the caller, who classifies it
            self.error = exc
        self.exec_end = now_ns()
        # the slot is held until the worker really finishes, so a hung call keeps filling its pool
        self.core.release()
        self.done.release()
        if self.on_done is not None:
            self.on_done()


class Command(Generic[P, R]):
    """A sync command: call it like the function it wraps, or use :meth:`future`.

    Build it with :func:`quills.command` or directly: ``Command(fn, CommandOptions(...), ...)`` via
    :meth:`quills.resilience.Registry.add`. ``execute`` is the call itself (what the decorator returns).
    """

    def __init__(self, core: CommandCore[P, R], pool: ThreadPool | None) -> None:
        self.core = core
        self.pool = pool
        self.execute: Callable[P, R] = self._build_semaphore_call() if pool is None else self._call_thread

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.execute(*args, **kwargs)

    @property
    def name(self) -> str:
        return self.core.name

    # -- semaphore isolation: the hot path ----------------------------------------------------------
    def _build_semaphore_call(self) -> Callable[..., R]:
        core = self.core
        fn = core.fn
        breaker = core.breaker
        metrics = core.metrics
        hist_both = metrics.hist_both
        next_acquired = core.acquired.__next__
        next_released = core.release_counter.__next__
        now_ns = core.now_ns
        slow_call = self._call_semaphore

        def call(*args: Any, **kwargs: Any) -> R:
            # The common case is inlined: closed breaker, free slot, success in time. Anything else goes to
            # the generic path or to the core, which count it the same way (tests compare the two).
            if not breaker.allows_all:
                now = now_ns()
                if now < breaker.open_until_ns and core.fallback is None:
                    raise core.short_circuited(now)
                return slow_call(args, kwargs, now)
            taken = next_acquired()
            released = core.released
            if taken - released >= core.limit:
                core.released = next_released()
                return slow_call(args, kwargs, now_ns(), rejected=True)
            start = now_ns()
            try:
                # forwarding an empty **kwargs builds a dict; most calls have none
                value = fn(*args, **kwargs) if kwargs else fn(*args)  # type: ignore[call-arg]
            except BaseException as exc:
                end = now_ns()
                core.released = next_released()
                return self._after_error(exc, args, kwargs, Permit.NORMAL, start, start, end)
            end = now_ns()
            core.released = next_released()
            duration = end - start
            if duration >= core.attention_ns:
                return self._after_long_call(value, args, kwargs, taken - released + 1, start, end)
            if end >= metrics.bucket_end:
                metrics.rotate(end)
            bucket = metrics.current
            bucket[1] += 1  # EventType.SUCCESS
            if taken != released:  # others ran alongside (a lone call's 1 is implied by any execution)
                active = taken - released + 1
                if active > bucket[20]:  # MAX_CONCURRENT_SLOT
                    bucket[20] = active
            # histogram.index_of, inlined
            ticks = duration >> 10
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

    def _after_long_call(
        self, value: R, args: tuple[Any, ...], kwargs: dict[str, Any], active: int, start: int, end: int
    ) -> R:
        """A semaphore call that was slow or late: count it fully; a late one is a timeout."""
        core = self.core
        core.note_concurrency(active, end)
        if core.settle_success(Permit.NORMAL, start, start, end, end) == EventType.TIMEOUT:
            return self._fallback(
                EventType.TIMEOUT, core.rejection_error(EventType.TIMEOUT, end), args, kwargs, start
            )
        return value

    def _call_semaphore(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], start: int, *, rejected: bool = False
    ) -> R:
        core = self.core
        permit = Permit.NORMAL
        if rejected:
            return self._fallback(
                EventType.SEMAPHORE_REJECTED, core.reject(EventType.SEMAPHORE_REJECTED, permit, start),
                args, kwargs, start,
            )  # fmt: skip
        if not core.breaker.allows_all:
            permit = core.breaker.acquire(start)
            if permit is Permit.DENIED:
                error = core.reject(EventType.SHORT_CIRCUITED, permit, start)
                return self._fallback(EventType.SHORT_CIRCUITED, error, args, kwargs, start)
        taken = next(core.acquired)
        if taken - core.released >= core.limit:
            core.release()
            error = core.reject(EventType.SEMAPHORE_REJECTED, permit, start)
            return self._fallback(EventType.SEMAPHORE_REJECTED, error, args, kwargs, start)
        active = taken - core.released + 1
        exec_start = core.now_ns()
        try:
            value = core.fn(*args, **kwargs)
        except BaseException as exc:
            end = core.now_ns()
            core.release()
            return self._after_error(exc, args, kwargs, permit, start, exec_start, end)
        end = core.now_ns()
        core.release()
        core.note_concurrency(active, end)
        if core.settle_success(permit, start, exec_start, end, end) == EventType.TIMEOUT:
            error = core.rejection_error(EventType.TIMEOUT, end)
            return self._fallback(EventType.TIMEOUT, error, args, kwargs, start)
        return value  # type: ignore[no-any-return]

    # -- thread isolation ----------------------------------------------------------------------------
    def _submit(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], start: int
    ) -> tuple[_ThreadRun | None, Permit, EventType | None]:
        """Admit the call (breaker, pool); returns the run, or the rejection event."""
        core = self.core
        assert self.pool is not None
        permit = Permit.NORMAL
        if not core.breaker.allows_all:
            permit = core.breaker.acquire(start)
            if permit is Permit.DENIED:
                return None, permit, EventType.SHORT_CIRCUITED
        run = _ThreadRun(core, args, kwargs)
        taken = next(core.acquired)
        if not self.pool.try_submit(run):
            core.release()
            return None, permit, EventType.THREAD_POOL_REJECTED
        core.note_concurrency(taken - core.released + 1, start)
        return run, permit, None

    def _call_thread(self, *args: Any, **kwargs: Any) -> R:
        core = self.core
        start = core.now_ns()
        breaker = core.breaker
        if not breaker.allows_all and start < breaker.open_until_ns and core.fallback is None:
            # open with no fallback: what a hung dependency's callers meet on every call
            raise core.short_circuited(start)
        run, permit, rejection = self._submit(args, kwargs, start)
        if run is None:
            assert rejection is not None
            return self._fallback(rejection, core.reject(rejection, permit, start), args, kwargs, start)
        timeout = core.options.timeout
        if run.done.acquire(timeout=-1 if timeout is None else timeout):
            return self._finish(run, permit, start)
        return self._fallback(
            EventType.TIMEOUT, core.reject(EventType.TIMEOUT, permit, core.now_ns()), args, kwargs, start
        )

    def _finish(self, run: _ThreadRun, permit: Permit, start: int) -> R:
        core = self.core
        if run.error is not None:
            return self._after_error(
                run.error, run.args, run.kwargs, permit, start, run.exec_start, run.exec_end
            )
        # the caller had the result by its deadline (the wait enforced it), so it cannot be late
        core.settle_success(permit, start, run.exec_start, run.exec_end, core.now_ns(), may_be_late=False)
        return run.value  # type: ignore[no-any-return]

    def future(self, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        """Start the command and return a future of its result (fallback included).

        With thread isolation the call runs on the pool and the future is resolved by the worker, or by
        a shared timer at the deadline. With semaphore isolation the call runs now, in this thread.
        """
        outer: Future[R] = Future()
        if self.pool is None:
            _settle(outer, lambda: self.execute(*args, **kwargs))
            return outer
        core = self.core
        start = core.now_ns()
        run, permit, rejection = self._submit(args, kwargs, start)
        if run is None:
            assert rejection is not None
            error = core.reject(rejection, permit, start)
            _settle(outer, lambda: self._fallback(rejection, error, args, kwargs, start))
            return outer
        claim = threading.Lock()

        def on_done() -> None:
            if claim.acquire(blocking=False):
                handle.cancel()
                _settle(outer, lambda: self._finish(run, permit, start))

        def on_timeout() -> None:
            if claim.acquire(blocking=False):
                error = core.reject(EventType.TIMEOUT, permit, core.now_ns())

                def resolve() -> None:
                    _settle(outer, lambda: self._fallback(EventType.TIMEOUT, error, args, kwargs, start))

                if core.fallback is None:
                    resolve()
                else:  # keep the shared timer thread free of user code
                    threading.Thread(target=resolve, name=f"quills-fallback-{core.name}", daemon=True).start()

        timeout = core.options.timeout
        handle = shared_timer().call_at(
            time.monotonic() + (timeout if timeout is not None else 1e9), on_timeout
        )
        run.on_done = on_done
        if run.done.locked() is False:  # finished before on_done was attached
            on_done()
        return outer

    # -- shared endings ------------------------------------------------------------------------------
    def _after_error(
        self,
        exc: BaseException,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        permit: Permit,
        start: int,
        exec_start: int,
        end: int,
    ) -> R:
        outcome = self.core.settle_error(exc, permit, start, exec_start, end)
        if outcome == Outcome.FAILURE:
            return self._fallback(EventType.FAILURE, exc, args, kwargs, start)
        raise exc

    def _fallback(
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
        except BaseException as error:
            core.fallback_failed(cause_event, error, cause, start)
        core.exit_fallback(cause_event, None, start)
        return value  # type: ignore[no-any-return]


def _settle(future: Future[R], produce: Callable[[], R]) -> None:
    try:
        future.set_result(produce())
    except BaseException as exc:
        future.set_exception(exc)
