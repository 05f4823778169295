"""A consumer process for the crash tests: counts events per app id into a sink, with its positions.

Usage: count_worker.py BROKER_URL TOPIC GROUP SINK [BATCH_SIZE] [DELAY_PER_BATCH]
SINK is a SQLite file path or a postgresql:// DSN. Runs until SIGTERM.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

# conftest (the test event) and, for it, tests/brokers.py: pytest's pythonpath does not reach this process.
sys.path.insert(0, str(Path(__file__).parent.parent))
sys.path.insert(0, str(Path(__file__).parent))

from conftest import Install

from quills.streams import Batch, ConsumerOptions, PostgresSink, SqliteSink, Topic, connect

SETUP = "CREATE TABLE IF NOT EXISTS app_counts (app_id TEXT PRIMARY KEY, n BIGINT NOT NULL)"


def apply_sqlite(conn: sqlite3.Connection, counts: dict[str, int]) -> None:
    conn.executemany(
        "INSERT INTO app_counts (app_id, n) VALUES (?, ?) "
        "ON CONFLICT (app_id) DO UPDATE SET n = n + excluded.n",
        list(counts.items()),
    )


def apply_pg(conn: Any, counts: dict[str, int]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO app_counts (app_id, n) VALUES (%s, %s) "
            "ON CONFLICT (app_id) DO UPDATE SET n = app_counts.n + excluded.n",
            list(counts.items()),
        )


async def main(url: str, topic_name: str, group: str, sink_arg: str, batch_size: int, delay: float) -> None:
    sink: Any
    if sink_arg.startswith("postgresql://"):
        sink = PostgresSink(sink_arg, apply_pg, setup=SETUP)
    else:
        sink = SqliteSink(sink_arg, apply_sqlite, setup=SETUP)
    topic = Topic(topic_name, Install)

    def count(batch: Batch[Install]) -> dict[str, int]:
        if delay:
            time.sleep(delay)
        return dict(Counter(m.app_id for m in batch.messages))

    backbone = await connect(url)
    options = ConsumerOptions(group=group, max_batch_size=batch_size, session_timeout=2.0, max_wait=0.05)
    consumer = backbone.consumer(topic, count, options, sink=sink)
    print("worker started", flush=True)
    await consumer.run()
    print("worker stopped", consumer.snapshot(), flush=True)
    await backbone.close()
    sink.close()


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(
        main(
            args[0],
            args[1],
            args[2],
            args[3],
            int(args[4]) if len(args) > 4 else 10_000,
            float(args[5]) if len(args) > 5 else 0.0,
        )
    )
