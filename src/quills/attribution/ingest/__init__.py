"""The ingest service: events over HTTP in, durable in the log before the 202.

Run it with ``python -m quills.attribution.ingest`` (or ``quills up``); see ``docs/attribution.md``.
"""

from __future__ import annotations

from quills.attribution.ingest.app import build_app, serve
from quills.attribution.ingest.config import IngestConfig
from quills.attribution.ingest.http import IngestCounters, IngestHttp
from quills.attribution.ingest.messages import Accepted, FieldError, Problem
from quills.attribution.ingest.openapi import openapi_document
from quills.attribution.ingest.sinks import Publisher, Unavailable

__all__ = (
    "IngestConfig",
    "serve",
    "build_app",
    "IngestHttp",
    "IngestCounters",
    "Publisher",
    "Unavailable",
    "Accepted",
    "Problem",
    "FieldError",
    "openapi_document",
)
