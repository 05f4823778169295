"""The Postbacks service: installs and in-app events matched against each app's postback rules, rendered,
and delivered to partners through one command per partner, with every attempt logged and retries
scheduled in the database. Run it with ``python -m quills.attribution.postbacks`` (or ``quills up``)."""

from __future__ import annotations

from quills.attribution.postbacks.app import serve
from quills.attribution.postbacks.client import PartnerClient, PermanentResponse, RetryableResponse
from quills.attribution.postbacks.config import PostbacksConfig
from quills.attribution.postbacks.handlers import (
    Outcome,
    backoff_delay,
    classify,
    evaluate,
    is_restricted,
    matches,
    retry_after_seconds,
)
from quills.attribution.postbacks.http import delivery_stats, list_deliveries, postback_routes
from quills.attribution.postbacks.messages import POSTBACK_TOPICS, Delivery, PostbackEvent
from quills.attribution.postbacks.render import (
    encode_value,
    macro_values,
    postback_id,
    render_body,
    render_event_url,
    render_url,
)
from quills.attribution.postbacks.sender import Sender
from quills.attribution.postbacks.sinks import Attempt, DeliveryStore, Due, apply_deliveries, redact

__all__ = (
    "PostbacksConfig",
    "serve",
    "PostbackEvent",
    "Delivery",
    "POSTBACK_TOPICS",
    "evaluate",
    "matches",
    "is_restricted",
    "classify",
    "Outcome",
    "backoff_delay",
    "retry_after_seconds",
    "macro_values",
    "render_url",
    "render_event_url",
    "render_body",
    "encode_value",
    "postback_id",
    "PartnerClient",
    "RetryableResponse",
    "PermanentResponse",
    "Sender",
    "DeliveryStore",
    "Due",
    "Attempt",
    "apply_deliveries",
    "redact",
    "postback_routes",
    "list_deliveries",
    "delivery_stats",
)
