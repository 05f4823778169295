"""The Reports service's contract: the query it answers and the rows it returns."""

from __future__ import annotations

import datetime as dt

import msgspec

__all__ = ("DIMENSIONS", "METRICS", "ReportQuery", "Fold")

DIMENSIONS = (
    "date",
    "hour",
    "app_id",
    "platform",
    "media_source",
    "campaign",
    "country",
    "event_type",
    "event_name",
)
"""What ``group_by`` may name (``date`` and ``hour`` in the query's time zone)."""

METRICS = ("installs", "in_app_events", "sessions", "events", "revenue_usd", "devices")
"""Every row's metrics: installs (``install`` events), in-app events, sessions, all events, revenue in USD
(in-app revenue, refunds negative) and distinct devices."""


class ReportQuery(msgspec.Struct, frozen=True, kw_only=True):
    """A validated ``GET /v1/reports``: ``app_id`` None means every app; the days are inclusive, in the
    zone ``offset_hours`` from UTC."""

    app_id: str | None
    first_day: dt.date
    last_day: dt.date
    group_by: tuple[str, ...]
    offset_hours: int
    format: str


class Fold(msgspec.Struct, frozen=True, kw_only=True):
    """One batch folded: per aggregate row ``row_id -> (dimensions, events, revenue_usd_micros)``, and the
    ``(row_id, device_hash)`` pairs seen."""

    rows: dict[int, tuple[tuple[str, int, str, str, str, str, str, str], int, int]]
    devices: list[tuple[int, int]]
