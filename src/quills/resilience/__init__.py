"""Commands: bulkheads, timeouts, circuit breakers, fallbacks and rolling metrics (Hystrix semantics)."""

from __future__ import annotations

from quills.resilience.async_command import AsyncCommand
from quills.resilience.breaker import BreakerSnapshot, CircuitBreaker, CircuitState
from quills.resilience.core import CommandSnapshot, LatencySnapshot
from quills.resilience.decorator import AsyncCommandFunction, SyncCommandFunction, command, default_registry
from quills.resilience.events import (
    CallRejected,
    CircuitClosed,
    CircuitHalfOpened,
    CircuitOpened,
    CommandEvent,
    CommandRegistered,
    FallbackUsed,
)
from quills.resilience.options import BreakerOptions, CommandOptions, ThreadPoolOptions
from quills.resilience.pool import ThreadPool, ThreadPoolSnapshot
from quills.resilience.registry import Registry
from quills.resilience.sync_command import Command

__all__ = (
    "command",
    "Command",
    "AsyncCommand",
    "SyncCommandFunction",
    "AsyncCommandFunction",
    "CommandOptions",
    "BreakerOptions",
    "ThreadPoolOptions",
    "Registry",
    "default_registry",
    "CircuitBreaker",
    "CircuitState",
    "ThreadPool",
    "CommandSnapshot",
    "LatencySnapshot",
    "BreakerSnapshot",
    "ThreadPoolSnapshot",
    "CommandEvent",
    "CircuitOpened",
    "CircuitHalfOpened",
    "CircuitClosed",
    "CallRejected",
    "FallbackUsed",
    "CommandRegistered",
)
