"""Rolling counters and log-bucketed latency histograms with Hystrix semantics."""

from __future__ import annotations

from quills.metrics.events import EventType
from quills.metrics.rolling import HealthCounts, RollingMetrics

__all__ = ("EventType", "HealthCounts", "RollingMetrics")
