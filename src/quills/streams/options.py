"""Consumer options: batch size and wait, backpressure bounds, retries, parking and where to start."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from quills.errors import ConfigError

__all__ = ("ConsumerOptions", "StartFrom")

_GROUP = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


@dataclass(frozen=True)
class StartFrom:
    """Where a group with no stored position starts reading.

    Use one of the constructors: ``StartFrom.earliest()`` (the default), ``StartFrom.latest()``,
    ``StartFrom.offset(n)`` (Kafka offset / NATS stream sequence ``n`` >= 0 in every partition) or
    ``StartFrom.time(t)`` (the first message at or after wall time ``t``, seconds since the epoch).
    A position stored by a sink or committed to the broker always wins over this.
    """

    kind: str = "earliest"
    value: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("earliest", "latest", "offset", "time"):
            raise ConfigError(f"StartFrom.kind must be earliest, latest, offset or time, got {self.kind!r}")
        if not math.isfinite(self.value) or self.value < 0:
            raise ConfigError(f"StartFrom.value must be a finite number >= 0, got {self.value!r}")

    @classmethod
    def earliest(cls) -> StartFrom:
        return cls("earliest")

    @classmethod
    def latest(cls) -> StartFrom:
        return cls("latest")

    @classmethod
    def offset(cls, offset: int) -> StartFrom:
        return cls("offset", float(offset))

    @classmethod
    def time(cls, epoch_seconds: float) -> StartFrom:
        return cls("time", float(epoch_seconds))


@dataclass(frozen=True)
class ConsumerOptions:
    """How a ``BatchConsumer`` reads, retries and holds back.

    Args:
        group: the consumer group (Kafka group id / NATS durable name); processes with the same group
            share the work. 1-128 letters, digits, ``_`` or ``-``. Required.
        max_batch_size: most messages handed to the handler at once, 1-1,000,000 (default 10,000).
        max_wait: longest wait in seconds for a batch to fill before a partial batch is handled,
            0.001-60 (default 0.1).
        max_batch_bytes: most payload bytes fetched in one batch, >= 1,024 (default 64 MiB). Together with
            ``max_batch_size`` this bounds what is in flight: the runtime holds one batch being handled and
            the client's prefetch buffer, which is capped at ``max_buffered_bytes``.
        max_buffered_bytes: the client's prefetch budget ahead of the handler, >= 1,024 (default 64 MiB).
            On Kafka it is librdkafka's ``queued.max.messages.kbytes`` (payload bytes); the queue also stops
            at two batches of messages (at least 100,000), whichever comes first, and overshoots by at
            most one fetch (``fetch.max.bytes``: 1/64 of this, 1-50 MiB of compressed batches). librdkafka
            adds a few hundred bytes per queued message, so with small events the count binds: the whole
            consumer process stays near 140 MB RSS, flat over 10M events (tansu, 4 partitions). Override
            these in ``kafka_config`` to trade memory for throughput or back. On NATS the look-ahead is
            one batch (``max_batch_bytes``).
        retry_attempts: how many times a failing handler is retried before the batch is parked,
            0-1,000 (default 5).
        retry_backoff: first retry delay in seconds, doubled per attempt, 0-60 (default 0.1).
        retry_backoff_max: cap on the retry delay in seconds, >= retry_backoff (default 5.0).
        parked_retry_interval: how often a parked batch is tried again, in seconds, 0.01-3,600
            (default 30.0). The consumer stays unhealthy and reads nothing else until it succeeds.
        session_timeout: seconds before the broker gives a silent member's work to others
            (Kafka ``session.timeout.ms``; NATS ``ack_wait``), 1-300 (default 10.0).
        start: where a group with no stored position starts (default ``StartFrom.earliest()``).
        dead_letter: send messages that fail to decode or validate to ``<topic>.dlq`` (default True);
            when False such a message stops the consumer like a handler failure that never heals.
    """

    group: str
    max_batch_size: int = 10_000
    max_wait: float = 0.1
    max_batch_bytes: int = 64 * 1024 * 1024
    max_buffered_bytes: int = 64 * 1024 * 1024
    retry_attempts: int = 5
    retry_backoff: float = 0.1
    retry_backoff_max: float = 5.0
    parked_retry_interval: float = 30.0
    session_timeout: float = 10.0
    start: StartFrom = StartFrom()
    dead_letter: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.group, str) or not _GROUP.match(self.group):
            raise ConfigError(f"ConsumerOptions.group must be 1-128 of [A-Za-z0-9_-], got {self.group!r}")
        _int_in("max_batch_size", self.max_batch_size, 1, 1_000_000)
        _float_in("max_wait", self.max_wait, 0.001, 60.0)
        _int_in("max_batch_bytes", self.max_batch_bytes, 1024, 2**40)
        _int_in("max_buffered_bytes", self.max_buffered_bytes, 1024, 2**40)
        _int_in("retry_attempts", self.retry_attempts, 0, 1000)
        _float_in("retry_backoff", self.retry_backoff, 0.0, 60.0)
        _float_in("retry_backoff_max", self.retry_backoff_max, self.retry_backoff, 3600.0)
        _float_in("parked_retry_interval", self.parked_retry_interval, 0.01, 3600.0)
        _float_in("session_timeout", self.session_timeout, 1.0, 300.0)
        if not isinstance(self.start, StartFrom):
            raise ConfigError(f"ConsumerOptions.start must be a StartFrom, got {self.start!r}")

    def backoff(self, attempt: int) -> float:
        """Delay in seconds before retry number ``attempt`` (1-based)."""
        return float(min(self.retry_backoff * 2.0 ** (attempt - 1), self.retry_backoff_max))


def _int_in(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"ConsumerOptions.{name} must be an int in [{low}, {high}], got {value!r}")


def _float_in(name: str, value: object, low: float, high: float) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise ConfigError(f"ConsumerOptions.{name} must be a number in [{low}, {high}], got {value!r}")
