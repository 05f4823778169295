"""loadgen's arithmetic and the database URL forms (the run itself is exercised by test_platform)."""

from __future__ import annotations

from quills.attribution.db import Database
from quills.attribution.loadgen import LoadSummary, percentile


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
