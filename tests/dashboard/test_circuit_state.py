"""The ``quills_circuitState`` extension field: the exact breaker state, which the dashboard shows."""

from __future__ import annotations

import json
import threading

import quills
from quills.monitor import ClusterAggregator, command_document, tick_documents
from quills.monitor.hystrix_format import CIRCUIT_STATE_KEY, COMMAND_KEYS
from quills.testing import FakeClock


def _state(registry: quills.Registry) -> str:
    docs = [doc for doc in tick_documents(registry) if doc["type"] == "HystrixCommand"]
    assert len(docs) == 1
    value: str = docs[0][CIRCUIT_STATE_KEY]
    return value


def test_stream_documents_carry_the_exact_circuit_state_after_the_standard_keys() -> None:
    registry = quills.Registry()

    @quills.command(group="g", name="ok", registry=registry)
    def ok() -> int:
        return 1

    ok()
    doc = tick_documents(registry)[0]
    assert list(doc)[: len(COMMAND_KEYS)] == list(COMMAND_KEYS)
    assert list(doc)[-1] == CIRCUIT_STATE_KEY and doc[CIRCUIT_STATE_KEY] == "closed"
    # the plain document function leaves it out unless asked (the golden key list is unchanged)
    assert CIRCUIT_STATE_KEY not in command_document(registry.snapshots()[0])


def test_circuit_state_tells_half_open_from_open() -> None:
    clock = FakeClock()
    registry = quills.Registry()
    fail = threading.Event()
    fail.set()
    entered, release = threading.Event(), threading.Event()
    breaker = quills.BreakerOptions(window_type="count", window_size=4, request_volume_threshold=2)

    @quills.command(
        group="g", registry=registry, clock=clock, isolation="semaphore", breaker=breaker, fallback=lambda: 0
    )
    def flaky() -> int:
        if fail.is_set():
            raise ConnectionError("down")
        entered.set()
        release.wait(5)
        return 1

    for _ in range(4):
        flaky()
    assert _state(registry) == "open"
    clock.advance(6.0)  # past the sleep window: the next call is the trial
    fail.clear()
    trial = threading.Thread(target=flaky)
    trial.start()
    assert entered.wait(5)
    try:
        assert _state(registry) == "half_open"
    finally:
        release.set()
        trial.join(5)
    assert _state(registry) == "closed"


def test_forced_states_are_reported() -> None:
    registry = quills.Registry()

    @quills.command(group="g", name="off", registry=registry, breaker=quills.BreakerOptions(force_open=True))
    def off() -> int:
        return 1

    assert _state(registry) == "forced_open"


def test_aggregator_counts_hosts_per_circuit_state() -> None:
    """Hosts that disagree give Turbine's count string, which the dashboard reads as "Open 1 · Closed 2"."""
    registry = quills.Registry()

    @quills.command(group="g", name="c", registry=registry)
    def c() -> int:
        return 1

    c()
    doc = json.loads(json.dumps(tick_documents(registry)[0]))  # as it arrives over the wire
    aggregator = ClusterAggregator()
    aggregator.update("a", {**doc, CIRCUIT_STATE_KEY: "closed"})
    aggregator.update("b", {**doc, CIRCUIT_STATE_KEY: "open"})
    aggregator.update("c", {**doc, CIRCUIT_STATE_KEY: "closed"})
    merged = next(d for d in aggregator.documents(-1) if d["type"] == "HystrixCommand")
    assert merged[CIRCUIT_STATE_KEY] == '{"closed":2,"open":1}'
    assert merged["reportingHosts"] == 3
