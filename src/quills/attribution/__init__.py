"""The mobile-attribution platform, built only on the public quills API.

Events (``quills.attribution.events``) come in over HTTP (``quills.attribution.ingest``), flow through the
log (``installs.v1``, ``inapps.v1``, ``sessions.v1``) and become reports (``quills.attribution.reports``).
``quills up`` runs it all on one machine; ``quills loadgen`` sends realistic traffic. See
``docs/attribution.md``.
"""

from __future__ import annotations

from quills.attribution.events import (
    INAPPS,
    INSTALLS,
    PERSONAL_DATA_FIELDS,
    SESSIONS,
    TOPIC_OF_TYPE,
    AnyEvent,
    Event,
    InApp,
    Install,
    Reattribution,
    Reinstall,
    Session,
    Uninstall,
)
from quills.attribution.keys import KeyRing
from quills.attribution.loadgen import LoadgenOptions, LoadSummary, run_loadgen
from quills.attribution.traffic import DemoApp, TrafficModel, demo_apps
from quills.attribution.up import UpOptions, up

__all__ = (
    # events
    "Event",
    "Install",
    "Reinstall",
    "Reattribution",
    "Uninstall",
    "InApp",
    "Session",
    "AnyEvent",
    "PERSONAL_DATA_FIELDS",
    "TOPIC_OF_TYPE",
    "INSTALLS",
    "INAPPS",
    "SESSIONS",
    # keys
    "KeyRing",
    # running and loading
    "UpOptions",
    "up",
    "LoadgenOptions",
    "LoadSummary",
    "run_loadgen",
    "TrafficModel",
    "DemoApp",
    "demo_apps",
)
