"""SqliteSink: results and positions commit together, or neither does."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from quills.errors import ConfigError
from quills.streams import KafkaClaim, NatsClaim, SqliteSink, StaleClaimError

SETUP = "CREATE TABLE IF NOT EXISTS totals (app_id TEXT PRIMARY KEY, n INTEGER NOT NULL)"


def add_totals(conn: sqlite3.Connection, counts: dict[str, int]) -> None:
    conn.executemany(
        "INSERT INTO totals VALUES (?, ?) ON CONFLICT (app_id) DO UPDATE SET n = n + excluded.n",
        list(counts.items()),
    )


def totals(sink: SqliteSink[dict[str, int]]) -> dict[str, int]:
    return dict(sink.connection.execute("SELECT app_id, n FROM totals").fetchall())


def test_commit_stores_results_and_positions_and_a_reopened_sink_resumes(tmp_path: Path) -> None:
    sink = SqliteSink(tmp_path / "s.db", add_totals, setup=SETUP)
    sink.commit("g", {"a": 2}, KafkaClaim("t", {0: (None, 2)}))
    sink.commit("g", {"a": 1, "b": 1}, KafkaClaim("t", {0: (2, 4), 1: (None, 7)}))
    sink.close()
    reopened = SqliteSink(tmp_path / "s.db", add_totals, setup=SETUP)
    assert reopened.positions("g") == {"t/0": "4", "t/1": "7"}
    assert reopened.positions("g", ["t/1"]) == {"t/1": "7"}
    assert reopened.positions("other") == {}
    assert totals(reopened) == {"a": 3, "b": 1}


def test_a_stale_claim_rolls_back_the_results_too(tmp_path: Path) -> None:
    sink = SqliteSink(tmp_path / "s.db", add_totals, setup=SETUP)
    sink.commit("g", {"a": 5}, NatsClaim("S", [1, 2, 3, 4, 5]))
    with pytest.raises(StaleClaimError):
        sink.commit("g", {"a": 2}, NatsClaim("S", [5, 6]))
    assert totals(sink) == {"a": 5}
    assert sink.positions("g") == {"S": "[[1,5]]"}


def test_a_failing_apply_stores_nothing(tmp_path: Path) -> None:
    def explode(conn: sqlite3.Connection, counts: dict[str, int]) -> None:
        add_totals(conn, counts)
        raise RuntimeError("disk full")

    sink = SqliteSink(tmp_path / "s.db", explode, setup=SETUP)
    with pytest.raises(RuntimeError, match="disk full"):
        sink.commit("g", {"a": 1}, KafkaClaim("t", {0: (None, 1)}))
    assert totals(sink) == {}
    assert sink.positions("g") == {}


def test_an_in_memory_database_is_refused() -> None:
    with pytest.raises(ConfigError, match="file path"):
        SqliteSink(":memory:")
