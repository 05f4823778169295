"""A small lock-protected rolling counter for things that are already slow (thread-pool bookkeeping)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

__all__ = ("RollingCounter",)


class RollingCounter:
    """Sums and maxima of ``slots`` values over ``window`` seconds in ``buckets`` buckets.

    Args:
        slots: how many values each bucket holds, >= 1.
        now_ns: the clock (monotonic ns).
        window: seconds covered, > 0. Default 10.0.
        buckets: buckets in the window, >= 1. Default 10.
    """

    __slots__ = ("_current", "_end", "_lock", "_now_ns", "_ring", "_slots", "_width")

    def __init__(
        self, slots: int, now_ns: Callable[[], int], *, window: float = 10.0, buckets: int = 10
    ) -> None:
        self._lock = threading.Lock()
        self._now_ns = now_ns
        self._slots = slots
        self._width = int(window / buckets * 1e9)
        self._ring: deque[list[int]] = deque(maxlen=buckets - 1)
        self._current = [0] * slots
        self._end = now_ns() + self._width

    def _advance(self, now: int) -> None:
        if now < self._end:
            return
        periods = (now - self._end) // self._width + 1
        self._ring.append(self._current)
        for _ in range(min(periods - 1, self._ring.maxlen or 0)):
            self._ring.append([0] * self._slots)
        self._current = [0] * self._slots
        self._end += periods * self._width

    def add(self, slot: int, amount: int = 1) -> None:
        """Add ``amount`` to ``slot`` in the current bucket."""
        with self._lock:
            self._advance(self._now_ns())
            self._current[slot] += amount

    def observe_max(self, slot: int, value: int) -> None:
        """Keep the largest ``value`` seen in ``slot`` during the current bucket."""
        with self._lock:
            self._advance(self._now_ns())
            if value > self._current[slot]:
                self._current[slot] = value

    def sum(self, slot: int) -> int:
        """Sum of ``slot`` over the window."""
        with self._lock:
            self._advance(self._now_ns())
            return self._current[slot] + sum(bucket[slot] for bucket in self._ring)

    def max(self, slot: int) -> int:
        """Largest value of ``slot`` over the window."""
        with self._lock:
            self._advance(self._now_ns())
            return max(self._current[slot], *(bucket[slot] for bucket in self._ring), 0)
