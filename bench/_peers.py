"""Adapters: each library wraps the same targets for sync success, async success and open rejection.

ADD A NEW LIBRARY HERE: write one ``_make_<lib>()`` returning a :class:`Peer` and list it in ``PEERS``.
A peer may leave a path as None (not supported); a library that fails to import is reported, not fatal.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import quills

SyncFn = Callable[[], Any]
AsyncFn = Callable[[], Awaitable[Any]]

#: an open circuit stays open for the whole run
_FOREVER_S = 10**6


class Boom(Exception):
    """What the failing target raises to trip a breaker."""


def ok() -> int:
    return 1


async def aok() -> int:
    return 1


@dataclass
class OpenTarget:
    """A wrapped target whose breaker is open, the error type a rejection raises, and a call count."""

    call: Any
    error: type[BaseException] | tuple[type[BaseException], ...]
    calls: list[int] = field(default_factory=lambda: [0])

    def ran(self) -> int:
        """How often the wrapped target itself ran after the breaker opened (must stay 0)."""
        return self.calls[0]


@dataclass
class Peer:
    """One library's wrappers; each factory builds a fresh wrapper (a fresh breaker where it matters)."""

    name: str
    version: str
    sync: Callable[[], SyncFn] | None = None
    async_: Callable[[], AsyncFn] | None = None
    open_sync: Callable[[], OpenTarget] | None = None
    open_async: Callable[[], Awaitable[OpenTarget]] | None = None
    note: str = ""


def _failing(counter: list[int], armed: list[bool]) -> Callable[[], int]:
    def target() -> int:
        if armed[0]:
            counter[0] += 1
        raise Boom

    return target


def _afailing(counter: list[int], armed: list[bool]) -> Callable[[], Awaitable[int]]:
    async def target() -> int:
        if armed[0]:
            counter[0] += 1
        raise Boom

    return target


def _trip_sync(call: SyncFn, catch: tuple[type[BaseException], ...], times: int) -> None:
    for _ in range(times):
        try:
            call()
        except catch:
            pass


async def _trip_async(call: AsyncFn, catch: tuple[type[BaseException], ...], times: int) -> None:
    for _ in range(times):
        try:
            await call()
        except catch:
            pass


def _version(dist: str) -> str:
    return importlib.metadata.version(dist)


# -- quills -------------------------------------------------------------------------------------------
_QUILLS_SEQ = [0]


def _quills_name(kind: str) -> str:
    _QUILLS_SEQ[0] += 1
    return f"{kind}-{_QUILLS_SEQ[0]}"


def make_quills(registry: quills.Registry | None = None) -> Peer:
    """quills with default options (Hystrix windows, 1 s timeout, full metrics), semaphore isolation."""
    reg = registry or quills.Registry()

    def sync() -> SyncFn:
        return quills.command(group="bench", name=_quills_name("sync"), isolation="semaphore", registry=reg)(
            ok
        )

    def async_() -> AsyncFn:
        return quills.command(group="bench", name=_quills_name("async"), registry=reg)(aok)

    def open_sync() -> OpenTarget:
        name = _quills_name("open")
        target = OpenTarget(None, quills.CircuitOpenError)
        armed = [False]
        fn = quills.command(group="bench", name=name, isolation="semaphore", registry=reg)(
            _failing(target.calls, armed)
        )
        reg.configure(name, breaker_force_open=True)
        armed[0] = True
        target.call = fn
        return target

    async def open_async() -> OpenTarget:
        name = _quills_name("aopen")
        target = OpenTarget(None, quills.CircuitOpenError)
        armed = [False]
        fn = quills.command(group="bench", name=name, registry=reg)(_afailing(target.calls, armed))
        reg.configure(name, breaker_force_open=True)
        armed[0] = True
        target.call = fn
        return target

    return Peer("quills", quills.__version__, sync, async_, open_sync, open_async)


def make_quills_count_window(registry: quills.Registry | None = None) -> Peer:
    """quills with a resilience4j-style count window (last 100 calls) instead of the time window."""
    reg = registry or quills.Registry()
    options = quills.BreakerOptions(window_type="count", window_size=100)

    def sync() -> SyncFn:
        name = _quills_name("csync")
        return quills.command(group="bench", name=name, isolation="semaphore", breaker=options, registry=reg)(
            ok
        )

    def async_() -> AsyncFn:
        return quills.command(group="bench", name=_quills_name("casync"), breaker=options, registry=reg)(aok)

    return Peer("quills (count window 100)", quills.__version__, sync, async_, note="success paths only")


