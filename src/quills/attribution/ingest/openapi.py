"""The ingest API's OpenAPI 3.1 document, built from the msgspec schemas (so it cannot drift from them)."""

from __future__ import annotations

from typing import Any

import msgspec

from quills.attribution.events import AnyEvent
from quills.attribution.ingest.messages import Accepted, Problem

__all__ = ("openapi_document",)

_REF = "#/components/schemas/{name}"


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF.format(name="Problem")}}},
    }


def openapi_document(*, max_batch_events: int = 1000, max_body_bytes: int = 1 << 20) -> dict[str, Any]:
    """The document served at ``/openapi.json``."""
    (event, accepted, _problem_ref), components = msgspec.json.schema_components(
        [AnyEvent, Accepted, Problem], ref_template=_REF
    )
    components["AnyEvent"] = event
    errors = {
        "400": _problem("The body is not JSON"),
        "401": _problem("No key, or an unknown key"),
        "403": _problem("An event belongs to another app than the key's"),
        "413": _problem(f"The body is larger than {max_body_bytes} bytes, or holds too many events"),
        "415": _problem("Unsupported Content-Type"),
        "422": _problem("Invalid events: every error, with the event's index and the field's path"),
        "503": {
            **_problem("The broker cannot make the events durable now; nothing was accepted"),
            "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}},
        },
    }
    ok = {
        "202": {
            "description": "Every event is durable in the log",
            "content": {"application/json": {"schema": accepted}},
        }
    }
    security: list[dict[str, list[str]]] = [{"appKey": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "quills attribution ingest",
            "version": "1",
            "description": "Install, in-app and session events in; 202 once they are durable in the log.",
        },
        "paths": {
            "/v1/events": {
                "post": {
                    "operationId": "postEvent",
                    "summary": "Send one event",
                    "security": security,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": _REF.format(name="AnyEvent")}}},
                    },
                    "responses": {**ok, **errors},
                }
            },
            "/v1/events/batch": {
                "post": {
                    "operationId": "postEvents",
                    "summary": f"Send up to {max_batch_events} events (JSON array or NDJSON)",
                    "security": security,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "array",
                                    "items": {"$ref": _REF.format(name="AnyEvent")},
                                    "minItems": 1,
                                    "maxItems": max_batch_events,
                                }
                            },
                            "application/x-ndjson": {
                                "schema": {"type": "string", "description": "one event object per line"}
                            },
                        },
                    },
                    "responses": {**ok, **errors},
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "health",
                    "summary": "Liveness and counters",
                    "responses": {"200": {"description": "serving", "content": {"application/json": {}}}},
                }
            },
        },
        "components": {
            "schemas": components,
            "securitySchemes": {
                "appKey": {"type": "http", "scheme": "bearer", "description": "an app's ingest key"}
            },
        },
    }
