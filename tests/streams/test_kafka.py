"""The Kafka backend against a real Kafka-protocol broker (tansu, started by the tests)."""

from __future__ import annotations

import asyncio
import gc
import time
from pathlib import Path

import pytest
from conftest import (
    Install,
    consume,
    events,
    group_crash_scenario,
    log_bounds_scenario,
    rss_growth_scenario,
    unique,
)

from quills.errors import PublishError
from quills.streams import (
    Batch,
    ConsumerOptions,
    DeadLetter,
    KafkaBackbone,
    StartFrom,
    Topic,
    connect,
)


@pytest.mark.parametrize("pack", [False, True], ids=["one-per-message", "packed"])
def test_published_messages_are_consumed_once_each_in_per_key_order(kafka_url: str, pack: bool) -> None:
    async def scenario() -> list[Install]:
        backbone = await connect(kafka_url)
        assert isinstance(backbone, KafkaBackbone)
        topic = Topic(unique("orders"), Install)
        await backbone.ensure_topic(topic.wire_name, partitions=4)
        for start in range(0, 20_000, 5_000):
            sent = events(start, start + 5_000)
            assert await backbone.publish_many(topic, sent, key=lambda e: e.app_id, pack=pack) == 5_000
        await backbone.close()
        return await consume(kafka_url, topic, 20_000, ConsumerOptions(group=unique("g"), session_timeout=2))

    got = asyncio.run(scenario())
    assert sorted(e.id for e in got) == list(range(20_000))
    last: dict[str, int] = {}
    for e in got:
        assert e.id > last.get(e.app_id, -1), f"{e.app_id}: {e.id} after {last[e.app_id]}"
        last[e.app_id] = e.id


def test_batches_stay_within_max_batch_bytes_and_the_cut_off_rest_is_the_next_batch(kafka_url: str) -> None:
    n, limit = 3_000, 2_048
    topic = Topic(unique("bytes"), Install)
    sizes: list[int] = []
    got: list[Install] = []

    async def scenario() -> None:
        backbone = await connect(kafka_url)
        await backbone.ensure_topic(topic.wire_name, partitions=4)
        await backbone.publish_many(topic, events(0, n), key=lambda e: e.app_id)

        def handle(batch: Batch[Install]) -> None:
            sizes.append(sum(len(topic.encode(m)) for m in batch.messages))
            got.extend(batch.messages)
            if len(got) >= n:
                consumer.stop()

        options = ConsumerOptions(group=unique("g"), session_timeout=2, max_batch_bytes=limit)
        consumer = backbone.consumer(topic, handle, options)
        await asyncio.wait_for(consumer.run(handle_signals=False), 60)
        await backbone.close()

    asyncio.run(scenario())
    # One read returns up to max_batch_size (10k) messages of ~45 bytes: each is cut into full batches.
    assert max(sizes) <= limit
    assert sum(sizes) / len(sizes) > limit / 2
    assert sorted(e.id for e in got) == list(range(n))
    last: dict[str, int] = {}
    for e in got:
        assert e.id > last.get(e.app_id, -1), f"{e.app_id}: {e.id} after {last[e.app_id]}"
        last[e.app_id] = e.id


def test_poison_messages_go_to_the_dlq_with_reason_and_the_rest_is_processed(kafka_url: str) -> None:
    async def scenario() -> tuple[list[Install], list[DeadLetter]]:
        backbone = await connect(kafka_url)
        topic = Topic(unique("poison"), Install)
        await backbone.ensure_topic(topic.wire_name, partitions=1)
        await backbone.publish_many(topic, events(0, 100))
        await backbone.publish_raw(topic.wire_name, [b"not json", b'{"id": "seven", "app_id": "a"}'])
        await backbone.publish_many(topic, events(100, 200))
        got = await consume(kafka_url, topic, 200, ConsumerOptions(group=unique("g"), session_timeout=2))
        dlq_topic = Topic(topic.dlq_name, DeadLetter)
        dead = await consume_ids_raw(backbone, dlq_topic, 2)
        await backbone.close()
        return got, dead

    got, dead = asyncio.run(scenario())
    assert sorted(e.id for e in got) == list(range(200))
    assert [d.payload for d in dead] == [b"not json", b'{"id": "seven", "app_id": "a"}']
    assert [d.offset for d in dead] == [100, 101]
    assert "Expected `int`, got `str` - at `$.id`" in dead[1].reason
    assert all(d.topic.startswith("poison-") and d.partition == 0 for d in dead)


