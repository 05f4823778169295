"""Report API routes: ``GET /v1/reports`` (admin key), ``GET /healthz``.

Reads: HTTP requests, the reports tables. Writes: JSON or CSV responses.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from quills.attribution.config.http import admin_only, problem
from quills.attribution.db import Database
from quills.attribution.keys import KeyRing
from quills.attribution.reports.freshness import Completeness
from quills.attribution.reports.handlers import parse_query
from quills.attribution.reports.messages import METRICS
from quills.attribution.reports.query import run_report

__all__ = ("report_routes", "iso_ms")


def iso_ms(epoch_ms: int | None) -> str | None:
    """``2026-11-22T01:02:03.456Z`` (or None)."""
    if epoch_ms is None:
        return None
    moment = dt.datetime.fromtimestamp(epoch_ms / 1000, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def report_routes(db: Database, keyring: Callable[[], KeyRing], completeness: Completeness) -> list[Route]:
    """The report API's routes (part of the API process on port 8081)."""

    async def reports(request: Request) -> Response:
        query = parse_query(dict(request.query_params), today=dt.datetime.now(dt.UTC).date())
        if isinstance(query, list):
            return problem(
                422,
                "invalid_query",
                f"{len(query)} invalid parameters",
                errors=[{"parameter": p, "reason": r} for p, r in query],
            )
        complete = iso_ms(completeness.complete_until_ms)
        rows = await asyncio.to_thread(run_report, db, query)
        if query.format == "csv":
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow([*query.group_by, *METRICS])
            for row in rows:
                writer.writerow([row[c] for c in (*query.group_by, *METRICS)])
            return Response(
                out.getvalue(),
                media_type="text/csv; charset=utf-8",
                headers={"X-Data-Complete-Until": complete or ""},
            )
        return JSONResponse({"rows": rows, "data_complete_until": complete})

    refusal = "reports need the admin key, not an app's ingest key"
    return [Route("/v1/reports", admin_only(keyring, reports, app_key_refusal=refusal), methods=["GET"])]
