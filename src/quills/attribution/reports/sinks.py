"""The reports tables: the transactional write of each folded batch, and the report query.

Reads: ``Fold`` values (inside the consumer's sink transaction); ``ReportQuery`` values.
Writes: ``report_keys`` (each aggregate row's dimensions, once), ``report_sums`` (its sums and exact
device digests) and ``report_hll`` (HyperLogLog registers of rows past the exact limit), in the same
transaction as the consumer positions.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sqlite3
from operator import itemgetter
from typing import Any

from quills.attribution.db import Database
from quills.attribution.reports.handlers import row_hash
from quills.attribution.reports.messages import Fold, ReportQuery, RowKey
from quills.attribution.reports.sketch import EXACT_LIMIT, DeviceUnion, compact

__all__ = ("schema", "RowWriter", "apply_fold", "run_report", "checkpoint_wal", "COMPACT_BYTES")

COMPACT_BYTES = 2 * 8 * EXACT_LIMIT
"""A row's appended digests are de-duplicated (or turned into registers) once they pass this size."""

_KEYS = (
    "CREATE TABLE IF NOT EXISTS report_keys (hour BIGINT NOT NULL, row_hash BIGINT NOT NULL, "
    "app_id TEXT NOT NULL, platform TEXT NOT NULL, media_source TEXT NOT NULL, campaign TEXT NOT NULL, "
    "country TEXT NOT NULL, event_type TEXT NOT NULL, event_name TEXT NOT NULL, "
    "PRIMARY KEY (hour, row_hash))"
)
_SUMS = (
    "CREATE TABLE IF NOT EXISTS report_sums (hour BIGINT NOT NULL, row_hash BIGINT NOT NULL, "
    "events BIGINT NOT NULL, revenue_usd_micros BIGINT NOT NULL, devices {blob} NOT NULL, "
    "PRIMARY KEY (hour, row_hash))"
)
_HLL = (
    "CREATE TABLE IF NOT EXISTS report_hll (hour BIGINT NOT NULL, row_hash BIGINT NOT NULL, "
    "registers {blob} NOT NULL, PRIMARY KEY (hour, row_hash))"
)
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS report_keys_app_hour ON report_keys (app_id, hour)",
    # the rows whose appended digests are due for compaction, found without a scan
    f"CREATE INDEX IF NOT EXISTS report_sums_to_compact ON report_sums (hour) "
    f"WHERE length(devices) > {COMPACT_BYTES}",
)


def schema(db: Database) -> list[str]:
    """DDL of the reports tables for ``db``.

    A row's dimensions are written once, to ``report_keys``; every batch after that updates only its
    narrow ``report_sums`` row (about 40 bytes plus at most ``COMPACT_BYTES`` of digests), so a commit
    rewrites few pages; the 4 KiB registers of busy rows live in ``report_hll``, rewritten only when
    digests are compacted into them. Both are keyed by
    (hour, hash of the row key): the busy current hour stays in a few hot pages and an hour range is a
    primary-key range. SQLite: clustered ``WITHOUT ROWID`` tables; the sink's connection keeps a 64 MiB
    page cache and leaves checkpoints to ``checkpoint_wal``.
    """
    if db.is_postgres:
        return [_KEYS, _SUMS.format(blob="BYTEA"), _HLL.format(blob="BYTEA"), *_INDEXES]
    return [
        "PRAGMA cache_size = -65536",
        # checkpoints run beside the commits (checkpoint_wal), not inside one while it holds the sink
        "PRAGMA wal_autocheckpoint = 0",
        _KEYS + " WITHOUT ROWID",
        _SUMS.format(blob="BLOB") + " WITHOUT ROWID",
        _HLL.format(blob="BLOB") + " WITHOUT ROWID",
        *_INDEXES,
    ]


async def checkpoint_wal(db: Database, interval: float = 1.0) -> None:
    """Copy the SQLite write-ahead log into the database every ``interval`` seconds until cancelled
    (PostgreSQL: returns at once).

    A passive checkpoint on its own connection runs beside the consumers' commits instead of inside
    one (SQLite's automatic checkpoint runs in the commit that fills the log, with two fsyncs, while that
    commit holds the sink and the other topics' commits wait behind it).
    """
    if db.is_postgres:
        return
    conn = await asyncio.to_thread(db.connect)
    try:
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(sqlite3.Error):
                await asyncio.to_thread(conn.execute, "PRAGMA wal_checkpoint(PASSIVE)")
    finally:
        with contextlib.suppress(sqlite3.Error):
            conn.close()


