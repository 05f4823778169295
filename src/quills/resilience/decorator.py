"""``@quills.command``: turn a function or coroutine function into a command, keeping its signature."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, ParamSpec, Protocol, TypeVar, cast, overload

from quills.clock import SYSTEM_CLOCK, Clock
from quills.resilience.async_command import AsyncCommand
from quills.resilience.options import BreakerOptions, CommandOptions, Isolation, ThreadPoolOptions
from quills.resilience.registry import Registry
from quills.resilience.sync_command import Command

__all__ = ("command", "SyncCommandFunction", "AsyncCommandFunction", "default_registry", "resolve_registry")

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

default_registry = Registry()


def resolve_registry(registry: Registry | None) -> Registry:
    """``registry``, or the process-wide ``quills.registry`` when it is None."""
    return default_registry if registry is None else registry


class SyncCommandFunction(Protocol[P, R_co]):
    """What ``@command`` makes of a plain function: call it as before, or use ``.future()``."""

    command: Command[P, Any]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...

    def future(self, *args: P.args, **kwargs: P.kwargs) -> Future[Any]: ...


class AsyncCommandFunction(Protocol[P, R_co]):
    """What ``@command`` makes of a coroutine function: await it as before."""

    command: AsyncCommand[P, Any]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R_co]: ...


class _Decorator(Protocol):
    @overload
    def __call__(  # type: ignore[overload-overlap]  # a coroutine function is also a Callable[P, R]
        self, fn: Callable[P, Coroutine[Any, Any, R]]
    ) -> AsyncCommandFunction[P, R]: ...

    @overload
    def __call__(self, fn: Callable[P, R]) -> SyncCommandFunction[P, R]: ...


def command(
    *,
    group: str,
    name: str | None = None,
    timeout: float | None = 1.0,
    isolation: Isolation | None = None,
    max_concurrent: int = 10,
    pool: str | None = None,
    fallback: Callable[..., Any] | None = None,
    breaker: BreakerOptions | None = None,
    ignore: tuple[type[BaseException], ...] = (),
    bad_request: tuple[type[BaseException], ...] = (),
    pool_options: ThreadPoolOptions | None = None,
    fallback_max_concurrent: int = 10,
    metrics_window: float = 10.0,
    health_interval: float = 0.5,
    percentile_window: float = 60.0,
    percentile_buckets: int = 6,
    clock: Clock = SYSTEM_CLOCK,
    registry: Registry | None = None,
) -> _Decorator:
    """Run every call of the decorated function as a command.

    Example::

        @quills.command(group="users-cache", isolation="semaphore", timeout=0.05)
        def cached_user(user_id: int) -> User: ...

        @quills.command(group="users-api", fallback=cached_user)
        def get_user(user_id: int) -> User: ...

    Args:
        group: the dependency (dashboard group and, by default, the thread pool's name).
        name: the command key, unique in the registry. Default: the function's qualified name
            (``"Class.method"``, or just ``"f"`` for a function defined inside another).
        timeout: seconds, 0.000001..86400, or None. Default 1.0.
        isolation: ``"thread"`` (default for plain functions), ``"semaphore"``, or ``"async"`` (default and
            only choice for coroutine functions).
        max_concurrent: semaphore/asyncio limit, 1..1_000_000. Default 10. (Thread isolation is bounded by
            the pool: ``pool_options.core_size``.)
        pool: thread pool name. Default: ``group``.
        fallback: a function (or another command) called with the same arguments when the call fails, is
            rejected or times out. A sync command needs a sync fallback; an async one takes either.
        breaker: circuit breaker options. Default: ``BreakerOptions()`` (Hystrix's).
        ignore: exception types that count as success and pass through.
        bad_request: exception types that pass through uncounted by the breaker (also ``quills.BadRequest``).
        pool_options: the thread pool's sizes, if this command creates it (or to reconfigure it).
        fallback_max_concurrent: fallbacks at once, 1..1_000_000. Default 10.
        metrics_window, health_interval, percentile_window, percentile_buckets: metric windows (see
            :class:`quills.CommandOptions`).
        clock: time source; pass ``quills.testing.FakeClock()`` in tests.
        registry: where the command is registered. Default: ``quills.registry``.

    Raises:
        ConfigError: an option is out of range or does not suit the function.
    """

    def decorate(fn: Callable[..., Any]) -> Any:
        is_async = inspect.iscoroutinefunction(fn)
        options = CommandOptions(
            group=group,
            # methods keep "Class.method"; a function defined inside another is named by itself
            name=name or fn.__qualname__.rsplit("<locals>.", 1)[-1],
            timeout=timeout,
            isolation=isolation or ("async" if is_async else "thread"),
            max_concurrent=max_concurrent,
            pool=pool,
            fallback_max_concurrent=fallback_max_concurrent,
            breaker=breaker or BreakerOptions(),
            ignore=tuple(ignore),
            bad_request=tuple(bad_request),
            metrics_window=metrics_window,
            health_interval=health_interval,
            percentile_window=percentile_window,
            percentile_buckets=percentile_buckets,
        )
        built = resolve_registry(registry).build(
            fn, options, fallback=fallback, pool_options=pool_options, clock=clock
        )
        execute = built.execute
        if isinstance(built, AsyncCommand):

            async def run_async(*args: Any, **kwargs: Any) -> Any:
                return await execute(*args, **kwargs)

            # the closure itself is the fastest thing to hand out; wrap only to carry attributes
            wrapper: Any = execute if inspect.iscoroutinefunction(execute) else run_async
        else:
            wrapper = execute if inspect.isfunction(execute) else _plain(execute)
            wrapper.future = built.future
        functools.update_wrapper(wrapper, fn)
        wrapper.command = built
        return wrapper

    return cast(_Decorator, decorate)


def _plain(call: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        return call(*args, **kwargs)

    return run
