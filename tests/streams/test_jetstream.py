"""The NATS JetStream backend against a real nats-server (file storage, started by the tests)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import Install, consume, events, free_port, group_crash_scenario, rss_growth_scenario, unique

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
    stream_name,
)


def test_published_messages_are_consumed_once_each_in_publish_order(nats_url: str) -> None:
    async def scenario() -> list[Install]:
        backbone = await connect(nats_url)
        assert isinstance(backbone, NatsBackbone)
        topic = Topic(unique("orders"), Install)
        # 2,500 is not a multiple of the 1,000-message atomic batch: the last batch is partial.
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
        backbone = await connect(nats_url)
        await backbone.publish_many(Topic(topic, Install), events(0, n))
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
