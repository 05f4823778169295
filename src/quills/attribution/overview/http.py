"""Overview route (admin key): ``GET /v1/apps/{app_id}/overview``.

Reads: HTTP requests, ``Overview.gather``. Writes: JSON responses (200 even when parts are stale: the
response says which).
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from quills.attribution.config.http import admin_only
from quills.attribution.keys import KeyRing
from quills.attribution.overview.sinks import Overview

__all__ = ("overview_routes",)


def overview_routes(overview: Overview, keyring: Callable[[], KeyRing]) -> list[Route]:
    """The overview's route (part of the API process on port 8081)."""

    async def get(request: Request) -> Response:
        return JSONResponse(await overview.gather(request.path_params["app_id"]))

    return [Route("/v1/apps/{app_id}/overview", admin_only(keyring, get), methods=["GET"])]
