"""Reports decisions, free of I/O: fold a batch of events into aggregate rows, and read a report query.

Reads: batches of ``installs.v1``, ``inapps.v1``, ``sessions.v1``; query strings. Writes: ``Fold`` values
and ``ReportQuery`` values (or the reason a query is refused).

An aggregate row is keyed by (app, UTC hour of ``event_time``, platform, media source, campaign, country,
event type, event name); a late event lands in the hour it happened. ``row_id`` is a stable 63-bit hash of
the key, so every process and database agrees on it. Devices are kept exactly per row as 64-bit hashes of
``device_id`` (collisions are negligible below billions of devices per row).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping

from quills.attribution.events import EventView
from quills.attribution.reports.messages import DIMENSIONS, Fold, ReportQuery
from quills.streams import Batch

__all__ = ("fold", "row_id", "device_hash", "parse_query", "MAX_DAYS")

MAX_DAYS = 31
_TZ = re.compile(r"^(?:UTC|Z|([+-])(\d{2}):(\d{2}))$")
_blake = hashlib.blake2b


def row_id(key: tuple[str, int, str, str, str, str, str, str]) -> int:
    """The stable id of an aggregate row key (63 bits, positive: fits a signed BIGINT)."""
    text = "\x1f".join(map(str, key)).encode()
    return int.from_bytes(_blake(text, digest_size=8).digest(), "big") >> 1


def device_hash(device_id: str) -> int:
    """A device's 63-bit hash (stored instead of the id: smaller, and no personal data in the reports)."""
    return int.from_bytes(_blake(device_id.encode(), digest_size=8).digest(), "big") >> 1


def fold(batch: Batch[EventView]) -> Fold:
    """Sum the batch per aggregate row and collect its distinct (row, device) pairs."""
    sums: dict[tuple[str, int, str, str, str, str, str, str], list[int]] = {}
    pairs: set[tuple[tuple[str, int, str, str, str, str, str, str], str]] = set()
    for e in batch.messages:
        name = e.event_name
        key = (
            e.app_id,
            e.event_time // 3_600_000,
            e.platform,
            e.media_source,
            e.campaign or "",
            e.country_code,
            e.event_type,
            name.lower() if name else "",
        )
        agg = sums.get(key)
        if agg is None:
            sums[key] = agg = [0, 0]
        agg[0] += 1
        usd = e.event_revenue_usd
        if usd is not None:
            agg[1] += round(usd * 1_000_000)
        pairs.add((key, e.device_id))
    ids = {key: row_id(key) for key in sums}
    hashes: dict[str, int] = {}
    devices: list[tuple[int, int]] = []
    for key, device in pairs:
        h = hashes.get(device)
        if h is None:
            hashes[device] = h = device_hash(device)
        devices.append((ids[key], h))
    return Fold(rows={ids[k]: (k, v[0], v[1]) for k, v in sums.items()}, devices=devices)


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
