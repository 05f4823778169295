"""The circuit breaker: a state object with a permission-and-record protocol (resilience4j's shape).

Command front doors ask nothing of the breaker while ``allows_all`` is true (closed, forced closed or
disabled); that is one attribute read per call (plus a count-window record for breakers that have one).
Otherwise they call :meth:`CircuitBreaker.acquire` and report
the outcome of trial calls. Tripping is decided from health counts: for the default time window, on every
closed metrics bucket (Hystrix's 500 ms health snapshots); for a count window, on every recorded call.

States and legal transitions::

    CLOSED --trip--> OPEN --sleep window passed, trial admitted--> HALF_OPEN
    HALF_OPEN --enough trial successes--> CLOSED (health window restarts)
    HALF_OPEN --a trial fails--> OPEN (sleep window starts over, grown by open_wait_multiplier)
    any --options--> FORCED_OPEN | FORCED_CLOSED | DISABLED, and back to CLOSED
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from quills.metrics.rolling import HealthCounts
from quills.resilience.options import BreakerOptions

__all__ = ("CircuitState", "CircuitBreaker", "BreakerSnapshot", "CountWindow", "Permit")

_NS = 1_000_000_000


class CircuitState(Enum):
    """Where a breaker is. ``is_open`` follows Hystrix: true while open, half-open or forced open."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    FORCED_CLOSED = "forced_closed"
    DISABLED = "disabled"

    @property
    def is_open(self) -> bool:
        return self in (CircuitState.OPEN, CircuitState.HALF_OPEN, CircuitState.FORCED_OPEN)


class Permit(Enum):
    """The answer of :meth:`CircuitBreaker.acquire`."""

    DENIED = 0
    NORMAL = 1
    TRIAL = 2


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """A breaker's state at one instant."""

    state: CircuitState
    is_open: bool
    retry_after: float
    consecutive_openings: int


class CountWindow:
    """The last ``size`` calls' outcomes with running sums: O(1) per call, whatever the size."""

    __slots__ = ("_index", "_lock", "_ring", "calls", "errors", "slow")

    ERROR = 1
    SLOW = 2

    def __init__(self, size: int) -> None:
        self._lock = threading.Lock()
        self._ring = bytearray(size)
        self._index = 0
        self.calls = self.errors = self.slow = 0

    def record(self, code: int) -> None:
        """Add one call; ``code`` is a bit set of ERROR and SLOW (0 for a fast success)."""
        with self._lock:  # threads record concurrently; the sums must stay exact
            ring = self._ring
            index = self._index
            if self.calls == len(ring):
                old = ring[index]
                self.errors -= old & 1
                self.slow -= old >> 1
            else:
                self.calls += 1
            ring[index] = code
            self.errors += code & 1
            self.slow += code >> 1
            index += 1
            self._index = 0 if index == len(ring) else index

    def health(self) -> HealthCounts:
        return HealthCounts(self.calls, self.errors, self.slow)

    def clear(self) -> None:
        with self._lock:
            self._ring = bytearray(len(self._ring))
            self._index = self.calls = self.errors = self.slow = 0


Transition = Callable[[CircuitState, CircuitState, str, float], None]


