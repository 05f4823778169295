"""The breaker state machine: Hystrix's default algorithm and the resilience4j-style options."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from quills.metrics.rolling import HealthCounts
from quills.resilience.breaker import CircuitBreaker, CircuitState, CountWindow, Permit
from quills.resilience.options import BreakerOptions
from quills.testing import FakeClock


def _breaker(clock: FakeClock, **options: object) -> tuple[CircuitBreaker, list[tuple[str, str]]]:
    transitions: list[tuple[str, str]] = []
    breaker = CircuitBreaker(
        BreakerOptions(**options),  # type: ignore[arg-type]
        now_ns=clock.now_ns,
        on_transition=lambda old, new, reason, open_for: transitions.append((old.value, new.value)),
    )
    return breaker, transitions


def test_does_not_trip_below_the_request_volume_whatever_the_errors() -> None:
    breaker, _ = _breaker(FakeClock())
    breaker.on_health(HealthCounts(total=19, errors=19, slow=0))
    assert breaker.state is CircuitState.CLOSED


def test_trips_at_volume_and_error_threshold() -> None:
    breaker, transitions = _breaker(FakeClock())
    breaker.on_health(HealthCounts(total=20, errors=9, slow=0))
    assert breaker.state is CircuitState.CLOSED
    breaker.on_health(HealthCounts(total=20, errors=10, slow=0))
    assert breaker.state is CircuitState.OPEN
    assert not breaker.allows_all
    assert transitions == [("closed", "open")]


def test_open_circuit_admits_one_trial_after_the_sleep_window() -> None:
    clock = FakeClock()
    breaker, _ = _breaker(clock)
    breaker.on_health(HealthCounts(20, 20, 0))
    assert breaker.acquire(clock.now_ns()) is Permit.DENIED
    assert breaker.retry_after(clock.now_ns()) == 5.0
    clock.advance(5.0)
    permits = [breaker.acquire(clock.now_ns()) for _ in range(10)]
    assert permits.count(Permit.TRIAL) == 1
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.state.is_open  # Hystrix reports half-open as open


def test_trial_success_closes_and_trial_failure_reopens_with_a_new_window() -> None:
    clock = FakeClock()
    breaker, transitions = _breaker(clock)
    breaker.on_health(HealthCounts(20, 20, 0))
    clock.advance(5.0)
    assert breaker.acquire(clock.now_ns()) is Permit.TRIAL
    breaker.trial_failed()
    assert breaker.state is CircuitState.OPEN
    clock.advance(4.9)
    assert breaker.acquire(clock.now_ns()) is Permit.DENIED
    clock.advance(0.1)
    assert breaker.acquire(clock.now_ns()) is Permit.TRIAL
    breaker.trial_succeeded()
    assert breaker.state is CircuitState.CLOSED and breaker.allows_all
    assert transitions == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]


def test_n_trials_and_success_threshold() -> None:
    clock = FakeClock()
    breaker, _ = _breaker(clock, half_open_max_calls=3, half_open_success_threshold=2)
    breaker.on_health(HealthCounts(20, 20, 0))
    clock.advance(5.0)
    permits = [breaker.acquire(clock.now_ns()) for _ in range(5)]
    assert permits.count(Permit.TRIAL) == 3
    breaker.trial_succeeded()
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.trial_succeeded()
    assert breaker.state is CircuitState.CLOSED


def test_open_wait_grows_with_each_failed_trial_up_to_the_maximum() -> None:
    clock = FakeClock()
    breaker, _ = _breaker(clock, sleep_window=1.0, open_wait_multiplier=2.0, max_open_wait=3.0)
    breaker.on_health(HealthCounts(20, 20, 0))
    waits = []
    for _ in range(4):
        waits.append(breaker.retry_after(clock.now_ns()))
        clock.advance(waits[-1])
        assert breaker.acquire(clock.now_ns()) is Permit.TRIAL
        breaker.trial_failed()
    assert waits == [1.0, 2.0, 3.0, 3.0]


def test_slow_call_rate_trips_the_breaker() -> None:
    breaker, _ = _breaker(FakeClock(), slow_call_duration=0.1, slow_call_rate_threshold=50)
    breaker.on_health(HealthCounts(total=20, errors=0, slow=9))
    assert breaker.state is CircuitState.CLOSED
    breaker.on_health(HealthCounts(total=20, errors=0, slow=10))
    assert breaker.state is CircuitState.OPEN


def test_count_window_trips_on_the_last_n_calls() -> None:
    breaker, _ = _breaker(FakeClock(), window_type="count", window_size=10, request_volume_threshold=10)
    assert breaker.allows_all and breaker.count_window is not None  # front doors record into the window
    for _ in range(5):
        breaker.record(0)
    for _ in range(4):
        breaker.record(CountWindow.ERROR)
    assert breaker.state is CircuitState.CLOSED  # only 9 calls yet
    breaker.record(CountWindow.ERROR)
    assert breaker.state is CircuitState.OPEN


def test_forced_states_and_disabled() -> None:
    clock = FakeClock()
    breaker, _ = _breaker(clock)
    breaker.configure(BreakerOptions(force_open=True))
    assert breaker.acquire(clock.now_ns()) is Permit.DENIED
    assert breaker.snapshot().is_open
    breaker.configure(BreakerOptions(force_closed=True))
    breaker.on_health(HealthCounts(100, 100, 0))
    assert breaker.allows_all and breaker.state is CircuitState.FORCED_CLOSED
    breaker.configure(BreakerOptions(enabled=False))
    assert breaker.allows_all and not breaker.snapshot().is_open
    breaker.configure(BreakerOptions())
    assert breaker.state is CircuitState.CLOSED


@given(
    st.lists(st.sampled_from(["health_bad", "health_ok", "advance", "acquire", "ok", "fail"]), max_size=60)
)
def test_never_goes_from_open_to_closed_without_a_trial(actions: list[str]) -> None:
    clock = FakeClock()
    seen: list[tuple[CircuitState, CircuitState]] = []
    breaker = CircuitBreaker(
        BreakerOptions(), now_ns=clock.now_ns, on_transition=lambda o, n, r, f: seen.append((o, n))
    )
    for action in actions:
        if action == "health_bad":
            breaker.on_health(HealthCounts(30, 30, 0))
        elif action == "health_ok":
            breaker.on_health(HealthCounts(30, 0, 0))
        elif action == "advance":
            clock.advance(2.5)
        elif action == "acquire" and not breaker.allows_all:
            breaker.acquire(clock.now_ns())
        elif action == "ok":
            breaker.trial_succeeded()
        elif action == "fail":
            breaker.trial_failed()
    for old, new in seen:
        assert (old, new) != (CircuitState.OPEN, CircuitState.CLOSED)
        if new is CircuitState.CLOSED:
            assert old is CircuitState.HALF_OPEN


def test_count_window_sums_stay_exact() -> None:
    window = CountWindow(3)
    for code in (1, 0, 2, 3, 0):
        window.record(code)
    # last three: 2 (slow), 3 (error+slow), 0
    assert (window.calls, window.errors, window.slow) == (3, 1, 2)
