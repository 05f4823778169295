"""Reports settings, validated at start (flags override ``QUILLS_*`` environment variables)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from quills.errors import ConfigError

__all__ = ("ReportsConfig",)


@dataclass(frozen=True)
class ReportsConfig:
    """How the Reports service runs.

    Args:
        host: address of the report API (default ``127.0.0.1``).
        port: its port, 0..65535 (default 8081).
        data_dir: data directory (default ``./.quills``).
        db_url: aggregates, positions and keys (default ``QUILLS_DB``, else ``<data_dir>/quills.db``).
        broker_url: ``nats://`` or ``kafka://`` (default ``QUILLS_BROKER``; required).
        group: consumer group, one per deployment of the service (default ``reports``).
        max_batch_size: events per batch (about: packed messages are bounded by bytes, see
            ``runtime.event_batches``), 1..1e6 (default 20,000: 0.25 s of sessions at over 100k events/s;
            a bigger batch folds more events into each row it writes, but a consumer that catches up holds
            two of them, and the process keeps the memory after).
        max_wait: seconds a batch waits to fill, 0.001..60 (default 0.25; adds to the reports lag).
        probe_interval: seconds between checks of ``data_complete_until``, 0.01..60 (default 0.25).
        merge_interval: seconds between merges of the stored batches into the aggregates, 0.1..3600
            (default 5: at 50k events/s a merge writes each aggregate row once for ~250,000 events,
            ~1 us of CPU per event here, against ~3.5 us merging every second; a report reads up to
            an interval of unmerged batches in Python, ~0.1-0.3 s at that rate).
        keys_reload_interval: seconds between key ring reloads, 0.1..3600 (default 5).
    """

    host: str = "127.0.0.1"
    port: int = 8081
    data_dir: str = ".quills"
    db_url: str = ""
    broker_url: str = ""
    group: str = "reports"
    max_batch_size: int = 20_000
    max_wait: float = 0.25
    probe_interval: float = 0.25
    merge_interval: float = 5.0
    keys_reload_interval: float = 5.0

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"reports port must be 0..65535, got {self.port}")
        if not 1 <= self.max_batch_size <= 1_000_000:
            raise ConfigError(f"max_batch_size must be 1..1000000, got {self.max_batch_size}")
        if not 0.001 <= self.max_wait <= 60:
            raise ConfigError(f"max_wait must be 0.001..60 s, got {self.max_wait}")
        if not 0.01 <= self.probe_interval <= 60:
            raise ConfigError(f"probe_interval must be 0.01..60 s, got {self.probe_interval}")
        if not 0.1 <= self.merge_interval <= 3600:
            raise ConfigError(f"merge_interval must be 0.1..3600 s, got {self.merge_interval}")
        if not 0.1 <= self.keys_reload_interval <= 3600:
            raise ConfigError(f"keys_reload_interval must be 0.1..3600 s, got {self.keys_reload_interval}")
        if not self.group:
            raise ConfigError("group must not be empty")

    @classmethod
    def from_env(cls, **overrides: object) -> ReportsConfig:
        """Defaults, then ``QUILLS_DATA_DIR``/``QUILLS_DB``/``QUILLS_BROKER`` and the batching knobs
        ``QUILLS_REPORTS_MAX_BATCH_SIZE``/``QUILLS_REPORTS_MAX_WAIT``/``QUILLS_REPORTS_PROBE_INTERVAL``/
        ``QUILLS_REPORTS_MERGE_INTERVAL``,
        then non-None ``overrides``."""
        values: dict[str, object] = {
            "data_dir": os.environ.get("QUILLS_DATA_DIR") or ".quills",
            "db_url": os.environ.get("QUILLS_DB") or "",
            "broker_url": os.environ.get("QUILLS_BROKER") or "",
        }
        for name, kind in (
            ("max_batch_size", int),
            ("max_wait", float),
            ("probe_interval", float),
            ("merge_interval", float),
        ):
            text = os.environ.get(f"QUILLS_REPORTS_{name.upper()}")
            if text:
                try:
                    values[name] = kind(text)
                except ValueError:
                    raise ConfigError(
                        f"QUILLS_REPORTS_{name.upper()} must be a number, got {text!r}"
                    ) from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        if not values["db_url"]:
            values["db_url"] = str(Path(str(values["data_dir"])) / "quills.db")
        return cls(**values)  # type: ignore[arg-type]
