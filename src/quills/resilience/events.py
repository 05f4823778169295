"""Typed, past-tense events that commands publish to registry listeners."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from quills.metrics.events import EventType

__all__ = (
    "CommandEvent",
    "CircuitOpened",
    "CircuitHalfOpened",
    "CircuitClosed",
    "CallRejected",
    "FallbackUsed",
    "CommandRegistered",
    "Listener",
    "EventPublisher",
)

_log = logging.getLogger("quills.resilience")


@dataclass(frozen=True, slots=True)
class CommandEvent:
    """Base of every event: which command, and when (wall clock, epoch ms)."""

    group: str
    command: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class CircuitOpened(CommandEvent):
    """The breaker opened: tripped by its window, a failed trial, or ``force_open``."""

    reason: str
    open_for: float


@dataclass(frozen=True, slots=True)
class CircuitHalfOpened(CommandEvent):
    """The sleep window passed and a trial call was let through."""


@dataclass(frozen=True, slots=True)
class CircuitClosed(CommandEvent):
    """Enough trials succeeded (or the breaker was forced closed, disabled or reset)."""


@dataclass(frozen=True, slots=True)
class CallRejected(CommandEvent):
    """A call did not run: ``event`` is SHORT_CIRCUITED, THREAD_POOL_REJECTED or SEMAPHORE_REJECTED."""

    event: EventType


@dataclass(frozen=True, slots=True)
class FallbackUsed(CommandEvent):
    """A fallback ran; ``cause`` is the event that led to it and ``succeeded`` tells how it ended."""

    cause: EventType
    succeeded: bool


@dataclass(frozen=True, slots=True)
class CommandRegistered(CommandEvent):
    """A command was added to (or replaced in) a registry."""


Listener = Callable[[CommandEvent], None]


class EventPublisher:
    """Delivers events to listeners in the thread that caused them; a failing listener is logged, never
    allowed to break the call that emitted the event."""

    __slots__ = ("_listeners", "has_listeners")

    def __init__(self) -> None:
        self._listeners: tuple[Listener, ...] = ()
        #: True when publishing would reach someone (lets callers skip building events)
        self.has_listeners = False

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Register ``listener`` for every event; returns a function that unsubscribes it."""
        self._listeners = (*self._listeners, listener)
        self.has_listeners = True

        def unsubscribe() -> None:
            self._listeners = tuple(item for item in self._listeners if item is not listener)
            self.has_listeners = bool(self._listeners)

        return unsubscribe

    def publish(self, event: CommandEvent) -> None:
        """Hand ``event`` to every listener."""
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                _log.exception("quills listener %r failed on %r", listener, event)
