"""The batch consumer runtime, driven through an in-memory source (pure logic: order of steps, retries,
parking, dead letters, stale batches, SIGTERM). The real-broker paths are in test_kafka/test_jetstream."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest
from conftest import Install

from quills.errors import ConfigError, PublishError
from quills.streams import (
    Backbone,
    Batch,
    ConsumerOptions,
    DeadLetter,
    Fetched,
    NatsClaim,
    PositionLoader,
    SqliteSink,
    Topic,
    pack,
)

TOPIC = Topic("t", Install)
encode = msgspec.json.encode


class FakeSource:
    """Hands out prepared batches, records acks and rejects, then stops the consumer when empty."""

    def __init__(self, batches: list[list[bytes]], *, redelivered: bool = False) -> None:
        self.batches = batches
        self.redelivered = redelivered
        self.acked: list[list[int]] = []
        self.rejected = 0
        self.closed = False
        self.next_seq = 1
        self.on_empty: Any = None

    async def fetch(self) -> Fetched | None:
        await asyncio.sleep(0.001)  # a real fetch waits on the network and lets signals in
        if not self.batches:
            if self.on_empty:
                self.on_empty()
            return None
        values = self.batches.pop(0)
        seqs = list(range(self.next_seq, self.next_seq + len(values)))
        self.next_seq += len(values)
        return Fetched(
            values=values,
            locate=lambda i: (0, seqs[i]),
            claim=NatsClaim("S", seqs),
            nbytes=sum(map(len, values)),
            has_redeliveries=self.redelivered,
            token=seqs,
        )

    async def ack(self, fetched: Fetched) -> None:
        self.acked.append(fetched.token)

    async def reject(self, fetched: Fetched) -> None:
        self.rejected += 1

    def lag(self) -> int | None:
        return len(self.batches)

    async def close(self) -> None:
        self.closed = True


class FakeBackbone(Backbone):
    def __init__(self, source: FakeSource, *, dlq_failures: int = 0) -> None:
        self.url = "fake://"
        self.source = source
        self.published: dict[str, list[bytes]] = {}
        self.dlq_failures = dlq_failures

    async def ensure_topic(self, name: str, *, partitions: int = 1) -> None:
        self.published.setdefault(name, [])

    async def publish_raw(
        self, name: str, values: Sequence[bytes], keys: Sequence[bytes | None] | None = None
    ) -> int:
        if self.dlq_failures:
            self.dlq_failures -= 1
            raise PublishError("broker down")
        self.published.setdefault(name, []).extend(values)
        return len(values)

    async def open_source(
        self, topic: Topic[Any], options: ConsumerOptions, positions: PositionLoader | None
    ) -> Any:
        return self.source

    async def close(self) -> None:
        pass


def ev(i: int) -> bytes:
    return encode(Install(id=i, app_id=f"a{i % 3}"))


def run(backbone: FakeBackbone, handler: Any, options: ConsumerOptions, **kw: Any) -> Any:
    consumer = backbone.consumer(TOPIC, handler, options, **kw)
    backbone.source.on_empty = consumer.stop
    asyncio.run(asyncio.wait_for(consumer.run(handle_signals=False), 30))
    return consumer


FAST = {"retry_backoff": 0.001, "retry_backoff_max": 0.002}


def test_batches_are_acked_only_after_the_handler_returned() -> None:
    source = FakeSource([[ev(0), ev(1)], [ev(2)]])
    seen: list[tuple[int, int]] = []

    def handle(batch: Batch[Install]) -> None:
        seen.append((len(batch), len(source.acked)))

    consumer = run(FakeBackbone(source), handle, ConsumerOptions(group="g"))
    assert seen == [(2, 0), (1, 1)]
    assert source.acked == [[1, 2], [3]] and source.closed
    snap = consumer.snapshot()
    assert (snap.batches, snap.messages, snap.batch_size_max, snap.last_batch_size) == (2, 3, 2, 1)
    assert snap.is_healthy and not snap.is_running and snap.processing_seconds_total > 0


def test_an_async_handler_is_awaited() -> None:
    source = FakeSource([[ev(0)]])
    got: list[int] = []

    async def handle(batch: Batch[Install]) -> None:
        await asyncio.sleep(0)
        got.extend(m.id for m in batch)

    run(FakeBackbone(source), handle, ConsumerOptions(group="g"))
    assert got == [0] and source.acked == [[1]]


def test_a_failing_handler_is_retried_with_backoff_until_it_succeeds() -> None:
    source = FakeSource([[ev(0)]])
    calls = 0

    def flaky(batch: Batch[Install]) -> None:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError("db away")

    consumer = run(FakeBackbone(source), flaky, ConsumerOptions(group="g", **FAST))
    snap = consumer.snapshot()
    assert calls == 3 and source.acked == [[1]]
    assert (snap.handler_failures, snap.retries, snap.is_healthy) == (2, 2, True)
    assert "db away" in snap.last_error


def test_past_the_retry_limit_the_batch_is_parked_unhealthy_and_never_skipped() -> None:
    source = FakeSource([[ev(0)], [ev(1)]])
    healthy_while_parked: list[bool] = []
    calls = 0

    async def scenario() -> Any:
        def broken(batch: Batch[Install]) -> None:
            nonlocal calls
            calls += 1
            if calls > 2:  # retries exhausted: the consumer is parked now
                healthy_while_parked.append(consumer.snapshot().is_healthy)
            if calls < 6:
                raise ValueError("bug")

        backbone = FakeBackbone(source)
        options = ConsumerOptions(group="g", retry_attempts=1, parked_retry_interval=0.01, **FAST)
        consumer = backbone.consumer(TOPIC, broken, options)
        source.on_empty = consumer.stop
        await asyncio.wait_for(consumer.run(handle_signals=False), 30)
        return consumer

    consumer = asyncio.run(scenario())
    assert healthy_while_parked[0] is False
    assert source.acked == [[1], [2]], "the parked batch is handled before the next one"
    assert consumer.snapshot().is_healthy and not consumer.snapshot().is_parked


def test_stopping_while_parked_leaves_the_batch_unacked() -> None:
    source = FakeSource([[ev(0)]])

    async def scenario() -> Any:
        def broken(batch: Batch[Install]) -> None:
            raise ValueError("bug")

        options = ConsumerOptions(group="g", retry_attempts=0, parked_retry_interval=60)
        consumer = FakeBackbone(source).consumer(TOPIC, broken, options)
        task = asyncio.create_task(consumer.run(handle_signals=False))
        for _ in range(5_000):
            if consumer.snapshot().is_parked:
                break
            await asyncio.sleep(0.001)
        snap = consumer.snapshot()
        consumer.stop()
        await asyncio.wait_for(task, 5)
        return snap

    snap = asyncio.run(scenario())
    assert snap.is_parked and not snap.is_healthy and snap.last_error == "ValueError: bug"
    assert source.acked == [] and source.closed


def test_undecodable_messages_are_dead_lettered_with_place_and_reason_and_the_rest_handled() -> None:
    source = FakeSource([[ev(0), b"{oops", encode({"id": 2}), ev(3)]])
    backbone = FakeBackbone(source, dlq_failures=1)
    got: list[int] = []
    consumer = run(backbone, lambda b: got.extend(m.id for m in b), ConsumerOptions(group="g", **FAST))
    dead = [msgspec.json.decode(d, type=DeadLetter) for d in backbone.published["t.dlq"]]
    assert got == [0, 3]
    assert [(d.payload, d.offset, d.partition, d.group) for d in dead] == [
        (b"{oops", 2, 0, "g"),
        (b'{"id":2}', 3, 0, "g"),
    ]
    assert "app_id" in dead[1].reason
    snap = consumer.snapshot()
    assert snap.dlq_messages == 2 and snap.retries == 1, "a failed DLQ publish is retried, not skipped"
    assert source.acked == [[1, 2, 3, 4]]


def test_packed_messages_reach_the_handler_one_by_one_in_order_and_count_as_messages() -> None:
    packed = pack([ev(1), ev(2), ev(3)], max_count=2)
    source = FakeSource([[ev(0), *packed, ev(4)]])
    got: list[int] = []
    consumer = run(FakeBackbone(source), lambda b: got.extend(m.id for m in b), ConsumerOptions(group="g"))
    assert len(packed) == 2 and got == [0, 1, 2, 3, 4]
    assert consumer.snapshot().messages == 5
    assert source.acked == [[1, 2, 3, 4]], "positions stay per log message"


def test_packed_messages_after_batches_of_single_ones_are_still_flattened() -> None:
    # The consumer reads with the schema's plain decoder until a pack shows up: the first pack, a later
    # batch with a bad single message, and single messages after the packs must all come out right.
    source = FakeSource(
        [[ev(0), ev(1)], [ev(2), b"{oops", ev(3)], [ev(4), *pack([ev(5), ev(6)])], [ev(7)], pack([ev(8)])]
    )
    backbone = FakeBackbone(source)
    got: list[int] = []
    consumer = run(backbone, lambda b: got.extend(m.id for m in b), ConsumerOptions(group="g"))
    assert got == list(range(9))
    assert [msgspec.json.decode(d, type=DeadLetter).payload for d in backbone.published["t.dlq"]] == [
        b"{oops"
    ]
    assert consumer.snapshot().messages == 9


def test_only_the_bad_message_of_a_packed_message_is_dead_lettered() -> None:
    bad = encode({"id": 7})  # valid JSON, but no app_id
    (mixed,) = pack([ev(1), bad, ev(3)])
    source = FakeSource([[ev(0), mixed, b"[{oops", ev(4)]])
    backbone = FakeBackbone(source)
    got: list[int] = []
    consumer = run(backbone, lambda b: got.extend(m.id for m in b), ConsumerOptions(group="g"))
    dead = [msgspec.json.decode(d, type=DeadLetter) for d in backbone.published["t.dlq"]]
    assert got == [0, 1, 3, 4]
    assert [(d.payload, d.offset) for d in dead] == [(bad, 2), (b"[{oops", 3)]
    assert "message 1 of a packed message" in dead[0].reason and "app_id" in dead[0].reason
    assert consumer.snapshot().dlq_messages == 2


class Point(msgspec.Struct, array_like=True):
    x: int


def test_an_array_like_topic_takes_single_messages_and_refuses_to_pack() -> None:
    topic = Topic("points", Point)
    assert not topic.packable and topic.any_decoder.decode(b"[1]") == Point(1)
    backbone = FakeBackbone(FakeSource([]))
    with pytest.raises(ConfigError, match="array_like"):
        asyncio.run(backbone.publish_many(topic, [Point(1)], pack=True))


def test_publish_many_with_pack_sends_each_keys_messages_packed_and_counts_messages() -> None:
    backbone = FakeBackbone(FakeSource([]))
    sent = [Install(id=i, app_id=f"a{i % 2}") for i in range(5)]
    n = asyncio.run(backbone.publish_many(TOPIC, sent, key=lambda m: m.app_id, pack=True))
    decode = msgspec.json.Decoder(list[Install]).decode
    assert n == 5 and [[m.id for m in decode(p)] for p in backbone.published["t"]] == [[0, 2, 4], [1, 3]]


def test_a_stale_batch_is_rejected_not_counted_and_not_retried(tmp_path: Path) -> None:
    sink: SqliteSink[Any] = SqliteSink(tmp_path / "s.db")
    sink.commit("g", None, NatsClaim("S", [1]))  # another member stored sequence 1 already
    source = FakeSource([[ev(0), ev(1)], [ev(2)]])
    consumer = run(FakeBackbone(source), lambda b: None, ConsumerOptions(group="g"), sink=sink)
    snap = consumer.snapshot()
    assert source.rejected == 1 and source.acked == [[3]]
    assert (snap.stale_batches, snap.handler_failures, snap.batches) == (1, 0, 1)
    assert sink.positions("g") == {"S": "[[1,1],[3,3]]"}


def test_redelivered_messages_already_in_the_sink_are_not_handled_again(tmp_path: Path) -> None:
    sink: SqliteSink[Any] = SqliteSink(tmp_path / "s.db")
    sink.commit("g", None, NatsClaim("S", [1, 2]))
    source = FakeSource([[ev(0), ev(1), ev(2)]], redelivered=True)
    got: list[int] = []
    run(FakeBackbone(source), lambda b: got.extend(m.id for m in b), ConsumerOptions(group="g"), sink=sink)
    assert got == [2]
    assert source.acked == [[1, 2, 3]]
    assert sink.positions("g") == {"S": "[[1,3]]"}


def test_sigterm_lets_the_current_batch_finish_and_commit_then_run_returns() -> None:
    source = FakeSource([[ev(0)], [ev(1)], [ev(2)]])
    handled: list[int] = []

    def handle(batch: Batch[Install]) -> None:
        if not handled:
            os.kill(os.getpid(), signal.SIGTERM)
        handled.extend(m.id for m in batch)

    async def scenario() -> None:
        consumer = FakeBackbone(source).consumer(TOPIC, handle, ConsumerOptions(group="g"))
        await asyncio.wait_for(consumer.run(), 10)

    asyncio.run(scenario())
    assert handled == [0] and source.acked == [[1]] and source.closed
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


@pytest.mark.parametrize("handler", [None, 42])
def test_a_handler_that_is_not_callable_is_a_config_error(handler: Any) -> None:
    from quills.errors import ConfigError

    with pytest.raises(ConfigError, match="callable"):
        FakeBackbone(FakeSource([])).consumer(TOPIC, handler, ConsumerOptions(group="g"))
