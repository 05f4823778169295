"""Helpers for testing code that uses quills: a clock you move by hand, so breakers and windows need no
sleeping."""

from __future__ import annotations

import threading

__all__ = ("FakeClock",)


class FakeClock:
    """A :class:`quills.clock.Clock` that only moves when told to.

    Pass it as ``clock=`` to :func:`quills.command`; then ``clock.advance(5.0)`` lets a sleep window pass
    at once. It drives breaker windows, metrics buckets and the deadlines of async commands (checked by
    their watchdog every few milliseconds); thread-isolated timeouts still wait in real time, because a
    thread waiting on a hung call cannot be woken by a fake clock.

    Args:
        start: initial monotonic reading, seconds. Default 1000.0.
        wall_ms: initial wall-clock reading, epoch ms. Default 1_700_000_000_000.
    """

    def __init__(self, start: float = 1000.0, wall_ms: int = 1_700_000_000_000) -> None:
        self._lock = threading.Lock()
        self._ns = int(start * 1e9)
        self._wall_ms = wall_ms

    def now_ns(self) -> int:
        return self._ns

    def wall_ms(self) -> int:
        return self._wall_ms

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (>= 0)."""
        if seconds < 0:
            raise ValueError(f"FakeClock.advance needs seconds >= 0, got {seconds}")
        with self._lock:
            self._ns += int(seconds * 1e9)
            self._wall_ms += int(seconds * 1000)
