"""quills: Hystrix-style commands, live metrics and fast event streams for Python services."""

from __future__ import annotations

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

__version__ = "0.1.0"

__all__ = (
    "__version__",
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
