"""FastStream's side of the benchmark job: count per app id, commit offsets/acks the framework's way.

Usage: faststream_count.py MODE BROKER_URL TOPIC N GROUP
MODE: kafka (aiokafka, per message), kafka-batch, confluent (per message), confluent-batch,
nats (pull subscriber, per message), nats-batch. Prints one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from procstat import cpu_seconds, peak_rss_mb

MODE, URL, TOPIC, N, GROUP = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
counts: Counter[str] = Counter()
state = {"seen": 0, "first": 0.0}
done = asyncio.Event()


def note(k: int) -> None:
    if not state["first"]:
        state["first"] = time.perf_counter()
    state["seen"] += k
    if state["seen"] >= N:
        done.set()


def build() -> Any:
    host = URL.split("://", 1)[1]
    if MODE.startswith("kafka"):
        from faststream.kafka import KafkaBroker

        broker = KafkaBroker(host, logger=None)
        opts = {"group_id": GROUP, "auto_offset_reset": "earliest"}
    elif MODE.startswith("confluent"):
        from faststream.confluent import KafkaBroker as ConfluentBroker

        broker = ConfluentBroker(host, logger=None)
        opts = {"group_id": GROUP, "auto_offset_reset": "earliest"}
    else:
        from faststream.nats import JStream, NatsBroker, PullSub

        broker = NatsBroker(URL, logger=None)
        stream = JStream(name="Q_" + TOPIC.replace(".", "_"), declare=False)
        batch = MODE.endswith("batch")
        opts = {"stream": stream, "durable": GROUP, "pull_sub": PullSub(batch_size=1000, batch=batch)}
        if batch:

            @broker.subscriber(TOPIC, **opts)
            async def handle_nats_batch(bodies: list[dict[str, Any]]) -> None:
                counts.update(b["app_id"] for b in bodies)
                note(len(bodies))

        else:

            @broker.subscriber(TOPIC, **opts)
            async def handle_nats(body: dict[str, Any]) -> None:
                counts[body["app_id"]] += 1
                note(1)

        return broker
    if MODE.endswith("batch"):

        @broker.subscriber(TOPIC, batch=True, max_records=10_000, **opts)
        async def handle_batch(bodies: list[dict[str, Any]]) -> None:
            counts.update(b["app_id"] for b in bodies)
            note(len(bodies))

    else:

        @broker.subscriber(TOPIC, **opts)
        async def handle(body: dict[str, Any]) -> None:
            counts[body["app_id"]] += 1
            note(1)

    return broker


async def main() -> None:
    broker = build()
    started = time.perf_counter()
    await broker.start()
    await asyncio.wait_for(done.wait(), 600)
    finished = time.perf_counter()
    await broker.stop()
    print(
        json.dumps(
            {
                "cpu": cpu_seconds(),
                "rss_mb": peak_rss_mb(),
                "events": state["seen"],
                "seconds": finished - state["first"],
                "with_join": finished - started,
            }
        )
    )


asyncio.run(main())
