"""The backbone: one API over the message log, whatever broker carries it.

``Backbone`` is the front door (publish, make consumers); each broker implements the small ``Source``
protocol that the ``BatchConsumer`` runtime drives, so batching, dead letters, retries, sinks and metrics
are written once for every backend.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import msgspec

from quills.clock import SYSTEM_CLOCK, Clock
from quills.errors import ConfigError, StreamError
from quills.streams.options import ConsumerOptions
from quills.streams.packing import pack_keyed
from quills.streams.position import Claim
from quills.streams.topic import Topic

if TYPE_CHECKING:
    from quills.streams.batch import Batch
    from quills.streams.consumer import BatchConsumer
    from quills.streams.sink import Sink

__all__ = ("Backbone", "Fetched", "PositionLoader", "Source", "KeyFn")

T = TypeVar("T", bound=msgspec.Struct)
R = TypeVar("R")

KeyFn = Callable[[Any], str | bytes]
"""Computes a message's key (messages with one key keep their order on Kafka)."""

PositionLoader = Callable[[Sequence[str]], dict[str, str]]
"""Reads stored positions for the given keys (a sink's ``positions`` bound to a group); blocking."""


@dataclass(slots=True)
class Fetched:
    """One batch of raw messages from a ``Source``.

    ``values`` are the payloads in broker order; ``locate(i)`` gives message ``i``'s partition and offset
    (NATS: partition 0 and the stream sequence); ``claim`` is what storing the batch advances;
    ``has_redeliveries`` says whether some messages may have been handled before; ``token`` belongs to the
    source (what it needs to ack).
    """

    values: list[bytes]
    locate: Callable[[int], tuple[int, int]]
    claim: Claim
    nbytes: int
    has_redeliveries: bool
    token: Any


class Source(Protocol):
    """A consumer's connection to one topic for one group; driven by ``BatchConsumer`` only."""

    async def fetch(self) -> Fetched | None:
        """The next batch (at most ``max_batch_size`` messages and ``max_batch_bytes``), or None after
        ``max_wait`` seconds with nothing to read."""
        ...

    async def ack(self, fetched: Fetched) -> None:
        """Tell the broker the batch is done (after the handler and the sink succeeded)."""
        ...

    async def reject(self, fetched: Fetched) -> None:
        """The sink refused the batch as stale: re-read positions and let the batch be delivered again."""
        ...

    def lag(self) -> int | None:
        """Messages in the topic not yet read by this member's group, if the broker says (None if not)."""
        ...

    async def close(self) -> None:
        """Commit what is done, leave the group and release the connection."""
        ...


class Backbone(abc.ABC):
    """A connection to the message log. Make one with ``quills.streams.connect(url)``."""

    url: str

    @abc.abstractmethod
    async def ensure_topic(self, name: str, *, partitions: int = 1) -> None:
        """Create broker topic ``name`` (a ``Topic.wire_name``) if it does not exist.

        ``partitions`` (>= 1, default 1) is the Kafka partition count; NATS streams have no partitions.
        """

    @abc.abstractmethod
    async def publish_raw(
        self, name: str, values: Sequence[bytes], keys: Sequence[bytes | None] | None = None
    ) -> int:
        """Publish encoded payloads to broker topic ``name``; returns once the broker acknowledged all.

        Raises ``PublishError`` if any was not acknowledged (some may then be stored, none is lost
        silently: the caller must publish again, and at-least-once consumers see duplicates at worst).
        """

    @abc.abstractmethod
    async def open_source(
        self, topic: Topic[Any], options: ConsumerOptions, positions: PositionLoader | None
    ) -> Source:
        """Join ``options.group`` on ``topic``; ``positions`` (from a sink) overrides broker positions."""

    async def log_bounds(self, name: str) -> dict[str, tuple[int, int]]:
        """What broker topic ``name`` holds now, per position key: ``(first, last)`` position.

        The keys are the ones sinks store positions under (Kafka ``<topic>/<partition>``, offsets; NATS
        the stream name, sequences), so ``position.covered_upto(stored, first) >= last`` says a group has
        stored everything the topic held at the time of the call. An empty partition or stream is
        ``(first, first - 1)``. Raises ``StreamError`` if the broker cannot tell.
        """
        raise StreamError(f"{type(self).__name__} does not report log bounds")

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush and close the connection (and stop an embedded broker this backbone started)."""

    async def publish_many(
        self,
        topic: Topic[T],
        messages: Sequence[T],
        *,
        key: KeyFn | str | bytes | None = None,
        pack: bool = False,
    ) -> int:
        """Encode ``messages`` with ``topic``'s schema and publish them; returns the count acknowledged.

        Returns only after the broker acknowledged every message, so a caller that got a result knows
        they are durable. ``key`` is a function of the message, one key for all, or None (no key).
        ``pack`` (default False) carries each key's messages in as few log messages as
        ``quills.streams.packing`` allows; consumers see the same messages either way, and the broker does
        a fraction of the work. Raises ``PublishError`` otherwise.
        """
        encode = topic.encode
        values = [encode(m) for m in messages]
        keys: list[bytes | None] | None
        if key is None:
            keys = None
        elif isinstance(key, str | bytes):
            k = key.encode() if isinstance(key, str) else key
            keys = [k] * len(values)
        else:
            keys = [_as_bytes(key(m)) for m in messages]
        if pack:
            if not topic.packable:
                raise ConfigError(f"{topic!r} has an array_like schema: its messages cannot be packed")
            values, keys = pack_keyed(values, keys if keys is not None else [None] * len(values))
            await self.publish_raw(topic.wire_name, values, keys)
            return len(messages)
        return await self.publish_raw(topic.wire_name, values, keys)

    def consumer(
        self,
        topic: Topic[T],
        handler: Callable[[Batch[T]], R | Awaitable[R]],
        options: ConsumerOptions,
        *,
        sink: Sink[R] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> BatchConsumer[T, R]:
        """A ``BatchConsumer`` of ``topic`` for ``options.group``; start it with ``await c.run()``."""
        from quills.streams.consumer import BatchConsumer

        return BatchConsumer(self, topic, handler, options, sink=sink, clock=clock)

    async def __aenter__(self) -> Backbone:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


def _as_bytes(key: str | bytes) -> bytes:
    return key.encode() if isinstance(key, str) else key