class CircuitBreaker:
    """One command's breaker.

    Args:
        options: the rules (see :class:`BreakerOptions`).
        now_ns: the clock (monotonic ns).
        on_transition: called as ``(old, new, reason, open_for_seconds)`` after every state change,
            outside the breaker's lock.
        on_close: called when a trial closes the circuit (the command restarts its health window).
    """

    __slots__ = (
        "_lock",
        "_now_ns",
        "_on_close",
        "_on_transition",
        "_open_ns",
        "_opened_at",
        "_openings",
        "_options",
        "_state",
        "_successes",
        "_trials",
        "allows_all",
        "count_window",
        "open_until_ns",
    )

    def __init__(
        self,
        options: BreakerOptions,
        *,
        now_ns: Callable[[], int],
        on_transition: Transition | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._now_ns = now_ns
        self._on_transition = on_transition
        self._on_close = on_close
        self._state = CircuitState.CLOSED
        self._opened_at = 0
        self._openings = 0
        self._trials = self._successes = 0
        self._options = options
        self._open_ns = int(options.sleep_window * _NS)
        self.count_window: CountWindow | None = None
        self.allows_all = True
        #: calls before this clock reading are certainly short-circuited (0 when none are): lets front
        #: doors reject without taking the lock
        self.open_until_ns = 0
        self.configure(options)

    @property
    def options(self) -> BreakerOptions:
        return self._options

    @property
    def state(self) -> CircuitState:
        return self._state

    def configure(self, options: BreakerOptions) -> None:
        """Apply new options now (forced modes and disabling take effect on the next call)."""
        with self._lock:
            old_window = self._options.window_type, self._options.window_size
            self._options = options
            if options.window_type == "count":
                if self.count_window is None or old_window != ("count", options.window_size):
                    self.count_window = CountWindow(options.window_size)
            else:
                self.count_window = None
            if not options.enabled:
                target = CircuitState.DISABLED
            elif options.force_open:
                target = CircuitState.FORCED_OPEN
            elif options.force_closed:
                target = CircuitState.FORCED_CLOSED
            elif self._state in (CircuitState.DISABLED, CircuitState.FORCED_OPEN, CircuitState.FORCED_CLOSED):
                target = CircuitState.CLOSED
            else:
                target = self._state
            self._open_ns = self._grown_open_ns()
            old = self._state
            self._set(target)
        if old is not target:
            self._notify(old, target, "options changed")

    def acquire(self, now: int) -> Permit:
        """May a call run now? Called only while ``allows_all`` is false."""
        with self._lock:
            state = self._state
            if state is CircuitState.OPEN:
                if now < self._opened_at + self._open_ns:
                    return Permit.DENIED
                self._set(CircuitState.HALF_OPEN)
                self._trials, self._successes = 1, 0
            elif state is CircuitState.HALF_OPEN:
                if self._trials >= self._options.half_open_max_calls:
                    return Permit.DENIED
                self._trials += 1
                return Permit.TRIAL
            elif state is CircuitState.FORCED_OPEN:
                return Permit.DENIED
            else:
                return Permit.NORMAL
        self._notify(CircuitState.OPEN, CircuitState.HALF_OPEN, "sleep window passed", 0.0)
        return Permit.TRIAL

    def retry_after(self, now: int) -> float:
        """Seconds until a trial may run (0.0 when one may run now or is running)."""
        if self._state is CircuitState.OPEN:
            return max(0.0, (self._opened_at + self._open_ns - now) / _NS)
        return 0.0

    def trial_succeeded(self) -> None:
        """A trial call succeeded; enough of them close the circuit and restart the health window."""
        with self._lock:
            if self._state is not CircuitState.HALF_OPEN:
                return
            self._trials -= 1
            self._successes += 1
            if self._successes < self._options.half_open_success_threshold:
                return
            self._set(CircuitState.CLOSED)
            self._openings = 0
            self._open_ns = int(self._options.sleep_window * _NS)
            if self.count_window is not None:
                self.count_window.clear()
        if self._on_close is not None:
            self._on_close()
        self._notify(CircuitState.HALF_OPEN, CircuitState.CLOSED, "trial succeeded")

    def trial_failed(self) -> None:
        """A trial call failed (or timed out, was rejected or cancelled): open again, for longer."""
        with self._lock:
            if self._state is not CircuitState.HALF_OPEN:
                return
            self._open(self._now_ns())
            open_for = self._open_ns / _NS
        self._notify(CircuitState.HALF_OPEN, CircuitState.OPEN, "trial failed", open_for)

    def trial_abandoned(self) -> None:
        """A trial ended without a verdict (KeyboardInterrupt, SystemExit): free its slot."""
        with self._lock:
            if self._state is CircuitState.HALF_OPEN and self._trials > 0:
                self._trials -= 1

    def on_health(self, health: HealthCounts) -> None:
        """Trip if ``health`` crosses the thresholds (called on each closed bucket, time window only)."""
        if self._state is CircuitState.CLOSED and self.count_window is None and self._should_trip(health):
            self._trip(health)

    def record(self, code: int) -> None:
        """Record one call in the count window (``CountWindow.ERROR``/``SLOW`` bits) and maybe trip."""
        window = self.count_window
        if window is None:
            return
        window.record(code)
        if self._state is CircuitState.CLOSED and code and self._should_trip(window.health()):
            self._trip(window.health())

    def snapshot(self) -> BreakerSnapshot:
        now = self._now_ns()
        state = self._state
        return BreakerSnapshot(state, state.is_open, self.retry_after(now), self._openings)

    def _should_trip(self, health: HealthCounts) -> bool:
        options = self._options
        if health.total < options.request_volume_threshold:
            return False
        if health.error_percentage >= options.error_threshold_percentage:
            return True
        return (
            options.slow_call_duration is not None
            and health.slow * 100 // health.total >= options.slow_call_rate_threshold
        )

    def _trip(self, health: HealthCounts) -> None:
        with self._lock:
            if self._state is not CircuitState.CLOSED:
                return
            self._open(self._now_ns())
            open_for = self._open_ns / _NS
        reason = f"{health.errors}/{health.total} errors, {health.slow} slow in the window"
        self._notify(CircuitState.CLOSED, CircuitState.OPEN, reason, open_for)

    def _open(self, now: int) -> None:
        # caller holds the lock
        if self._state is CircuitState.HALF_OPEN:
            self._openings += 1
        self._opened_at = now
        self._trials = self._successes = 0
        self._open_ns = self._grown_open_ns()
        self._set(CircuitState.OPEN)

    def _grown_open_ns(self) -> int:
        options = self._options
        grown = options.sleep_window * options.open_wait_multiplier**self._openings
        return int(min(grown, max(options.max_open_wait, options.sleep_window)) * _NS)

    def _set(self, state: CircuitState) -> None:
        self._state = state
        self.allows_all = state in (CircuitState.CLOSED, CircuitState.FORCED_CLOSED, CircuitState.DISABLED)
        if state is CircuitState.FORCED_OPEN:
            self.open_until_ns = 1 << 62
        elif state is CircuitState.OPEN:
            self.open_until_ns = self._opened_at + self._open_ns
        else:
            self.open_until_ns = 0

    def _notify(self, old: CircuitState, new: CircuitState, reason: str, open_for: float = 0.0) -> None:
        if self._on_transition is not None:
            self._on_transition(old, new, reason, open_for)
