"""quixstreams' side of the benchmark job: count per app id with ``sdf.update``; quix commits offsets.

Usage: quix_count.py BROKER_URL TOPIC N GROUP. Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from quixstreams import Application

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from procstat import cpu_seconds, peak_rss_mb

URL, TOPIC, N, GROUP = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
counts: Counter[str] = Counter()
state = {"seen": 0, "first": 0.0}

app = Application(
    broker_address=URL.split("://", 1)[1],
    consumer_group=GROUP,
    auto_offset_reset="earliest",
    auto_create_topics=False,
    use_changelog_topics=False,
)
topic = app.topic(TOPIC, value_deserializer="json")
sdf = app.dataframe(topic)


def count(value: dict[str, Any]) -> None:
    if not state["first"]:
        state["first"] = time.perf_counter()
    counts[value["app_id"]] += 1
    state["seen"] += 1
    if state["seen"] >= N:
        app.stop()


sdf = sdf.update(count)
started = time.perf_counter()
app.run()
finished = time.perf_counter()
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