_UPDATE = (
    "UPDATE report_sums SET events = events + ?, revenue_usd_micros = revenue_usd_micros + ?, "
    "devices = {concat} WHERE hour = ? AND row_hash = ?"
)
_INSERT_KEY = (
    "INSERT INTO report_keys (hour, row_hash, app_id, platform, media_source, campaign, country, event_type, "
    "event_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (hour, row_hash) DO NOTHING"
)
_UPSERT = (
    "INSERT INTO report_sums (hour, row_hash, events, revenue_usd_micros, devices) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (hour, row_hash) DO UPDATE SET events = report_sums.events + excluded.events, "
    "revenue_usd_micros = report_sums.revenue_usd_micros + excluded.revenue_usd_micros, "
    "devices = {concat_excluded}"
)
_DUE = (
    "SELECT s.hour, s.row_hash, s.devices, h.registers FROM report_sums s LEFT JOIN report_hll h "
    f"ON h.hour = s.hour AND h.row_hash = s.row_hash WHERE length(s.devices) > {COMPACT_BYTES}"
)
_COMPACTED = "UPDATE report_sums SET devices = ? WHERE hour = ? AND row_hash = ?"
_REGISTERS = (
    "INSERT INTO report_hll (hour, row_hash, registers) VALUES (?, ?, ?) "
    "ON CONFLICT (hour, row_hash) DO UPDATE SET registers = excluded.registers"
)


class RowWriter:
    """``apply(conn, fold)`` for the consumer's sink: adds a folded batch to the reports tables (no commit).

    A row it has stored before gets one narrow ``UPDATE`` by primary key; a new row also gets its key
    written. It remembers up to ``max_known_rows`` stored keys (default 300,000; then it starts over). A
    row it believes stored but that is not (its transaction rolled back) shows in the update count: the
    batch is then written again as new rows, after rolling back to a savepoint. Digests appended to a row
    are compacted in the same transaction once they pass ``COMPACT_BYTES``.

    Args:
        db: the database (SQL dialect).
        max_known_rows: keys remembered, 0..1e7.
    """

    def __init__(self, db: Database, *, max_known_rows: int = 300_000) -> None:
        self._db = db
        self._known: dict[RowKey, int] = {}
        self._max_known = max_known_rows
        # SQLite's || makes text of blobs (same bytes): cast back, or the column stops being a blob
        concat = "{} || {}" if db.is_postgres else "CAST({} || {} AS BLOB)"
        # A row seen again with the same devices (a returning user) keeps its digests as they are: the
        # list grows only with devices it does not hold yet. A match at an offset that is not a multiple
        # of 8 would wrongly skip a device; odds ~1e-16 per update.
        find = "position(? in devices)" if db.is_postgres else "instr(devices, ?)"
        appended = f"CASE WHEN {find} > 0 THEN devices ELSE {concat.format('devices', '?')} END"
        self._update = db.sql(_UPDATE.format(concat=appended))
        self._upsert = db.sql(
            _UPSERT.format(concat_excluded=concat.format("report_sums.devices", "excluded.devices"))
        )
        self._insert_key = db.sql(_INSERT_KEY)
        self._due, self._compacted, self._registers = db.sql(_DUE), db.sql(_COMPACTED), db.sql(_REGISTERS)

    def __call__(self, conn: Any, result: Fold) -> None:
        known = self._known
        updates: list[tuple[int, int, bytes, bytes, int, int]] = []
        new: list[tuple[RowKey, int]] = []
        for key, (events, micros, digests) in result.rows.items():
            h = known.get(key)
            if h is None:
                new.append((key, row_hash(key)))
            else:
                updates.append((events, micros, digests, digests, key[1], h))
        # Near primary-key order (by hash, one int per comparison: sorting by the (hour, hash) tuple costs
        # as much as the updates): the B-tree is walked forward, a third faster. PostgreSQL writers of one
        # group hold an advisory lock while they commit, so no order is needed against deadlocks.
        updates.sort(key=_BY_HASH)
        cur = conn.cursor()
        try:
            if updates:
                cur.execute("SAVEPOINT report_rows")
                cur.executemany(self._update, updates)
                if cur.rowcount != len(updates):
                    # some remembered rows are not stored (a rolled-back transaction): forget, redo as new
                    cur.execute("ROLLBACK TO SAVEPOINT report_rows")
                    known.clear()
                    new = [(key, row_hash(key)) for key in result.rows]
                cur.execute("RELEASE SAVEPOINT report_rows")
            if new:
                new.sort(key=_new_hash)
                rows = result.rows
                cur.executemany(self._insert_key, [(k[1], h, k[0], *k[2:]) for k, h in new])
                cur.executemany(self._upsert, [(k[1], h, *rows[k]) for k, h in new])
            due = cur.execute(self._due).fetchall()
            if due:
                self._compact(cur, due)
        finally:
            cur.close()
        if len(known) + len(new) > self._max_known:
            known.clear()
        known.update(new)

    def _compact(self, cur: Any, due: list[tuple[Any, ...]]) -> None:
        sparse: list[tuple[bytes, int, int]] = []
        dense: list[tuple[int, int, bytes]] = []
        for hour, h, digests, registers in due:
            kept, merged = compact(bytes(digests), registers and bytes(registers))
            sparse.append((kept, hour, h))
            if merged is not None:
                dense.append((hour, h, merged))
        cur.executemany(self._compacted, sparse)
        if dense:
            cur.executemany(self._registers, dense)