# -- circuitbreaker -----------------------------------------------------------------------------------
def _make_circuitbreaker() -> Peer:
    import circuitbreaker as cb

    def sync() -> SyncFn:
        return cb.CircuitBreaker()(ok)  # type: ignore[no-any-return]

    def async_() -> AsyncFn:
        return cb.CircuitBreaker()(aok)  # type: ignore[no-any-return]

    def open_sync() -> OpenTarget:
        target = OpenTarget(None, cb.CircuitBreakerError)
        armed = [False]
        call = cb.CircuitBreaker(failure_threshold=1, recovery_timeout=_FOREVER_S)(
            _failing(target.calls, armed)
        )
        _trip_sync(call, (Boom, cb.CircuitBreakerError), 2)
        armed[0] = True
        target.call = call
        return target

    async def open_async() -> OpenTarget:
        target = OpenTarget(None, cb.CircuitBreakerError)
        armed = [False]
        call = cb.CircuitBreaker(failure_threshold=1, recovery_timeout=_FOREVER_S)(
            _afailing(target.calls, armed)
        )
        await _trip_async(call, (Boom, cb.CircuitBreakerError), 2)
        armed[0] = True
        target.call = call
        return target

    return Peer("circuitbreaker", _version("circuitbreaker"), sync, async_, open_sync, open_async)


# -- pybreaker ----------------------------------------------------------------------------------------
def _make_pybreaker() -> Peer:
    import pybreaker

    def sync() -> SyncFn:
        return pybreaker.CircuitBreaker()(ok)  # type: ignore[no-any-return]

    def open_sync() -> OpenTarget:
        target = OpenTarget(None, pybreaker.CircuitBreakerError)
        armed = [False]
        call = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=_FOREVER_S)(_failing(target.calls, armed))
        _trip_sync(call, (Boom, pybreaker.CircuitBreakerError), 2)
        armed[0] = True
        target.call = call
        return target

    return Peer("pybreaker", _version("pybreaker"), sync, None, open_sync, None, note="asyncio: Tornado only")


# -- aiobreaker ---------------------------------------------------------------------------------------
def _make_aiobreaker() -> Peer:
    import aiobreaker

    forever = timedelta(seconds=_FOREVER_S)

    def sync() -> SyncFn:
        return aiobreaker.CircuitBreaker()(ok)  # type: ignore[no-any-return]

    def async_() -> AsyncFn:
        return aiobreaker.CircuitBreaker()(aok)  # type: ignore[no-any-return]

    def open_sync() -> OpenTarget:
        target = OpenTarget(None, aiobreaker.CircuitBreakerError)
        armed = [False]
        call = aiobreaker.CircuitBreaker(fail_max=1, timeout_duration=forever)(_failing(target.calls, armed))
        _trip_sync(call, (Boom, aiobreaker.CircuitBreakerError), 2)
        armed[0] = True
        target.call = call
        return target

    async def open_async() -> OpenTarget:
        target = OpenTarget(None, aiobreaker.CircuitBreakerError)
        armed = [False]
        call = aiobreaker.CircuitBreaker(fail_max=1, timeout_duration=forever)(_afailing(target.calls, armed))
        await _trip_async(call, (Boom, aiobreaker.CircuitBreakerError), 2)
        armed[0] = True
        target.call = call
        return target

    return Peer("aiobreaker", _version("aiobreaker"), sync, async_, open_sync, open_async)


# -- purgatory ----------------------------------------------------------------------------------------
def _make_purgatory() -> Peer:
    import purgatory
    from purgatory.domain.model import OpenedState

    seq = [0]

    def circuit() -> str:
        seq[0] += 1
        return f"c{seq[0]}"

    def sync() -> SyncFn:
        return purgatory.SyncCircuitBreakerFactory()(circuit())(ok)  # type: ignore[no-any-return]

    def async_() -> AsyncFn:
        return purgatory.AsyncCircuitBreakerFactory()(circuit())(aok)  # type: ignore[no-any-return]

    def open_sync() -> OpenTarget:
        target = OpenTarget(None, OpenedState)
        armed = [False]
        factory = purgatory.SyncCircuitBreakerFactory(default_threshold=1, default_ttl=_FOREVER_S)
        call = factory(circuit())(_failing(target.calls, armed))
        _trip_sync(call, (Boom, OpenedState), 2)
        armed[0] = True
        target.call = call
        return target

    async def open_async() -> OpenTarget:
        target = OpenTarget(None, OpenedState)
        armed = [False]
        factory = purgatory.AsyncCircuitBreakerFactory(default_threshold=1, default_ttl=_FOREVER_S)
        await factory.initialize()
        call = factory(circuit())(_afailing(target.calls, armed))
        await _trip_async(call, (Boom, OpenedState), 2)
        armed[0] = True
        target.call = call
        return target

    return Peer(
        "purgatory",
        _version("purgatory"),
        sync,
        async_,
        open_sync,
        open_async,
        note="open: a fresh breaker per round (its rejection cost grows with time spent open)",
    )


