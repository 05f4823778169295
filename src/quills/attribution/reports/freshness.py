"""``data_complete_until``: the time up to which every accepted event is in the reports.

Reads: the broker's last position of each topic (stream or partition); the consumer positions stored
with the aggregates.
Writes: nothing (keeps the answer in memory).

Definition. After every commit of a batch, and at least every ``probe_interval``, the service notes
the wall time ``t`` and then asks the broker for each topic's last stored position ``s(t)``. An event
that got its 202 before ``t`` was stored before ``t``, so its sequence is at most ``s(t)``. Once the
stored positions (committed in the same transaction as the aggregates) cover every sequence of each
topic from its first up to ``s(t)``, every event accepted before ``t`` is in the reports:
``data_complete_until = t``, the latest such ``t``. It is a lower bound: events accepted after it may
already be included too. After a restart it is unknown (null) until the first probe is covered. The
lag of the reports is ``now - data_complete_until``.

Probing after each commit (not only on a timer) means a covered probe is found as soon as the batch
that covers it is stored: the lag is about one batch (fetch wait plus fold and commit), not that plus
a probe interval.

Both brokers: ``Backbone.log_bounds`` gives each NATS stream's last sequence and each Kafka partition's
last offset (high watermark - 1), under the keys the positions are stored with.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Generic, TypeVar

from quills.streams import Claim, Sink, covered_upto

R = TypeVar("R")

__all__ = ("Completeness", "NotifyingSink", "covered_upto")

Bounds = dict[str, tuple[int, int]]
"""Per position key: (first, last) position the log holds (``Backbone.log_bounds``); last < first when
empty."""


class Completeness:
    """Tracks ``data_complete_until`` (epoch ms, or None while unknown).

    Args:
        read_bounds: asks the broker for each position key's (first, last) position.
        read_positions: the stored positions of the group (``key -> value``); blocking.
        max_history: probes remembered while the consumer is behind, 1..1e6 (default 100,000).
    """

    def __init__(
        self,
        read_bounds: Callable[[], Awaitable[Bounds]],
        read_positions: Callable[[], Mapping[str, str]],
        *,
        max_history: int = 100_000,
        now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self._read_bounds = read_bounds
        self._read_positions = read_positions
        self._history: deque[tuple[int, Bounds]] = deque(maxlen=max_history)
        self._now_ms = now_ms
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.complete_until_ms: int | None = None

    def notify(self) -> None:
        """A batch was committed: probe now rather than at the next interval (callable from any thread)."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            loop.call_soon_threadsafe(wake.set)

    def lag_seconds(self) -> float | None:
        """Seconds between now and ``data_complete_until`` (None while unknown)."""
        if self.complete_until_ms is None:
            return None
        return max(0.0, (self._now_ms() - self.complete_until_ms) / 1000)

    async def probe(self) -> None:
        """One probe: note the time, read the broker, compare with the stored positions."""
        t = self._now_ms()
        self._history.append((t, await self._read_bounds()))
        positions = await asyncio.to_thread(self._read_positions)
        self.advance(positions)

    def advance(self, positions: Mapping[str, str]) -> None:
        """Move ``complete_until_ms`` to the latest remembered probe that ``positions`` cover."""
        best: int | None = None
        while self._history:
            t, bounds = self._history[0]
            if all(
                last < first or covered_upto(positions.get(key), first) >= last
                for key, (first, last) in bounds.items()
            ):
                best = t
                self._history.popleft()
            else:
                break
        if best is not None and (self.complete_until_ms is None or best > self.complete_until_ms):
            self.complete_until_ms = best

    async def run(self, interval: float) -> None:
        """Probe after every ``notify()`` and at least every ``interval`` seconds, until cancelled (a
        failed probe is retried next time)."""
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        while True:
            self._wake.clear()
            try:
                await self.probe()
            except Exception:
                pass
            try:
                await asyncio.wait_for(self._wake.wait(), interval)
            except TimeoutError:
                pass


class NotifyingSink(Generic[R]):
    """A ``Sink`` that calls ``on_commit()`` after each successful commit of the sink it wraps, so the
    stored positions are compared with the broker as soon as they move."""

    def __init__(self, sink: Sink[R], on_commit: Callable[[], None]) -> None:
        self._sink = sink
        self._on_commit = on_commit

    def positions(self, group: str, keys: Sequence[str] | None = None) -> dict[str, str]:
        return self._sink.positions(group, keys)

    def commit(self, group: str, result: R, claim: Claim) -> None:
        self._sink.commit(group, result, claim)
        self._on_commit()

    def close(self) -> None:
        self._sink.close()
