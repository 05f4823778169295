"""The Reports service: installs, in-app events and sessions folded into hourly aggregates, and the
report API. Run it with ``python -m quills.attribution.reports`` (or ``quills up``)."""

from __future__ import annotations

from quills.attribution.reports.app import serve
from quills.attribution.reports.config import ReportsConfig
from quills.attribution.reports.freshness import Completeness, covered_upto
from quills.attribution.reports.handlers import fold, parse_query, row_hash
from quills.attribution.reports.messages import DIMENSIONS, METRICS, Fold, ReportQuery
from quills.attribution.reports.query import run_report
from quills.attribution.reports.sinks import DeltaMerger, RowWriter, apply_fold, schema
from quills.attribution.reports.sketch import DeviceUnion, device_digest

__all__ = (
    "ReportsConfig",
    "serve",
    "fold",
    "Fold",
    "row_hash",
    "device_digest",
    "DeviceUnion",
    "RowWriter",
    "DeltaMerger",
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
