"""The public packages list exactly their public names in ``__all__`` (the httpx/anyio habit)."""

from __future__ import annotations

import importlib

import pytest

PUBLIC_MODULES = [
    "quills",
    "quills.errors",
    "quills.clock",
    "quills.testing",
    "quills.resilience",
    "quills.metrics",
    "quills.streams",
    "quills.monitor",
    "quills.attribution",
    "quills.attribution.ingest",
    "quills.attribution.reports",
]


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_all_lists_every_public_name(module_name: str) -> None:
    module = importlib.import_module(module_name)
    exported = set(module.__all__)
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and getattr(value, "__module__", module_name).startswith("quills")
        and not isinstance(value, type(importlib))
        and name not in {"annotations"}
    }
    missing = public - exported
    assert not missing, f"{module_name}.__all__ lacks {sorted(missing)}"
    for name in exported:
        assert hasattr(module, name), f"{module_name}.__all__ names {name}, which does not exist"
