"""Consumer options are validated when made."""

from __future__ import annotations

from typing import Any

import pytest

from quills.errors import ConfigError
from quills.streams import ConsumerOptions, StartFrom


def test_defaults_are_valid_and_documented_values() -> None:
    options = ConsumerOptions(group="reports")
    assert (options.max_batch_size, options.max_wait, options.retry_attempts) == (10_000, 0.1, 5)
    assert options.start == StartFrom.earliest()


@pytest.mark.parametrize(
    "field,value",
    [
        ("group", ""),
        ("group", "has space"),
        ("max_batch_size", 0),
        ("max_batch_size", True),
        ("max_wait", 0.0),
        ("max_wait", float("nan")),
        ("retry_attempts", -1),
        ("retry_backoff_max", 0.01),
        ("session_timeout", 0.5),
        ("max_batch_bytes", 10),
        ("start", "earliest"),
    ],
)
def test_out_of_range_values_raise_config_error_naming_the_field(field: str, value: Any) -> None:
    kwargs: dict[str, Any] = {"group": "g", field: value}
    with pytest.raises(ConfigError, match=field):
        ConsumerOptions(**kwargs)


def test_backoff_doubles_and_is_capped() -> None:
    options = ConsumerOptions(group="g", retry_backoff=0.1, retry_backoff_max=0.5)
    assert [options.backoff(n) for n in (1, 2, 3, 4)] == [0.1, 0.2, 0.4, 0.5]


def test_start_from_rejects_unknown_kinds_and_negative_values() -> None:
    with pytest.raises(ConfigError):
        StartFrom("middle")
    with pytest.raises(ConfigError):
        StartFrom.offset(-1)
    assert StartFrom.time(12.5) == StartFrom("time", 12.5)
