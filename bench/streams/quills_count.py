"""quills' side of the benchmark job: decode + count per app id + store counts with positions (SQLite).

Usage: quills_count.py BROKER_URL TOPIC N GROUP SQLITE_PATH. Prints one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from events import Install
from procstat import cpu_seconds, peak_rss_mb

from quills.streams import Batch, ConsumerOptions, SqliteSink, Topic, connect


def apply(conn: sqlite3.Connection, counts: dict[str, int]) -> None:
    conn.executemany(
        "INSERT INTO counts VALUES (?, ?) ON CONFLICT (app_id) DO UPDATE SET n = n + excluded.n",
        list(counts.items()),
    )


async def main(url: str, topic: str, n: int, group: str, db: str) -> None:
    sink = SqliteSink(
        db, apply, setup="CREATE TABLE IF NOT EXISTS counts (app_id TEXT PRIMARY KEY, n INTEGER)"
    )
    backbone = await connect(url)
    seen = 0
    first = 0.0
    cpu_first = 0.0

    def count(batch: Batch[Install]) -> dict[str, int]:
        nonlocal seen, first, cpu_first
        if not first:
            first, cpu_first = time.perf_counter(), cpu_seconds()
        seen += len(batch.messages)
        if seen >= n:
            consumer.stop()
        return dict(Counter([m.app_id for m in batch.messages]))

    options = ConsumerOptions(group=group, session_timeout=6)
    consumer = backbone.consumer(Topic(topic, Install), count, options, sink=sink)
    started = time.perf_counter()
    await consumer.run()
    done = time.perf_counter()
    await backbone.close()
    total = sum(n for (n,) in sink.connection.execute("SELECT n FROM counts"))
    print(
        json.dumps(
            {
                "cpu": cpu_seconds(),
                "cpu_first": cpu_first,
                "rss_mb": peak_rss_mb(),
                "events": seen,
                "seconds": done - first,
                "with_join": done - started,
                "stored": total,
            }
        )
    )


if __name__ == "__main__":
    url, topic, n, group, db = sys.argv[1:6]
    asyncio.run(main(url, topic, int(n), group, db))
