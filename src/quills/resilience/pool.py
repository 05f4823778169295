"""Named, bounded thread pools: the bulkhead of thread-isolated commands (Hystrix semantics).

A pool admits a call only while ``active + queued < core_size + queue capacity``; otherwise it rejects at
once (no blocking, no unbounded queue). Workers are daemon threads, so a dependency that hangs forever holds
its own pool's threads (and shows up in its metrics as active) but never blocks other pools or the
interpreter's exit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from queue import SimpleQueue

from quills.clock import SYSTEM_CLOCK, Clock
from quills.metrics.counter import RollingCounter
from quills.resilience.options import ThreadPoolOptions

__all__ = ("ThreadPool", "ThreadPoolSnapshot")

_EXECUTED, _REJECTED, _MAX_ACTIVE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class ThreadPoolSnapshot:
    """A pool's statistics at one instant (the fields of Hystrix's thread-pool stream document)."""

    name: str
    active: int
    queued: int
    completed: int
    core_size: int
    largest_pool_size: int
    pool_size: int
    task_count: int
    rolling_executed: int
    rolling_rejected: int
    rolling_max_active: int
    queue_size_rejection_threshold: int
    metrics_window: float


class ThreadPool:
    """A bounded pool of daemon worker threads that rejects work it cannot start (or queue) now.

    Args:
        name: the pool key (shown on dashboards).
        options: sizes and queue rules (see :class:`ThreadPoolOptions`).
        clock: time source for the rolling statistics.
    """

    def __init__(
        self, name: str, options: ThreadPoolOptions | None = None, *, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.name = name
        self._options = options or ThreadPoolOptions()
        self._lock = threading.Lock()
        self._tasks: SimpleQueue[Callable[[], None] | None] = SimpleQueue()
        self._threads = 0
        self._largest = 0
        self._in_flight = 0
        self._active = 0
        self._completed = 0
        self._counter = RollingCounter(3, clock.now_ns, window=self._options.metrics_window, buckets=10)

    @property
    def options(self) -> ThreadPoolOptions:
        return self._options

    def configure(self, options: ThreadPoolOptions) -> None:
        """Apply new sizes now; surplus idle workers exit as they finish."""
        with self._lock:
            surplus = self._threads - options.core_size
            self._options = options
            self._threads -= max(0, surplus)
        for _ in range(max(0, surplus)):
            self._tasks.put(None)

    def try_submit(self, task: Callable[[], None]) -> bool:
        """Start ``task`` on a worker (or queue it) and return True, or return False if the pool is full.

        ``task`` must not raise; commands wrap the user's function so that it never does.
        """
        options = self._options
        with self._lock:
            if self._in_flight >= options.core_size + options.queue_capacity:
                rejected = True
            else:
                rejected = False
                self._in_flight += 1
                if self._threads < options.core_size and self._threads < self._in_flight:
                    self._threads += 1
                    self._largest = max(self._largest, self._threads)
                    threading.Thread(target=self._work, name=f"quills-{self.name}", daemon=True).start()
        if rejected:
            self._counter.add(_REJECTED)
            return False
        self._tasks.put(task)
        return True

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                return
            with self._lock:
                self._active += 1
                active = self._active
            self._counter.observe_max(_MAX_ACTIVE, active)
            try:
                task()
            finally:
                with self._lock:
                    self._active -= 1
                    self._in_flight -= 1
                    self._completed += 1
                self._counter.add(_EXECUTED)

    def snapshot(self) -> ThreadPoolSnapshot:
        """Statistics now; rolling values cover ``options.metrics_window``."""
        options = self._options
        with self._lock:
            active, in_flight, completed = self._active, self._in_flight, self._completed
            threads, largest = self._threads, self._largest
        return ThreadPoolSnapshot(
            name=self.name,
            active=active,
            queued=in_flight - active,
            completed=completed,
            core_size=options.core_size,
            largest_pool_size=largest,
            pool_size=threads,
            task_count=completed + in_flight,
            rolling_executed=self._counter.sum(_EXECUTED),
            rolling_rejected=self._counter.sum(_REJECTED),
            rolling_max_active=self._counter.max(_MAX_ACTIVE),
            queue_size_rejection_threshold=options.queue_size_rejection_threshold,
            metrics_window=options.metrics_window,
        )
