"""The NATS JetStream backend (nats-py): fast-ingest batch publish and a hand-written pull loop.

Why hand-written: nats-py's ``fetch()`` tops out near 35k msgs/s and ``publish_async`` near 40k
(backbone.md), both spending ~25 us of Python per message. Here each publish is one fast-ingest batch
(``quills.streams.jetstream_publish``: no headers, a flow acknowledgement every 500 messages, the batch's
ack at the end), and the consumer sends its own ``$JS.API.CONSUMER.MSG.NEXT`` requests to a private
inbox, keeping one request ahead of the handler.

Topics map to streams: topic ``a.b`` is stream ``Q_a_b`` (file storage, batch publishing allowed, no
storage compression: packed messages arrive zstd-compressed unless ``compression=False``, see
``quills.streams.compression``) holding subject ``a.b``.
Work sharing: a group is one durable pull consumer with explicit acks; every process of the group pulls
from it, and each message goes to one of them (redelivered to any after ``session_timeout`` unacked).
Per-key order: the stream keeps publish order, and a group with one process reads in that order; with
several processes, messages (of one key too) may be handled out of order across processes. Keys are not
sent to NATS.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, TypeVar

import msgspec
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.api import StorageType, StoreCompression, StreamConfig
from nats.js.errors import NotFoundError

from quills.errors import ConfigError, StreamError
from quills.streams.backbone import Backbone, KeyFn, PositionLoader
from quills.streams.compression import Compressor
from quills.streams.jetstream_client import DirectClient, open_client, reachable
from quills.streams.jetstream_publish import BatchPublisher
from quills.streams.jetstream_pull import NatsSource, stream_name
from quills.streams.options import ConsumerOptions
from quills.streams.topic import Topic

__all__ = ("NatsBackbone", "stream_name")

T = TypeVar("T", bound=msgspec.Struct)

_MIN_SERVER = (2, 14)  # fast-ingest batch publishing


class NatsBackbone(Backbone):
    """A NATS server with JetStream at ``url``; make one with ``await NatsBackbone.connect(url)``.

    Args:
        compression: store packed messages as zstd frames (default True; see
            ``quills.streams.compression``). Streams this backbone creates have no storage compression
            of their own either way (the server's S2 costs it more CPU than anything else it does);
            streams that already exist keep their setting.
    """

    def __init__(self, nc: DirectClient, url: str, *, owned: Any = None, compression: bool = True) -> None:
        self.url = url
        self.compression = compression
        self._nc = nc
        self._js = nc.jetstream()
        self._owned = owned  # an EmbeddedNats this backbone started and must stop
        self._ensured: set[str] = set()
        self._publisher = BatchPublisher(nc)
        self._compressor = Compressor() if compression else None

    @classmethod
    async def connect(cls, url: str, *, owned: Any = None, compression: bool = True) -> NatsBackbone:
        """Connect to ``url`` (see the class for ``compression``).

        Raises ``StreamError`` if no NATS server answers there or it is older than 2.14.
        """
        try:
            # nats-py retries a first connection as long as later reconnections (forever here), so an
            # address with no server would hang; refuse fast when nothing listens, and bound the rest.
            await reachable(url)
            nc = await asyncio.wait_for(open_client(url), 15)
        except (OSError, NatsError, TimeoutError) as exc:
            raise StreamError(f"cannot connect to NATS at {url}: {exc!r}") from exc
        version = nc.connected_server_version
        if (version.major, version.minor) < _MIN_SERVER:
            await nc.close()
            raise StreamError(
                f"the NATS server at {url} runs {version}; quills publishes in fast-ingest batches, which "
                "need nats-server >= 2.14"
            )
        backbone = cls(nc, url, owned=owned, compression=compression)
        await backbone._publisher.start()
        return backbone

    @property
    def client(self) -> Client:
        """The nats-py client (for tools and tests)."""
        return self._nc

    async def ensure_topic(self, name: str, *, partitions: int = 1) -> None:
        if partitions < 1:
            raise ConfigError(f"partitions must be >= 1, got {partitions}")
        if name in self._ensured:
            return
        stream = stream_name(name)
        try:
            info = await self._js.stream_info(stream)
            if not info.config.allow_batched:
                info.config.allow_batched = True
                await self._js.update_stream(info.config)
        except NotFoundError:
            await self._js.add_stream(
                StreamConfig(
                    name=stream,
                    subjects=[name],
                    storage=StorageType.FILE,
                    compression=StoreCompression.NONE,
                    allow_batched=True,
                )
            )
        self._ensured.add(name)

    async def publish_raw(
        self, name: str, values: Sequence[bytes], keys: Sequence[bytes | None] | None = None
    ) -> int:
        if not values:
            return 0
        await self.ensure_topic(name)
        if self._compressor is not None:
            values = self._compressor.values(values)
        return await self._publisher.publish(name, values)

    async def publish_many(
        self,
        topic: Topic[T],
        messages: Sequence[T],
        *,
        key: KeyFn | str | bytes | None = None,
        pack: bool = False,
    ) -> int:
        # As Backbone.publish_many, without computing keys: NATS streams have no partitions to pick, and
        # one stream keeps the order of everything published to it, so packs need not follow keys.
        if pack:
            return await super().publish_many(topic, messages, pack=True)
        encode = topic.encode
        return await self.publish_raw(topic.wire_name, [encode(m) for m in messages])

    async def log_bounds(self, name: str) -> dict[str, tuple[int, int]]:
        stream = stream_name(name)
        try:
            state = (await self._js.stream_info(stream)).state
        except (NatsError, OSError, TimeoutError) as exc:
            raise StreamError(f"cannot read the bounds of {name!r}: {exc!r}") from exc
        last = int(state.last_seq)
        if not state.messages:
            return {stream: (last + 1, last)}
        return {stream: (int(state.first_seq), last)}

    async def open_source(
        self, topic: Topic[Any], options: ConsumerOptions, positions: PositionLoader | None
    ) -> NatsSource:
        await self.ensure_topic(topic.wire_name)
        source = NatsSource(self._nc, topic.wire_name, options)
        await source.start(self._js)
        return source

    async def close(self) -> None:
        self._publisher.close()
        if not self._nc.is_closed:
            try:
                await self._nc.drain()
            except (NatsError, OSError, TimeoutError):
                await self._nc.close()
        if self._owned is not None:
            await asyncio.to_thread(self._owned.stop)
