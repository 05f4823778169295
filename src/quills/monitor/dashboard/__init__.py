"""The web dashboard: every circuit of one or more streams live in the browser, and audible.

The page is plain HTML, CSS and ES modules shipped inside this package (``static/``): no CDN, no build
step. It is served at ``/dashboard/`` by :func:`quills.monitor.serve` and by the aggregator
(``quills monitor``); mount it elsewhere with :func:`dashboard_asgi` or :class:`DashboardWsgi`.
"""

from __future__ import annotations

from quills.monitor.dashboard.apps import DashboardAsgi, DashboardWsgi, dashboard_asgi
from quills.monitor.dashboard.assets import DASHBOARD_PATH, Asset, find_asset, static_dir

__all__ = (
    "DASHBOARD_PATH",
    "DashboardAsgi",
    "DashboardWsgi",
    "dashboard_asgi",
    "Asset",
    "find_asset",
    "static_dir",
)
