"""Hystrix event types, as slots of a rolling-counter bucket."""

from __future__ import annotations

from enum import IntEnum

__all__ = ("EventType", "HEALTH_EVENTS", "BUCKET_SLOTS")


class EventType(IntEnum):
    """What happened to one command execution (Hystrix's ``HystrixEventType`` order, plus ``SLOW``).

    Each value is also the index of its counter in a rolling bucket.
    """

    EMIT = 0
    SUCCESS = 1
    FAILURE = 2
    TIMEOUT = 3
    BAD_REQUEST = 4
    SHORT_CIRCUITED = 5
    THREAD_POOL_REJECTED = 6
    SEMAPHORE_REJECTED = 7
    FALLBACK_EMIT = 8
    FALLBACK_SUCCESS = 9
    FALLBACK_FAILURE = 10
    FALLBACK_REJECTION = 11
    FALLBACK_DISABLED = 12
    FALLBACK_MISSING = 13
    EXCEPTION_THROWN = 14
    RESPONSE_FROM_CACHE = 15
    CANCELLED = 16
    COLLAPSED = 17
    COMMAND_MAX_ACTIVE = 18
    #: quills: a call slower than the breaker's ``slow_call_duration`` (also counted as SUCCESS/FAILURE).
    SLOW = 19


#: Slot holding the highest concurrent execution count seen during the bucket.
MAX_CONCURRENT_SLOT = 20
BUCKET_SLOTS = 21

#: Events that make up Hystrix health counts (request volume and error percentage).
HEALTH_EVENTS = (
    EventType.SUCCESS,
    EventType.FAILURE,
    EventType.TIMEOUT,
    EventType.THREAD_POOL_REJECTED,
    EventType.SEMAPHORE_REJECTED,
)
