"""Fixtures of the monitor tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from .helpers import InstanceProcess


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
