"""The overview's three parts, each read through its own async command, joined with ``quills.zip``.

Reads: report totals (the reports tables), delivery stats (the delivery tables), the app's configuration
(the config tables). Writes: nothing.

Each part is a command (its own bulkhead, timeout and breaker, on the dashboard as ``overview.<part>``)
wrapped in ``quills.attempt`` with a fallback: the last good value of that part for that app, marked
``"stale": true``, or ``{"stale": true, "value": null}`` if there is none. ``quills.zip`` runs the three at
once, so the overview takes as long as its slowest part, not the sum, and a part whose dependency is down
costs at most its timeout.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

import quills
from quills.attribution.config.store import ConfigStore
from quills.attribution.db import Database
from quills.attribution.postbacks.http import delivery_stats
from quills.attribution.reports.messages import ReportQuery
from quills.attribution.reports.query import run_report

__all__ = ("Overview", "Part", "database_parts")

Part = Callable[[str], Awaitable[Any]]
"""Reads one part of an app's overview."""
PARTS = ("report", "postbacks", "config")


def database_parts(db: Database, store: ConfigStore, *, days: int = 7) -> dict[str, Part]:
    """The three parts read from ``db``: report totals of the last ``days`` days (UTC, default 7),
    per-partner delivery stats, and the app with its rules."""

    async def report(app_id: str) -> Any:
        today = dt.datetime.now(dt.UTC).date()
        query = ReportQuery(
            app_id=app_id,
            first_day=today - dt.timedelta(days=days - 1),
            last_day=today,
            group_by=(),
            offset_hours=0,
            format="json",
        )
        rows = await asyncio.to_thread(run_report, db, query)
        totals = rows[0] if rows else {}
        return {"from": query.first_day.isoformat(), "to": today.isoformat(), "totals": totals}

    async def postbacks(app_id: str) -> Any:
        return await asyncio.to_thread(delivery_stats, db, app_id)

    async def config(app_id: str) -> Any:
        def read() -> Any:
            return {"app": store.app(app_id), "rules": store.rules(app_id)}

        return msgspec.to_builtins(await asyncio.to_thread(read))

    return {"report": report, "postbacks": postbacks, "config": config}


class Overview:
    """Gathers an app's overview.

    Args:
        parts: ``report``, ``postbacks`` and ``config`` readers.
        registry: where the part commands are registered.
        timeout: seconds each part may take, 0.01..60 (default 2).
    """

    def __init__(self, parts: dict[str, Part], registry: quills.Registry, *, timeout: float = 2.0) -> None:
        self._last: dict[tuple[str, str], tuple[float, Any]] = {}
        self._commands: dict[str, Any] = {}
        for name in PARTS:
            self._commands[name] = registry.build(
                parts[name],
                quills.CommandOptions(
                    group=f"overview-{name}",
                    name=f"overview.{name}",
                    isolation="async",
                    max_concurrent=50,
                    timeout=timeout,
                    breaker=quills.BreakerOptions(request_volume_threshold=5, sleep_window=2.0),
                ),
            )

    async def _part(self, name: str, app_id: str) -> dict[str, Any]:
        value = await self._commands[name](app_id)
        self._last[(name, app_id)] = (time.time(), value)
        return {"stale": False, "value": value}

    def _fallback(self, name: str, app_id: str) -> Callable[[Exception], dict[str, Any]]:
        def fallback(exc: Exception) -> dict[str, Any]:
            reason = f"{type(exc).__name__}: {exc}"[:300]
            last = self._last.get((name, app_id))
            if last is None:
                return {"stale": True, "value": None, "error": reason}
            return {"stale": True, "value": last[1], "as_of_ms": int(last[0] * 1000), "error": reason}

        return fallback

    async def gather(self, app_id: str) -> dict[str, Any]:
        """The overview of ``app_id``: each part ``{"stale", "value"[, "error", "as_of_ms"]}``, and
        ``stale`` true when any part is."""
        started = time.perf_counter()
        report, postbacks, config = await quills.zip(
            *(quills.attempt(self._part(n, app_id), fallback=self._fallback(n, app_id)) for n in PARTS)
        )
        return {
            "app_id": app_id,
            "stale": any(p["stale"] for p in (report, postbacks, config)),
            "report": report,
            "postbacks": postbacks,
            "config": config,
            "elapsed_ms": round((time.perf_counter() - started) * 1000, 3),
        }
