"""The ingest publisher: requests share broker round trips, each succeeds only when its events were
acknowledged, and a hung or failing broker gives fast 503s (timeout, then an open circuit)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

import quills
from quills.attribution.ingest.sinks import Publisher, Unavailable
from quills.errors import PublishError


class FakeBroker:
    """Records what a flush publishes; ``calls`` count events (packed messages are unpacked: the fake
    events hold no commas), ``messages`` the log messages with their keys."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.messages: list[tuple[bytes, bytes | None]] = []
        self.stored: list[bytes] = []
        self.fail = False
        self.hang = False

    async def publish_raw(
        self, name: str, values: Sequence[bytes], keys: Sequence[bytes | None] | None = None
    ) -> int:
        events = [e for v in values for e in (v[1:-1].split(b",") if v[:1] == b"[" else [v])]
        self.calls.append((name, len(events)))
        if self.hang:
            await asyncio.sleep(3600)
        await asyncio.sleep(0.01)
        if self.fail:
            raise PublishError("no ack")
        assert keys is not None and len(keys) == len(values)
        self.messages.extend(zip(values, keys, strict=True))
        self.stored.extend(events)
        return len(values)


def test_concurrent_requests_share_flushes_and_return_after_the_ack() -> None:
    asyncio.run(_test_concurrent_requests_share_flushes_and_return_after_the_ack())


async def _test_concurrent_requests_share_flushes_and_return_after_the_ack() -> None:
    broker = FakeBroker()
    publisher = Publisher(broker.publish_raw, registry=quills.Registry(), max_in_flight=1)
    publisher.start()
    await asyncio.gather(
        *(publisher.publish({"sessions.v1": [b"s%d" % i], "installs.v1": [b"i"]}, b"app") for i in range(50))
    )
    assert len(broker.stored) == 100 and publisher.published == 100
    assert len(broker.calls) < 20  # fifty requests, far fewer broker round trips
    await publisher.close()


def test_a_failed_publish_fails_only_the_requests_of_that_topic() -> None:
    asyncio.run(_test_a_failed_publish_fails_only_the_requests_of_that_topic())


async def _test_a_failed_publish_fails_only_the_requests_of_that_topic() -> None:
    broker = FakeBroker()
    publisher = Publisher(broker.publish_raw, registry=quills.Registry())
    publisher.start()
    broker.fail = True
    with pytest.raises(Unavailable) as info:
        await publisher.publish({"sessions.v1": [b"x"]}, b"app")
    assert info.value.retry_after >= 1
    await publisher.close()


def test_a_hung_broker_times_out_then_the_circuit_opens_and_rejects_at_once() -> None:
    asyncio.run(_test_a_hung_broker_times_out_then_the_circuit_opens_and_rejects_at_once())


async def _test_a_hung_broker_times_out_then_the_circuit_opens_and_rejects_at_once() -> None:
    broker = FakeBroker()
    broker.hang = True
    publisher = Publisher(broker.publish_raw, registry=quills.Registry(), timeout=0.05)
    publisher.start()
    reasons = []
    for _ in range(40):  # the breaker looks at health every 0.5 s
        with pytest.raises(Unavailable) as failed:
            await publisher.publish({"sessions.v1": [b"x"]}, b"app")
        reasons.append(str(failed.value))
        if "circuit open" in reasons[-1]:
            break
    assert "did not acknowledge in time" in reasons[0] and "circuit open" in reasons[-1]
    calls = len(broker.calls)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(Unavailable, match="circuit open") as info:
        await publisher.publish({"sessions.v1": [b"x"]}, b"app")
    assert loop.time() - started < 0.04 and len(broker.calls) == calls  # short-circuited
    assert 1 <= info.value.retry_after <= 2
    await publisher.close()


def test_requests_arriving_while_the_first_lingers_share_its_flush() -> None:
    asyncio.run(_test_requests_arriving_while_the_first_lingers_share_its_flush())


async def _test_requests_arriving_while_the_first_lingers_share_its_flush() -> None:
    broker = FakeBroker()
    publisher = Publisher(broker.publish_raw, registry=quills.Registry(), linger=0.2)
    publisher.start()
    first = asyncio.ensure_future(publisher.publish({"sessions.v1": [b"a"]}, b"app"))
    await asyncio.sleep(0.01)  # the flush loop took the first request and lingers
    await asyncio.gather(first, publisher.publish({"sessions.v1": [b"b"]}, b"app"))
    assert broker.calls == [("sessions.v1", 2)]
    await publisher.close()


def test_a_thousand_waiting_events_are_flushed_without_lingering() -> None:
    asyncio.run(_test_a_thousand_waiting_events_are_flushed_without_lingering())


async def _test_a_thousand_waiting_events_are_flushed_without_lingering() -> None:
    broker = FakeBroker()
    publisher = Publisher(broker.publish_raw, registry=quills.Registry(), linger=3600)
    publisher.start()
    # An hour's linger would fail this by pytest's timeout; enough events go out at once.
    await publisher.publish({"installs.v1": [b"i"] * 1000}, b"app")
    assert broker.calls == [("installs.v1", 1000)]
    await publisher.close()


@pytest.mark.parametrize("pack", [True, False])
def test_a_flush_packs_each_topics_events_per_app_unless_told_not_to(pack: bool) -> None:
    async def scenario() -> FakeBroker:
        broker = FakeBroker()
        publisher = Publisher(broker.publish_raw, registry=quills.Registry(), linger=0.2, pack=pack)
        publisher.start()
        await asyncio.gather(
            publisher.publish({"installs.v1": [b"a1", b"a2"]}, b"A"),
            publisher.publish({"installs.v1": [b"b1"]}, b"B"),
            publisher.publish({"installs.v1": [b"a3"]}, b"A"),
        )
        await publisher.close()
        return broker

    broker = asyncio.run(scenario())
    assert broker.calls == [("installs.v1", 4)]
    if pack:
        assert broker.messages == [(b"[a1,a2,a3]", b"A"), (b"[b1]", b"B")]
    else:
        assert broker.messages == [(b"a1", b"A"), (b"a2", b"A"), (b"b1", b"B"), (b"a3", b"A")]
