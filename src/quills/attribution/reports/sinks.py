"""The reports tables: the transactional write of each folded batch, and the report query.

Reads: ``Fold`` values (inside the consumer's sink transaction); ``ReportQuery`` values.
Writes: ``report_hourly`` (one row per aggregate key, summed) and ``report_devices`` (distinct
``(row_id, device_hash)`` pairs), in the same transaction as the consumer positions.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from quills.attribution.db import Database
from quills.attribution.reports.messages import Fold, ReportQuery

__all__ = ("schema", "apply_fold", "run_report")

_HOURLY = (
    "CREATE TABLE IF NOT EXISTS report_hourly (row_id {key} PRIMARY KEY, app_id TEXT NOT NULL, "
    "hour BIGINT NOT NULL, platform TEXT NOT NULL, media_source TEXT NOT NULL, campaign TEXT NOT NULL, "
    "country TEXT NOT NULL, event_type TEXT NOT NULL, event_name TEXT NOT NULL, events BIGINT NOT NULL, "
    "revenue_usd_micros BIGINT NOT NULL)"
)
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS report_hourly_app_hour ON report_hourly (app_id, hour)",
    "CREATE INDEX IF NOT EXISTS report_hourly_hour ON report_hourly (hour)",
)
_DEVICES = (
    "CREATE TABLE IF NOT EXISTS report_devices (row_id BIGINT NOT NULL, device BIGINT NOT NULL, "
    "PRIMARY KEY (row_id, device))"
)


def schema(db: Database) -> list[str]:
    """DDL of the reports tables for ``db``.

    SQLite: ``row_id INTEGER PRIMARY KEY`` is the table's own B-tree key (``BIGINT`` would add a
    separate unique index), device pairs live in a clustered ``WITHOUT ROWID`` table, and the sink's
    connection keeps a 64 MiB page cache, because row ids are hashes and upserts touch pages at random.
    """
    if db.is_postgres:
        return [_HOURLY.format(key="BIGINT"), *_INDEXES, _DEVICES]
    return [
        "PRAGMA cache_size = -65536",
        _HOURLY.format(key="INTEGER"),
        *_INDEXES,
        _DEVICES + " WITHOUT ROWID",
    ]


_UPSERT = (
    "INSERT INTO report_hourly (row_id, app_id, hour, platform, media_source, campaign, country, event_type, "
    "event_name, events, revenue_usd_micros) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (row_id) DO UPDATE SET events = report_hourly.events + excluded.events, "
    "revenue_usd_micros = report_hourly.revenue_usd_micros + excluded.revenue_usd_micros"
)
_DEVICE = "INSERT INTO report_devices (row_id, device) VALUES (?, ?) ON CONFLICT DO NOTHING"


def apply_fold(db: Database) -> Any:
    """``apply(conn, fold)`` for the consumer's sink: upsert rows and device pairs (no commit)."""
    upsert, device = db.sql(_UPSERT), db.sql(_DEVICE)

    def apply(conn: Any, result: Fold) -> None:
        rows = [(rid, *key, events, micros) for rid, (key, events, micros) in result.rows.items()]
        # Sorted by primary key: the B-tree pages are touched in order, and concurrent writers (PostgreSQL)
        # lock rows in the same order, so they cannot deadlock.
        rows.sort()
        if db.is_postgres:
            with conn.cursor() as cur:
                cur.executemany(upsert, rows)
                cur.executemany(device, sorted(result.devices))
        else:
            conn.executemany(upsert, rows)
            conn.executemany(device, sorted(result.devices))

    return apply


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
_METRICS_SQL = (
    "SUM(CASE WHEN r.event_type = 'install' THEN r.events ELSE 0 END), "
    "SUM(CASE WHEN r.event_type = 'in_app' THEN r.events ELSE 0 END), "
    "SUM(CASE WHEN r.event_type = 'session' THEN r.events ELSE 0 END), "
    "SUM(r.events), SUM(r.revenue_usd_micros)"
)


def run_report(db: Database, query: ReportQuery) -> list[dict[str, Any]]:
    """The rows of ``query``: its dimensions, then ``METRICS``, sorted by the dimensions."""
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
        metrics = conn.execute(
            db.sql(f"SELECT {select}{_METRICS_SQL} FROM report_hourly r WHERE {where}{group}"), params
        ).fetchall()
        devices = conn.execute(
            db.sql(
                f"SELECT {select}COUNT(DISTINCT d.device) FROM report_hourly r "
                f"JOIN report_devices d ON d.row_id = r.row_id WHERE {where}{group}"
            ),
            params,
        ).fetchall()
    finally:
        conn.close()
    n = len(dims)
    distinct = {tuple(row[:n]): int(row[n]) for row in devices}
    out: list[dict[str, Any]] = []
    for row in metrics:
        key = tuple(row[:n])
        if n == 0 and row[n + 3] is None:
            continue  # no events at all: SUM over nothing is NULL
        record: dict[str, Any] = {
            g: _render(g, v, offset_h) for g, v in zip(query.group_by, key, strict=True)
        }
        installs, in_app, sessions, events, micros = (int(v or 0) for v in row[n:])
        record.update(
            installs=installs,
            in_app_events=in_app,
            sessions=sessions,
            events=events,
            revenue_usd=round(micros / 1_000_000, 6),
            devices=distinct.get(key, 0),
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
