"""The aggregator process: discovery, one reader per instance, and the HTTP side.

Endpoints: ``/turbine.stream?cluster=NAME`` (404 "Cluster not found" for an unknown cluster; optional
``type=HystrixCommand,...`` filter and ``delay=<ms>`` push period), ``/health`` (JSON), ``/metrics``
(the aggregator's own Prometheus metrics), ``/dashboard/`` (the web dashboard). Known clusters are those
named by ``clusters=`` plus every
cluster discovery has reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any
from urllib.parse import quote

import httpx
import msgspec
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from quills.errors import ConfigError
from quills.monitor.aggregator import ClusterAggregator
from quills.monitor.dashboard.apps import dashboard_asgi
from quills.monitor.discovery import (
    DiscoveryError,
    HostsChanged,
    Instance,
    InstanceDiscovery,
    diff_instances,
)
from quills.monitor.hystrix_format import status_document
from quills.monitor.instance_reader import InstanceReader, ReaderStats
from quills.monitor.stream import delay_of
from quills.monitor.turbine_metrics import monitor_metrics_endpoint

__all__ = ("TurbineMonitor", "Cluster")

_ENCODER = msgspec.json.Encoder()
_log = logging.getLogger("quills.monitor")
_HEADERS = {
    "Cache-Control": "no-cache, no-store, max-age=0, must-revalidate",
    "Pragma": "no-cache",
}


class Cluster:
    """One cluster: its aggregator and its readers by URL."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.aggregator = ClusterAggregator()
        self.readers: dict[str, tuple[InstanceReader, asyncio.Task[None]]] = {}

    def reporting_hosts_last(self, seconds: float) -> int:
        """Hosts that sent a document within the last ``seconds``."""
        cutoff = time.monotonic() - seconds
        return sum(1 for reader, _ in self.readers.values() if reader.last_data >= cutoff)


