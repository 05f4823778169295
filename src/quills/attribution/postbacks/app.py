"""The only wiring of the Postbacks service: config follower (atom), event consumers writing deliveries,
the sender, and a small health/metrics server."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import prometheus_client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

import quills
import quills.monitor
from quills.attribution.config.follow import ConfigFollower
from quills.attribution.config.ssrf import TargetPolicy
from quills.attribution.config.store import ConfigStore
from quills.attribution.db import Database
from quills.attribution.postbacks.client import PartnerClient
from quills.attribution.postbacks.config import PostbacksConfig
from quills.attribution.postbacks.handlers import evaluate
from quills.attribution.postbacks.messages import POSTBACK_TOPICS, Delivery, PostbackEvent
from quills.attribution.postbacks.sender import Sender
from quills.attribution.postbacks.sinks import SCHEMA, DeliveryStore, apply_deliveries
from quills.attribution.runtime import event_batches, uvicorn_server, wait_first
from quills.errors import ConfigError
from quills.streams import Batch, BatchConsumer, StreamsCollector, connect

__all__ = ("serve",)

log = logging.getLogger("quills.attribution.postbacks")


async def serve(config: PostbacksConfig) -> None:
    """Run the Postbacks service until SIGINT/SIGTERM."""
    if not config.broker_url:
        raise ConfigError(
            "postbacks needs a broker: set QUILLS_BROKER or --broker (nats://... or kafka://...)"
        )
    db = Database(config.db_url)
    store = ConfigStore(db)
    await asyncio.to_thread(store.ensure_schema)
    await asyncio.to_thread(db.script, SCHEMA)
    follower = ConfigFollower(store, group=config.config_group, reload_interval=config.reload_interval)
    await asyncio.to_thread(follower.load)
    sink = await asyncio.to_thread(db.sink, apply_deliveries(db), list(SCHEMA))
    backbone = await connect(config.broker_url)
    policy = TargetPolicy.parse(config.allow)
    client = PartnerClient(policy)
    deliveries = DeliveryStore(db)
    registry = quills.Registry()
    sender = Sender(
        deliveries,
        follower.atom.deref,
        client,
        registry,
        tick=config.tick,
        retry_base=config.retry_base,
        retry_cap=config.retry_cap,
        lease=config.lease,
    )

    def handle(batch: Batch[PostbackEvent]) -> list[Delivery]:
        found = evaluate(follower.atom.deref(), batch.messages, int(time.time() * 1000))
        if found:
            sender.wake()
        return found

    try:
        for topic in POSTBACK_TOPICS:
            await backbone.ensure_topic(topic.wire_name)
        options = event_batches(config.group, config.max_batch_size, config.max_wait)
        consumers: list[BatchConsumer[Any, Any]] = [
            backbone.consumer(topic, handle, options, sink=sink) for topic in POSTBACK_TOPICS
        ]
        metrics = prometheus_client.CollectorRegistry()
        metrics.register(quills.monitor.QuillsCollector(registry))
        metrics.register(StreamsCollector(consumers))
        started = time.time()

        async def healthz(_request: Request) -> Response:
            snaps = [c.snapshot() for c in consumers]
            index = follower.atom.deref()
            return JSONResponse(
                {
                    "status": "ok" if all(s.is_healthy for s in snaps) else "degraded",
                    "uptime_seconds": round(time.time() - started, 3),
                    "apps_with_rules": len(index.by_app),
                    "rules": len(index.rules),
                    "partners": len(index.partners),
                    "config_changes_applied": follower.applied,
                    "sent": sender.sent,
                    "retried": sender.retried,
                    "dead": sender.dead,
                    "parked": sender.parked,
                    "in_flight": dict(sender.in_flight),
                    "consumers": [
                        {"topic": s.topic, "messages": s.messages, "lag": s.lag, "healthy": s.is_healthy}
                        for s in snaps
                    ],
                }
            )

        async def prometheus(_request: Request) -> Response:
            return Response(
                prometheus_client.generate_latest(metrics), media_type=prometheus_client.CONTENT_TYPE_LATEST
            )

        app = Starlette(
            routes=[
                Route("/healthz", healthz),
                Route("/metrics", prometheus),
                Mount("/", quills.monitor.hystrix_stream_app(registry, prometheus=False)),
            ]
        )
        server = uvicorn_server(app, config.host, config.port)
        log.info("serving http://%s:%d (broker %s, db %s)", config.host, config.port, backbone.url, db.url)
        runs = [asyncio.ensure_future(c.run(handle_signals=False)) for c in consumers]
        following = asyncio.ensure_future(follower.run(backbone))
        sending = asyncio.ensure_future(sender.run())
        try:
            await wait_first(server.serve(), asyncio.gather(*runs), following, sending)
        finally:
            for c in consumers:
                c.stop()
            follower.stop()
            sender.stop()
            await asyncio.gather(*runs, following, sending, return_exceptions=True)
    finally:
        await client.aclose()
        await backbone.close()
        sink.close()
        await asyncio.to_thread(deliveries.close)
