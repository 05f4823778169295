"""Rolling counters, concurrency and latency histograms of one command (Hystrix semantics).

Counters live in buckets of ``health_interval`` seconds (500 ms by default); ``window / health_interval``
closed buckets make the rolling window (10 s by default) and the health counts that drive the breaker.
Latency histograms live in ``percentile_buckets`` buckets over ``percentile_window`` (6 x 10 s by default).

Recording is done by the command front doors straight into the current bucket (a list index increment,
exact under CPython's GIL); everything that moves buckets happens in :meth:`RollingMetrics.rotate`, which
callers invoke only when a clock reading passes ``bucket_end``, so the per-call cost does not depend on the
window sizes or on how long nothing happened.
"""

from __future__ import annotations

import threading
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from quills.metrics import histogram
from quills.metrics.events import BUCKET_SLOTS, MAX_CONCURRENT_SLOT, EventType
from quills.metrics.histogram import Compact

__all__ = ("RollingMetrics", "HealthCounts", "LatencyWindow")

_NS = 1_000_000_000
_ZEROS = array("I", bytes(4 * histogram.SIZE))
_EMPTY: Compact = (array("H"), array("I"))
_S, _F, _T = EventType.SUCCESS, EventType.FAILURE, EventType.TIMEOUT
_TPR, _SR, _SLOW = EventType.THREAD_POOL_REJECTED, EventType.SEMAPHORE_REJECTED, EventType.SLOW
_EXECUTED = (_S, _F, _T, EventType.BAD_REQUEST, EventType.CANCELLED)


@dataclass(frozen=True, slots=True)
class HealthCounts:
    """Requests and errors in the health window (Hystrix ``HealthCounts``), plus slow calls."""

    total: int
    errors: int
    slow: int

    @property
    def error_percentage(self) -> int:
        """``errors / total * 100`` truncated to an int, 0 when there were no requests (as Hystrix)."""
        return self.errors * 100 // self.total if self.total else 0


@dataclass(frozen=True, slots=True)
class LatencyWindow:
    """Sparse histograms ({bucket index: count}, see :mod:`quills.metrics.histogram`) over the percentile
    window."""

    execute: dict[int, int]
    total: dict[int, int]


def _health_of(bucket: list[int]) -> tuple[int, int, int]:
    total = bucket[_S] + bucket[_F] + bucket[_T] + bucket[_TPR] + bucket[_SR]
    return total, total - bucket[_S], bucket[_SLOW]


