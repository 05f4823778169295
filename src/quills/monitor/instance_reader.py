"""Reads one instance's ``/hystrix.stream`` into a cluster's aggregator, reconnecting every second.

Reads: an instance stream over HTTP. Writes: host documents into a :class:`ClusterAggregator`.

A stream that ends, errs, answers non-200 or stays silent past ``read_timeout`` is a dropped host: its last
values are subtracted at once (so a killed instance leaves the sums within one read timeout, or at once if
its socket closes), and the reader tries again after ``retry_interval``. Bad lines (not JSON, no type or
name) are skipped and counted; they never stop the reader.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

import httpx
import msgspec

from quills.monitor.aggregator import BadDocument, ClusterAggregator

__all__ = ("InstanceReader", "ReaderStats")

_DECODER = msgspec.json.Decoder()


class ReaderStats:
    """Counters shared by every reader of an aggregator process (read by its ``/metrics``)."""

    def __init__(self) -> None:
        self.documents = 0
        self.reconnects = 0
        self.bad: dict[str, int] = {"json": 0, "fields": 0, "status": 0, "stalled": 0, "connection": 0}
        self._samples: deque[tuple[float, int]] = deque(maxlen=11)

    def count_bad(self, reason: str) -> None:
        self.bad[reason] = self.bad.get(reason, 0) + 1

    def sample(self) -> None:
        """Remember the document count now (called every second; keeps the last 10 s)."""
        self._samples.append((time.monotonic(), self.documents))

    def documents_per_second(self) -> float:
        """Documents aggregated per second over the last (up to) 10 s of samples; 0.0 before two samples."""
        if len(self._samples) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


class InstanceReader:
    """One instance's connection loop; :meth:`run` until cancelled.

    Args:
        url: the instance stream URL.
        aggregator: the cluster state it feeds (``url`` is the host key).
        client: shared HTTP client.
        stats: shared counters.
        retry_interval: seconds between reconnects, default 1.0 (Turbine's ``hostRetryMillis``).
        read_timeout: seconds of silence after which the stream counts as stalled, default 5.0 (instances
            ping every 0.5 s).
    """

    def __init__(
        self,
        url: str,
        aggregator: ClusterAggregator,
        client: httpx.AsyncClient,
        stats: ReaderStats,
        *,
        retry_interval: float = 1.0,
        read_timeout: float = 5.0,
    ) -> None:
        self.url = url
        self.aggregator = aggregator
        self.client = client
        self.stats = stats
        self.retry_interval = retry_interval
        self.read_timeout = read_timeout
        self.connected = False
        #: monotonic time of the last document from this host (for ``reportingHostsLast10Seconds``)
        self.last_data = -1e18

    async def run(self) -> None:
        """Connect, read, and on any drop subtract the host and retry, forever (cancel to stop)."""
        first = True
        try:
            while True:
                if not first:
                    self.stats.reconnects += 1
                first = False
                try:
                    await self._read_once()
                except httpx.ReadTimeout:
                    self.stats.count_bad("stalled")
                except (httpx.HTTPError, OSError):
                    self.stats.count_bad("connection")
                finally:
                    self.connected = False
                    self.aggregator.remove_host(self.url)
                await asyncio.sleep(self.retry_interval)
        finally:
            self.connected = False
            self.aggregator.remove_host(self.url)

    async def _read_once(self) -> None:
        timeout = httpx.Timeout(connect=2.0, read=self.read_timeout, write=2.0, pool=2.0)
        headers = {"Accept": "text/event-stream"}
        async with self.client.stream("GET", self.url, timeout=timeout, headers=headers) as response:
            if response.status_code != 200:
                self.stats.count_bad("status")
                return
            self.connected = True
            rest = b""
            async for chunk in response.aiter_raw():
                lines = (rest + chunk).split(b"\n")
                rest = lines.pop()
                self._apply(lines)
                if len(rest) > 16 * 1024 * 1024:
                    self.stats.count_bad("json")  # a "line" this long is not a stream we understand
                    rest = b""

    def _apply(self, lines: list[bytes]) -> None:
        applied = False
        update = self.aggregator.update
        for line in lines:
            if not line.startswith(b"data"):
                continue  # blank separators, pings, comments
            start = line.find(b"{")
            try:
                if start < 0:
                    raise msgspec.DecodeError("no JSON object")
                doc = _DECODER.decode(line[start:])
            except msgspec.DecodeError:
                self.stats.count_bad("json")
                continue
            try:
                if update(self.url, doc):
                    applied = True
                    self.stats.documents += 1
            except BadDocument:
                self.stats.count_bad("fields")
        if applied:
            self.last_data = time.monotonic()
