"""Ingest decisions without I/O: parsing, per-index errors, app ownership, server stamps, topic routing."""

from __future__ import annotations

import time

import msgspec

from quills.attribution.events import InApp, Install
from quills.attribution.ingest.handlers import (
    Refusal,
    check,
    encode_by_topic,
    parse_batch,
    parse_single,
    stamp,
)

from .helpers import event

JSON = "application/json"


def body(*events: dict[str, object]) -> bytes:
    return msgspec.json.encode(list(events))


def test_a_valid_batch_decodes_in_one_pass() -> None:
    parsed = parse_batch(body(event("a"), event("a", event_type="install")), JSON, 1000)
    assert isinstance(parsed, list) and len(parsed) == 2


def test_every_invalid_event_of_a_batch_is_reported_with_its_index() -> None:
    bad = parse_batch(body(event("a"), event("a", platform="x"), {"event_type": "nope"}), JSON, 1000)
    assert isinstance(bad, Refusal) and bad.status == 422
    assert [(e.index, e.path) for e in bad.problem.errors] == [(1, "$.platform"), (2, "$.event_type")]
    assert bad.problem.detail.startswith("2 of 3 events are invalid")


def test_ndjson_batches_report_lines_that_are_not_json() -> None:
    lines = msgspec.json.encode(event("a")) + b"\n{not json\n" + msgspec.json.encode(event("a")) + b"\n"
    bad = parse_batch(lines, "application/x-ndjson", 1000)
    assert isinstance(bad, Refusal) and bad.status == 422
    assert [e.index for e in bad.problem.errors] == [1] and "not JSON" in bad.problem.errors[0].reason
    good = parse_batch(lines.replace(b"{not json\n", b""), "application/x-ndjson; charset=utf-8", 1000)
    assert isinstance(good, list) and len(good) == 2


def test_limits_and_media_types() -> None:
    too_many = parse_batch(body(*[event("a")] * 3), JSON, 2)
    assert isinstance(too_many, Refusal) and too_many.status == 413
    assert isinstance(r := parse_batch(b"[]", JSON, 10), Refusal) and r.status == 422
    assert isinstance(r := parse_batch(b"{}", JSON, 10), Refusal) and r.problem.error == "not_an_array"
    assert isinstance(r := parse_batch(b"[", JSON, 10), Refusal) and r.status == 400
    assert isinstance(r := parse_single(b"{}", "text/plain"), Refusal) and r.status == 415
    assert isinstance(r := parse_single(b"{", JSON), Refusal) and r.status == 400


def test_events_of_another_app_are_forbidden() -> None:
    parsed = parse_batch(body(event("a"), event("b")), JSON, 10)
    assert isinstance(parsed, list)
    refusal = check(parsed, "a", 0, 0, batch=True)
    assert refusal is not None and refusal.status == 403 and [e.index for e in refusal.problem.errors] == [1]


def test_revenue_needs_a_known_currency_and_times_cannot_be_far_ahead() -> None:
    parsed = parse_batch(
        body(
            event("a", event_type="in_app", event_revenue=1.5),
            event("a", event_type="in_app", event_revenue=1.5, event_revenue_currency="XXX"),
            event("a", event_time=4_000_000_000_000),
        ),
        JSON,
        10,
    )
    assert isinstance(parsed, list)
    refusal = check(parsed, "a", int(time.time() * 1000), 86_400_000, batch=True)
    assert refusal is not None and refusal.status == 422
    assert [(e.index, e.path) for e in refusal.problem.errors] == [
        (0, "$.event_revenue_currency"),
        (1, "$.event_revenue_currency"),
        (2, "$.event_time"),
    ]


def test_the_server_stamps_its_fields_and_routes_by_type() -> None:
    parsed = parse_batch(
        body(
            event("a", event_type="in_app", event_revenue=10.0, event_revenue_currency="EUR"),
            event("a", event_type="install", media_source="applovin_int"),
            event("a"),
        ),
        JSON,
        10,
    )
    assert isinstance(parsed, list)
    stamp(parsed, 1234)
    in_app, install, _session = parsed
    assert isinstance(in_app, InApp) and in_app.event_revenue_usd == 10.8 and in_app.is_organic
    assert (
        isinstance(install, Install) and install.install_time == install.event_time and not install.is_organic
    )
    assert all(e.received_at == 1234 for e in parsed)
    routed = encode_by_topic(parsed)
    assert {k: len(v) for k, v in routed.items()} == {"inapps.v1": 1, "installs.v1": 1, "sessions.v1": 1}
    assert b'"received_at":1234' in routed["installs.v1"][0]