async def consume_ids_raw(backbone: object, topic: Topic[DeadLetter], n: int) -> list[DeadLetter]:
    got: list[DeadLetter] = []
    url = getattr(backbone, "url", "")
    bb = await connect(url)

    def handle(batch: Batch[DeadLetter]) -> None:
        got.extend(batch.messages)
        if len(got) >= n:
            consumer.stop()

    consumer = bb.consumer(
        topic, handle, ConsumerOptions(group=unique("g"), session_timeout=2, dead_letter=False)
    )
    await asyncio.wait_for(consumer.run(handle_signals=False), 60)
    await bb.close()
    return got


def test_replay_from_an_offset_and_from_a_time(kafka_url: str) -> None:
    async def scenario() -> tuple[list[Install], list[Install]]:
        backbone = await connect(kafka_url)
        topic = Topic(unique("replay"), Install)
        await backbone.ensure_topic(topic.wire_name, partitions=1)
        await backbone.publish_many(topic, events(0, 50))
        await asyncio.sleep(0.05)
        middle = time.time()
        await asyncio.sleep(0.05)
        await backbone.publish_many(topic, events(50, 80))
        await backbone.close()
        by_offset = await consume(
            kafka_url,
            topic,
            40,
            ConsumerOptions(group=unique("g"), session_timeout=2, start=StartFrom.offset(40)),
        )
        by_time = await consume(
            kafka_url,
            topic,
            30,
            ConsumerOptions(group=unique("g"), session_timeout=2, start=StartFrom.time(middle)),
        )
        return by_offset, by_time

    by_offset, by_time = asyncio.run(scenario())
    assert [e.id for e in by_offset][:40] == list(range(40, 80))
    assert [e.id for e in by_time][:30] == list(range(50, 80))


def test_publish_to_an_unreachable_broker_raises_publish_error() -> None:
    async def scenario() -> None:
        backbone = KafkaBackbone("127.0.0.1:1", producer_config={"message.timeout.ms": 1500})
        # Only failed deliveries are reported (delivery.report.only.error): each one must still count.
        with pytest.raises(PublishError, match=r"10 of 10 messages .* not acknowledged: .*timed out"):
            await backbone.publish_many(Topic("nowhere", Install), events(0, 10))
        await backbone.close()

    asyncio.run(scenario())


@pytest.mark.timeout(300)
def test_two_processes_in_a_group_with_one_killed_and_restarted_count_exactly_once(
    kafka_url: str, pg_dsn: str, tmp_path: Path
) -> None:
    n = 150_000
    topic = unique("installs")

    async def produce() -> None:
        backbone = await connect(kafka_url)
        await backbone.ensure_topic(topic, partitions=4)
        for start in range(0, n, 50_000):
            await backbone.publish_many(
                Topic(topic, Install), events(start, start + 50_000), key=lambda e: e.app_id
            )
        await backbone.close()

    asyncio.run(produce())
    group_crash_scenario(kafka_url, topic, n, pg_dsn, tmp_path, batch=2_000, delay=0.02)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_at_scale_a_million_events_with_a_consumer_killed_and_restarted_count_exactly_once(
    kafka_url: str, pg_dsn: str, tmp_path: Path
) -> None:
    n = 1_000_000
    topic = unique("installs")
    asyncio.run(produce(kafka_url, topic, n))
    group_crash_scenario(kafka_url, topic, n, pg_dsn, tmp_path, batch=5_000, delay=0.02)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_at_scale_consumer_rss_grows_less_than_50_mb_over_ten_million_events(
    kafka_url: str, tmp_path: Path
) -> None:
    n = 10_000_000
    topic = unique("rss")
    asyncio.run(produce(kafka_url, topic, n))
    rss = rss_growth_scenario(kafka_url, topic, n, tmp_path)
    print("kafka 10M:", {k: round(v, 1) for k, v in rss.items()})
    assert rss["growth"] < 50, f"RSS grew {rss['growth']:.1f} MB over {n:,} events: {rss}"
    assert rss["band"] < 200, f"RSS is not bounded: {rss}"


async def produce(url: str, topic: str, n: int) -> None:
    backbone = await connect(url)
    await backbone.ensure_topic(topic, partitions=4)
    for start in range(0, n, 100_000):
        await backbone.publish_many(
            Topic(topic, Install), events(start, min(n, start + 100_000)), key=lambda e: e.app_id
        )
    await backbone.close()


class FakeAssignment:
    """Stands in for a confluent Consumer in the resync unit test: records seeks."""

    def __init__(self, partitions: list[int]) -> None:
        from confluent_kafka import TopicPartition

        self.partitions = [TopicPartition("t", p) for p in partitions]
        self.seeks: dict[int, int] = {}

    def assignment(self) -> list[object]:
        return list(self.partitions)

    def seek(self, tp: object) -> None:
        self.seeks[tp.partition] = tp.offset  # type: ignore[attr-defined]


