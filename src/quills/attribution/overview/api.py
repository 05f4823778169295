"""Part 2's routes on the API process: the config API, the delivery log and the overview, with what they
need (tables, the ``config.v1`` publisher, the SSRF policy) set up once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.routing import Route

import quills
from quills.attribution.config.http import config_routes
from quills.attribution.config.messages import CONFIG, ConfigChange
from quills.attribution.config.ssrf import TargetPolicy
from quills.attribution.config.store import ConfigStore
from quills.attribution.db import Database
from quills.attribution.keys import KeyRing
from quills.attribution.overview.http import overview_routes
from quills.attribution.overview.sinks import Overview, database_parts
from quills.attribution.postbacks.http import postback_routes
from quills.attribution.postbacks.sinks import SCHEMA as DELIVERY_SCHEMA
from quills.streams import Backbone

__all__ = ("platform_routes",)


async def platform_routes(
    db: Database,
    keyring: Callable[[], KeyRing],
    backbone: Backbone,
    registry: quills.Registry,
    *,
    policy: TargetPolicy | None = None,
) -> list[Route]:
    """Create the config and delivery tables if missing and return the routes of the config API
    (``/v1/apps``, ``/v1/partners``, ``/v1/rules``, ``/v1/config/changes``), the delivery log
    (``/v1/postbacks``, ``/v1/postbacks/stats``) and the overview (``/v1/apps/{app_id}/overview``).
    ``policy`` defaults to ``QUILLS_POSTBACK_ALLOW``."""
    store = ConfigStore(db)
    await asyncio.to_thread(store.ensure_schema)
    await asyncio.to_thread(db.script, DELIVERY_SCHEMA)
    await backbone.ensure_topic(CONFIG.wire_name)

    async def publish(change: ConfigChange) -> None:
        await backbone.publish_many(CONFIG, [change], key=change.key)

    overview = Overview(database_parts(db, store), registry)
    return [
        *overview_routes(overview, keyring),
        *config_routes(store, keyring, publish, policy or TargetPolicy.from_env()),
        *postback_routes(db, keyring),
    ]
