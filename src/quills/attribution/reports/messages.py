"""The Reports service's contract: the query it answers and the rows it returns."""

from __future__ import annotations

import datetime as dt

import msgspec

__all__ = ("DIMENSIONS", "METRICS", "ReportQuery", "RowKey", "Fold")

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


RowKey = tuple[str, int, str, str, str, str, str, str]
"""An aggregate row's key: app, UTC hour (epoch hours), platform, media source, campaign, country, event
type, lower-cased event name (``""`` for no campaign or no name)."""


class Fold(msgspec.Struct, frozen=True, kw_only=True):
    """One batch folded: per aggregate row ``key -> (events, revenue_usd_micros, device digests)``, the
    digests being the 8-byte hashes of the row's distinct devices in the batch, concatenated."""

    rows: dict[RowKey, tuple[int, int, bytes]]
