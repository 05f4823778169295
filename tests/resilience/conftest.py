from __future__ import annotations

import pytest

from quills import Registry
from quills.testing import FakeClock


@pytest.fixture
def registry() -> Registry:
    """A registry of the test's own, so commands of different tests never meet."""
    return Registry()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
