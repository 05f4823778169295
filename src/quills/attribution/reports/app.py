"""The only wiring of the Reports service: broker, sink, three consumers, completeness probe, report API."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import prometheus_client
from prometheus_client.core import GaugeMetricFamily
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

import quills
import quills.monitor
from quills.attribution.apps import ensure_schema
from quills.attribution.db import Database
from quills.attribution.events import INAPPS, INSTALLS, SESSIONS
from quills.attribution.reports.config import ReportsConfig
from quills.attribution.reports.freshness import Bounds, Completeness, NotifyingSink
from quills.attribution.reports.handlers import fold
from quills.attribution.reports.http import iso_ms, report_routes
from quills.attribution.reports.sinks import DeltaMerger, apply_fold, checkpoint_wal, merge_deltas, schema
from quills.attribution.runtime import (
    KeyRingHolder,
    event_batches,
    freeze_startup_heap,
    uvicorn_server,
    wait_first,
)
from quills.errors import ConfigError
from quills.streams import (
    Backbone,
    BatchConsumer,
    StreamsCollector,
    connect,
)

__all__ = ("serve",)

log = logging.getLogger("quills.attribution.reports")
TOPICS = (INSTALLS, INAPPS, SESSIONS)


def _bounds_reader(backbone: Backbone) -> Callable[[], Awaitable[Bounds]]:
    names = [topic.wire_name for topic in TOPICS]

    async def read() -> Bounds:
        # at once: the probe's time is taken before, so every wait here makes the answer more cautious
        parts = await asyncio.gather(*(backbone.log_bounds(name) for name in names))
        return {key: bounds for part in parts for key, bounds in part.items()}

    return read


class _LagCollector:
    def __init__(self, completeness: Completeness) -> None:
        self._completeness = completeness

    def collect(self) -> Any:
        lag = self._completeness.lag_seconds()
        family = GaugeMetricFamily(
            "quills_reports_lag_seconds", "now minus data_complete_until (NaN while unknown)"
        )
        family.add_metric([], float("nan") if lag is None else lag)
        yield family


async def serve(config: ReportsConfig) -> None:
    """Run the Reports service (consumers and report API) until SIGINT/SIGTERM."""
    if not config.broker_url:
        raise ConfigError("reports needs a broker: set QUILLS_BROKER or --broker (nats://... or kafka://...)")
    # Folding a batch makes three container objects per aggregate row (~0.65 rows per event), all freed
    # after the commit. With CPython's default threshold they get promoted and drag in full collections:
    # ~1.5 us per event, as much as the fold itself. No cycles are made here, so collections can be rare.
    freeze_startup_heap(50_000)
    db = Database(config.db_url)
    await asyncio.to_thread(ensure_schema, db)
    stored = await asyncio.to_thread(db.sink, apply_fold(db), schema(db))
    backbone = await connect(config.broker_url)
    try:
        options = event_batches(config.group, config.max_batch_size, config.max_wait)
        completeness = Completeness(_bounds_reader(backbone), lambda: stored.positions(config.group))
        sink = NotifyingSink(stored, completeness.notify)
        consumers: list[BatchConsumer[Any, Any]] = [
            backbone.consumer(topic, fold, options, sink=sink) for topic in TOPICS
        ]
        keyring = KeyRingHolder(db, config.keys_reload_interval)
        await keyring.load()
        keyring.start()
        registry = quills.Registry()
        metrics = prometheus_client.CollectorRegistry()
        metrics.register(quills.monitor.QuillsCollector(registry))
        metrics.register(StreamsCollector(consumers))
        metrics.register(_LagCollector(completeness))
        started = time.time()

        async def healthz(_request: Request) -> Response:
            snaps = [c.snapshot() for c in consumers]
            return JSONResponse(
                {
                    "status": "ok" if all(s.is_healthy for s in snaps) else "degraded",
                    "uptime_seconds": round(time.time() - started, 3),
                    "data_complete_until": iso_ms(completeness.complete_until_ms),
                    "lag_seconds": completeness.lag_seconds(),
                    "consumers": [
                        {
                            "topic": s.topic,
                            "messages": s.messages,
                            "batches": s.batches,
                            "dlq_messages": s.dlq_messages,
                            "lag": s.lag,
                            "healthy": s.is_healthy,
                            "parked": s.is_parked,
                            "last_error": s.last_error,
                        }
                        for s in snaps
                    ],
                }
            )

        async def prometheus(_request: Request) -> Response:
            return Response(
                prometheus_client.generate_latest(metrics), media_type=prometheus_client.CONTENT_TYPE_LATEST
            )

        # part 2: the config API, the delivery log and the overview share this process (imported here:
        # the overview reads report totals through this package, so a top-level import would be circular)
        from quills.attribution.overview.api import platform_routes

        part2 = await platform_routes(db, keyring, backbone, registry)
        app = Starlette(
            routes=[
                *report_routes(db, keyring, completeness),
                *part2,
                Route("/healthz", healthz),
                Route("/metrics", prometheus),
                Mount("/", quills.monitor.hystrix_stream_app(registry, prometheus=False)),
            ]
        )
        server = uvicorn_server(app, config.host, config.port)
        log.info("serving http://%s:%d (broker %s, db %s)", config.host, config.port, backbone.url, db.url)
        probe = asyncio.get_running_loop().create_task(completeness.run(config.probe_interval))
        checkpoints = asyncio.get_running_loop().create_task(checkpoint_wal(db))
        merges = asyncio.get_running_loop().create_task(
            merge_deltas(DeltaMerger(db, group=config.group), config.merge_interval)
        )
        runs = [asyncio.ensure_future(c.run(handle_signals=False)) for c in consumers]
        try:
            # uvicorn handles SIGINT/SIGTERM; a consumer that ends by itself (fatal error) ends the process
            # so the supervisor restarts it.
            await wait_first(server.serve(), asyncio.gather(*runs))
        finally:
            for c in consumers:
                c.stop()
            await asyncio.gather(*runs, return_exceptions=True)
            probe.cancel()
            checkpoints.cancel()
            merges.cancel()
            await asyncio.gather(merges, return_exceptions=True)
            await keyring.stop()
    finally:
        await backbone.close()
        stored.close()
