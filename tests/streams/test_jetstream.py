"""The NATS JetStream backend against a real nats-server (file storage, started by the tests)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import (
    Install,
    consume,
    events,
    free_port,
    group_crash_scenario,
    log_bounds_scenario,
    rss_growth_scenario,
    unique,
)
from nats.js.api import StorageType, StreamConfig

from quills.errors import PublishError
from quills.streams import (
    Batch,
    ConsumerOptions,
    DeadLetter,
    EmbeddedNats,
    NatsBackbone,
    StartFrom,
    Topic,
    connect,
    pack,
    stream_name,
)
from quills.streams.compression import ZSTD_MAGIC


def test_published_messages_are_consumed_once_each_in_publish_order(nats_url: str) -> None:
    async def scenario() -> list[Install]:
        backbone = await connect(nats_url)
        assert isinstance(backbone, NatsBackbone)
        topic = Topic(unique("orders"), Install)
        # 2,500 in one batch is more than the 2,000 messages written ahead of a flow acknowledgement.
        assert await backbone.publish_many(topic, events(0, 2_500)) == 2_500
        await backbone.close()
        return await consume(nats_url, topic, 2_500, ConsumerOptions(group=unique("g"), max_batch_size=700))

    got = asyncio.run(scenario())
    assert [e.id for e in got] == list(range(2_500))


def test_a_second_consumer_of_the_group_resumes_after_what_the_first_acked(nats_url: str) -> None:
    async def scenario() -> tuple[list[Install], list[Install]]:
        backbone = await connect(nats_url)
        topic = Topic(unique("resume"), Install)
        await backbone.publish_many(topic, events(0, 300))
        await backbone.close()
        options = ConsumerOptions(group=unique("g"), max_batch_size=100)
        first = await consume(nats_url, topic, 100, options)
        second = await consume(nats_url, topic, 200, options)
        return first, second

    first, second = asyncio.run(scenario())
    assert [e.id for e in first] == list(range(100))
    assert [e.id for e in second] == list(range(100, 300))


def test_poison_messages_go_to_the_dlq_with_reason_and_the_rest_is_processed(nats_url: str) -> None:
    async def scenario() -> tuple[list[Install], list[DeadLetter]]:
        backbone = await connect(nats_url)
        topic = Topic(unique("poison"), Install)
        await backbone.publish_many(topic, events(0, 10))
        await backbone.publish_raw(topic.wire_name, [b"{broken", b'{"id": 1}'])
        await backbone.publish_many(topic, events(10, 20))
        got = await consume(nats_url, topic, 20, ConsumerOptions(group=unique("g")))
        dead: list[DeadLetter] = []

        def handle(batch: Batch[DeadLetter]) -> None:
            dead.extend(batch.messages)
            if len(dead) >= 2:
                dlq.stop()

        dlq = backbone.consumer(
            Topic(topic.dlq_name, DeadLetter), handle, ConsumerOptions(group="ops", dead_letter=False)
        )
        await asyncio.wait_for(dlq.run(handle_signals=False), 30)
        await backbone.close()
        return got, dead

    got, dead = asyncio.run(scenario())
    assert [e.id for e in got] == list(range(20))
    assert [d.payload for d in dead] == [b"{broken", b'{"id": 1}']
    assert [d.offset for d in dead] == [11, 12]  # stream sequences
    assert "missing required field `app_id`" in dead[1].reason


def test_replay_from_a_stream_sequence(nats_url: str) -> None:
    async def scenario() -> list[Install]:
        backbone = await connect(nats_url)
        topic = Topic(unique("replay"), Install)
        await backbone.publish_many(topic, events(0, 50))
        await backbone.close()
        options = ConsumerOptions(group=unique("g"), start=StartFrom.offset(41))
        return await consume(nats_url, topic, 10, options)

    assert [e.id for e in asyncio.run(scenario())] == list(range(40, 50))


def test_replay_from_a_time(nats_url: str) -> None:
    async def scenario() -> list[Install]:
        backbone = await connect(nats_url)
        topic = Topic(unique("replay-time"), Install)
        await backbone.publish_many(topic, events(0, 30))
        await asyncio.sleep(0.05)
        middle = time.time()
        await asyncio.sleep(0.05)
        await backbone.publish_many(topic, events(30, 50))
        await backbone.close()
        options = ConsumerOptions(group=unique("g"), start=StartFrom.time(middle))
        return await consume(nats_url, topic, 20, options)

    assert [e.id for e in asyncio.run(scenario())] == list(range(30, 50))


def test_concurrent_publishes_to_one_topic_are_all_stored_each_in_its_order(nats_url: str) -> None:
    async def scenario() -> list[Install]:
        backbone = await connect(nats_url)
        topic = Topic(unique("concurrent"), Install)
        counts = await asyncio.gather(
            *(backbone.publish_many(topic, events(k * 3_000, (k + 1) * 3_000)) for k in range(8))
        )
        assert counts == [3_000] * 8
        await backbone.close()
        return await consume(nats_url, topic, 24_000, ConsumerOptions(group=unique("g")))

    got = [e.id for e in asyncio.run(scenario())]
    assert sorted(got) == list(range(24_000))
    for k in range(8):
        mine = [i for i in got if i // 3_000 == k]
        assert mine == sorted(mine)


def test_packs_are_stored_as_zstd_frames_unless_turned_off_and_read_back_alike(nats_url: str) -> None:
    async def scenario() -> tuple[list[bytes], list[bytes], list[str], list[Install], list[Install]]:
        compressed, plain = await connect(nats_url), await connect(nats_url, nats_compression=False)
        a, b = Topic(unique("zstd"), Install), Topic(unique("plain"), Install)
        for backbone, topic in ((compressed, a), (plain, b)):
            await backbone.publish_many(topic, events(0, 1_000), pack=True)  # ~40 KiB: one pack
            await backbone.publish_many(topic, events(1_000, 1_002))  # single messages stay JSON
        js = compressed.client.jetstream()
        heads = [(await js.get_msg(stream_name(t.wire_name), 1)).data[:4] for t in (a, b)]
        tails = [(await js.get_msg(stream_name(t.wire_name), 2)).data[:1] for t in (a, b)]
        storage = [str((await js.stream_info(stream_name(t.wire_name))).config.compression) for t in (a, b)]
        await compressed.close()
        await plain.close()
        options = ConsumerOptions(group=unique("g"))
        return heads, tails, storage, *[await consume(nats_url, t, 1_002, options) for t in (a, b)]

    heads, tails, storage, got_a, got_b = asyncio.run(scenario())
    assert heads == [ZSTD_MAGIC, b'[{"i']
    assert tails == [b"{", b"{"]
    assert storage == ["none", "none"]
    assert [e.id for e in got_a] == [e.id for e in got_b] == list(range(1_002))


def test_a_bad_message_in_a_compressed_pack_is_dead_lettered_alone_and_a_corrupt_frame_whole(
    nats_url: str,
) -> None:
    async def scenario() -> tuple[list[Install], list[DeadLetter]]:
        backbone = await connect(nats_url)
        topic = Topic(unique("zpoison"), Install)
        good = [topic.encode(e) for e in events(0, 200)]
        (packed,) = pack([*good[:100], b'{"id": "not a number", "app_id": "x"}', *good[100:]])
        corrupt = ZSTD_MAGIC + b"\x00" * 64
        await backbone.publish_raw(topic.wire_name, [packed, corrupt])
        got = await consume(nats_url, topic, 200, ConsumerOptions(group=unique("g")))
        dead: list[DeadLetter] = []

        def handle(batch: Batch[DeadLetter]) -> None:
            dead.extend(batch.messages)
            if len(dead) >= 2:
                dlq.stop()

        dlq = backbone.consumer(
            Topic(topic.dlq_name, DeadLetter), handle, ConsumerOptions(group="ops", dead_letter=False)
        )
        await asyncio.wait_for(dlq.run(handle_signals=False), 30)
        await backbone.close()
        return got, dead

    got, dead = asyncio.run(scenario())
    assert [e.id for e in got] == list(range(200))
    assert [d.payload for d in dead] == [b'{"id": "not a number", "app_id": "x"}', ZSTD_MAGIC + b"\x00" * 64]
    assert [d.offset for d in dead] == [1, 2]


def test_many_compressed_packs_arrive_whole_and_in_order_under_a_byte_bound(nats_url: str) -> None:
    async def scenario() -> list[Install]:
        backbone = await connect(nats_url)
        topic = Topic(unique("zbytes"), Install)
        for k in range(60):
            await backbone.publish_many(topic, events(k * 1_000, k * 1_000 + 1_000), pack=True)
        await backbone.close()
        options = ConsumerOptions(group=unique("g"), max_batch_bytes=64 * 1024, max_batch_size=10_000)
        return await consume(nats_url, topic, 60_000, options)

    assert [e.id for e in asyncio.run(scenario())] == list(range(60_000))


def test_an_existing_stream_gets_batch_publishing_and_keeps_its_compression(nats_url: str) -> None:
    async def scenario() -> tuple[list[Install], str]:
        backbone = await connect(nats_url)
        topic = Topic(unique("existing"), Install)
        js = backbone.client.jetstream()
        name = stream_name(topic.wire_name)
        await js.add_stream(StreamConfig(name=name, subjects=[topic.wire_name], storage=StorageType.FILE))
        await backbone.publish_many(topic, events(0, 50))
        info = await js.stream_info(name)
        await backbone.close()
        got = await consume(nats_url, topic, 50, ConsumerOptions(group=unique("g")))
        return got, str(info.config.compression)

    got, compression = asyncio.run(scenario())
    assert [e.id for e in got] == list(range(50))
    assert compression == "none"


def test_a_stream_refusing_batches_fails_the_publish_and_stores_nothing(nats_url: str) -> None:
    async def scenario() -> tuple[list[str], int]:
        backbone = await connect(nats_url)
        topic = Topic(unique("refusing"), Install)
        await backbone.ensure_topic(topic.wire_name)
        js = backbone.client.jetstream()
        info = await js.stream_info(stream_name(topic.wire_name))
        info.config.allow_batched = False
        await js.update_stream(info.config)
        failures = []
        for n in (1, 5, 3_000):
            with pytest.raises(PublishError) as caught:
                await backbone.publish_many(topic, events(0, n))
            failures.append(str(caught.value))
        stored = (await js.stream_info(stream_name(topic.wire_name))).state.messages
        await backbone.close()
        return failures, stored

    failures, stored = asyncio.run(scenario())
    assert stored == 0
    assert failures[2].startswith("3000 of 3000 messages")
    assert all("(the first 0 were, in order): batch publish is disabled" in f for f in failures)


def test_sigkill_of_the_server_mid_publish_loses_no_acknowledged_message(tmp_path: Path) -> None:
    port = free_port()
    server = EmbeddedNats(tmp_path, port=port).start()
    acked: list[int] = []
    topic = Topic(unique("durable"), Install)

    async def publish_until_failure() -> str:
        backbone = await connect(server.url)
        try:
            for start in range(0, 2_000_000, 5_000):
                if len(acked) >= 30_000 and server.pid is not None:
                    # Kill while the next publish is on the wire.
                    pid = server.pid
                    asyncio.get_running_loop().call_later(0.01, os.kill, pid, signal.SIGKILL)
                try:
                    await backbone.publish_many(topic, events(start, start + 5_000))
                except PublishError as exc:
                    return str(exc)
                acked.extend(range(start, start + 5_000))
            return "never failed"
        finally:
            await backbone.close()

    failure = asyncio.run(publish_until_failure())
    assert "not acknowledged" in failure
    server.stop()
    restarted = EmbeddedNats(tmp_path, port=port).start()
    try:

        async def read_back() -> set[int]:
            backbone = await connect(restarted.url)
            assert isinstance(backbone, NatsBackbone)
            info = await backbone.client.jetstream().stream_info(stream_name(topic.wire_name))
            total = info.state.messages
            await backbone.close()
            got = await consume(restarted.url, topic, total, ConsumerOptions(group=unique("g")))
            assert len(got) == total
            return {e.id for e in got}

        stored = asyncio.run(read_back())
    finally:
        restarted.stop()
    assert len(acked) >= 30_000
    missing = set(acked) - stored
    assert not missing, f"{len(missing)} acknowledged messages lost"


@pytest.mark.timeout(300)
def test_two_processes_in_a_group_with_one_killed_and_restarted_count_exactly_once(
    nats_url: str, tmp_path: Path
) -> None:
    n = 100_000
    topic = unique("installs")

    async def produce() -> None:
        # The first half packed five to a log message (the kill lands there), the rest one per message.
        backbone = await connect(nats_url)
        half = [Topic(topic, Install).encode(e) for e in events(0, n // 2)]
        await backbone.publish_raw(topic, pack(half, max_count=5))
        await backbone.publish_many(Topic(topic, Install), events(n // 2, n))
        await backbone.close()

    asyncio.run(produce())
    group_crash_scenario(nats_url, topic, n, str(tmp_path / "sink.db"), tmp_path, batch=1_000, delay=0.02)


async def produce(url: str, topic: str, n: int) -> None:
    backbone = await connect(url)
    for start in range(0, n, 100_000):
        await backbone.publish_many(Topic(topic, Install), events(start, min(n, start + 100_000)))
    await backbone.close()


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_at_scale_a_million_events_with_a_consumer_killed_and_restarted_count_exactly_once(
    nats_url: str, tmp_path: Path
) -> None:
    n = 1_000_000
    topic = unique("installs")
    asyncio.run(produce(nats_url, topic, n))
    group_crash_scenario(nats_url, topic, n, str(tmp_path / "sink.db"), tmp_path, batch=5_000, delay=0.02)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_at_scale_consumer_rss_grows_less_than_50_mb_over_ten_million_events(
    nats_url: str, tmp_path: Path
) -> None:
    n = 10_000_000
    topic = unique("rss")
    asyncio.run(produce(nats_url, topic, n))
    rss = rss_growth_scenario(nats_url, topic, n, tmp_path)
    print("nats 10M:", {k: round(v, 1) for k, v in rss.items()})
    assert rss["growth"] < 50, f"RSS grew {rss['growth']:.1f} MB over {n:,} events: {rss}"
    assert rss["band"] < 200, f"RSS is not bounded: {rss}"


def test_log_bounds_say_when_a_group_has_stored_everything_the_topic_holds(
    nats_url: str, tmp_path: Path
) -> None:
    log_bounds_scenario(nats_url, tmp_path, partitions=1)
