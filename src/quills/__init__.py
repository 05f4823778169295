"""quills: Hystrix-style commands, live metrics and fast event streams for Python services."""

from __future__ import annotations

from quills.atom import Atom
from quills.compose import attempt, zip
from quills.errors import (
    BadRequest,
    BulkheadFullError,
    CircuitOpenError,
    CommandTimeoutError,
    ConfigError,
    DecodeError,
    PublishError,
    QuillsError,
    RejectedError,
    StreamError,
)
from quills.resilience import (
    AsyncCommand,
    BreakerOptions,
    CircuitState,
    Command,
    CommandOptions,
    CommandSnapshot,
    Registry,
    ThreadPoolOptions,
    command,
)
from quills.resilience.decorator import default_registry as registry

__version__ = "0.1.0"

__all__ = (
    "__version__",
    # commands
    "command",
    "Command",
    "AsyncCommand",
    "CommandOptions",
    "BreakerOptions",
    "ThreadPoolOptions",
    "CircuitState",
    "CommandSnapshot",
    "Registry",
    "registry",
    # composition and shared state
    "zip",
    "attempt",
    "Atom",
    # errors
    "QuillsError",
    "RejectedError",
    "CircuitOpenError",
    "BulkheadFullError",
    "CommandTimeoutError",
    "BadRequest",
    "ConfigError",
    "StreamError",
    "PublishError",
    "DecodeError",
)
