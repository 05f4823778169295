"""Per-call overhead over a bare call: sync success, async success, open rejection; and its flatness.

Every round times each case once, in a shuffled order, after a full collection (so no case pays for the
garbage another one left), right next to a bare call timed in the same round;
a case's overhead for that round is ``ns/call(case) - ns/call(bare)``. The reported figure is the median
over rounds, so a burst of load from another process spoils a round, not the result. Loops are timed in
this thread's CPU time (see ``_now``).
"""

from __future__ import annotations

import asyncio
import gc
import random
import statistics
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from _peers import OpenTarget, Peer, aok, ok

SECTIONS = ("sync", "async", "open_sync", "open_async")
BARE = "(bare)"

# CPU time of this thread, not wall time: on a shared machine the process is often descheduled for a
# while, which wall time counts and CPU time does not (an A/A run of one library against a copy of itself
# spread by up to 1.5x in wall time under load 3.7, by under 3 % in thread time)
_now = time.thread_time_ns


@dataclass
class Samples:
    """Per-round ns/call of every case in one section, bare included."""

    per_call: dict[str, list[float]] = field(default_factory=dict)

    def add(self, case: str, ns: float) -> None:
        self.per_call.setdefault(case, []).append(ns)

    def overheads(self, case: str) -> list[float]:
        bare = self.per_call[BARE]
        return [c - b for c, b in zip(self.per_call[case], bare, strict=True)]

    def overhead(self, case: str) -> float:
        return statistics.median(self.overheads(case))

    def spread(self, case: str) -> tuple[float, float]:
        """The interquartile range of the per-round overheads (what noise did to this case)."""
        q = statistics.quantiles(self.overheads(case), n=4)
        return q[0], q[2]

    def ratio(self, case: str) -> float:
        """Median of case/bare over rounds."""
        return statistics.median(c / b for c, b in zip(self.per_call[case], self.per_call[BARE], strict=True))

    def bare(self) -> float:
        return statistics.median(self.per_call[BARE])


# -- timing loops (kept tiny and alike, so the loop itself cancels out against the bare loop) --------
def _loop_sync(call: Callable[[], Any], n: int) -> float:
    start = _now()
    for _ in range(n):
        call()
    return (_now() - start) / n


def _loop_open(call: Callable[[], Any], error: Any, n: int) -> float:
    start = _now()
    for _ in range(n):
        try:
            call()
        except error:
            pass
    return (_now() - start) / n


async def _loop_async(call: Callable[[], Awaitable[Any]], n: int) -> float:
    start = _now()
    for _ in range(n):
        await call()
    return (_now() - start) / n


async def _loop_open_async(call: Callable[[], Awaitable[Any]], error: Any, n: int) -> float:
    start = _now()
    for _ in range(n):
        try:
            await call()
        except error:
            pass
    return (_now() - start) / n


def _checked(target: OpenTarget, label: str) -> None:
    if target.ran():
        raise RuntimeError(f"{label}: the open breaker ran its target {target.ran()} times")


def measure(
    peers: list[Peer], *, rounds: int, calls: int, open_calls: int, seed: int = 1
) -> dict[str, Samples]:
    """Interleaved rounds of every case; returns ns/call per section and case."""
    rng = random.Random(seed)
    results = {section: Samples() for section in SECTIONS}
    # success wrappers are built once (their state is what a long-lived service has); open breakers are
    # built fresh each round, so a peer whose rejection cost grows with time open is sampled alike
    sync_calls = {p.name: p.sync() for p in peers if p.sync is not None}
    async_factories = {p.name: p.async_ for p in peers if p.async_ is not None}
    for _ in range(rounds):
        # sync success
        order = [BARE, *sync_calls]
        rng.shuffle(order)
        for name in order:
            gc.collect()
            results["sync"].add(name, _loop_sync(ok if name == BARE else sync_calls[name], calls))
        # open rejection, sync
        order = [BARE, *(p.name for p in peers if p.open_sync is not None)]
        rng.shuffle(order)
        by_name = {p.name: p for p in peers}
        for name in order:
            if name == BARE:
                gc.collect()
                results["open_sync"].add(BARE, _loop_sync(ok, calls))
                continue
            make = by_name[name].open_sync
            assert make is not None
            target = make()
            gc.collect()
            results["open_sync"].add(name, _loop_open(target.call, target.error, open_calls))
            _checked(target, name)
            del target
        # async success and async rejection, in one event loop per round
        asyncio.run(_async_round(peers, async_factories, results, rng, calls, open_calls))
        gc.collect()
    return results


