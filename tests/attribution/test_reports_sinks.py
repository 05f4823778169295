"""The reports tables on real SQLite and PostgreSQL: batches written with their positions, read back by
report queries whether merged into the aggregates or not; a rolled-back batch or a failed merge leaves
nothing behind; busy rows turn into sketches."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quills.attribution.db import Database
from quills.attribution.events import EventView
from quills.attribution.reports.handlers import fold
from quills.attribution.reports.messages import ReportQuery
from quills.attribution.reports.query import run_report
from quills.attribution.reports.sinks import DeltaMerger, RowWriter, merge_deltas, schema
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


@pytest.fixture(params=[0, 1, 2], ids=["unmerged", "merge-each", "merge-every-2nd"])
def merge_every(request: pytest.FixtureRequest) -> int:
    """After how many written batches the writer merges (0: never, reports read the stored batches)."""
    return int(request.param)


class Writer:
    """A sink over ``db`` and the sequences of one stream handed out in order; merges after every
    ``merge_every`` batches (0: never)."""

    def __init__(self, db: Database, merge_every: int = 0) -> None:
        self.rows = RowWriter(db)
        self.sink = db.sink(self.rows, schema(db))
        self.merger = DeltaMerger(db)
        self.merge_every = merge_every
        self.seq = 0
        self.batches = 0

    def write(self, events: list[EventView]) -> None:
        seqs = list(range(self.seq + 1, self.seq + len(events) + 1))
        self.seq += len(events)
        self.sink.commit("reports", fold(Batch("S", events)), NatsClaim("S", seqs))
        self.batches += 1
        if self.merge_every and self.batches % self.merge_every == 0:
            self.merger.merge()

    def close(self) -> None:
        self.sink.close()
        self.merger.close()


def stored_batches(db: Database) -> int:
    return int(db.query("SELECT count(*) FROM report_batches")[0][0])


def report(db: Database, group_by: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    query = ReportQuery(
        app_id=None, first_day=DAY, last_day=DAY, group_by=group_by, offset_hours=0, format="json"
    )
    return run_report(db, query)


def test_batches_add_up_and_devices_are_counted_once_over_rows_and_batches(
    db: Database, merge_every: int
) -> None:
    writer = Writer(db, merge_every)
    try:
        writer.write([view(device_id="d1"), view(device_id="d2"), view(country_code="BR", device_id="d1")])
        # a known row with a known and a new device, and a new row
        writer.write([view(device_id="d1"), view(device_id="d4"), view(device_id="d3", event_time=T0 + HOUR)])
        # a known row seen again with one device it holds, then with one it does not
        writer.write([view(event_type="in_app", event_name="AF_Purchase", event_revenue_usd=1.5)])
        writer.write([view(device_id="d4")])
        writer.write([view(device_id="d5")])
    finally:
        writer.close()
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


def test_a_rolled_back_batch_is_not_counted_and_leaves_nothing_to_merge(
    db: Database, merge_every: int
) -> None:
    writer = Writer(db, merge_every)
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
        # the rows of the rolled-back batch come again, and must land with their keys
        writer.write([view(device_id="d1"), view(country_code="BR", device_id="d1")])
        writer.write([view(device_id="d2")])
    finally:
        writer.close()
    by_country = {r["country"]: (r["events"], r["devices"]) for r in report(db, ("country",))}
    assert by_country == {"BR": (1, 1), "ZZ": (2, 2)}


def test_a_busy_row_keeps_exact_sums_and_counts_devices_within_the_sketch_error(
    db: Database, merge_every: int
) -> None:
    writer = Writer(db, merge_every)
    try:
        for part in range(6):  # 6 batches of 500 devices, each seen twice: 3,000 devices, 6,000 events
            devices = [f"device-{part * 500 + i}" for i in range(500)]
            writer.write([view(device_id=d) for d in devices * 2])
    finally:
        writer.close()
    (total,) = report(db)
    assert total["sessions"] == 6_000
    assert abs(total["devices"] / 3_000 - 1) < 3 * 1.04 / REGISTERS**0.5


def test_a_failed_merge_leaves_the_batches_and_the_reports_as_they_were(db: Database) -> None:
    writer = Writer(db)
    try:
        writer.write([view(device_id="d1"), view(country_code="BR", device_id="d2")])
        writer.write([view(device_id="d3", event_time=T0 + HOUR)])
        before = report(db, ("country", "hour"))
        upsert = writer.merger._upsert
        writer.merger._upsert = "INSERT INTO no_such_table VALUES (?, ?, ?, ?, ?)"  # fails after the keys
        with pytest.raises((sqlite3.Error, psycopg.Error)):
            writer.merger.merge()
        assert stored_batches(db) == 2
        assert report(db, ("country", "hour")) == before
        writer.merger._upsert = upsert
        assert writer.merger.merge() == 2
        assert stored_batches(db) == 0
        assert report(db, ("country", "hour")) == before
    finally:
        writer.close()


def test_a_merge_bounded_by_rows_leaves_the_rest_for_the_next(db: Database) -> None:
    writer = Writer(db)
    writer.merger = DeltaMerger(db, max_rows=2)
    try:
        for i in range(5):
            writer.write([view(country_code=c, device_id=f"d{i}") for c in ("US", "BR")])
        before = report(db, ("country",))
        assert writer.merger.merge() == 1 and writer.merger.has_more
        assert stored_batches(db) == 4
        while writer.merger.merge():
            pass
        assert not writer.merger.has_more
        assert stored_batches(db) == 0
        assert report(db, ("country",)) == before == [
            {"country": "BR", "installs": 0, "in_app_events": 0, "sessions": 5, "events": 5,
             "revenue_usd": 0.0, "devices": 5},
            {"country": "US", "installs": 0, "in_app_events": 0, "sessions": 5, "events": 5,
             "revenue_usd": 0.0, "devices": 5},
        ]  # fmt: skip
    finally:
        writer.close()


def test_a_dimension_holding_the_key_separator_stays_one_dimension(db: Database, merge_every: int) -> None:
    writer = Writer(db, merge_every)
    try:
        writer.write([view(campaign="spring\x1fsale", media_source="x", device_id="d1")])
        writer.write([view(campaign="spring\x1fsale", media_source="x", device_id="d2")])
    finally:
        writer.close()
    rows = report(db, ("media_source", "campaign", "country"))
    assert [(r["media_source"], r["campaign"], r["country"], r["events"]) for r in rows] == [
        ("x", "spring\ufffdsale", "ZZ", 2)
    ]


def test_merge_deltas_moves_every_stored_batch_in_the_background(tmp_path: Path) -> None:
    db = Database(str(tmp_path / "reports.db"))
    writer = Writer(db)
    try:
        for i in range(3):
            writer.write([view(device_id=f"d{i}")])
        before = report(db)
        asyncio.run(_merge_in_background(db))
        assert stored_batches(db) == 0
        assert report(db) == before
    finally:
        writer.close()


async def _merge_in_background(db: Database) -> None:
    """Runs merge_deltas (one row per merge) until no batch is left, at most 5 s."""
    task = asyncio.get_running_loop().create_task(merge_deltas(DeltaMerger(db, max_rows=1), 0.05))
    for _ in range(100):
        await asyncio.sleep(0.05)
        if stored_batches(db) == 0:
            break
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


_EVENT = st.fixed_dictionaries(
    {
        "event_type": st.sampled_from(["install", "in_app", "session", "reinstall"]),
        "app_id": st.sampled_from(["a", "b"]),
        "event_time": st.integers(T0 - 2 * HOUR, T0 + 30 * HOUR),
        "device_id": st.sampled_from([f"d{i}" for i in range(8)]),
        "country_code": st.sampled_from(["US", "BR"]),
        "campaign": st.none() | st.sampled_from(["c1", "C2"]),
        "event_name": st.none() | st.sampled_from(["Buy", "buy", "open"]),
        "event_revenue_usd": st.none() | st.sampled_from([1.25, -0.5, 3.0]),
    }
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batches=st.lists(st.lists(_EVENT, min_size=1, max_size=6), min_size=1, max_size=6),
    merges=st.lists(st.booleans(), min_size=6, max_size=6),
    group_by=st.sampled_from([(), ("date",), ("hour", "country"), ("app_id", "event_name"), ("campaign",)]),
    offset=st.sampled_from([0, -5, 9]),
)
def test_reports_are_the_same_however_the_batches_were_merged(
    tmp_path_factory: pytest.TempPathFactory,
    batches: list[list[dict[str, Any]]],
    merges: list[bool],
    group_by: tuple[str, ...],
    offset: int,
) -> None:
    """Property: merged, unmerged or partly merged, a report equals the sums over the events it covers."""
    db = Database(str(tmp_path_factory.mktemp("prop") / "reports.db"))
    writer = Writer(db)
    events = [
        msgspec.convert({**e, "platform": "ios", "media_source": "m"}, EventView) for b in batches for e in b
    ]
    try:
        start = 0
        for batch, merge in zip(batches, merges, strict=False):
            writer.write(events[start : start + len(batch)])
            start += len(batch)
            if merge:
                writer.merger.merge()
    finally:
        writer.close()
    first = dt.date(2025, 11, 21)
    query = ReportQuery(
        app_id=None, first_day=first, last_day=first + dt.timedelta(days=2), group_by=group_by,
        offset_hours=offset, format="json",
    )  # fmt: skip
    assert run_report(db, query) == expected_report(events, query)


def expected_report(events: list[EventView], query: ReportQuery) -> list[dict[str, Any]]:
    """The report computed straight from the events (every row is small: device counts are exact)."""
    zone = dt.timezone(dt.timedelta(hours=query.offset_hours))
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    devices: dict[tuple[Any, ...], set[str]] = {}
    for e in events:
        hour_start = dt.datetime.fromtimestamp(e.event_time // HOUR * 3600, zone)
        if not query.first_day <= hour_start.date() <= query.last_day:
            continue
        values = {
            "date": hour_start.date().isoformat(),
            "hour": hour_start.isoformat(),
            "app_id": e.app_id,
            "country": e.country_code,
            "campaign": e.campaign or "",
            "event_name": (e.event_name or "").lower(),
        }
        key = tuple(values[g] for g in query.group_by)
        row = groups.setdefault(
            key,
            {**dict(zip(query.group_by, key, strict=True)), "installs": 0, "in_app_events": 0, "sessions": 0,
             "events": 0, "revenue_usd": 0},
        )  # fmt: skip
        row["installs"] += e.event_type == "install"
        row["in_app_events"] += e.event_type == "in_app"
        row["sessions"] += e.event_type == "session"
        row["events"] += 1
        row["revenue_usd"] += round((e.event_revenue_usd or 0) * 1_000_000)
        devices.setdefault(key, set()).add(e.device_id)
    out = []
    for key, row in groups.items():
        row["revenue_usd"] = round(row["revenue_usd"] / 1_000_000, 6)
        row["devices"] = len(devices[key])
        out.append(row)
    return sorted(out, key=lambda r: tuple(str(r[g]) for g in query.group_by))
