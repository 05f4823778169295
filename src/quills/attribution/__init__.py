"""The mobile-attribution platform, built only on the public quills API.

Events (``quills.attribution.events``) come in over HTTP (``quills.attribution.ingest``), flow through the
log (``installs.v1``, ``inapps.v1``, ``sessions.v1``) and become reports (``quills.attribution.reports``).
``quills up`` runs it all on one machine; ``quills loadgen`` sends realistic traffic. See
``docs/attribution.md``.
"""

from __future__ import annotations

__all__: tuple[str, ...] = ()