def test_an_idle_consumer_leaves_the_garbage_collector_on_while_it_waits(kafka_url: str) -> None:
    # A service runs a consumer per topic, most of them idle. Pauses of the collector nest across
    # threads, so a consumer that held it off through every wait would keep it off for the whole process.
    samples: list[bool] = []

    async def scenario() -> None:
        backbone = await connect(kafka_url)
        topic = Topic(unique("idle"), Install)
        await backbone.ensure_topic(topic.wire_name)
        consumer = backbone.consumer(topic, lambda batch: None, ConsumerOptions(group=unique("g")))
        running = asyncio.create_task(consumer.run(handle_signals=False))
        await asyncio.sleep(1)  # joining the group, then waiting for messages that do not come
        for _ in range(100):
            samples.append(gc.isenabled())
            await asyncio.sleep(0.01)
        consumer.stop()
        await asyncio.wait_for(running, 30)
        await backbone.close()

    asyncio.run(scenario())
    assert sum(samples) > 90, f"the collector was off in {100 - sum(samples)} of 100 samples"


def test_a_rejected_batch_rewinds_partitions_without_a_stored_position_instead_of_skipping_them() -> None:
    from quills.streams.kafka import KafkaSource

    stored = {"t/0": "50"}
    source = KafkaSource(
        "127.0.0.1:1",
        "t",
        ConsumerOptions(group="g"),
        lambda keys: {k: stored[k] for k in keys if k in stored},
        {},
    )
    fake = FakeAssignment([0, 1, 2])
    source._consumer = fake  # type: ignore[assignment]
    # The dropped batches held partition 0 from offset 40 and partition 1 (never stored) from 100.
    source._resync({0: 40, 1: 100})
    assert fake.seeks == {0: 50, 1: 100}
    assert source._expected == {0: 50, 1: None, 2: None}


def test_a_larger_message_max_bytes_in_kafka_config_raises_the_fetch_size_with_it() -> None:
    from confluent_kafka import Consumer

    from quills.streams.kafka import KafkaSource

    extra = {"message.max.bytes": 8 << 20}
    source = KafkaSource("127.0.0.1:1", "t", ConsumerOptions(group="g"), None, extra)
    assert source._config["fetch.max.bytes"] >= 8 << 20
    Consumer(source._config).close()  # librdkafka refuses fetch.max.bytes < message.max.bytes


def test_log_bounds_say_when_a_group_has_stored_everything_the_topic_holds(
    kafka_url: str, tmp_path: Path
) -> None:
    log_bounds_scenario(kafka_url, tmp_path, partitions=3, exact=False)


@pytest.mark.parametrize("first_partition", [0, 300], ids=["partitions-as-bytes", "partitions-over-255"])
@pytest.mark.parametrize("gaps", [False, True], ids=["gapless", "with-gaps"])
def test_a_read_knows_each_messages_place_without_keeping_gapless_offsets(
    first_partition: int, gaps: bool
) -> None:
    from quills.streams.kafka import _Read

    # Three partitions interleaved in runs, as librdkafka hands them over; offsets rise per partition.
    places: list[tuple[int, int]] = []
    following = {0: 100, 1: 7, 2: 0}
    for p, n in [(0, 5), (1, 3), (0, 4), (2, 6), (1, 2), (0, 1)]:
        for _ in range(n):
            places.append((first_partition + p, following[p]))
            following[p] += 2 if gaps else 1
    partitions, offsets = [p for p, _ in places], [o for _, o in places]
    values = [b"%d" % i for i in range(len(places))]
    nbytes = sum(map(len, values))
    shaped: bytes | list[int] = bytes(partitions) if first_partition == 0 else partitions
    read = _Read.of(values, nbytes, shaped, offsets)
    if not gaps:
        # What KafkaSource._read keeps for a gapless read: per-partition edges, no offsets.
        read = _Read(values, nbytes, shaped, read.firsts, read.lasts, None)

    def edges(part: list[tuple[int, int]]) -> tuple[dict[int, int], dict[int, int]]:
        return {p: min(o for q, o in part if q == p) for p, _ in part}, {
            p: max(o for q, o in part if q == p) for p, _ in part
        }

    assert (read.firsts, read.lasts) == edges(places)
    assert [read.locate(i) for i in range(len(places))] == places
    assert read.offset_list() == offsets
    for cut in (1, 9, 12, len(places) - 1):
        head, tail = read.split(cut, sum(map(len, values[:cut])))
        assert head.values + tail.values == values and head.nbytes + tail.nbytes == nbytes
        assert [head.locate(i) for i in range(cut)] == places[:cut]
        assert [tail.locate(i) for i in range(len(places) - cut)] == places[cut:]
        assert (head.firsts, head.lasts) == edges(places[:cut])
        assert (tail.firsts, tail.lasts) == edges(places[cut:])
