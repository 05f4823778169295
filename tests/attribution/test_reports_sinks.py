"""The reports tables on real SQLite and PostgreSQL: batches written with their positions, read back by
report queries; a rolled-back batch leaves nothing behind; busy rows turn into sketches."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from quills.attribution.db import Database
from quills.attribution.events import EventView
from quills.attribution.reports.handlers import fold
from quills.attribution.reports.messages import ReportQuery
from quills.attribution.reports.sinks import RowWriter, run_report, schema
from quills.attribution.reports.sketch import REGISTERS
from quills.streams import Batch, NatsClaim

from .helpers import HOUR, T0, view

DAY = dt.date(2025, 11, 22)


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "postgres":
        yield Database(request.getfixturevalue("pg_dsn"))
    else:
        yield Database(str(tmp_path / "reports.db"))


class Writer:
    """A sink over ``db`` and the sequences of one stream handed out in order."""

    def __init__(self, db: Database) -> None:
        self.rows = RowWriter(db)
        self.sink = db.sink(self.rows, schema(db))
        self.seq = 0

    def write(self, events: list[EventView]) -> None:
        seqs = list(range(self.seq + 1, self.seq + len(events) + 1))
        self.seq += len(events)
        self.sink.commit("reports", fold(Batch("S", events)), NatsClaim("S", seqs))


def report(db: Database, group_by: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    query = ReportQuery(
        app_id=None, first_day=DAY, last_day=DAY, group_by=group_by, offset_hours=0, format="json"
    )
    return run_report(db, query)


def test_batches_add_up_and_devices_are_counted_once_over_rows_and_batches(db: Database) -> None:
    writer = Writer(db)
    try:
        writer.write([view(device_id="d1"), view(device_id="d2"), view(country_code="BR", device_id="d1")])
        # a known row with a known and a new device, and a new row
        writer.write([view(device_id="d1"), view(device_id="d4"), view(device_id="d3", event_time=T0 + HOUR)])
        # a known row seen again with one device it holds, then with one it does not
        writer.write([view(event_type="in_app", event_name="AF_Purchase", event_revenue_usd=1.5)])
        writer.write([view(device_id="d4")])
        writer.write([view(device_id="d5")])
    finally:
        writer.sink.close()
    (total,) = report(db)
    assert total == {
        "installs": 0,
        "in_app_events": 1,
        "sessions": 8,
        "events": 9,
        "revenue_usd": 1.5,
        "devices": 5,
    }
    by_country = {r["country"]: (r["events"], r["devices"]) for r in report(db, ("country",))}
    assert by_country == {"BR": (1, 1), "ZZ": (8, 5)}
    by_hour = [(r["hour"][11:13], r["sessions"], r["devices"]) for r in report(db, ("hour",))]
    assert by_hour == [("00", 7, 4), ("01", 1, 1)]


def test_a_rolled_back_batch_is_not_counted_even_though_the_writer_saw_its_rows(db: Database) -> None:
    writer = Writer(db)
    try:
        conn = db.connect()
        try:
            rolled_back = fold(Batch("S", [view(device_id="ghost"), view(country_code="BR")]))
            if db.is_postgres:
                with conn.transaction():  # psycopg rolls back on Rollback and swallows it
                    writer.rows(conn, rolled_back)
                    raise psycopg.Rollback()
            else:
                conn.execute("BEGIN")
                writer.rows(conn, rolled_back)
                conn.execute("ROLLBACK")
        finally:
            conn.close()
        # the writer now remembers rows that were never stored: the next batch must still land
        writer.write([view(device_id="d1"), view(country_code="BR", device_id="d1")])
        writer.write([view(device_id="d2")])
    finally:
        writer.sink.close()
    by_country = {r["country"]: (r["events"], r["devices"]) for r in report(db, ("country",))}
    assert by_country == {"BR": (1, 1), "ZZ": (2, 2)}


def test_a_busy_row_keeps_exact_sums_and_counts_devices_within_the_sketch_error(db: Database) -> None:
    writer = Writer(db)
    try:
        for part in range(6):  # 6 batches of 500 devices, each seen twice: 3,000 devices, 6,000 events
            devices = [f"device-{part * 500 + i}" for i in range(500)]
            writer.write([view(device_id=d) for d in devices * 2])
    finally:
        writer.sink.close()
    (total,) = report(db)
    assert total["sessions"] == 6_000
    assert abs(total["devices"] / 3_000 - 1) < 3 * 1.04 / REGISTERS**0.5
