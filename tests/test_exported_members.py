"""The public packages list exactly their public names in ``__all__`` (the httpx/anyio habit)."""

from __future__ import annotations

import importlib
from typing import ParamSpec, TypeVar

import pytest

PUBLIC_MODULES = [
    "quills",
    "quills.errors",
    "quills.clock",
    "quills.testing",
    "quills.atom",
    "quills.compose",
    "quills.resilience",
    "quills.metrics",
    "quills.streams",
    "quills.monitor",
    "quills.attribution",
    "quills.attribution.ingest",
    "quills.attribution.reports",
    "quills.attribution.config",
    "quills.attribution.postbacks",
    "quills.attribution.overview",
]


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_all_lists_every_public_name(module_name: str) -> None:
    module = importlib.import_module(module_name)
    exported = set(module.__all__)
    is_package = hasattr(module, "__path__")

    def is_public(name: str, value: object) -> bool:
        if name.startswith("_") or isinstance(value, type(importlib) | TypeVar | ParamSpec):
            return False
        origin = getattr(value, "__module__", None)
        if not isinstance(origin, str):
            return False
        # a package re-exports from its submodules; a module's own names are those defined in it
        return origin.startswith(module_name) if is_package else origin == module_name

    public = {name for name, value in vars(module).items() if is_public(name, value)}
    missing = public - exported
    assert not missing, f"{module_name}.__all__ lacks {sorted(missing)}"
    for name in exported:
        assert hasattr(module, name), f"{module_name}.__all__ names {name}, which does not exist"
