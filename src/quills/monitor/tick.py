"""One tick of an instance stream: every command, thread pool and collapser document, encoded once.

All connections of one app share a :class:`TickSource`, so five dashboards cost one snapshot per tick,
not five.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from quills.clock import SYSTEM_CLOCK, Clock
from quills.monitor.hystrix_format import (
    command_document,
    encode_events,
    status_document,
    thread_pool_document,
)
from quills.resilience.registry import Registry

__all__ = ("TickSource", "tick_documents", "NO_COMMANDS_MESSAGE")

#: what the ``quills_status`` document says before any command is registered
NO_COMMANDS_MESSAGE = "no commands yet"


def tick_documents(
    registry: Registry, *, clock: Clock = SYSTEM_CLOCK, histograms: bool = True
) -> list[dict[str, Any]]:
    """The documents of one tick: commands, then thread pools (then collapsers, of which there are none).

    Command documents carry ``quills_circuitState`` (the exact breaker state, for the dashboard). With no
    command registered, a single ``quills_status`` document saying "no commands yet".
    """
    docs = [
        command_document(snapshot, histograms=histograms, circuit_state=True)
        for snapshot in registry.snapshots()
    ]
    if not docs:
        return [status_document(NO_COMMANDS_MESSAGE, now_ms=clock.wall_ms())]
    now_ms = clock.wall_ms()
    docs.extend(thread_pool_document(pool, now_ms=now_ms) for pool in registry.pool_snapshots())
    return docs


class TickSource:
    """The latest encoded tick, recomputed when older than half the tick interval (thread-safe).

    Args:
        registry: where the commands are.
        interval: the tick interval in seconds (> 0); a tick is reused for ``interval / 2``.
        histograms: append the ``quills_*_hist`` extension fields. Default True.
        clock: wall clock for ``currentTime``.
    """

    def __init__(
        self, registry: Registry, *, interval: float, histograms: bool = True, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self._registry = registry
        self._max_age = interval / 2
        self._histograms = histograms
        self._clock = clock
        self._lock = threading.Lock()
        self._payload = b""
        self._made_at = -1e18

    def payload(self, period: float | None = None) -> bytes:
        """The SSE bytes of the current tick (one ``data:`` event per document).

        ``period`` is the caller's own tick period (a client's ``?delay=``); the tick is then reused for at
        most half of it, so a faster client never sees the same tick twice.
        """
        max_age = self._max_age if period is None else min(self._max_age, period / 2)
        with self._lock:
            now = time.monotonic()
            if now - self._made_at >= max_age:
                docs = tick_documents(self._registry, clock=self._clock, histograms=self._histograms)
                self._payload = encode_events(docs)
                self._made_at = now
            return self._payload
