"""The Reports service: installs, in-app events and sessions folded into hourly aggregates, and the
report API. Run it with ``python -m quills.attribution.reports`` (or ``quills up``)."""

from __future__ import annotations

from quills.attribution.reports.app import serve
from quills.attribution.reports.config import ReportsConfig
from quills.attribution.reports.freshness import Completeness, covered_upto
from quills.attribution.reports.handlers import device_hash, fold, parse_query, row_id
from quills.attribution.reports.messages import DIMENSIONS, METRICS, Fold, ReportQuery
from quills.attribution.reports.sinks import apply_fold, run_report, schema

__all__ = (
    "ReportsConfig",
    "serve",
    "fold",
    "Fold",
    "row_id",
    "device_hash",
    "parse_query",
    "ReportQuery",
    "DIMENSIONS",
    "METRICS",
    "apply_fold",
    "run_report",
    "schema",
    "Completeness",
    "covered_upto",
)