_BY_HASH = itemgetter(5)


def _new_hash(item: tuple[RowKey, int]) -> int:
    return item[1]


def apply_fold(db: Database) -> RowWriter:
    """A ``RowWriter`` for ``db`` (the sink's ``apply``)."""
    return RowWriter(db)


_DIMENSION_SQL = {
    "date": "(r.hour * 3600 + {offset_s}) / 86400",
    "hour": "r.hour + {offset_h}",
    "app_id": "r.app_id",
    "platform": "r.platform",
    "media_source": "r.media_source",
    "campaign": "r.campaign",
    "country": "r.country",
    "event_type": "r.event_type",
    "event_name": "r.event_name",
}
_FROM = "FROM report_keys r JOIN report_sums s ON s.hour = r.hour AND s.row_hash = r.row_hash"
_METRICS_SQL = (
    "SUM(CASE WHEN r.event_type = 'install' THEN s.events ELSE 0 END), "
    "SUM(CASE WHEN r.event_type = 'in_app' THEN s.events ELSE 0 END), "
    "SUM(CASE WHEN r.event_type = 'session' THEN s.events ELSE 0 END), "
    "SUM(s.events), SUM(s.revenue_usd_micros)"
)


def run_report(db: Database, query: ReportQuery) -> list[dict[str, Any]]:
    """The rows of ``query``: its dimensions, then ``METRICS``, sorted by the dimensions.

    Sums come from SQL; distinct devices from the union of the group's device sketches, read in the same
    snapshot (one read transaction), so the two always describe the same stored batches.
    """
    offset_h = query.offset_hours
    dims = [_DIMENSION_SQL[g].format(offset_s=offset_h * 3600, offset_h=offset_h) for g in query.group_by]
    epoch_day = dt.date(1970, 1, 1)
    first_hour = (query.first_day - epoch_day).days * 24 - offset_h
    end_hour = ((query.last_day - epoch_day).days + 1) * 24 - offset_h
    where = "r.hour >= ? AND r.hour < ?"
    params: list[Any] = [first_hour, end_hour]
    if query.app_id is not None:
        where += " AND r.app_id = ?"
        params.append(query.app_id)
    select = ", ".join(dims) + ", " if dims else ""
    group = " GROUP BY " + ", ".join(str(i + 1) for i in range(len(dims))) if dims else ""
    conn = db.connect()
    try:
        conn.execute("BEGIN" if not db.is_postgres else "BEGIN ISOLATION LEVEL REPEATABLE READ")
        metrics = conn.execute(
            db.sql(f"SELECT {select}{_METRICS_SQL} {_FROM} WHERE {where}{group}"), params
        ).fetchall()
        sketches = conn.execute(
            db.sql(
                f"SELECT {select}s.devices, h.registers {_FROM} LEFT JOIN report_hll h "
                f"ON h.hour = r.hour AND h.row_hash = r.row_hash WHERE {where}"
            ),
            params,
        ).fetchall()
        conn.execute("COMMIT")
    finally:
        conn.close()
    n = len(dims)
    unions: dict[tuple[Any, ...], DeviceUnion] = {}
    for row in sketches:
        key = tuple(row[:n])
        union = unions.get(key)
        if union is None:
            unions[key] = union = DeviceUnion()
        union.add(row[n], row[n + 1])
    out: list[dict[str, Any]] = []
    for row in metrics:
        key = tuple(row[:n])
        if n == 0 and row[n + 3] is None:
            continue  # no events at all: SUM over nothing is NULL
        record: dict[str, Any] = {
            g: _render(g, v, offset_h) for g, v in zip(query.group_by, key, strict=True)
        }
        installs, in_app, sessions, events, micros = (int(v or 0) for v in row[n:])
        union = unions.get(key)
        record.update(
            installs=installs,
            in_app_events=in_app,
            sessions=sessions,
            events=events,
            revenue_usd=round(micros / 1_000_000, 6),
            devices=union.count() if union is not None else 0,
        )
        out.append(record)
    out.sort(key=lambda r: tuple(str(r[g]) for g in query.group_by))
    return out


def _render(dimension: str, value: Any, offset_h: int) -> Any:
    if dimension == "date":
        return (dt.date(1970, 1, 1) + dt.timedelta(days=int(value))).isoformat()
    if dimension == "hour":
        tz = dt.timezone(dt.timedelta(hours=offset_h))
        return dt.datetime.fromtimestamp((int(value) - offset_h) * 3600, tz).isoformat()
    return value