async def _async_round(
    peers: list[Peer],
    factories: dict[str, Callable[[], Callable[[], Awaitable[Any]]] | None],
    results: dict[str, Samples],
    rng: random.Random,
    calls: int,
    open_calls: int,
) -> None:
    # async wrappers are built inside the loop they run on (some bind to it)
    wrapped = {name: make() for name, make in factories.items() if make is not None}
    order = [BARE, *wrapped]
    rng.shuffle(order)
    for name in order:
        call = aok if name == BARE else wrapped[name]
        gc.collect()
        results["async"].add(name, await _loop_async(call, calls))
    order = [BARE, *(p.name for p in peers if p.open_async is not None)]
    rng.shuffle(order)
    by_name = {p.name: p for p in peers}
    for name in order:
        if name == BARE:
            gc.collect()
            results["open_async"].add(BARE, await _loop_async(aok, calls))
            continue
        make = by_name[name].open_async
        assert make is not None
        target = await make()
        gc.collect()
        results["open_async"].add(name, await _loop_open_async(target.call, target.error, open_calls))
        _checked(target, name)
        del target


# -- flatness over a long run -----------------------------------------------------------------------
@dataclass(frozen=True)
class Flatness:
    """ns/call over a bare call in each consecutive chunk of one long run (median of its slices)."""

    label: str
    chunk: int
    chunks: list[float]
    #: bytes still allocated per call after 10,000 more calls at the end of the run (tracemalloc)
    kept_bytes_per_call: float = 0.0

    @property
    def first(self) -> float:
        return self.chunks[0]

    @property
    def last(self) -> float:
        return self.chunks[-1]

    @property
    def growth(self) -> float:
        return self.last / self.first if self.first > 0 else float("nan")


#: each chunk is timed as this many consecutive slices; the chunk's figure is the median slice, so a
#: burst of load from another process during one slice does not pass for growth
SLICES = 10


def _bare_sync(chunk: int) -> float:
    return statistics.median(_loop_sync(ok, chunk // SLICES) for _ in range(3 * SLICES))


def _chunks(time_slice: Callable[[int], float], bare: float, total: int, chunk: int) -> list[float]:
    size = chunk // SLICES
    return [statistics.median(time_slice(size) for _ in range(SLICES)) - bare for _ in range(total // chunk)]


KEPT_CALLS = 10_000


def _kept(run: Callable[[int], object]) -> float:
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    run(KEPT_CALLS)
    gc.collect()
    kept = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return kept / KEPT_CALLS


def flat_sync(label: str, call: Callable[[], Any], *, total: int, chunk: int) -> Flatness:
    bare = _bare_sync(chunk)
    chunks = _chunks(lambda n: _loop_sync(call, n), bare, total, chunk)
    return Flatness(label, chunk, chunks, _kept(lambda n: _loop_sync(call, n)))


def flat_open(label: str, target: OpenTarget, *, total: int, chunk: int) -> Flatness:
    bare = _bare_sync(chunk)
    chunks = _chunks(lambda n: _loop_open(target.call, target.error, n), bare, total, chunk)
    kept = _kept(lambda n: _loop_open(target.call, target.error, n))
    _checked(target, label)
    return Flatness(label, chunk, chunks, kept)


def flat_async(
    label: str, make: Callable[[], Callable[[], Awaitable[Any]]], *, total: int, chunk: int
) -> Flatness:
    async def run() -> Flatness:
        size = chunk // SLICES
        bare = statistics.median([await _loop_async(aok, size) for _ in range(3 * SLICES)])
        call = make()
        chunks = []
        for _ in range(total // chunk):
            slices = [await _loop_async(call, size) for _ in range(SLICES)]
            chunks.append(statistics.median(slices) - bare)
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        await _loop_async(call, KEPT_CALLS)
        gc.collect()
        kept = (tracemalloc.get_traced_memory()[0] - base) / KEPT_CALLS
        tracemalloc.stop()
        return Flatness(label, chunk, chunks, kept)

    return asyncio.run(run())
