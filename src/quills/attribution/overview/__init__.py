"""The composed overview API (``GET /v1/apps/{app_id}/overview``), and the mounting of part 2's routes on
the API process."""

from __future__ import annotations

from quills.attribution.overview.api import platform_routes
from quills.attribution.overview.http import overview_routes
from quills.attribution.overview.sinks import Overview, Part, database_parts

__all__ = ("Overview", "Part", "database_parts", "overview_routes", "platform_routes")
