"""A service's live view of the configuration: a ``quills.Atom`` holding a ``RuleIndex``, loaded from the
database at start, then changed by ``swap`` for each ``ConfigChange`` read from ``config.v1``.

Reads: the config tables (at start and every ``reload_interval`` seconds, the safety net for a change that
was stored but not published), the ``config.v1`` topic. Writes: the atom.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from quills import Atom
from quills.attribution.config.index import RuleIndex
from quills.attribution.config.messages import CONFIG, ConfigChange
from quills.attribution.config.store import ConfigStore
from quills.streams import Backbone, Batch, BatchConsumer, ConsumerOptions, StartFrom

__all__ = ("ConfigFollower",)

log = logging.getLogger("quills.attribution.config")


class ConfigFollower:
    """Keeps ``atom`` current.

    Args:
        store: where the configuration is stored.
        group: this follower's consumer group on ``config.v1``; every process that needs every change
            needs its own group (default ``config-postbacks``).
        reload_interval: seconds between full reloads from the database, 1..3600 (default 30).
    """

    def __init__(
        self, store: ConfigStore, *, group: str = "config-postbacks", reload_interval: float = 30.0
    ) -> None:
        self.store = store
        self.group = group
        self.reload_interval = reload_interval
        self.atom: Atom[RuleIndex] = Atom(RuleIndex())
        self.applied = 0
        self._consumer: BatchConsumer[ConfigChange, None] | None = None

    def load(self) -> RuleIndex:
        """Read everything from the database and put it in the atom (blocking)."""
        index = RuleIndex.of(self.store.partners(), self.store.rules())
        return self.atom.swap(lambda _old: index)

    def apply(self, changes: list[ConfigChange]) -> None:
        for change in changes:
            self.atom.swap(RuleIndex.apply, change)
            self.applied += 1

    def _handle(self, batch: Batch[ConfigChange]) -> None:
        self.apply(batch.messages)

    async def run(self, backbone: Backbone) -> None:
        """Follow ``config.v1`` and reload periodically, until cancelled or ``stop()``."""
        await backbone.ensure_topic(CONFIG.wire_name)
        options = ConsumerOptions(group=self.group, max_wait=0.05, start=StartFrom.latest())
        self._consumer = backbone.consumer(CONFIG, self._handle, options)
        reload = asyncio.get_running_loop().create_task(self._reload_forever())
        try:
            await self._consumer.run(handle_signals=False)
        finally:
            reload.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reload

    def stop(self) -> None:
        if self._consumer is not None:
            self._consumer.stop()

    async def _reload_forever(self) -> None:
        while True:
            await asyncio.sleep(self.reload_interval)
            try:
                await asyncio.to_thread(self.load)
            except Exception as exc:
                log.warning("config reload failed, keeping the current rules: %r", exc)
