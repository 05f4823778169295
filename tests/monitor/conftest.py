"""Fixtures of the monitor tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .helpers import Dnsmasq, InstanceProcess


@pytest.fixture
def instances() -> Iterator[Callable[..., InstanceProcess]]:
    """Start instance processes; every one is killed at the end of the test."""
    started: list[InstanceProcess] = []

    def start(*args: str) -> InstanceProcess:
        instance = InstanceProcess(*args)
        started.append(instance)
        return instance

    yield start
    for instance in started:
        instance.kill()


@pytest.fixture
def dnsmasq(tmp_path: Path) -> Iterator[Dnsmasq]:
    """A real dnsmasq on a free loopback port; stopped at the end of the test."""
    server = Dnsmasq(tmp_path)
    yield server
    server.stop()