class TurbineMonitor:
    """Turbine 1.x for quills streams, as a library: build it, then ``await serve()`` or mount :attr:`app`.

    Args:
        discovery: where the instances are (see :mod:`quills.monitor.discovery`).
        clusters: clusters that exist even before discovery names an instance in them. Default none.
        suffix: appended to ``host:port`` to make a stream URL. Default ``/hystrix.stream``.
        interval: seconds between pushes to stream clients, 0.05..60. Default 0.5.
        full_every: seconds between full-state pushes (otherwise only changed documents), default 2.0.
        retry_interval: seconds between reconnects to a dropped instance, default 1.0.
        read_timeout: seconds of silence that make an instance count as dropped, default 5.0.
        cors_origin: ``Access-Control-Allow-Origin`` of the stream; None (default) sends none.
    """

    def __init__(
        self,
        discovery: InstanceDiscovery,
        *,
        clusters: Iterable[str] = (),
        suffix: str = "/hystrix.stream",
        interval: float = 0.5,
        full_every: float = 2.0,
        retry_interval: float = 1.0,
        read_timeout: float = 5.0,
        cors_origin: str | None = None,
    ) -> None:
        if not 0.05 <= interval <= 60:
            raise ConfigError(f"TurbineMonitor.interval must be 0.05..60 s, got {interval!r}")
        if not 0.05 <= retry_interval <= 3600:
            raise ConfigError(f"TurbineMonitor.retry_interval must be 0.05..3600 s, got {retry_interval!r}")
        if not suffix.startswith("/") or any(c.isspace() for c in suffix):
            raise ConfigError(f"TurbineMonitor.suffix must be a path starting with '/', got {suffix!r}")
        if cors_origin is not None and (not cors_origin or any(c.isspace() for c in cors_origin)):
            raise ConfigError(
                f"TurbineMonitor.cors_origin must be an origin such as '*', got {cors_origin!r}"
            )
        if not 0.1 <= read_timeout <= 3600:
            raise ConfigError(f"TurbineMonitor.read_timeout must be 0.1..3600 s, got {read_timeout!r}")
        self.discovery = discovery
        self.suffix = suffix
        self.interval = interval
        self.full_every = full_every
        self.retry_interval = retry_interval
        self.read_timeout = read_timeout
        self.cors_origin = cors_origin
        self.clusters: dict[str, Cluster] = {}
        for name in clusters:
            self._cluster(name)
        self.stats = ReaderStats()
        self.discovery_errors = 0
        self.last_discovery_error: str | None = None
        self.stream_clients = 0
        self._known: list[Instance] = []
        self._listeners: list[Callable[[HostsChanged], None]] = []
        self.hosts_up = self.hosts_down = 0
        self._client: httpx.AsyncClient | None = None
        self._poller: asyncio.Task[None] | None = None
        self._sampler: asyncio.Task[None] | None = None
        self.app = Starlette(
            routes=[
                Route("/turbine.stream", self._turbine_stream),
                Route("/health", self._health),
                Route("/metrics", monitor_metrics_endpoint(self)),
                Route("/dashboard", dashboard_asgi(self._dashboard_streams)),
                Route("/dashboard/{path:path}", dashboard_asgi(self._dashboard_streams)),
            ],
            lifespan=self._lifespan,
        )

    # -- lifecycle -----------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    async def start(self) -> None:
        """Poll discovery once (now) and then every ``discovery.poll_interval`` in the background."""
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
        self._client = httpx.AsyncClient(limits=limits, trust_env=False)
        await self.poll_discovery()
        self._poller = asyncio.create_task(self._poll_forever())
        self._sampler = asyncio.create_task(self._sample_forever())

    async def stop(self) -> None:
        """Stop polling, close every reader and the HTTP client."""
        for task in (self._poller, self._sampler):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for cluster in self.clusters.values():
            for url in list(cluster.readers):
                await self._stop_reader(cluster, url)
        if self._client is not None:
            await self._client.aclose()

    async def serve(self, host: str = "127.0.0.1", port: int = 8989) -> None:
        """Run the HTTP server (uvicorn) until cancelled or interrupted."""
        # streams never end by themselves: give open clients 2 s on shutdown instead of waiting forever
        config = uvicorn.Config(
            self.app, host=host, port=port, log_level="warning", lifespan="on", timeout_graceful_shutdown=2
        )
        await uvicorn.Server(config).serve()

    # -- discovery -----------------------------------------------------------------------------------
    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.discovery.poll_interval)
            await self.poll_discovery()

    async def _sample_forever(self) -> None:
        while True:
            self.stats.sample()
            await asyncio.sleep(1.0)

    async def poll_discovery(self) -> None:
        """Ask discovery now and start or stop readers for the hosts that went up or down."""
        try:
            instances = await self.discovery.instances()
        except DiscoveryError as exc:
            self.discovery_errors += 1
            self.last_discovery_error = str(exc)
            _log.warning("discovery failed, keeping the last list: %s", exc)
            return
        for instance in instances:
            self._cluster(instance.cluster)
        up, down = diff_instances(self._known, instances)
        self._known = instances
        for instance in down:
            await self._stop_reader(self.clusters[instance.cluster], instance.url(self.suffix))
        for instance in up:
            self._start_reader(self.clusters[instance.cluster], instance.url(self.suffix))
        if up or down:
            self.hosts_up += len(up)
            self.hosts_down += len(down)
            self._publish(HostsChanged(tuple(up), tuple(down), time.time_ns() // 1_000_000))

    def subscribe(self, listener: Callable[[HostsChanged], None]) -> Callable[[], None]:
        """Call ``listener`` with every :class:`HostsChanged` event; returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _publish(self, event: HostsChanged) -> None:
        for instance in event.up:
            _log.info("host up: %s (cluster %s)", instance.host, instance.cluster)
        for instance in event.down:
            _log.info("host down: %s (cluster %s)", instance.host, instance.cluster)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a listener's bug must not stop discovery
                _log.exception("HostsChanged listener %r failed", listener)

    def _cluster(self, name: str) -> Cluster:
        cluster = self.clusters.get(name)
        if cluster is None:
            cluster = self.clusters[name] = Cluster(name)
        return cluster

    def _start_reader(self, cluster: Cluster, url: str) -> None:
        if url in cluster.readers or self._client is None:
            return
        reader = InstanceReader(
            url,
            cluster.aggregator,
            self._client,
            self.stats,
            retry_interval=self.retry_interval,
            read_timeout=self.read_timeout,
        )
        cluster.readers[url] = (reader, asyncio.create_task(reader.run(), name=f"quills-reader-{url}"))

    async def _stop_reader(self, cluster: Cluster, url: str) -> None:
        entry = cluster.readers.pop(url, None)
        if entry is None:
            return
        task = entry[1]
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    # -- HTTP ----------------------------------------------------------------------------------------
    def _dashboard_streams(self) -> list[str]:
        """What the dashboard opens by default: every known cluster's stream."""
        return [f"../turbine.stream?cluster={quote(name)}" for name in self.clusters]

    async def _health(self, request: Request) -> Response:
        clusters = {
            name: {
                "instances": len(cluster.readers),
                "connected": sum(1 for reader, _ in cluster.readers.values() if reader.connected),
                "reportingHostsLast10Seconds": cluster.reporting_hosts_last(10.0),
            }
            for name, cluster in self.clusters.items()
        }
        body = {
            "status": "ok",
            "clusters": clusters,
            "documents": self.stats.documents,
            "documentsPerSecond": round(self.stats.documents_per_second(), 1),
            "reconnects": self.stats.reconnects,
            "bad": self.stats.bad,
            "discoveryErrors": self.discovery_errors,
            "lastDiscoveryError": self.last_discovery_error,
        }
        return JSONResponse(body)

    async def _turbine_stream(self, request: Request) -> Response:
        name = request.query_params.get("cluster", "default")
        cluster = self.clusters.get(name)
        if cluster is None:
            return PlainTextResponse("Cluster not found", status_code=404)
        delay = delay_of("", request.url.query, self.interval)
        types_param = request.query_params.get("type")
        types = {t for t in types_param.split(",") if t} if types_param else None
        headers = dict(_HEADERS)
        if self.cors_origin is not None:
            headers["Access-Control-Allow-Origin"] = self.cors_origin
        return StreamingResponse(
            self._events(cluster, types, delay), media_type="text/event-stream;charset=UTF-8", headers=headers
        )

    async def _events(self, cluster: Cluster, types: set[str] | None, delay: float) -> AsyncIterator[bytes]:
        self.stream_clients += 1
        try:
            loop = asyncio.get_running_loop()
            cursor = -1
            last_full = last_meta = last_ping = -1e18
            while True:
                now = loop.time()
                since = cursor
                if now - last_full >= self.full_every:
                    since, last_full = -1, now
                aggregator = cluster.aggregator
                docs = aggregator.documents(since)
                cursor = aggregator.version
                if types is not None:
                    docs = [doc for doc in docs if doc["type"] in types]
                parts = [b"data: " + _ENCODER.encode(doc) + b"\n\n" for doc in docs]
                if since == -1 and not aggregator.has_documents():
                    status = status_document(_why_empty(cluster), now_ms=time.time_ns() // 1_000_000)
                    parts.append(b"data: " + _ENCODER.encode(status) + b"\n\n")
                if now - last_meta >= 3.0:
                    last_meta = now
                    meta = _meta(cluster.reporting_hosts_last(10.0))
                    parts.append(b"data: " + _ENCODER.encode(meta) + b"\n\n")
                if now - last_ping >= 3.0:
                    last_ping = now
                    parts.append(b": ping\n\n")
                if parts:
                    yield b"".join(parts)
                await asyncio.sleep(delay)
        finally:
            self.stream_clients -= 1


def _why_empty(cluster: Cluster) -> str:
    """What a dashboard should say about a cluster with nothing to show (instead of "Loading...")."""
    if not cluster.readers:
        return f"no instances in cluster {cluster.name}"
    if not any(reader.connected for reader, _ in cluster.readers.values()):
        return f"no instance of cluster {cluster.name} is reachable"
    return "no commands yet"


def _meta(hosts: int) -> dict[str, Any]:
    return {
        "type": "meta",
        "name": "meta",
        "reportingHostsLast10Seconds": hosts,
        "timestamp": time.time_ns() // 1_000_000,
    }
