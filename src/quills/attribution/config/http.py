"""Config API routes (admin key): apps and their ingest keys, partners, postback rules, the change log.

Reads: HTTP requests. Writes: the config tables (``ConfigStore``) and, after each stored change, one
``ConfigChange`` on ``config.v1``.

- ``GET/POST /v1/apps``, ``GET/DELETE /v1/apps/{app_id}``, ``POST /v1/apps/{app_id}/key``: apps; a new
  or rotated ingest key is shown once.
- ``GET /v1/partners``, ``GET/PUT/DELETE /v1/partners/{partner_id}``: partners.
- ``GET /v1/rules?app_id=``, ``GET/PUT/DELETE /v1/rules/{rule_id}``: postback rules, validated at save.
- ``GET /v1/config/changes?since_ms=``: the change log.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from quills.attribution.config.handlers import decode, probe_url, validate_rule
from quills.attribution.config.messages import ConfigChange, Partner, PostbackRule
from quills.attribution.config.ssrf import TargetPolicy, UnsafeTarget
from quills.attribution.config.store import ConfigStore, Conflict, NotFound
from quills.attribution.keys import KeyRing, bearer_key

__all__ = ("config_routes", "problem", "admin_only", "Publish")

log = logging.getLogger("quills.attribution.config")
Publish = Callable[[ConfigChange], Awaitable[None]]
Handler = Callable[[Request], Awaitable[Response]]
_APP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def problem(status: int, error: str, detail: str, **extra: Any) -> JSONResponse:
    """A JSON error response (``WWW-Authenticate`` on 401)."""
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": error, "detail": detail, **extra}, status_code=status, headers=headers)


def admin_only(
    keyring: Callable[[], KeyRing],
    handler: Handler,
    *,
    app_key_refusal: str = "this API needs the admin key, not an app's ingest key",
) -> Handler:
    """``handler`` behind the admin key: no key or an unknown one is 401, an app's ingest key is 403 with
    ``app_key_refusal`` as its detail."""

    async def guarded(request: Request) -> Response:
        key = bearer_key(request.headers.get("authorization"))
        if key is None:
            return problem(401, "unauthorized", "send 'Authorization: Bearer <admin key>'")
        ring = keyring()
        if not ring.is_admin(key):
            if ring.app_of(key) is not None:
                return problem(403, "forbidden", app_key_refusal)
            return problem(401, "unauthorized", "unknown key")
        try:
            return await handler(request)
        except NotFound as exc:
            return problem(404, "not_found", str(exc))
        except Conflict as exc:
            return problem(409, "conflict", str(exc))

    return guarded


def _json(value: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(value), status_code=status, media_type="application/json")


def config_routes(
    store: ConfigStore, keyring: Callable[[], KeyRing], publish: Publish, policy: TargetPolicy
) -> list[Route]:
    """The config API's routes (part of the API process on port 8081)."""

    async def announce(change: ConfigChange) -> bool:
        try:
            await publish(change)
            return True
        except Exception as exc:  # stored already: followers pick it up at their next full reload
            log.warning("change %s stored but not published: %r", change.change_id, exc)
            return False

    async def apps(request: Request) -> Response:
        if request.method == "GET":
            return _json(await asyncio.to_thread(store.apps))
        try:
            raw = msgspec.json.decode(await request.body())
        except msgspec.DecodeError:
            raw = None
        if not isinstance(raw, dict):
            return problem(422, "invalid", "body must be a JSON object")
        app_id, platform = raw.get("app_id"), raw.get("platform")
        if not isinstance(app_id, str) or not _APP_ID.match(app_id):
            return problem(422, "invalid", "app_id: 1-100 letters, digits, '.', '_' or '-'")
        if platform not in ("android", "ios"):
            return problem(422, "invalid", "platform: 'android' or 'ios'")
        change, key = await asyncio.to_thread(store.create_app, app_id, platform)
        published = await announce(change)
        return _json({"app": change.app, "ingest_key": key, "published": published}, 201)

    async def app(request: Request) -> Response:
        app_id = request.path_params["app_id"]
        if request.method == "GET":
            info = await asyncio.to_thread(store.app, app_id)
            rules = await asyncio.to_thread(store.rules, app_id)
            return _json({"app": info, "rules": rules})
        change = await asyncio.to_thread(store.delete_app, app_id)
        return _json({"deleted": app_id, "published": await announce(change)})

    async def rotate(request: Request) -> Response:
        change, key = await asyncio.to_thread(store.rotate_app_key, request.path_params["app_id"])
        return _json({"app": change.app, "ingest_key": key, "published": await announce(change)})

    async def partners(_request: Request) -> Response:
        return _json(await asyncio.to_thread(store.partners))

    async def partner(request: Request) -> Response:
        partner_id = request.path_params["partner_id"]
        if request.method == "GET":
            return _json(await asyncio.to_thread(store.partner, partner_id))
        if request.method == "DELETE":
            change = await asyncio.to_thread(store.delete_partner, partner_id)
            return _json({"deleted": partner_id, "published": await announce(change)})
        value = decode(await request.body(), Partner, partner_id=partner_id)
        if isinstance(value, list):
            return problem(422, "invalid", "; ".join(value), errors=value)
        change = await asyncio.to_thread(store.put_partner, value)
        return _json({"partner": change.partner, "published": await announce(change)})

    async def rules(request: Request) -> Response:
        return _json(await asyncio.to_thread(store.rules, request.query_params.get("app_id")))

    async def rule(request: Request) -> Response:
        rule_id = request.path_params["rule_id"]
        if request.method == "GET":
            return _json(await asyncio.to_thread(store.rule, rule_id))
        if request.method == "DELETE":
            change = await asyncio.to_thread(store.delete_rule, rule_id)
            return _json({"deleted": rule_id, "published": await announce(change)})
        value = decode(await request.body(), PostbackRule, rule_id=rule_id)
        if isinstance(value, list):
            return problem(422, "invalid", "; ".join(value), errors=value)
        errors = validate_rule(value)
        if not errors:
            try:
                await policy.resolve(probe_url(value))
            except UnsafeTarget as exc:
                errors.append(f"url_template: {exc}")
        if errors:
            return problem(422, "invalid", "; ".join(errors), errors=errors)
        change = await asyncio.to_thread(store.put_rule, value)
        return _json({"rule": change.rule, "published": await announce(change)})

    async def changes(request: Request) -> Response:
        try:
            since = int(request.query_params.get("since_ms", "0"))
        except ValueError:
            return problem(422, "invalid", "since_ms: an integer (epoch ms)")
        return _json(await asyncio.to_thread(store.changes, since))

    def route(path: str, handler: Handler, methods: list[str]) -> Route:
        return Route(path, admin_only(keyring, handler), methods=methods)

    return [
        route("/v1/apps", apps, ["GET", "POST"]),
        route("/v1/apps/{app_id}", app, ["GET", "DELETE"]),
        route("/v1/apps/{app_id}/key", rotate, ["POST"]),
        route("/v1/partners", partners, ["GET"]),
        route("/v1/partners/{partner_id}", partner, ["GET", "PUT", "DELETE"]),
        route("/v1/rules", rules, ["GET"]),
        route("/v1/rules/{rule_id}", rule, ["GET", "PUT", "DELETE"]),
        route("/v1/config/changes", changes, ["GET"]),
    ]
