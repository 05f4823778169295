"""Delivery log routes (admin key): ``GET /v1/postbacks`` and ``GET /v1/postbacks/stats``.

Reads: ``deliveries`` and ``delivery_attempts``. Writes: JSON responses.

``GET /v1/postbacks?app_id=&status=&partner_id=&limit=`` lists deliveries (newest first; status
``pending``, ``sent``, ``failed`` or ``dead``) with their attempts; ``GET /v1/postbacks/stats?app_id=``
gives per-partner counts by status, attempts and latency percentiles of the last attempts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from quills.attribution.config.http import admin_only, problem
from quills.attribution.db import Database
from quills.attribution.keys import KeyRing
from quills.attribution.postbacks.sinks import redact

__all__ = ("postback_routes", "list_deliveries", "delivery_stats")

STATUSES = ("pending", "sent", "failed", "dead")


def list_deliveries(
    db: Database, app_id: str | None, status: str | None, partner_id: str | None, limit: int
) -> list[dict[str, Any]]:
    """Deliveries matching the filters, newest first, each with its attempts (blocking)."""
    where, params = ["1 = 1"], []
    for column, value in (("app_id", app_id), ("status", status), ("partner_id", partner_id)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    rows = db.query(
        "SELECT postback_id, rule_id, partner_id, app_id, event_id, method, url, status, attempts, "
        "created_ms, next_attempt_ms, last_status, last_error FROM deliveries WHERE "
        + " AND ".join(where)
        + " ORDER BY created_ms DESC LIMIT ?",
        [*params, limit],
    )
    names = (
        "postback_id rule_id partner_id app_id event_id method url status attempts created_ms "
        "next_attempt_ms last_status last_error"
    ).split()
    out = [dict(zip(names, r, strict=True)) for r in rows]
    if not out:
        return out
    by_id = {d["postback_id"]: d for d in out}
    for d in out:
        d["url"] = redact(d["url"])
        d["attempt_log"] = []
        if d["status"] != "pending":
            d["next_attempt_ms"] = None
    marks = ", ".join("?" for _ in by_id)
    attempts = db.query(
        "SELECT postback_id, attempt, status_code, outcome, latency_ms, at_ms, error, url "
        f"FROM delivery_attempts WHERE postback_id IN ({marks}) ORDER BY attempt",
        list(by_id),
    )
    for pid, attempt, code, outcome, latency, at_ms, error, url in attempts:
        by_id[pid]["attempt_log"].append(
            {
                "attempt": attempt,
                "status_code": code,
                "outcome": outcome,
                "latency_ms": round(float(latency), 3),
                "at_ms": at_ms,
                "error": error,
                "url": url,
            }
        )
    return out


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q / 100 * len(values)))], 3)


def delivery_stats(db: Database, app_id: str | None, recent: int = 5000) -> dict[str, dict[str, Any]]:
    """Per partner: deliveries by status, attempts, and latency p50/p99 (ms) of its last ``recent``
    attempts (blocking)."""
    where, params = ("WHERE app_id = ?", [app_id]) if app_id else ("", [])
    stats: dict[str, dict[str, Any]] = {}
    for partner, status, count in db.query(
        f"SELECT partner_id, status, COUNT(*) FROM deliveries {where} GROUP BY partner_id, status", params
    ):
        entry = stats.setdefault(partner, {"deliveries": dict.fromkeys(STATUSES, 0)})
        entry["deliveries"][status] = int(count)
    for partner, entry in stats.items():
        rows = db.query(
            "SELECT latency_ms, outcome FROM delivery_attempts WHERE partner_id = ?"
            + (" AND app_id = ?" if app_id else "")
            + " ORDER BY at_ms DESC LIMIT ?",
            [partner, *params, recent],
        )
        latencies = [float(r[0]) for r in rows]
        entry["recent_attempts"] = len(rows)
        entry["recent_failures"] = sum(1 for r in rows if r[1] != "sent")
        entry["latency_ms"] = {"p50": _percentile(latencies, 50), "p99": _percentile(latencies, 99)}
    return stats


def postback_routes(db: Database, keyring: Callable[[], KeyRing]) -> list[Route]:
    """The delivery log's routes (part of the API process on port 8081)."""

    async def deliveries(request: Request) -> Response:
        q = request.query_params
        status = q.get("status")
        if status is not None and status not in STATUSES:
            return problem(422, "invalid", f"status: one of {', '.join(STATUSES)}")
        try:
            limit = int(q.get("limit", "100"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 1000:
            return problem(422, "invalid", "limit: 1..1000")
        rows = await asyncio.to_thread(
            list_deliveries, db, q.get("app_id"), status, q.get("partner_id"), limit
        )
        return JSONResponse({"deliveries": rows})

    async def stats(request: Request) -> Response:
        data = await asyncio.to_thread(delivery_stats, db, request.query_params.get("app_id"))
        return JSONResponse({"partners": data})

    return [
        Route("/v1/postbacks", admin_only(keyring, deliveries), methods=["GET"]),
        Route("/v1/postbacks/stats", admin_only(keyring, stats), methods=["GET"]),
    ]
