"""Reports decisions, free of I/O: fold a batch of events into aggregate rows, and read a report query.

Reads: batches of ``installs.v1``, ``inapps.v1``, ``sessions.v1``; query strings. Writes: ``Fold`` values
and ``ReportQuery`` values (or the reason a query is refused).

An aggregate row is keyed by (app, UTC hour of ``event_time``, platform, media source, campaign, country,
event type, event name); a late event lands in the hour it happened. Each row carries its event count,
revenue in micro-USD, and the digests of its distinct devices (``quills.attribution.reports.sketch``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

import xxhash

from quills.attribution.events import EventView
from quills.attribution.reports.messages import DIMENSIONS, Fold, ReportQuery, RowKey
from quills.attribution.reports.sketch import device_digests
from quills.streams import Batch

__all__ = (
    "fold",
    "row_hash",
    "row_text",
    "text_hash",
    "split_row_text",
    "parse_query",
    "MAX_DAYS",
    "HOUR_MS",
)

MAX_DAYS = 31
HOUR_MS = 3_600_000
_TZ = re.compile(r"^(?:UTC|Z|([+-])(\d{2}):(\d{2}))$")
_xxh3 = xxhash.xxh3_64_intdigest


_SEP = "\x1f"


def row_text(key: RowKey) -> str:
    """``key`` as one string, its parts joined by U+001F; a part's own U+001F (never sent by a sane
    client) becomes U+FFFD, so the text always splits back into the eight parts."""
    app, hour, platform, source, campaign, country, kind, name = key
    # one f-string: half the cost of joining the parts mapped through str()
    text = f"{app}\x1f{hour}\x1f{platform}\x1f{source}\x1f{campaign}\x1f{country}\x1f{kind}\x1f{name}"
    if text.count(_SEP) != 7:
        text = _SEP.join(str(part).replace(_SEP, "\ufffd") for part in key)
    return text


def split_row_text(text: str) -> RowKey:
    """The key ``row_text`` joined."""
    app, hour, platform, source, campaign, country, kind, name = text.split(_SEP)
    return app, int(hour), platform, source, campaign, country, kind, name


def text_hash(text: str) -> int:
    """The stable 63-bit id of a row within its hour, from its ``row_text`` (XXH3-64 halved to fit a
    signed BIGINT; a tenth of BLAKE2b's cost, and it is an id, not a secret)."""
    return _xxh3(text.encode()) >> 1


def row_hash(key: RowKey) -> int:
    """``text_hash(row_text(key))``: the stable 63-bit id of a row key within its hour."""
    return text_hash(row_text(key))


def fold(batch: Batch[EventView]) -> Fold:
    """Sum the batch per aggregate row and collect each row's distinct device digests.

    The loop does the least per event (one key tuple, one dict lookup, one set insert); devices are
    hashed once per row they appear in.
    """
    # [events, micros, devices]: a list literal, not a class, so a new row costs no Python-level call
    sums: dict[RowKey, list[Any]] = {}
    for e in batch.messages:
        name = e.event_name
        key = (
            e.app_id,
            e.event_time // HOUR_MS,
            e.platform,
            e.media_source,
            e.campaign or "",
            e.country_code,
            e.event_type,
            name.lower() if name else "",
        )
        row = sums.get(key)
        if row is None:
            sums[key] = row = [0, 0, {e.device_id}]
        else:
            row[2].add(e.device_id)
        row[0] += 1
        usd = e.event_revenue_usd
        if usd is not None:
            row[1] += round(usd * 1_000_000)
    return Fold(
        rows={
            key: (events, micros, device_digests(devices)) for key, (events, micros, devices) in sums.items()
        }
    )


def parse_query(params: Mapping[str, str], *, today: dt.date) -> ReportQuery | list[tuple[str, str]]:
    """Validate ``GET /v1/reports`` parameters; returns the query or every ``(parameter, reason)``."""
    errors: list[tuple[str, str]] = []
    known = {"app_id", "from", "to", "group_by", "timezone", "format"}
    errors.extend((name, "unknown parameter") for name in params if name not in known)
    app_id = params.get("app_id") or None
    if app_id is not None and len(app_id) > 100:
        errors.append(("app_id", "at most 100 characters"))
    days: list[dt.date] = []
    for name in ("from", "to"):
        text = params.get(name)
        if text is None:
            days.append(today)
            continue
        try:
            days.append(dt.date.fromisoformat(text) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) else _bad())
        except ValueError:
            errors.append((name, f"expected a date YYYY-MM-DD, got {text!r}"))
            days.append(today)
    first, last = days
    if last < first:
        errors.append(("to", "must not be before 'from'"))
    elif (last - first).days + 1 > MAX_DAYS:
        errors.append(("to", f"a report covers at most {MAX_DAYS} days"))
    group_by = tuple(g.strip() for g in params.get("group_by", "date").split(",") if g.strip())
    errors.extend(
        ("group_by", f"unknown dimension {g!r}; use {', '.join(DIMENSIONS)}")
        for g in group_by
        if g not in DIMENSIONS
    )
    if len(set(group_by)) != len(group_by):
        errors.append(("group_by", "a dimension is named twice"))
    offset = 0
    tz = params.get("timezone", "UTC")
    match = _TZ.match(tz)
    if match is None:
        errors.append(("timezone", f"expected UTC or ±hh:00, got {tz!r}"))
    elif match.group(1):
        hours, minutes = int(match.group(2)), int(match.group(3))
        if minutes != 0 or hours > 14:
            errors.append(
                ("timezone", "aggregates are hourly: use a whole-hour offset from -12:00 to +14:00")
            )
        offset = hours if match.group(1) == "+" else -hours
    fmt = params.get("format", "json")
    if fmt not in ("json", "csv"):
        errors.append(("format", f"expected json or csv, got {fmt!r}"))
    if errors:
        return errors
    return ReportQuery(
        app_id=app_id, first_day=first, last_day=last, group_by=group_by, offset_hours=offset, format=fmt
    )


def _bad() -> dt.date:
    raise ValueError("not YYYY-MM-DD")
