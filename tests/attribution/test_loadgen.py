"""loadgen's arithmetic, a run against the real ingest service, and the database URL forms (runs under
``quills up`` are exercised by test_platform)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from quills.attribution.db import Database
from quills.attribution.loadgen import LoadgenOptions, LoadSummary, percentile, run_loadgen

from .test_ingest_service import start_ingest, stop_ingest


def test_percentiles_by_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (50.0, 99.0, 100.0)
    assert percentile([], 99) == 0.0


def test_the_summary_line_names_every_outcome() -> None:
    line = LoadSummary(
        sent=10, accepted=7, rejected=1, unavailable=1, failed=1, requests=10, elapsed=2.0
    ).line()
    for part in ("sent 10 events", "accepted 7 (4/s)", "rejected 1", "unavailable 1", "failed 1", "p99"):
        assert part in line


def test_database_urls() -> None:
    assert Database("sqlite:///rel/q.db").path == "rel/q.db"
    assert Database("sqlite:////abs/q.db").path == "/abs/q.db"
    assert Database("/abs/q.db").path == "/abs/q.db"
    pg = Database("postgresql://u@h:5432/d")
    assert pg.is_postgres and pg.sql("a = ? AND b = ?") == "a = %s AND b = %s"


def test_every_event_sent_reaches_the_ingest_service(tmp_path: Path) -> None:
    """loadgen's bodies and requests against the real ingest service: all accepted, single and batch."""
    ingest = start_ingest(tmp_path)
    try:
        for batch in (1, 50):
            options = LoadgenOptions(
                rate=500 * batch,
                duration=1.5,
                batch=batch,
                url=ingest.url,
                credentials=str(tmp_path / "credentials.json"),
                concurrency=4,
                seed=3,
            )
            out = io.StringIO()
            summary = asyncio.run(run_loadgen(options, out))
            assert summary.sent >= 100 * batch and summary.accepted == summary.sent
            assert summary.statuses == {"202": summary.requests} and "accepted" in out.getvalue()
            assert sum(summary.accepted_by_app.values()) == summary.sent
    finally:
        stop_ingest(ingest)
