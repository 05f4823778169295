"""Time as an injectable dependency: every component that measures or waits takes a ``Clock``."""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ("Clock", "MonotonicClock", "SYSTEM_CLOCK")


class Clock(Protocol):
    """A source of monotonic time in integer nanoseconds, plus wall-clock milliseconds for reports."""

    def now_ns(self) -> int:
        """Monotonic nanoseconds; only differences are meaningful."""
        ...

    def wall_ms(self) -> int:
        """Milliseconds since the Unix epoch (for timestamps shown to people and dashboards)."""
        ...


class MonotonicClock:
    """The real clock: ``time.perf_counter_ns`` for durations and ``time.time`` for timestamps."""

    __slots__ = ()

    now_ns = staticmethod(time.perf_counter_ns)

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000


SYSTEM_CLOCK = MonotonicClock()
