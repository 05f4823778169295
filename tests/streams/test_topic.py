"""Topics: names, versions and the codec."""

from __future__ import annotations

import msgspec
import pytest
from conftest import Install

from quills.errors import ConfigError
from quills.streams import Topic


def test_version_one_uses_the_bare_name_and_later_versions_get_a_suffix() -> None:
    assert Topic("installs", Install).wire_name == "installs"
    assert Topic("installs", Install, version=3).wire_name == "installs.v3"
    assert Topic("installs", Install, version=3).dlq_name == "installs.v3.dlq"


@pytest.mark.parametrize("name", ["", "a b", "a..b", ".a", "a/b", "x" * 201])
def test_invalid_names_are_refused_with_a_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match="Topic name"):
        Topic(name, Install)


def test_a_schema_must_be_a_struct_and_a_version_positive() -> None:
    with pytest.raises(ConfigError, match=r"msgspec\.Struct"):
        Topic("t", dict)  # type: ignore[type-var]
    with pytest.raises(ConfigError, match="version"):
        Topic("t", Install, version=0)


def test_encode_then_decode_round_trips_and_bad_fields_name_their_path() -> None:
    topic = Topic("t", Install)
    event = Install(id=7, app_id="a1")
    assert topic.decode(topic.encode(event)) == event
    with pytest.raises(msgspec.ValidationError, match=r"\$\.id"):
        topic.decode(b'{"id": "x", "app_id": "a"}')


def test_new_fields_with_defaults_are_read_by_old_and_new_schemas() -> None:
    class InstallV1b(msgspec.Struct, frozen=True, kw_only=True):
        id: int
        app_id: str
        country: str = "US"
        platform: str = "unknown"

    old, new = Topic("t", Install), Topic("t", InstallV1b)
    assert new.decode(old.encode(Install(id=1, app_id="a"))).platform == "unknown"
    assert old.decode(new.encode(InstallV1b(id=1, app_id="a", platform="ios"))) == Install(id=1, app_id="a")
