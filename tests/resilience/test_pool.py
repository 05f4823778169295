"""Thread pools: bounded, named, reject at once when full; queues obey the rejection threshold."""

from __future__ import annotations

import threading

from quills.resilience.options import ThreadPoolOptions
from quills.resilience.pool import ThreadPool


def _blocking_task(gate: threading.Event, started: threading.Semaphore) -> object:
    def task() -> None:
        started.release()
        gate.wait(5)

    return task


def test_without_a_queue_the_pool_rejects_once_every_thread_is_busy() -> None:
    pool = ThreadPool("p", ThreadPoolOptions(core_size=2))
    gate, started = threading.Event(), threading.Semaphore(0)
    assert pool.try_submit(_blocking_task(gate, started))  # type: ignore[arg-type]
    assert pool.try_submit(_blocking_task(gate, started))  # type: ignore[arg-type]
    assert started.acquire(timeout=5) and started.acquire(timeout=5)
    assert not pool.try_submit(lambda: None)
    snapshot = pool.snapshot()
    assert (snapshot.active, snapshot.queued, snapshot.rolling_rejected) == (2, 0, 1)
    gate.set()


def test_with_a_queue_calls_wait_up_to_the_rejection_threshold() -> None:
    pool = ThreadPool(
        "q", ThreadPoolOptions(core_size=1, max_queue_size=10, queue_size_rejection_threshold=2)
    )
    gate, started = threading.Event(), threading.Semaphore(0)
    done = threading.Semaphore(0)
    assert pool.try_submit(_blocking_task(gate, started))  # type: ignore[arg-type]
    assert started.acquire(timeout=5)
    assert pool.try_submit(done.release) and pool.try_submit(done.release)  # queued
    assert not pool.try_submit(done.release)  # the threshold (2) is reached
    assert pool.snapshot().queued == 2
    gate.set()
    assert done.acquire(timeout=5) and done.acquire(timeout=5)


def test_pool_grows_to_core_size_and_shrinks_when_reconfigured() -> None:
    pool = ThreadPool("r", ThreadPoolOptions(core_size=3))
    gate, started = threading.Event(), threading.Semaphore(0)
    for _ in range(3):
        assert pool.try_submit(_blocking_task(gate, started))  # type: ignore[arg-type]
    for _ in range(3):
        assert started.acquire(timeout=5)
    assert pool.snapshot().largest_pool_size == 3
    gate.set()
    pool.configure(ThreadPoolOptions(core_size=1))
    assert pool.snapshot().core_size == 1 and pool.snapshot().pool_size == 1
