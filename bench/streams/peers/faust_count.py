"""faust-streaming's side of the benchmark job: an agent counting per app id (faust commits offsets).

Usage: faust_count.py BROKER_URL TOPIC N GROUP DATADIR. Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import faust

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from procstat import cpu_seconds, peak_rss_mb

URL, TOPIC, N, GROUP, DATADIR = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
counts: Counter[str] = Counter()
state = {"seen": 0, "first": 0.0, "started": time.perf_counter()}

app = faust.App(
    GROUP,
    broker="kafka://" + URL.split("://", 1)[1],
    datadir=DATADIR,
    consumer_auto_offset_reset="earliest",
    topic_allow_declare=False,
    web_enabled=False,
)
topic = app.topic(TOPIC, value_serializer="json")


@app.agent(topic)
async def count(stream: Any) -> None:
    async for value in stream:
        if not state["first"]:
            state["first"] = time.perf_counter()
        counts[value["app_id"]] += 1
        state["seen"] += 1
        if state["seen"] >= N:
            finished = time.perf_counter()
            print(
                json.dumps(
                    {
                        "cpu": cpu_seconds(),
                        "rss_mb": peak_rss_mb(),
                        "events": state["seen"],
                        "seconds": finished - state["first"],
                        "with_join": finished - state["started"],
                    }
                ),
                flush=True,
            )
            os._exit(0)


if __name__ == "__main__":
    sys.argv = [sys.argv[0], "worker", "-l", "warn"]
    app.main()
