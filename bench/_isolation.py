"""What thread isolation costs per call, and what it buys when one dependency hangs.

Cost: every call is timed on its own (``perf_counter_ns`` around it) for a bare call, a semaphore command,
a thread-isolated command and a bare ``ThreadPoolExecutor.submit().result()``, in interleaved blocks.

Hung dependency: paced callers (an open-loop request rate, as a service's request handlers are) call a
healthy dependency (sleeps ~1 ms) and another one. Phase "baseline": the other one is healthy too. Phase
"hung": the other one blocks forever (on an Event, released when the phase ends). Run once with quills
(one thread pool per dependency) and once with one shared ``ThreadPoolExecutor`` (bare futures).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import quills

_now = time.perf_counter_ns


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, -(-q * len(ordered) // 100))
    return ordered[int(rank) - 1]


# -- cost of thread isolation -------------------------------------------------------------------------
@dataclass(frozen=True)
class Latency:
    label: str
    p50_ns: float
    p99_ns: float
    added_p50_ns: float
    added_p99_ns: float


def _ok() -> int:
    return 1


def thread_cost(*, calls: int, block: int = 500) -> list[Latency]:
    """Per-call latency (ns) of each way to run ``_ok``; added = percentile minus the bare one."""
    registry = quills.Registry()
    semaphore = quills.command(group="cost", name="semaphore", isolation="semaphore", registry=registry)(_ok)
    thread = quills.command(group="cost", name="thread", isolation="thread", registry=registry)(_ok)
    executor = ThreadPoolExecutor(max_workers=10)
    open_semaphore = quills.command(
        group="cost", name="open-semaphore", isolation="semaphore", registry=registry
    )(_ok)
    open_thread = quills.command(group="cost", name="open-thread", isolation="thread", registry=registry)(_ok)
    registry.configure("open-semaphore", breaker_force_open=True)
    registry.configure("open-thread", breaker_force_open=True)

    def via_executor() -> int:
        return executor.submit(_ok).result()

    def rejected(call: Callable[[], Any]) -> Callable[[], Any]:
        def reject() -> None:
            try:
                call()
            except quills.CircuitOpenError:
                pass

        return reject

    cases: dict[str, Callable[[], Any]] = {
        "bare call": _ok,
        'quills isolation="semaphore"': semaphore,
        'quills isolation="thread"': thread,
        "ThreadPoolExecutor.submit().result()": via_executor,
        'quills isolation="semaphore", circuit open (raise + catch)': rejected(open_semaphore),
        'quills isolation="thread", circuit open (raise + catch)': rejected(open_thread),
    }
    samples: dict[str, list[float]] = {label: [] for label in cases}
    for call in cases.values():  # warm up: start the workers
        for _ in range(200):
            call()
    for _ in range(calls // block):
        for label, call in cases.items():
            out = samples[label]
            for _ in range(block):
                start = _now()
                call()
                out.append(_now() - start)
    executor.shutdown()
    bare50, bare99 = pct(samples["bare call"], 50), pct(samples["bare call"], 99)
    result = []
    for label, values in samples.items():
        p50, p99 = pct(values, 50), pct(values, 99)
        result.append(Latency(label, p50, p99, p50 - bare50, p99 - bare99))
    return result


# -- hung dependency ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Phase:
    setup: str
    phase: str
    healthy_calls: int
    healthy_errors: int
    p50_ms: float
    p99_ms: float
    other_calls: int
    other_outcomes: dict[str, int]


@dataclass(frozen=True)
class Workload:
    seconds: float = 3.0
    healthy_callers: int = 8
    other_callers: int = 8
    rate_hz: float = 100.0  # per caller
    healthy_sleep: float = 0.001
    other_timeout: float = 0.25
    healthy_timeout: float = 1.0
    pool_size: int = 10


Drive = tuple[list[float], dict[str, int], dict[str, int]]


def _caller(
    call: Callable[[], Any],
    deadline: float,
    period: float,
    latencies: list[float] | None,
    outcomes: dict[str, int],
    offset: float,
) -> None:
    next_at = time.monotonic() + offset
    while True:
        now = time.monotonic()
        if now >= deadline:
            return
        if next_at > now:
            time.sleep(next_at - now)
        start = _now()
        try:
            call()
            outcome = "ok"
        except Exception as exc:  # counted by type: a timeout, a rejection or the dependency's error
            outcome = type(exc).__name__
        if latencies is not None:
            latencies.append((_now() - start) / 1e6)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        # open loop: the next call is due one period after the last due time, never in a burst
        next_at = max(next_at + period, time.monotonic() - period)


def _drive(
    healthy: Callable[[], Any], other: Callable[[], Any], work: Workload
) -> tuple[list[float], dict[str, int], dict[str, int]]:
    deadline = time.monotonic() + work.seconds
    period = 1.0 / work.rate_hz
    latencies: list[float] = []
    healthy_outcomes: dict[str, int] = {}
    other_outcomes: dict[str, int] = {}
    threads = []
    for i in range(work.healthy_callers):
        offset = period * i / work.healthy_callers
        args = (healthy, deadline, period, latencies, healthy_outcomes, offset)
        threads.append(threading.Thread(target=_caller, args=args, daemon=True))
    for i in range(work.other_callers):
        offset = period * (i + 0.5) / work.other_callers
        args = (other, deadline, period, None, other_outcomes, offset)
        threads.append(threading.Thread(target=_caller, args=args, daemon=True))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, healthy_outcomes, other_outcomes


def _merge(runs: list[Drive]) -> Drive:
    latencies: list[float] = []
    healthy: dict[str, int] = {}
    other: dict[str, int] = {}
    for run_latencies, run_healthy, run_other in runs:
        latencies += run_latencies
        for into, counts in ((healthy, run_healthy), (other, run_other)):
            for outcome, count in counts.items():
                into[outcome] = into.get(outcome, 0) + count
    return latencies, healthy, other


def _phase(setup: str, phase: str, drive: Drive) -> Phase:
    latencies, healthy, other = drive
    return Phase(
        setup=setup,
        phase=phase,
        healthy_calls=sum(healthy.values()),
        healthy_errors=sum(count for outcome, count in healthy.items() if outcome != "ok"),
        p50_ms=pct(latencies, 50),
        p99_ms=pct(latencies, 99),
        other_calls=sum(other.values()),
        other_outcomes=dict(sorted(other.items())),
    )


def _run_quills(work: Workload, hung: bool) -> Drive:
    release = threading.Event()

    def sleep_ms() -> None:
        time.sleep(work.healthy_sleep)

    def other_target() -> None:
        if hung:
            release.wait()
        else:
            time.sleep(work.healthy_sleep)

    # one pool per dependency (the default: a pool is named after the command's group)
    registry = quills.Registry()
    pool = quills.ThreadPoolOptions(core_size=work.pool_size)
    healthy = quills.command(
        group="healthy", timeout=work.healthy_timeout, pool_options=pool, registry=registry
    )(sleep_ms)
    other = quills.command(group="other", timeout=work.other_timeout, pool_options=pool, registry=registry)(
        other_target
    )
    try:
        return _drive(healthy, other, work)
    finally:
        release.set()


def _run_shared(work: Workload, hung: bool) -> Drive:
    release = threading.Event()
    executor = ThreadPoolExecutor(max_workers=2 * work.pool_size)

    def sleep_ms() -> None:
        time.sleep(work.healthy_sleep)

    def other_target() -> None:
        if hung:
            release.wait()
        else:
            time.sleep(work.healthy_sleep)

    def healthy() -> None:
        executor.submit(sleep_ms).result(timeout=work.healthy_timeout)

    def other() -> None:
        executor.submit(other_target).result(timeout=work.other_timeout)

    try:
        return _drive(healthy, other, work)
    finally:
        release.set()
        executor.shutdown(wait=True, cancel_futures=True)


QUILLS_SETUP = "quills (a pool per dependency)"


def hung_dependency(work: Workload, repeats: int = 4) -> tuple[list[Phase], dict[str, list[float]]]:
    """Baseline and hung phases, with quills pools and with one shared executor, ``repeats`` times
    interleaved. Returns one row per (setup, phase) pooling its repeats' samples, and per setup the
    ratio hung p99 / baseline p99 of each repeat (a baseline and a hung phase run back to back, so the
    load other processes put on the machine is about the same in both)."""
    shared_setup = f"one shared ThreadPoolExecutor({2 * work.pool_size})"
    runs: dict[tuple[str, str], list[Drive]] = {}
    for _ in range(repeats):
        for setup, run in ((QUILLS_SETUP, _run_quills), (shared_setup, _run_shared)):
            for hung in (False, True):
                runs.setdefault((setup, "hung" if hung else "baseline"), []).append(run(work, hung))
    phases = [_phase(setup, phase, _merge(drives)) for (setup, phase), drives in runs.items()]
    phases.sort(key=lambda p: (p.setup != QUILLS_SETUP, p.phase != "baseline"))
    ratios = {
        setup: [
            pct(hung[0], 99) / pct(base[0], 99)
            for base, hung in zip(runs[(setup, "baseline")], runs[(setup, "hung")], strict=True)
        ]
        for setup in (QUILLS_SETUP, shared_setup)
    }
    return phases, ratios
