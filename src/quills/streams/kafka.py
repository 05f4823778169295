"""The Kafka backend (confluent-kafka): batched idempotent producer, batch consumer in a group.

Per-key order: the producer hashes keys with ``murmur2_random`` (what Java clients use), so one key always
lands in one partition, and a partition is read by one member of a group at a time, in order.
Work sharing: a group's members split the partitions (librdkafka's eager range/round-robin assignment);
more members than partitions leaves some idle.
"""

from __future__ import annotations

import asyncio
import threading
from bisect import bisect_right
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import accumulate, repeat
from typing import Any, cast

from confluent_kafka import (
    OFFSET_END,
    OFFSET_INVALID,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]
from confluent_kafka.cimpl import NewTopic

from quills.errors import ConfigError, PublishError, StreamError
from quills.streams.backbone import Backbone, Fetched, PositionLoader
from quills.streams.gcpause import gc_paused
from quills.streams.options import ConsumerOptions
from quills.streams.position import KafkaClaim
from quills.streams.topic import Topic

__all__ = ("KafkaBackbone",)

# Unbound accessors for map(); a consumed message (not an error) always has a partition and an offset.
_value = cast(Callable[[Message], bytes | None], Message.value)
_partition = cast(Callable[[Message], int], Message.partition)
_offset = cast(Callable[[Message], int], Message.offset)
_error = cast(Callable[[Message], KafkaError | None], Message.error)

_PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "compression.type": "lz4",
    "linger.ms": 5,
    "batch.num.messages": 10_000,
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
    "partitioner": "murmur2_random",
    "delivery.report.only.error": True,
}


