"""Report queries over the reports tables.

Reads: ``ReportQuery`` values; ``report_keys``, ``report_sums``, ``report_hll`` and the batches not merged
yet (``report_batches``), in one snapshot. Writes: report rows (dicts of dimensions and ``METRICS``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from quills.attribution.db import Database
from quills.attribution.reports.handlers import split_row_text
from quills.attribution.reports.messages import ReportQuery
from quills.attribution.reports.sinks import decode_rows
from quills.attribution.reports.sketch import DeviceUnion

__all__ = ("run_report",)

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
_FROM = (
    "FROM report_keys r JOIN report_sums s ON s.hour = r.hour AND s.row_hash = r.row_hash "
    "LEFT JOIN report_hll h ON h.hour = r.hour AND h.row_hash = r.row_hash"
)
# Where a stored row's event type counts among the metrics (installs, in-app events, sessions).
_METRIC_OF_TYPE = {"install": 0, "in_app": 1, "session": 2}
_METRICS_SQL = (
    "SUM(CASE WHEN r.event_type = 'install' THEN s.events ELSE 0 END), "
    "SUM(CASE WHEN r.event_type = 'in_app' THEN s.events ELSE 0 END), "
    "SUM(CASE WHEN r.event_type = 'session' THEN s.events ELSE 0 END), "
    "SUM(s.events), SUM(s.revenue_usd_micros)"
)


def run_report(db: Database, query: ReportQuery) -> list[dict[str, Any]]:
    """The rows of ``query``: its dimensions, then ``METRICS``, sorted by the dimensions.

    Sums come from SQL over the merged aggregates plus the deltas not merged yet; distinct devices from
    the union of the group's device sketches. Everything is read in one snapshot (one read transaction),
    so a merge that commits meanwhile is seen entirely or not at all, and the sums and the devices
    always describe the same stored batches.
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
    n = len(dims)
    totals: dict[tuple[Any, ...], list[int]] = {}
    unions: dict[tuple[Any, ...], DeviceUnion] = {}
    conn = db.connect()
    try:
        conn.execute("BEGIN" if not db.is_postgres else "BEGIN ISOLATION LEVEL REPEATABLE READ")
        metrics = conn.execute(
            db.sql(f"SELECT {select}{_METRICS_SQL} {_FROM} WHERE {where}{group}"), params
        ).fetchall()
        for row in metrics:
            if row[n + 3] is not None:  # no events at all: SUM over nothing is NULL
                totals[tuple(row[:n])] = [int(v or 0) for v in row[n:]]
        sketches = conn.execute(
            db.sql(f"SELECT {select}s.devices, h.registers {_FROM} WHERE {where}"), params
        ).fetchall()
        for row in sketches:
            key = tuple(row[:n])
            union = unions.get(key)
            if union is None:
                unions[key] = union = DeviceUnion()
            union.add(row[n], row[n + 1])
        pending = conn.execute("SELECT rows FROM report_batches ORDER BY seq").fetchall()
        conn.execute("COMMIT")
    finally:
        conn.close()
    for (packed,) in pending:
        _add_batch(bytes(packed), query, first_hour, end_hour, totals, unions)
    out: list[dict[str, Any]] = []
    for key, (installs, in_app, sessions, events, micros) in totals.items():
        record: dict[str, Any] = {
            g: _render(g, v, offset_h) for g, v in zip(query.group_by, key, strict=True)
        }
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


def _add_batch(
    packed: bytes,
    query: ReportQuery,
    first_hour: int,
    end_hour: int,
    totals: dict[tuple[Any, ...], list[int]],
    unions: dict[tuple[Any, ...], DeviceUnion],
) -> None:
    """Add a stored batch's rows that ``query`` selects, grouped as the SQL above groups the merged ones
    (the same dimension values: ints for date and hour, strings for the rest)."""
    offset_h = query.offset_hours
    app_id = query.app_id
    group_by = query.group_by
    for text, events, micros, digests in decode_rows(packed):
        app, hour, platform, source, campaign, country, kind, name = split_row_text(text)
        if not first_hour <= hour < end_hour or (app_id is not None and app != app_id):
            continue
        values = {
            "date": (hour + offset_h) * 3600 // 86400,
            "hour": hour + offset_h,
            "app_id": app,
            "platform": platform,
            "media_source": source,
            "campaign": campaign,
            "country": country,
            "event_type": kind,
            "event_name": name,
        }
        key = tuple(values[g] for g in group_by)
        sums = totals.get(key)
        if sums is None:
            totals[key] = sums = [0, 0, 0, 0, 0]
        slot = _METRIC_OF_TYPE.get(kind)
        if slot is not None:
            sums[slot] += events
        sums[3] += events
        sums[4] += micros
        union = unions.get(key)
        if union is None:
            unions[key] = union = DeviceUnion()
        union.add(digests, None)


def _render(dimension: str, value: Any, offset_h: int) -> Any:
    if dimension == "date":
        return (dt.date(1970, 1, 1) + dt.timedelta(days=int(value))).isoformat()
    if dimension == "hour":
        tz = dt.timezone(dt.timedelta(hours=offset_h))
        return dt.datetime.fromtimestamp((int(value) - offset_h) * 3600, tz).isoformat()
    return value
