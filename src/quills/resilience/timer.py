"""One daemon thread that runs callbacks at deadlines (the timeouts of thread-isolated futures)."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable

__all__ = ("TimerHandle", "Timer", "shared_timer")


class TimerHandle:
    """A scheduled callback; :meth:`cancel` makes it a no-op."""

    __slots__ = ("callback",)

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback: Callable[[], None] | None = callback

    def cancel(self) -> None:
        self.callback = None


class Timer:
    """Runs callbacks at monotonic deadlines on one daemon thread, started on first use.

    Callbacks must be quick: they share one thread (commands hand slow work such as fallbacks elsewhere).
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._seq = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def call_at(self, deadline: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` once ``time.monotonic()`` reaches ``deadline``."""
        handle = TimerHandle(callback)
        with self._wake:
            heapq.heappush(self._heap, (deadline, next(self._seq), handle))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="quills-timer", daemon=True)
                self._thread.start()
            if self._heap[0][2] is handle:
                self._wake.notify()
        return handle

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._wake.wait(timeout)
                _, _, handle = heapq.heappop(self._heap)
            callback = handle.callback
            if callback is not None:
                try:
                    callback()
                except Exception:  # pragma: no cover - callbacks are quills' own and do not raise
                    import logging

                    logging.getLogger("quills.resilience").exception("timer callback failed")


_SHARED = Timer()


def shared_timer() -> Timer:
    """The process-wide timer."""
    return _SHARED
