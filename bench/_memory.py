"""Memory per command with default windows, once every bucket of every window holds data.

Each command gets its own fake clock; its target advances that clock by a latency drawn from a
distribution, so the command records real-looking latencies without sleeping. Time runs 70 s, so the 20
counter buckets (10 s / 500 ms) and the 6 percentile buckets (60 s / 10 s) are all filled and rotated.
"""

from __future__ import annotations

import gc
import math
import random
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass

import quills
from quills.testing import FakeClock


@dataclass(frozen=True)
class Memory:
    label: str
    commands: int
    calls_per_command: int
    bytes_per_command: float
    distinct_latency_buckets: int


def _lognormal(rng: random.Random, median_s: float, sigma: float) -> Callable[[], float]:
    return lambda: min(rng.lognormvariate(math.log(median_s), sigma), 0.9)


def _log_uniform(rng: random.Random, low: float, high: float) -> Callable[[], float]:
    span = math.log(high / low)
    return lambda: min(low * math.exp(rng.random() * span), 0.9)


def per_command(*, commands: int, spread: str, seconds: float = 70.0, seed: int = 7) -> Memory:
    """Bytes that ``commands`` exercised commands hold, per command (tracemalloc, after a full GC).

    ``spread``: ``"typical"`` is ~100 calls/s with latencies from a lognormal around 2 ms (most within
    0.3-15 ms); ``"wide"`` is back-to-back calls with latencies log-uniform from 10 us to 50 ms, ~1,700 calls
    per 10 s percentile bucket, so most histogram buckets in that range are hit: the worst case for the
    sparse histograms kept for closed percentile buckets.
    """
    _exercise(2, spread, seconds, seed)  # one-time allocations (caches, interned names) are not per command
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    registry, calls = _exercise(commands, spread, seconds, seed)
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    distinct = len(registry.snapshots()[0].latency_execute.buckets)
    return Memory(spread, commands, calls, used / commands, distinct)


def _exercise(commands: int, spread: str, seconds: float, seed: int) -> tuple[quills.Registry, int]:
    rng = random.Random(seed)
    if spread == "typical":
        draw, step = _lognormal(rng, 0.002, 1.0), 0.01
    else:
        draw, step = _log_uniform(rng, 1e-5, 0.05), 0.0
    registry = quills.Registry()
    calls = 0
    for i in range(commands):
        clock = FakeClock()
        fail = rng.random

        def target(clock: FakeClock = clock, fail: Callable[[], float] = fail) -> int:
            clock.advance(draw())
            if fail() < 0.02:
                raise RuntimeError("dependency error")
            return 1

        call = quills.command(
            group=f"g{i % 10}", name=f"cmd{i}", isolation="semaphore", clock=clock, registry=registry
        )(target)
        end = clock.now_ns() + int(seconds * 1e9)
        calls = 0
        while clock.now_ns() < end:
            try:
                call()
            except (RuntimeError, quills.QuillsError):
                pass
            calls += 1
            clock.advance(step)
    return registry, calls
