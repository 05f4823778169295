"""PostgresSink against the real PostgreSQL: one transaction, compare-and-set across connections."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from quills.streams import KafkaClaim, NatsClaim, PostgresSink, StaleClaimError

SETUP = "CREATE TABLE IF NOT EXISTS totals (app_id TEXT PRIMARY KEY, n BIGINT NOT NULL)"


def add_totals(conn: Any, counts: dict[str, int]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO totals VALUES (%s, %s) ON CONFLICT (app_id) DO UPDATE SET n = totals.n + excluded.n",
            list(counts.items()),
        )


def totals(sink: PostgresSink[Any]) -> dict[str, int]:
    return dict(sink.connection.execute("SELECT app_id, n FROM totals").fetchall())


def test_commit_stores_results_and_positions_and_a_new_connection_resumes(pg_dsn: str) -> None:
    sink = PostgresSink(pg_dsn, add_totals, setup=SETUP)
    sink.commit("g", {"a": 2}, KafkaClaim("t", {0: (None, 2)}))
    sink.commit("g", {"a": 1}, KafkaClaim("t", {0: (2, 3)}))
    sink.close()
    again = PostgresSink(pg_dsn, add_totals, setup=SETUP)
    assert again.positions("g") == {"t/0": "3"}
    assert totals(again) == {"a": 3}
    again.close()


def test_a_stale_claim_rolls_back_the_results_too(pg_dsn: str) -> None:
    sink = PostgresSink(pg_dsn, add_totals, setup=SETUP)
    sink.commit("g", {"a": 1}, KafkaClaim("t", {0: (None, 10)}))
    with pytest.raises(StaleClaimError):
        sink.commit("g", {"a": 100}, KafkaClaim("t", {0: (None, 20)}))
    assert totals(sink) == {"a": 1}
    assert sink.positions("g") == {"t/0": "10"}
    sink.close()


def test_two_members_racing_for_the_same_sequences_store_them_once(pg_dsn: str) -> None:
    sinks = [PostgresSink(pg_dsn, add_totals, setup=SETUP) for _ in range(2)]
    outcomes: list[str] = []

    def member(sink: PostgresSink[Any]) -> None:
        for start in range(1, 2001, 100):
            try:
                sink.commit("g", {"a": 100}, NatsClaim("S", list(range(start, start + 100))))
                outcomes.append("stored")
            except StaleClaimError:
                outcomes.append("stale")

    threads = [threading.Thread(target=member, args=(s,)) for s in sinks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("stored") == 20 and outcomes.count("stale") == 20
    assert totals(sinks[0]) == {"a": 2000}
    assert sinks[0].positions("g") == {"S": "[[1,2000]]"}
    for s in sinks:
        s.close()


def test_sinks_opened_at_once_on_a_new_database_all_succeed(pg_dsn: str) -> None:
    """Regression: concurrent CREATE TABLE IF NOT EXISTS raced on pg_type (UniqueViolation)."""
    errors: list[BaseException] = []
    sinks: list[PostgresSink[Any]] = []
    start = threading.Barrier(8)

    def open_sink() -> None:
        start.wait()
        try:
            sinks.append(PostgresSink(pg_dsn, setup="CREATE TABLE IF NOT EXISTS race_t (k TEXT PRIMARY KEY)"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_sink) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for sink in sinks:
        sink.close()
    assert errors == []
    assert len(sinks) == 8
