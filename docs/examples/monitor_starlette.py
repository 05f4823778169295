"""A Starlette service whose commands are watched live: ``/ops/hystrix.stream`` and ``/ops/metrics``.

Run it with ``uvicorn monitor_starlette:app``, then point a dashboard (or ``quills monitor --instance
127.0.0.1:8000 --suffix /ops/hystrix.stream``) at it.
"""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

import quills
from quills.monitor import hystrix_stream_app


@quills.command(
    group="users-api", name="example_get_user", timeout=0.5, fallback=lambda user_id: {"id": user_id}
)
async def get_user(user_id: int) -> dict[str, object]:
    await asyncio.sleep(0.001)  # stands in for a call to the users service
    return {"id": user_id, "name": f"user {user_id}"}


async def user(request: Request) -> JSONResponse:
    return JSONResponse(await get_user(int(request.path_params["user_id"])))


app = Starlette(
    routes=[
        Route("/users/{user_id:int}", user),
        # the stream and Prometheus metrics of quills.registry, next to the service's own routes
        Mount("/ops", hystrix_stream_app(cors_origin=None)),
    ]
)
