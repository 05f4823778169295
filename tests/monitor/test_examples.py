"""The monitor examples in docs/examples run as documented."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import httpx

from .helpers import UvicornThread, read_until

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def test_starlette_example_serves_its_commands_on_the_stream_and_metrics() -> None:
    spec = importlib.util.spec_from_file_location("monitor_starlette", EXAMPLES / "monitor_starlette.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with UvicornThread(module.app) as server:
        for user_id in range(3):
            assert httpx.get(f"{server.base}/users/{user_id}", timeout=5).json()["id"] == user_id
        doc = read_until(
            server.base + "/ops/hystrix.stream",
            lambda d: d.get("name") == "example_get_user" and d["rollingCountSuccess"] == 3,
        )
        metrics = httpx.get(server.base + "/ops/metrics", timeout=5).text
    assert doc["group"] == "users-api" and doc["propertyValue_executionIsolationStrategy"] == "SEMAPHORE"
    assert 'command="example_get_user",event="success"' in metrics
