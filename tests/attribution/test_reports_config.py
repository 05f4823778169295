"""Reports settings: defaults, the batching knobs from the environment, refused values."""

from __future__ import annotations

import pytest

from quills.attribution.reports.config import ReportsConfig
from quills.errors import ConfigError


def test_batching_knobs_come_from_the_environment_and_flags_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUILLS_REPORTS_MAX_BATCH_SIZE", "20000")
    monkeypatch.setenv("QUILLS_REPORTS_MAX_WAIT", "0.5")
    monkeypatch.setenv("QUILLS_REPORTS_PROBE_INTERVAL", "0.1")
    config = ReportsConfig.from_env(data_dir="d", max_wait=0.2)
    assert (config.max_batch_size, config.max_wait, config.probe_interval) == (20_000, 0.2, 0.1)
    assert config.db_url.endswith("quills.db")


def test_bad_knobs_are_refused_with_their_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUILLS_REPORTS_MAX_WAIT", "soon")
    with pytest.raises(ConfigError, match="QUILLS_REPORTS_MAX_WAIT"):
        ReportsConfig.from_env()
    monkeypatch.setenv("QUILLS_REPORTS_MAX_WAIT", "120")
    with pytest.raises(ConfigError, match="max_wait"):
        ReportsConfig.from_env()
