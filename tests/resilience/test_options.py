"""Options are validated at construction with messages that name the field and the range."""

from __future__ import annotations

import pytest

from quills import BreakerOptions, CommandOptions, ConfigError, ThreadPoolOptions


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: CommandOptions(group="g", name="n", timeout=0), "timeout must be between"),
        (lambda: CommandOptions(group="", name="n"), "group must be a non-empty string"),
        (lambda: CommandOptions(group="g", name="n", isolation="process"), "isolation must be"),  # type: ignore[arg-type]
        (lambda: CommandOptions(group="g", name="n", max_concurrent=0), "max_concurrent must be between"),
        (
            lambda: CommandOptions(group="g", name="n", metrics_window=1.2),
            "whole multiple of health_interval",
        ),
        (lambda: CommandOptions(group="g", name="n", ignore=(int,)), "tuple of exception types"),  # type: ignore[arg-type]
        (lambda: BreakerOptions(error_threshold_percentage=101), "error_threshold_percentage"),
        (lambda: BreakerOptions(force_open=True, force_closed=True), "cannot both be set"),
        (lambda: BreakerOptions(request_volume_threshold=True), "must be an int"),  # type: ignore[arg-type]
        (lambda: ThreadPoolOptions(core_size=0), "core_size must be between"),
        (lambda: ThreadPoolOptions(max_queue_size=0), "max_queue_size must be between"),
    ],
)
def test_invalid_options_raise_config_error_naming_the_field(build: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build()  # type: ignore[operator]


def test_defaults_are_hystrix_defaults() -> None:
    options = CommandOptions(group="g", name="n")
    assert options.timeout == 1.0 and options.max_concurrent == 10 and options.fallback_max_concurrent == 10
    assert options.metrics_window == 10.0 and options.percentile_window == 60.0
    breaker = options.breaker
    assert (breaker.request_volume_threshold, breaker.error_threshold_percentage, breaker.sleep_window) == (
        20,
        50,
        5.0,
    )
    pool = ThreadPoolOptions()
    assert (pool.core_size, pool.max_queue_size, pool.queue_size_rejection_threshold) == (10, -1, 5)
    assert pool.queue_capacity == 0
    assert ThreadPoolOptions(max_queue_size=100).queue_capacity == 5


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        CommandOptions(group="g", name="n", timeout=-1)