class RollingMetrics:
    """The rolling state of one command. Not a public recording API: commands write into it directly.

    Args:
        now_ns: the clock reading function (monotonic ns).
        window: rolling statistics window, seconds (default 10.0, Hystrix ``metrics.rollingStats``).
        health_interval: bucket width and health snapshot period, seconds (default 0.5); ``window`` must be
            a whole multiple of it.
        percentile_window: latency window, seconds (default 60.0).
        percentile_buckets: buckets in the latency window (default 6).
        on_health: called with the new :class:`HealthCounts` each time a bucket closes (the breaker).
    """

    __slots__ = (
        "_bucket_ns",
        "_closed_cache",
        "_current_offset",
        "_health_errors",
        "_health_slow",
        "_health_total",
        "_hist_end",
        "_hist_ns",
        "_hist_ring",
        "_lifetime",
        "_lifetime_total",
        "_lock",
        "_now_ns",
        "_ring",
        "_ring_totals",
        "_uncounted",
        "bucket_end",
        "current",
        "hist_both",
        "hist_execute",
        "hist_total",
        "on_health",
    )

    def __init__(
        self,
        now_ns: Callable[[], int],
        *,
        window: float = 10.0,
        health_interval: float = 0.5,
        percentile_window: float = 60.0,
        percentile_buckets: int = 6,
        on_health: Callable[[HealthCounts], None] | None = None,
    ) -> None:
        self._now_ns = now_ns
        self._lock = threading.Lock()
        self.on_health = on_health
        # since creation (never reset, not even by reconfigure): counters and latency for Prometheus,
        # added as buckets close, so recording costs nothing more
        self._lifetime = [0] * BUCKET_SLOTS
        # total latency only (what a Prometheus histogram shows), as compact arrays: dicts would cost
        # tens of KiB per command
        self._lifetime_total: Compact = (array("H"), array("Q"))
        # the dense histograms are made once and only ever zeroed in place, so hot paths may hold them
        #: latencies of calls whose execute and total time are the same (recorded once for both)
        self.hist_both = array("I", _ZEROS)
        #: execute-only and total-only latencies (slow paths: failures, fallbacks, thread isolation);
        #: empty until first needed, see :meth:`split_histograms`
        self.hist_execute = array("I")
        self.hist_total = array("I")
        self.reconfigure(
            window=window,
            health_interval=health_interval,
            percentile_window=percentile_window,
            percentile_buckets=percentile_buckets,
        )

    def reconfigure(
        self, *, window: float, health_interval: float, percentile_window: float, percentile_buckets: int
    ) -> None:
        """Start over with new window sizes (everything recorded so far is dropped)."""
        with self._lock:
            self._bucket_ns = int(health_interval * _NS)
            self._ring: deque[list[int]] = deque(maxlen=round(window / health_interval))
            # every counter summed over the closed buckets (the max-concurrency slot excepted), kept up to
            # date as buckets close so a snapshot does not re-add the whole window
            self._ring_totals = [0] * BUCKET_SLOTS
            self._health_total = self._health_errors = self._health_slow = 0
            # after reset_health: how many of the oldest ring buckets are outside the health window, and
            # how much of the current bucket was recorded before the reset
            self._uncounted = 0
            self._current_offset = (0, 0, 0)
            self._hist_ns = int(percentile_window / percentile_buckets * _NS)
            self._hist_ring: deque[tuple[Compact, Compact, Compact]] = deque(maxlen=percentile_buckets - 1)
            # the closed percentile buckets merged, kept until the next rotation (snapshots run twice a
            # second; closed buckets change every 10 s)
            self._closed_cache: tuple[dict[int, int], dict[int, int], dict[int, int]] | None = None
            now = self._now_ns()
            #: counters of the bucket being filled, indexed by EventType (plus the max-concurrency slot)
            self.current = [0] * BUCKET_SLOTS
            #: clock reading at which ``current`` closes; callers call :meth:`rotate` once they pass it
            self.bucket_end = now + self._bucket_ns
            self._hist_end = now + self._hist_ns
            for dense in (self.hist_both, self.hist_execute, self.hist_total):
                if dense:
                    dense[:] = _ZEROS

    def split_histograms(self) -> tuple[array[int], array[int]]:
        """The execute-only and total-only histograms, allocated on first use (most commands that only
        succeed never need them, which keeps a command well under 64 KiB)."""
        if not self.hist_execute:
            with self._lock:
                if not self.hist_execute:
                    self.hist_execute.extend(_ZEROS)
                    self.hist_total.extend(_ZEROS)
        return self.hist_execute, self.hist_total

    def rotate(self, now: int) -> None:
        """Close every bucket that ended before ``now``; thread-safe, cheap when nothing is due."""
        with self._lock:
            if now < self.bucket_end:
                return
            health_changed = False
            ring = self._ring
            # at most one full ring of empty buckets matters, however long nothing happened
            elapsed = min((now - self.bucket_end) // self._bucket_ns + 1, (ring.maxlen or 1) + 1)
            for step in range(elapsed):
                closing = self.current if step == 0 else [0] * BUCKET_SLOTS
                if len(ring) == ring.maxlen:
                    for slot, value in enumerate(ring[0]):
                        if value:
                            self._ring_totals[slot] -= value
                    if self._uncounted:
                        self._uncounted -= 1
                    else:
                        t, e, s = _health_of(ring[0])
                        self._health_total -= t
                        self._health_errors -= e
                        self._health_slow -= s
                ring.append(closing)
                for slot, value in enumerate(closing):
                    if value:
                        self._ring_totals[slot] += value
                        self._lifetime[slot] += value
                t, e, s = _health_of(closing)
                if step == 0:
                    ot, oe, os_ = self._current_offset
                    t, e, s = t - ot, e - oe, s - os_
                    self._current_offset = (0, 0, 0)
                self._health_total += t
                self._health_errors += e
                self._health_slow += s
                health_changed = True
            self.current = [0] * BUCKET_SLOTS
            self.bucket_end += ((now - self.bucket_end) // self._bucket_ns + 1) * self._bucket_ns
            if now >= self._hist_end:
                self._rotate_histograms(now)
        if health_changed and self.on_health is not None:
            self.on_health(self.health())

    def _rotate_histograms(self, now: int) -> None:
        periods = (now - self._hist_end) // self._hist_ns + 1
        closed = (
            histogram.compact(self.hist_both),
            histogram.compact(self.hist_execute),
            histogram.compact(self.hist_total),
        )
        self._hist_ring.append(closed)
        self._closed_cache = None
        merged: dict[int, int] = dict(zip(*self._lifetime_total, strict=True))
        for kept in (closed[0], closed[2]):  # calls recorded once for both, and total-only ones
            for index, count in zip(*kept, strict=True):
                merged[index] = merged.get(index, 0) + count
        indexes = sorted(merged)
        self._lifetime_total = (array("H", indexes), array("Q", [merged[index] for index in indexes]))
        for _ in range(min(periods - 1, self._hist_ring.maxlen or 0)):
            self._hist_ring.append((_EMPTY, _EMPTY, _EMPTY))
        for dense in (self.hist_both, self.hist_execute, self.hist_total):
            if dense:
                dense[:] = _ZEROS
        self._hist_end += periods * self._hist_ns

    def health(self) -> HealthCounts:
        """Health counts over the closed buckets of the window (what the breaker trips on)."""
        return HealthCounts(self._health_total, self._health_errors, self._health_slow)

    def reset_health(self) -> None:
        """Restart the health window (Hystrix does this when a circuit closes after a good trial).

        The rolling counters shown on dashboards keep their values; only the breaker's view starts over.
        """
        with self._lock:
            self._uncounted = len(self._ring)
            self._current_offset = _health_of(self.current)
            self._health_total = self._health_errors = self._health_slow = 0

    def counts(self) -> list[int]:
        """Sum of every counter over the rolling window, current bucket included."""
        self.rotate(self._now_ns())
        with self._lock:
            current = self.current
            totals = [closed + now for closed, now in zip(self._ring_totals, current, strict=True)]
            totals[MAX_CONCURRENT_SLOT] = max(
                current[MAX_CONCURRENT_SLOT], *(b[MAX_CONCURRENT_SLOT] for b in self._ring), 0
            )
        # fast paths record the maximum only when calls overlapped; any execution means at least 1
        if totals[MAX_CONCURRENT_SLOT] == 0 and any(totals[event] for event in _EXECUTED):
            totals[MAX_CONCURRENT_SLOT] = 1
        return totals

    def lifetime_counts(self) -> list[int]:
        """Every counter since the metrics were created (monotonic; the max-concurrency slot is 0)."""
        self.rotate(self._now_ns())
        with self._lock:
            totals = [closed + now for closed, now in zip(self._lifetime, self.current, strict=True)]
        totals[MAX_CONCURRENT_SLOT] = 0
        return totals

    def lifetime_total_latency(self) -> dict[int, int]:
        """The total-latency histogram since the metrics were created ({bucket index: count})."""
        self.rotate(self._now_ns())
        with self._lock:
            total = dict(zip(*self._lifetime_total, strict=True))
            histogram.add_dense(total, self.hist_both)
            histogram.add_dense(total, self.hist_total)
        return total

    def latency(self) -> LatencyWindow:
        """Execute and total latency histograms over the percentile window."""
        self.rotate(self._now_ns())
        with self._lock:
            if self._closed_cache is None:
                closed: tuple[dict[int, int], dict[int, int], dict[int, int]] = ({}, {}, {})
                for kept in self._hist_ring:
                    for into, compact in zip(closed, kept, strict=True):
                        for index, count in zip(*compact, strict=True):
                            into[index] = into.get(index, 0) + count
                self._closed_cache = closed
            both, execute, total = (dict(part) for part in self._closed_cache)
            histogram.add_dense(both, self.hist_both)
            histogram.add_dense(execute, self.hist_execute)
            histogram.add_dense(total, self.hist_total)
        return _split(both, execute, total)


def _split(both: dict[int, int], execute: dict[int, int], total: dict[int, int]) -> LatencyWindow:
    # calls recorded once for both histograms count in each
    for index, count in both.items():
        execute[index] = execute.get(index, 0) + count
        total[index] = total.get(index, 0) + count
    return LatencyWindow(execute, total)