# -- pyresilience -------------------------------------------------------------------------------------
def _make_pyresilience() -> Peer:
    import pyresilience as pr

    def config(threshold: int = 5) -> Any:
        return pr.CircuitBreakerConfig(failure_threshold=threshold, recovery_timeout=_FOREVER_S)

    def sync() -> SyncFn:
        return pr.resilient(circuit_breaker=config())(ok)  # type: ignore[no-any-return]

    def async_() -> AsyncFn:
        return pr.resilient(circuit_breaker=config())(aok)  # type: ignore[no-any-return]

    def open_sync() -> OpenTarget:
        target = OpenTarget(None, pr.CircuitOpenError)
        armed = [False]
        call = pr.resilient(circuit_breaker=config(1))(_failing(target.calls, armed))
        _trip_sync(call, (Boom, pr.CircuitOpenError), 2)
        armed[0] = True
        target.call = call
        return target

    async def open_async() -> OpenTarget:
        target = OpenTarget(None, pr.CircuitOpenError)
        armed = [False]
        call = pr.resilient(circuit_breaker=config(1))(_afailing(target.calls, armed))
        await _trip_async(call, (Boom, pr.CircuitOpenError), 2)
        armed[0] = True
        target.call = call
        return target

    return Peer(
        "pyresilience",
        _version("pyresilience"),
        sync,
        async_,
        open_sync,
        open_async,
        note="consecutive-failure breaker only",
    )


def _make_pyresilience_window() -> Peer:
    import pyresilience as pr

    config = pr.CircuitBreakerConfig(sliding_window_size=100, minimum_calls=20, recovery_timeout=_FOREVER_S)

    def sync() -> SyncFn:
        return pr.resilient(circuit_breaker=config)(ok)  # type: ignore[no-any-return]

    def async_() -> AsyncFn:
        return pr.resilient(circuit_breaker=config)(aok)  # type: ignore[no-any-return]

    return Peer(
        "pyresilience (rate window 100)",
        _version("pyresilience"),
        sync,
        async_,
        note="success paths only, to compare with quills' count window",
    )


PEERS: tuple[tuple[str, Callable[[], Peer]], ...] = (
    ("circuitbreaker", _make_circuitbreaker),
    ("pybreaker", _make_pybreaker),
    ("aiobreaker", _make_aiobreaker),
    ("purgatory", _make_purgatory),
    ("pyresilience", _make_pyresilience),
    ("pyresilience (rate window 100)", _make_pyresilience_window),
)


def load_peers() -> tuple[list[Peer], dict[str, str]]:
    """Every peer that imports and passes a smoke test, and why the others were left out."""
    loaded: list[Peer] = []
    failed: dict[str, str] = {}
    for name, make in PEERS:
        try:
            peer = make()
            _smoke(peer)
        except Exception as exc:  # a peer that cannot run is reported in the doc, not fatal
            failed[name] = f"{type(exc).__name__}: {exc}"
            continue
        loaded.append(peer)
    return loaded, failed


def _smoke(peer: Peer) -> None:
    """Each path returns 1 or rejects without running the target."""
    if peer.sync is not None and peer.sync()() != 1:
        raise RuntimeError("sync call did not return the target's value")
    if peer.open_sync is not None:
        target = peer.open_sync()
        try:
            target.call()
        except target.error:
            pass
        else:
            raise RuntimeError("open breaker did not reject")
        if target.ran():
            raise RuntimeError("open breaker ran the target")

    async def smoke_async() -> None:
        if peer.async_ is not None and await peer.async_()() != 1:
            raise RuntimeError("async call did not return the target's value")
        if peer.open_async is not None:
            target = await peer.open_async()
            try:
                await target.call()
            except target.error:
                pass
            else:
                raise RuntimeError("open async breaker did not reject")
            if target.ran():
                raise RuntimeError("open async breaker ran the target")

    asyncio.run(smoke_async())
