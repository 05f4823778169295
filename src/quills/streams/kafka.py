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


def _edges(partitions: list[int], offsets: list[int]) -> tuple[dict[int, int], dict[int, int]]:
    """Per partition, the first and the last offset of a batch (offsets rise within a partition).

    Index scans run in C: a few passes over the batch, whatever its size, instead of a Python loop.
    """
    firsts: dict[int, int] = {}
    last: dict[int, int] = {}
    backwards = partitions[::-1]
    end = len(partitions) - 1
    for p in set(partitions):
        firsts[p] = offsets[partitions.index(p)]
        last[p] = offsets[end - backwards.index(p)]
    return firsts, last


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
        self._carry: tuple[list[bytes], list[int], list[int], int] | None = None
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
        carried, self._carry = self._carry, None
        if carried is None:
            carried = self._read()
            if carried is None:
                return None
        values, partitions, offsets, nbytes = carried
        if nbytes > self.options.max_batch_bytes and len(values) > 1:
            # Over max_batch_bytes: hand over the head now, the rest as the next batch (no second read).
            ends = list(accumulate(map(len, values)))
            cut = max(1, bisect_right(ends, self.options.max_batch_bytes))
            self._carry = (values[cut:], partitions[cut:], offsets[cut:], nbytes - ends[cut - 1])
            values, partitions, offsets, nbytes = values[:cut], partitions[:cut], offsets[:cut], ends[cut - 1]
        firsts, last = _edges(partitions, offsets)
        # Batches are stored in fetch order, so each one expects what the previous one will store.
        expected = self._expected
        claim = KafkaClaim(self.topic, {p: (expected.get(p), off + 1) for p, off in last.items()})
        for p, off in last.items():
            if p in expected:
                expected[p] = off + 1
            self._next[p] = off + 1
        return Fetched(
            values=values,
            locate=lambda i: (partitions[i], offsets[i]),
            claim=claim,
            nbytes=nbytes,
            has_redeliveries=False,
            token=(claim, firsts),
        )

    def _read(self) -> tuple[list[bytes], list[int], list[int], int] | None:
        """One consume() call: the payloads, partitions and offsets of up to max_batch_size messages, and
        the payloads' total size."""
        consumer = self._consumer
        if consumer is None:
            raise StreamError("the Kafka source is closed")
        # A batch is ~10k Message objects, which the cyclic GC tracks. Left alive through collections, they
        # get promoted to the oldest generation and every full collection walks them again: about a
        # third of the consumer's CPU. Pausing the collector while they exist, and keeping only their
        # bytes and ints (untracked), means the collector never sees them; it catches up once re-enabled.
        with gc_paused():
            msgs = consumer.consume(self.options.max_batch_size, self.options.max_wait)
            if not msgs:
                return None
            if any(map(_error, msgs)):
                msgs = self._without_errors(msgs)
                if not msgs:
                    return None
            # map() over the method descriptors: a C loop, ~3x cheaper per message than a comprehension.
            raw = list(map(_value, msgs))
            partitions, offsets = list(map(_partition, msgs)), list(map(_offset, msgs))
            del msgs  # freed while the collector is still paused
        values = cast(list[bytes], raw)
        try:
            nbytes = sum(map(len, values))
        except TypeError:
            # A message without a value (a tombstone) is empty bytes, which fails to decode: a dead letter.
            # Checked this way because the sum, needed anyway, is the only pass over the values.
            values = [v or b"" for v in raw]
            nbytes = sum(map(len, values))
        return values, partitions, offsets, nbytes

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
            for p, off in _edges(carried[1], carried[2])[0].items():
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
