"""Publishing accepted events: a micro-batcher in front of one command per flush.

Reads: encoded events of concurrent requests. Writes: the topics ``installs.v1``, ``inapps.v1`` and
``sessions.v1`` (keyed by ``app_id``).

Requests hand their encoded events to ``Publisher.publish`` and wait. A flush task takes everything
waiting, packs each topic's events per app into few log messages, publishes them with
``Backbone.publish_raw`` through the command
``ingest.publish`` (breaker, timeout) and then wakes each request: with success only when every topic it
touched was acknowledged by the broker, so a 202 always means durable. Under load several requests share
one broker round trip; up to ``max_in_flight`` flushes run at once so a slow acknowledgement does not
stall the next batch. When the broker is down or slow, the command times out, its breaker opens and
requests fail fast with ``Unavailable`` (``retry_after`` seconds) instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable, Sequence

import quills
from quills.errors import CircuitOpenError, QuillsError
from quills.streams import pack_keyed

__all__ = ("Publisher", "Unavailable", "PublishFn")

PublishFn = Callable[[str, Sequence[bytes], Sequence[bytes | None] | None], Awaitable[int]]
"""``publish_raw(topic, values, keys)`` of a ``Backbone``."""


class Unavailable(Exception):
    """The events could not be made durable now; answer 503 with ``Retry-After: retry_after``."""

    def __init__(self, reason: str, retry_after: int) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


# A flush carrying this many events already spreads a broker round trip thin: no point lingering.
_ENOUGH = 1000

_Item = tuple[dict[str, list[bytes]], bytes, "asyncio.Future[None]"]


class Publisher:
    """Micro-batching, acknowledged publishing for the ingest service.

    Args:
        publish_raw: the backbone's ``publish_raw``.
        registry: where the ``ingest.publish`` command is registered (its metrics feed ``hystrix.stream``).
        timeout: seconds one flush may take, 0.01..60 (default 3).
        max_in_flight: flushes at once, 1..64 (default 4). JetStream commits a stream's atomic batches
            one after another (~10 ms each here), so more flushes in flight only queue at the server;
            fewer, larger flushes carry more events per commit.
        max_flush_events: most events one flush takes, 1..1e6 (default 20,000).
        linger: seconds a flush waits for more requests to join it after the first arrives, unless
            1,000 events are already waiting, 0..1 (default 0.005; 0 flushes at once). A broker round
            trip costs the process ~100 us of CPU whatever its size, so under load, waiting a few
            milliseconds to carry 50-100 single-event requests per flush instead of a handful saves
            microseconds per event; it adds at most ``linger`` to a request's latency.
        pack: publish each flush's events of one topic and app as packed log messages (default True;
            ``quills.streams.packing``); consumers see the same events either way.
    """

    def __init__(
        self,
        publish_raw: PublishFn,
        *,
        registry: quills.Registry,
        timeout: float = 3.0,
        max_in_flight: int = 4,
        max_flush_events: int = 20_000,
        linger: float = 0.005,
        pack: bool = True,
    ) -> None:
        self._publish_raw = publish_raw
        self._command = quills.command(
            group="broker",
            name="ingest.publish",
            timeout=timeout,
            isolation="async",
            max_concurrent=max_in_flight * 3,
            # Each flush is one call; at a few flushes per second the Hystrix default of 20 requests per
            # window would never trip while the broker hangs.
            breaker=quills.BreakerOptions(request_volume_threshold=4, sleep_window=2.0),
            registry=registry,
        )(self._publish_topic)
        self._waiting: list[_Item] = []
        self._waiting_events = 0
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._max_flush_events = max_flush_events
        self._linger = linger
        self._pack = pack
        self._full: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._flushes: set[asyncio.Task[None]] = set()
        self.published = 0
        self.flushes = 0

    @property
    def waiting(self) -> int:
        """Requests waiting for a flush to start."""
        return len(self._waiting)

    def start(self) -> None:
        """Start the flush loop (in the running event loop)."""
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def close(self) -> None:
        """Stop taking new work; wait for the flushes already running."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)
        for _by_topic, _key, fut in self._waiting:
            if not fut.done():
                fut.set_exception(Unavailable("the service is stopping", 1))

    async def publish(self, by_topic: dict[str, list[bytes]], key: bytes) -> None:
        """Publish one request's events (``topic -> payloads``, all with ``key``); returns once the broker
        acknowledged every one, else raises ``Unavailable``."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((by_topic, key, fut))
        self._waiting_events += sum(map(len, by_topic.values()))
        self._wake.set()
        full = self._full
        if full is not None and self._waiting_events >= self._max_flush_events and not full.done():
            full.set_result(None)
        await fut

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._linger > 0 and self._waiting_events < min(_ENOUGH, self._max_flush_events):
                await self._gather_more()
            while self._waiting:
                await self._slots.acquire()
                items = self._take()
                task = asyncio.get_running_loop().create_task(self._flush(items))
                self._flushes.add(task)
                task.add_done_callback(self._flushes.discard)

    async def _gather_more(self) -> None:
        loop = asyncio.get_running_loop()
        full = self._full = loop.create_future()
        timer = loop.call_later(self._linger, _settle, full)
        try:
            await full
        finally:
            timer.cancel()
            self._full = None

    def _take(self) -> list[_Item]:
        if self._waiting_events <= self._max_flush_events:
            items, self._waiting, self._waiting_events = self._waiting, [], 0
            return items
        n = taken = 0
        while n < len(self._waiting) and taken < self._max_flush_events:
            taken += sum(map(len, self._waiting[n][0].values()))
            n += 1
        items, self._waiting = self._waiting[:n], self._waiting[n:]
        self._waiting_events -= taken
        return items

    async def _flush(self, items: list[_Item]) -> None:
        try:
            grouped: dict[str, tuple[list[bytes], list[bytes | None]]] = {}
            for by_topic, key, _fut in items:
                for topic, values in by_topic.items():
                    slot = grouped.get(topic)
                    if slot is None:
                        grouped[topic] = slot = ([], [])
                    slot[0].extend(values)
                    slot[1].extend([key] * len(values))
            if self._pack:
                # One log message per topic and app (up to 256 KiB) instead of one per event: the broker's
                # and every consumer's cost is per log message (see quills.streams.packing).
                for name, (values, keys) in grouped.items():
                    grouped[name] = pack_keyed(values, keys)
            names = list(grouped)
            results = await asyncio.gather(
                *(self._command(name, *grouped[name]) for name in names), return_exceptions=True
            )
            failed: dict[str, BaseException] = {
                name: r for name, r in zip(names, results, strict=True) if isinstance(r, BaseException)
            }
            self.flushes += 1
            for by_topic, _key, fut in items:
                if fut.done():
                    continue
                errors = [failed[t] for t in by_topic if t in failed]
                if errors:
                    fut.set_exception(_unavailable(errors[0]))
                else:
                    self.published += sum(map(len, by_topic.values()))
                    fut.set_result(None)
        finally:
            self._slots.release()

    async def _publish_topic(self, name: str, values: list[bytes], keys: list[bytes | None]) -> int:
        return await self._publish_raw(name, values, keys)


def _settle(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _unavailable(exc: BaseException) -> Unavailable:
    if isinstance(exc, CircuitOpenError):
        return Unavailable("the broker is unavailable (circuit open)", max(1, math.ceil(exc.retry_after)))
    if isinstance(exc, QuillsError):
        return Unavailable(f"the broker did not acknowledge in time: {exc}", 1)
    return Unavailable(f"publishing failed: {type(exc).__name__}: {exc}", 1)
