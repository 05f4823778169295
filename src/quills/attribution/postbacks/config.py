"""Postbacks settings, validated at start (flags override ``QUILLS_*`` environment variables)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from quills.errors import ConfigError

__all__ = ("PostbacksConfig",)


@dataclass(frozen=True)
class PostbacksConfig:
    """How the Postbacks service runs.

    Args:
        host: address of its health and metrics endpoint (default ``127.0.0.1``).
        port: its port, 0..65535 (default 8083; serves ``/healthz``, ``/metrics``, ``/hystrix.stream``).
        data_dir: data directory (default ``./.quills``).
        db_url: deliveries, positions and config (default ``QUILLS_DB``, else ``<data_dir>/quills.db``).
        broker_url: ``nats://`` or ``kafka://`` (default ``QUILLS_BROKER``; required).
        group: consumer group on the event topics (default ``postbacks``).
        config_group: this process's group on ``config.v1`` (default ``config-postbacks``).
        allow: SSRF allow-list, CIDRs or hosts, comma-separated (default ``QUILLS_POSTBACK_ALLOW``, empty).
        max_batch_size: events per batch, 1..1e6 (default 5,000). max_wait: seconds, 0.001..60 (0.05).
        tick: seconds between looks for due deliveries when idle, 0.001..10 (default 0.05).
        retry_base / retry_cap: retry backoff, seconds (defaults 30 and 1800;
            ``QUILLS_POSTBACK_RETRY_BASE``, ``QUILLS_POSTBACK_RETRY_CAP``).
        lease: seconds a picked delivery is hidden from other pickers, 1..3600 (default 30).
        reload_interval: seconds between full config reloads from the database, 1..3600 (default 30).
    """

    host: str = "127.0.0.1"
    port: int = 8083
    data_dir: str = ".quills"
    db_url: str = ""
    broker_url: str = ""
    group: str = "postbacks"
    config_group: str = "config-postbacks"
    allow: str = ""
    max_batch_size: int = 5_000
    max_wait: float = 0.05
    tick: float = 0.05
    retry_base: float = 30.0
    retry_cap: float = 1800.0
    lease: float = 30.0
    reload_interval: float = 30.0

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"postbacks port must be 0..65535, got {self.port}")
        if not 1 <= self.max_batch_size <= 1_000_000:
            raise ConfigError(f"max_batch_size must be 1..1000000, got {self.max_batch_size}")
        if not 0.001 <= self.max_wait <= 60:
            raise ConfigError(f"max_wait must be 0.001..60 s, got {self.max_wait}")
        if not 0.001 <= self.tick <= 10:
            raise ConfigError(f"tick must be 0.001..10 s, got {self.tick}")
        if not 0.001 <= self.retry_base <= self.retry_cap <= 86_400:
            raise ConfigError(
                f"need 0.001 <= retry_base <= retry_cap <= 86400, got {self.retry_base}, {self.retry_cap}"
            )
        if not 1 <= self.lease <= 3600:
            raise ConfigError(f"lease must be 1..3600 s, got {self.lease}")
        if not 1 <= self.reload_interval <= 3600:
            raise ConfigError(f"reload_interval must be 1..3600 s, got {self.reload_interval}")
        if not self.group or not self.config_group:
            raise ConfigError("group and config_group must not be empty")

    @classmethod
    def from_env(cls, **overrides: object) -> PostbacksConfig:
        """Defaults, then ``QUILLS_DATA_DIR``/``QUILLS_DB``/``QUILLS_BROKER``/``QUILLS_POSTBACK_ALLOW``/
        ``QUILLS_POSTBACK_RETRY_BASE``/``QUILLS_POSTBACK_RETRY_CAP``, then non-None ``overrides``."""
        values: dict[str, object] = {
            "data_dir": os.environ.get("QUILLS_DATA_DIR") or ".quills",
            "db_url": os.environ.get("QUILLS_DB") or "",
            "broker_url": os.environ.get("QUILLS_BROKER") or "",
            "allow": os.environ.get("QUILLS_POSTBACK_ALLOW") or "",
        }
        for name, field in (
            ("QUILLS_POSTBACK_RETRY_BASE", "retry_base"),
            ("QUILLS_POSTBACK_RETRY_CAP", "retry_cap"),
        ):
            text = os.environ.get(name)
            if text:
                try:
                    values[field] = float(text)
                except ValueError:
                    raise ConfigError(f"{name} must be seconds, got {text!r}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        if not values["db_url"]:
            values["db_url"] = str(Path(str(values["data_dir"])) / "quills.db")
        return cls(**values)  # type: ignore[arg-type]
