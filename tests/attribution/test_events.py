"""The event contract: tagged decoding, required fields, personal-data marks, topics."""

from __future__ import annotations

import msgspec
import pytest

from quills.attribution.events import (
    INAPPS,
    INSTALLS,
    PERSONAL_DATA_FIELDS,
    SESSIONS,
    TOPIC_OF_TYPE,
    AnyEvent,
    EventView,
    InApp,
    Install,
    Reinstall,
    Session,
)

from .helpers import event

decode = msgspec.json.Decoder(AnyEvent).decode


def test_event_type_chooses_the_schema() -> None:
    assert type(decode(msgspec.json.encode(event("a", event_type="install")))) is Install
    assert type(decode(msgspec.json.encode(event("a", event_type="reinstall")))) is Reinstall
    assert type(decode(msgspec.json.encode(event("a", event_type="in_app")))) is InApp
    assert type(decode(msgspec.json.encode(event("a", event_type="session")))) is Session


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"event_id": "not-a-uuid"}, "$.event_id"),
        ({"platform": "windows"}, "$.platform"),
        ({"event_time": 1_700_000_000}, "$.event_time"),  # seconds, not milliseconds
        ({"country_code": "usa"}, "$.country_code"),
        ({"app_id": ""}, "$.app_id"),
        ({"event_value": "x" * 1001}, "$.event_value"),
        ({"event_revenue_currency": "usd"}, "$.event_revenue_currency"),
    ],
)
def test_invalid_fields_are_named_by_path(change: dict[str, object], path: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=f"at `{path.replace('$', '[$]')}`"):
        decode(msgspec.json.encode({**event("a", event_type="in_app"), **change}))


def test_in_app_events_need_a_name_and_the_install_time() -> None:
    bare = event("a", event_type="in_app")
    del bare["event_name"]
    with pytest.raises(msgspec.ValidationError, match="event_name"):
        decode(msgspec.json.encode(bare))
    bare = event("a", event_type="session")
    del bare["install_time"]
    with pytest.raises(msgspec.ValidationError, match="install_time"):
        decode(msgspec.json.encode(bare))


def test_personal_data_fields_are_marked_in_the_json_schema() -> None:
    (_ref,), components = msgspec.json.schema_components([AnyEvent])
    props = components["Install"]["properties"]
    marked = {name for name, p in props.items() if "x-personal-data" in str(p)}
    assert marked == PERSONAL_DATA_FIELDS
    assert "x-set-by-server" in str(props["received_at"])


def test_topics_are_versioned_and_every_type_has_one() -> None:
    assert (INSTALLS.wire_name, INAPPS.wire_name, SESSIONS.wire_name) == (
        "installs.v1",
        "inapps.v1",
        "sessions.v1",
    )
    assert set(TOPIC_OF_TYPE.values()) == {"installs.v1", "inapps.v1", "sessions.v1"}


def test_the_reports_view_reads_a_full_event() -> None:
    full = decode(msgspec.json.encode(event("a", event_type="in_app", campaign="c1")))
    view = msgspec.json.decode(msgspec.json.encode(full), type=EventView)
    assert (view.event_type, view.app_id, view.campaign, view.event_name) == (
        "in_app",
        "a",
        "c1",
        "af_level_achieved",
    )
