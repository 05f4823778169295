"""Ingest settings, validated at start (flags override ``QUILLS_*`` environment variables)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from quills.errors import ConfigError

__all__ = ("IngestConfig",)


@dataclass(frozen=True)
class IngestConfig:
    """How the ingest service runs.

    Args:
        host: address to bind (default ``127.0.0.1``).
        port: port, 0..65535 (default 8080; 0 picks a free one).
        data_dir: where ``credentials.json`` and the SQLite database live (default ``./.quills``).
        db_url: the apps database (default ``QUILLS_DB``, else ``<data_dir>/quills.db``).
        broker_url: ``nats://`` or ``kafka://`` (default ``QUILLS_BROKER``; required: ingest never starts a
            broker itself).
        publish_timeout: seconds a publish may take before the request gets 503, 0.01..60 (default 3).
        max_body_bytes: largest request body, 1 KiB..16 MiB (default 1 MiB).
        max_batch_events: most events in one batch request, 1..100,000 (default 1000).
        keys_reload_interval: seconds between reloads of apps and keys from the database, 0.1..3600
            (default 5).
        max_future_seconds: how far ``event_time`` may be ahead of the server clock, 0..7 days
            (default 1 day).
        pack_events: publish each flush's events of one topic and app as packed log messages (default
            True; ``quills.streams.packing``): the broker and the consumers then work per flush, not per
            event. Consumers read both forms, so this can change at any time.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: str = ".quills"
    db_url: str = ""
    broker_url: str = ""
    publish_timeout: float = 3.0
    max_body_bytes: int = 1 << 20
    max_batch_events: int = 1000
    keys_reload_interval: float = 5.0
    max_future_seconds: float = 86_400.0
    pack_events: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"ingest port must be 0..65535, got {self.port}")
        if not 0.01 <= self.publish_timeout <= 60:
            raise ConfigError(f"publish_timeout must be 0.01..60 s, got {self.publish_timeout}")
        if not 1024 <= self.max_body_bytes <= 16 << 20:
            raise ConfigError(f"max_body_bytes must be 1 KiB..16 MiB, got {self.max_body_bytes}")
        if not 1 <= self.max_batch_events <= 100_000:
            raise ConfigError(f"max_batch_events must be 1..100000, got {self.max_batch_events}")
        if not 0.1 <= self.keys_reload_interval <= 3600:
            raise ConfigError(f"keys_reload_interval must be 0.1..3600 s, got {self.keys_reload_interval}")
        if not 0 <= self.max_future_seconds <= 7 * 86_400:
            raise ConfigError(f"max_future_seconds must be 0..604800, got {self.max_future_seconds}")

    @classmethod
    def from_env(cls, **overrides: object) -> IngestConfig:
        """Defaults, then ``QUILLS_DATA_DIR``/``QUILLS_DB``/``QUILLS_BROKER``, then non-None ``overrides``."""
        values: dict[str, object] = {
            "data_dir": os.environ.get("QUILLS_DATA_DIR") or ".quills",
            "db_url": os.environ.get("QUILLS_DB") or "",
            "broker_url": os.environ.get("QUILLS_BROKER") or "",
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        config = cls(**values)  # type: ignore[arg-type]
        if not config.db_url:
            config = cls(**{**values, "db_url": str(Path(config.data_dir) / "quills.db")})  # type: ignore[arg-type]
        return config
