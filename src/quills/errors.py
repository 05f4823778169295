"""Every exception quills raises, as one tree.

```
QuillsError
 ├── RejectedError                 a command refused to run the call (the call never reached the dependency,
 │    │                            or its result was given up)
 │    ├── CircuitOpenError         the breaker is open; ``retry_after`` seconds until a trial may run
 │    ├── BulkheadFullError        the thread pool, semaphore or asyncio limit is full
 │    └── CommandTimeoutError      the call exceeded ``timeout`` seconds
 ├── BadRequest                    raise it (or list your own types in ``bad_request=``) for errors caused by
 │                                 the caller's input: passed through, never counted, never falls back
 ├── ConfigError (also ValueError) an option or a configuration file is invalid; the message names the field
 └── StreamError                   the message log
      ├── PublishError             the broker did not acknowledge a publish
      └── DecodeError              a message failed to decode or validate (carries topic/partition/offset)
```

User exceptions raised inside a command pass through unchanged; rejections are a family of their own.
"""

from __future__ import annotations

__all__ = (
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


class QuillsError(Exception):
    """Base class of every exception quills raises itself."""


class RejectedError(QuillsError):
    """A command did not run the call, or gave up on it; ``group``/``command`` name which one."""

    # slots keep creating a rejection cheap: while a circuit is open, every call makes one
    __slots__ = ("command", "group")

    def __init__(self, message: str, *, group: str = "", command: str = "") -> None:
        super().__init__(message)
        self.group = group
        self.command = command


class CircuitOpenError(RejectedError):
    """The circuit breaker is open (or a half-open trial is already running).

    ``retry_after`` is the number of seconds until the breaker next lets a trial call through (0.0 when a
    trial is due or running now). With no ``message`` one is written from the other fields when shown
    (so that raising it stays cheap while a circuit is open and every call is rejected).
    """

    __slots__ = ("retry_after",)

    def __init__(
        self, message: str = "", *, group: str = "", command: str = "", retry_after: float = 0.0
    ) -> None:
        Exception.__init__(self, message) if message else Exception.__init__(self)
        self.group = group
        self.command = command
        self.retry_after = retry_after

    def __str__(self) -> str:
        if self.args:
            return str(self.args[0])
        return (
            f"command {self.group}.{self.command}: circuit is open; short-circuited "
            f"(retry after {self.retry_after:.3f}s)"
        )


class BulkheadFullError(RejectedError):
    """The command's bulkhead (thread pool, semaphore or asyncio limit) has no free slot."""

    __slots__ = ()


class CommandTimeoutError(RejectedError):
    """The call ran longer than ``timeout`` seconds."""

    __slots__ = ("timeout",)

    def __init__(self, message: str, *, group: str = "", command: str = "", timeout: float = 0.0) -> None:
        super().__init__(message, group=group, command=command)
        self.timeout = timeout


class BadRequest(QuillsError):
    """An error caused by the caller's input: it passes through, is not counted and does not fall back."""


class ConfigError(QuillsError, ValueError):
    """An option or configuration value is invalid; the message names the field and the valid range."""


class StreamError(QuillsError):
    """Base class of message-log errors."""


class PublishError(StreamError):
    """The broker did not acknowledge a publish; the messages may not be durable."""


class DecodeError(StreamError):
    """A message failed to decode or validate.

    Carries where the message came from so it can be dead-lettered with its reason.
    """

    def __init__(
        self, reason: str, *, topic: str = "", partition: int = -1, offset: int = -1, raw: bytes = b""
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.raw = raw