def _prefetch_config(options: ConsumerOptions, extra: dict[str, Any]) -> dict[str, Any]:
    """librdkafka's prefetch: what the consumer holds ahead of the handler, and how it refills.

    The queue stops fetching at ``queued.min.messages`` messages (2 batches, at least 100k) or
    ``max_buffered_bytes`` of payload, whichever comes first, and then overshoots by at most one fetch
    response (``fetch.max.bytes`` of compressed batches, 1/64 of the budget, 1-50 MiB). librdkafka keeps
    each message's decompressed batch and a few hundred bytes of bookkeeping alive until the message is
    handed over, so small fetches are what keeps the high-water mark, and with it RSS, low and flat.
    Throughput comes from refilling early instead of from depth: a queue over its bound backs off
    ``fetch.queue.backoff.ms`` (default 1 s, which left the consumer idle most of each second once it
    had drained the queue) before fetching again; 10 ms keeps a fetch in flight while the queue drains.
    librdkafka refuses a ``fetch.max.bytes`` below ``message.max.bytes``, so a larger one in ``extra``
    raises it.
    """
    fetch_max = min(max(options.max_buffered_bytes // 64, 1 << 20), 50 << 20)
    fetch_max = max(fetch_max, int(extra.get("message.max.bytes", 0)))
    return {
        "queued.min.messages": max(100_000, options.max_batch_size * 2),
        "queued.max.messages.kbytes": max(1, options.max_buffered_bytes // 1024),
        "fetch.max.bytes": fetch_max,
        "max.partition.fetch.bytes": max(64 << 10, fetch_max // 4),
        "fetch.queue.backoff.ms": 10,
        "fetch.wait.max.ms": 10,
    }


def _edge_indices(partitions: bytes | list[int]) -> dict[int, tuple[int, int]]:
    """Per partition, the index of its first and of its last message in a read.

    Index scans run in C, a few passes whatever the read's size; over ``bytes`` (partitions below 256)
    they are memchr-fast, and the partitions present are found by deleting the ones found so far.
    """
    if isinstance(partitions, bytes):
        present: list[int] = []
        rest = partitions
        while rest:
            present.append(rest[0])
            rest = rest.translate(None, bytes(present))
        return {p: (partitions.find(p), partitions.rfind(p)) for p in present}
    backwards = partitions[::-1]
    end = len(partitions) - 1
    return {p: (partitions.index(p), end - backwards.index(p)) for p in set(partitions)}


class _Read:
    """The messages of one consume() call, without their ``Message`` objects: payloads and places.

    ``partitions`` holds each message's partition (``bytes`` when all are below 256, else a list);
    ``firsts``/``lasts`` each partition's first and last offset. ``offsets`` holds each message's offset
    only when some partition's offsets have gaps (compacted topics, transaction markers); without gaps,
    the usual case, an offset follows from its partition's first one and none is kept per message.
    """

    __slots__ = ("firsts", "lasts", "nbytes", "offsets", "partitions", "values")

    def __init__(
        self,
        values: list[bytes],
        nbytes: int,
        partitions: bytes | list[int],
        firsts: dict[int, int],
        lasts: dict[int, int],
        offsets: list[int] | None,
    ) -> None:
        self.values = values
        self.nbytes = nbytes
        self.partitions = partitions
        self.firsts = firsts
        self.lasts = lasts
        self.offsets = offsets

    @classmethod
    def of(cls, values: list[bytes], nbytes: int, partitions: bytes | list[int], offsets: list[int]) -> _Read:
        edges = _edge_indices(partitions)
        firsts = {p: offsets[first] for p, (first, _last) in edges.items()}
        lasts = {p: offsets[last] for p, (_first, last) in edges.items()}
        return cls(values, nbytes, partitions, firsts, lasts, offsets)

    def offset_list(self) -> list[int]:
        """Every message's offset."""
        if self.offsets is not None:
            return self.offsets
        following = dict(self.firsts)
        offsets = []
        for p in self.partitions:
            offsets.append(following[p])
            following[p] += 1
        return offsets

    def locate(self, i: int) -> tuple[int, int]:
        """The partition and offset of message ``i`` (for a dead letter)."""
        p = self.partitions[i]
        if self.offsets is not None:
            return p, self.offsets[i]
        return p, self.firsts[p] + self.partitions[:i].count(p)

    def split(self, cut: int, head_bytes: int) -> tuple[_Read, _Read]:
        """The first ``cut`` messages (``head_bytes`` of payload) and the rest."""
        offsets = self.offset_list()
        values, partitions = self.values, self.partitions
        return (
            _Read.of(values[:cut], head_bytes, partitions[:cut], offsets[:cut]),
            _Read.of(values[cut:], self.nbytes - head_bytes, partitions[cut:], offsets[cut:]),
        )


class KafkaBackbone(Backbone):
    """A Kafka (or Kafka-protocol) cluster at ``bootstrap`` (``host:port[,host:port...]``).

    ``producer_config``/``consumer_config`` add or override librdkafka settings (for TLS/SASL, say).
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        producer_config: dict[str, Any] | None = None,
        consumer_config: dict[str, Any] | None = None,
    ) -> None:
        if not bootstrap:
            raise ConfigError("KafkaBackbone needs bootstrap servers, e.g. kafka://127.0.0.1:9092")
        self.url = f"kafka://{bootstrap}"
        self.bootstrap = bootstrap
        self._consumer_config = dict(consumer_config or {})
        self._failed: list[str] = []
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                **_PRODUCER_DEFAULTS,
                "on_delivery": self._on_delivery,
                **(producer_config or {}),
            }
        )
        self._produce_lock = threading.Lock()
        self._admin: AdminClient | None = None

    async def ensure_topic(self, name: str, *, partitions: int = 1) -> None:
        if partitions < 1:
            raise ConfigError(f"partitions must be >= 1, got {partitions}")
        await asyncio.to_thread(self._ensure_topic, name, partitions)

    def _admin_client(self) -> AdminClient:
        # Made on first use: a backbone that only publishes and consumes never needs one.
        if self._admin is None:
            self._admin = AdminClient({"bootstrap.servers": self.bootstrap})
        return self._admin

    def _ensure_topic(self, name: str, partitions: int) -> None:
        existing = self._admin_client().list_topics(timeout=10).topics
        if name in existing:
            return
        futures = self._admin_client().create_topics([NewTopic(name, num_partitions=partitions)])
        try:
            futures[name].result(timeout=30)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise StreamError(f"could not create Kafka topic {name!r}: {exc}") from exc

    async def publish_raw(
        self, name: str, values: Sequence[bytes], keys: Sequence[bytes | None] | None = None
    ) -> int:
        if not values:
            return 0
        return await asyncio.to_thread(self._produce_all, name, values, keys)

    def _produce_all(self, name: str, values: Sequence[bytes], keys: Sequence[bytes | None] | None) -> int:
        producer = self._producer
        produce = producer.produce
        # One publish at a time: flush() waits for every queued message, ours and any concurrent caller's,
        # and the failures collected by _on_delivery are this call's.
        with self._produce_lock:
            failed: list[str] = []
            self._failed = failed
            pairs = zip(values, repeat(None)) if keys is None else zip(values, keys, strict=True)
            for value, key in pairs:
                try:
                    produce(name, value, key)
                except BufferError:
                    # The local queue is full: serve delivery reports until there is room.
                    while True:
                        producer.poll(0.05)
                        try:
                            produce(name, value, key)
                            break
                        except BufferError:
                            continue
            remaining = producer.flush(60)
        if remaining or failed:
            raise PublishError(
                f"{len(failed) + remaining} of {len(values)} messages to {name!r} were not acknowledged"
                + (f": {failed[0]}" if failed else " within 60 s")
            )
        return len(values)

    def _on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        # With delivery.report.only.error librdkafka reports failures only: no Python call per message.
        if err is not None:
            self._failed.append(str(err))

    async def log_bounds(self, name: str) -> dict[str, tuple[int, int]]:
        return await asyncio.to_thread(self._log_bounds, name)

    def _log_bounds(self, name: str) -> dict[str, tuple[int, int]]:
        admin = self._admin_client()
        try:
            meta = admin.list_topics(name, timeout=10).topics.get(name)
            if meta is None or meta.error is not None or not meta.partitions:
                raise StreamError(f"Kafka topic {name!r} does not exist")
            parts = [TopicPartition(name, p) for p in sorted(meta.partitions)]
            ends: dict[str, list[int]] = {f"{name}/{tp.partition}": [] for tp in parts}
            for spec in (OffsetSpec.earliest(), OffsetSpec.latest()):  # type: ignore[no-untyped-call]
                futures = admin.list_offsets(dict.fromkeys(parts, spec), request_timeout=10)
                for tp, future in futures.items():
                    ends[f"{name}/{tp.partition}"].append(future.result(timeout=15).offset)
        except KafkaException as exc:
            raise StreamError(f"cannot read the offsets of Kafka topic {name!r}: {exc}") from exc
        # The high watermark is the next offset to be written: the last held is one less.
        return {key: (low, high - 1) for key, (low, high) in ends.items()}

    async def open_source(
        self, topic: Topic[Any], options: ConsumerOptions, positions: PositionLoader | None
    ) -> KafkaSource:
        source = KafkaSource(self.bootstrap, topic.wire_name, options, positions, self._consumer_config)
        await source.start()
        return source

    async def close(self) -> None:
        await asyncio.to_thread(self._producer.flush, 30)
        # Without close() librdkafka's threads live on until garbage collection, retrying the brokers.
        await asyncio.to_thread(self._producer.close)


class KafkaSource:
    """A group member on one topic.

    Every blocking librdkafka call (consume, which also runs the rebalance callbacks, seek, the final
    commit and close) runs on one worker thread. The per-batch async commit and the cached watermark
    reads only enqueue or read under librdkafka's locks, so they run on the event loop: one thread hop
    less per batch.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        options: ConsumerOptions,
        positions: PositionLoader | None,
        extra: dict[str, Any],
    ) -> None:
        self.topic = topic
        self.options = options
        self._positions = positions
        self._expected: dict[int, int | None] = {}
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"quills-kafka-{topic}")
        session_ms = int(options.session_timeout * 1000)
        self._config: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "group.id": options.group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "latest" if options.start.kind == "latest" else "earliest",
            "session.timeout.ms": session_ms,
            "heartbeat.interval.ms": max(100, session_ms // 4),
            "max.poll.interval.ms": max(session_ms, 300_000),
            **_prefetch_config(options, extra),
            **extra,
        }
        self._consumer: Consumer | None = None
        self._high: dict[int, int] = {}
        self._next: dict[int, int] = {}
        self._acked: dict[int, int] = {}
        self._ahead: asyncio.Future[Any] | None = None
        # The tail of a read past max_batch_bytes, the next batch; only touched on the worker thread.
        self._carry: _Read | None = None
        self._closing = False

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def start(self) -> None:
        await self._call(self._start)

    def _start(self) -> None:
        self._consumer = Consumer(self._config)
        self._consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        stored: dict[str, str] = {}
        if self._positions is not None:
            stored = self._positions([f"{self.topic}/{tp.partition}" for tp in partitions])
        start = self.options.start
        committed: dict[int, int] = {}
        if start.kind in ("offset", "time"):
            committed = {tp.partition: tp.offset for tp in consumer.committed(partitions, timeout=30)}
            if start.kind == "time":
                query = [
                    TopicPartition(self.topic, tp.partition, int(start.value * 1000)) for tp in partitions
                ]
                by_time = {tp.partition: tp.offset for tp in consumer.offsets_for_times(query, timeout=30)}
        for tp in partitions:
            value = stored.get(f"{self.topic}/{tp.partition}")
            if value is not None:
                tp.offset = int(value)
                self._expected[tp.partition] = int(value)
                continue
            self._expected[tp.partition] = None
            if committed.get(tp.partition, OFFSET_INVALID) < 0:
                if start.kind == "offset":
                    tp.offset = int(start.value)
                elif start.kind == "time":
                    found = by_time.get(tp.partition, -1)
                    tp.offset = found if found >= 0 else OFFSET_END
        consumer.assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Read but not handled, so not committed: the next owner (maybe this member) reads it again.
        self._carry = None
        for tp in partitions:
            self._expected.pop(tp.partition, None)
            self._high.pop(tp.partition, None)
            self._next.pop(tp.partition, None)
            self._acked.pop(tp.partition, None)
        consumer.unassign()

    def _fetch(self) -> Fetched | None:
        read, self._carry = self._carry, None
        if read is None:
            read = self._read()
            if read is None:
                return None
        if read.nbytes > self.options.max_batch_bytes and len(read.values) > 1:
            # Over max_batch_bytes: hand over the head now, the rest as the next batch (no second read).
            ends = list(accumulate(map(len, read.values)))
            cut = max(1, bisect_right(ends, self.options.max_batch_bytes))
            read, self._carry = read.split(cut, ends[cut - 1])
        # Batches are stored in fetch order, so each one expects what the previous one will store.
        expected = self._expected
        claim = KafkaClaim(self.topic, {p: (expected.get(p), off + 1) for p, off in read.lasts.items()})
        for p, off in read.lasts.items():
            if p in expected:
                expected[p] = off + 1
            self._next[p] = off + 1
        return Fetched(
            values=read.values,
            locate=read.locate,
            claim=claim,
            nbytes=read.nbytes,
            has_redeliveries=False,
            token=(claim, read.firsts),
        )

    def _read(self) -> _Read | None:
        """One read: up to max_batch_size messages, waiting at most max_wait for them."""
        consumer = self._consumer
        if consumer is None:
            raise StreamError("the Kafka source is closed")
        # A batch is ~10k Message objects, which the cyclic GC tracks. Left alive through collections, they
        # get promoted to the oldest generation and every full collection walks them again: about a
        # third of the consumer's CPU. Pausing the collector while they exist, and keeping only their
        # bytes and ints (untracked), means the collector never sees them; it catches up once re-enabled.
        n = self.options.max_batch_size
        with gc_paused():
            # What librdkafka has queued, without waiting: under load (the prefetch full) a whole batch.
            msgs = consumer.consume(n, 0)
            if len(msgs) == n:
                return self._take(msgs)
        # Fewer queued than a batch: wait for more with the collector on. Pauses nest across threads, and a
        # service runs a consumer per topic, mostly idle: pausing through their waits would keep the
        # collector off for the whole process. Messages that arrive meanwhile are few, or the first
        # batch after a quiet spell.
        msgs += consumer.consume(n - len(msgs), self.options.max_wait)
        if not msgs:
            return None
        with gc_paused():
            return self._take(msgs)

    def _take(self, msgs: list[Message]) -> _Read | None:
        """The payloads and places of consumed messages (with the collector paused, see _read)."""
        if any(map(_error, msgs)):
            msgs[:] = self._without_errors(msgs)
            if not msgs:
                return None
        # map() over the method descriptors: a C loop, ~3x cheaper per message than a comprehension.
        raw = list(map(_value, msgs))
        partitions: bytes | list[int]
        try:
            partitions = bytes(map(_partition, msgs))
        except ValueError:  # a partition number over 255
            partitions = list(map(_partition, msgs))
        edges = _edge_indices(partitions)
        firsts = {p: _offset(msgs[first]) for p, (first, _last) in edges.items()}
        lasts = {p: _offset(msgs[last]) for p, (_first, last) in edges.items()}
        # Offsets rise within a partition, so they run without gaps exactly when each partition's span
        # holds as many offsets as the read has messages.
        gapless = sum(lasts[p] - firsts[p] + 1 for p in firsts) == len(msgs)
        offsets = None if gapless else list(map(_offset, msgs))
        msgs.clear()  # the Message objects go while the collector is still paused
        values = cast(list[bytes], raw)
        try:
            nbytes = sum(map(len, values))
        except TypeError:
            # A message without a value (a tombstone) is empty bytes, which fails to decode: a dead letter.
            # Checked this way because the sum, needed anyway, is the only pass over the values.
            values = [v or b"" for v in raw]
            nbytes = sum(map(len, values))
        return _Read(values, nbytes, partitions, firsts, lasts, offsets)

    def _without_errors(self, msgs: list[Message]) -> list[Message]:
        kept = []
        for m in msgs:
            err = m.error()
            if err is None:
                kept.append(m)
            elif not (err.code() == KafkaError._PARTITION_EOF or err.retriable()):
                raise StreamError(f"Kafka consume error on {self.topic!r}: {err}")
        return kept

    async def fetch(self) -> Fetched | None:
        # One fetch runs ahead on the worker thread while the handler works on the previous batch.
        ahead = self._ahead if self._ahead is not None else self._submit(self._fetch)
        self._ahead = None
        fetched: Fetched | None = await ahead
        if not self._closing:
            self._ahead = self._submit(self._fetch)
        return fetched

    def _submit(self, fn: Any, *args: Any) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def ack(self, fetched: Fetched) -> None:
        # Not on the worker thread: it would queue behind the fetch running ahead.
        self._ack(fetched.token[0])

    def _ack(self, claim: KafkaClaim) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        offsets = []
        for p, (_expected, next_offset) in claim.ranges.items():
            self._acked[p] = next_offset
            offsets.append(TopicPartition(self.topic, p, next_offset))
        # The sink (when there is one) holds the truth; the broker's offsets serve lag and sink-less groups.
        consumer.commit(offsets=offsets, asynchronous=True)

    async def reject(self, fetched: Fetched) -> None:
        firsts: dict[int, int] = dict(fetched.token[1])
        if self._ahead is not None:
            # The batch fetched ahead was built on the same stale expectations: drop it and read again.
            ahead: Fetched | None = await self._ahead
            self._ahead = None
            if ahead is not None:
                for p, off in ahead.token[1].items():
                    firsts[p] = min(off, firsts.get(p, off))
        await self._call(self._resync, firsts)

    def _resync(self, firsts: dict[int, int]) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        carried, self._carry = self._carry, None
        if carried is not None:
            for p, off in carried.firsts.items():
                firsts[p] = min(off, firsts.get(p, off))
        assigned = consumer.assignment()
        stored = (
            {}
            if self._positions is None
            else self._positions([f"{self.topic}/{tp.partition}" for tp in assigned])
        )
        for tp in assigned:
            value = stored.get(f"{self.topic}/{tp.partition}")
            self._expected[tp.partition] = None if value is None else int(value)
            # Without a stored position, go back to the first message of the dropped batches: skipping
            # them would lose them.
            offset = int(value) if value is not None else firsts.get(tp.partition)
            if offset is not None:
                consumer.seek(TopicPartition(self.topic, tp.partition, offset))

    def lag(self) -> int | None:
        consumer = self._consumer
        if consumer is None or not self._next:
            return None
        total = 0
        for p, nxt in list(self._next.items()):
            try:
                _low, high = consumer.get_watermark_offsets(TopicPartition(self.topic, p), cached=True)
            except KafkaException:
                return None
            if high >= 0:
                total += max(0, high - nxt)
        return total

    async def close(self) -> None:
        self._closing = True
        if self._ahead is not None:
            # Fetched but never handled: not committed, so the group's next reader gets it again.
            await self._ahead
            self._ahead = None
        await self._call(self._close)
        self._thread.shutdown(wait=True)

    def _close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        if self._acked:
            offsets = [TopicPartition(self.topic, p, off) for p, off in self._acked.items()]
            try:
                consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException:
                # The async commits already sent, or a sink's positions, cover this; at worst a re-read.
                pass
        consumer.close()
