"""The overview: three parts gathered concurrently, each with its own fallback, marked stale when used."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import quills
from quills.attribution.overview import Overview


def parts(delays: dict[str, float], broken: set[str] | None = None) -> dict[str, Any]:
    def make(name: str) -> Any:
        async def read(app_id: str) -> Any:
            await asyncio.sleep(delays[name])
            if broken and name in broken:
                raise ConnectionError(f"{name} database is down")
            return {"part": name, "app": app_id}

        return read

    return {n: make(n) for n in ("report", "postbacks", "config")}


def test_latency_is_the_slowest_part_not_the_sum() -> None:
    overview = Overview(parts({"report": 0.3, "postbacks": 0.2, "config": 0.25}), quills.Registry())

    async def run() -> tuple[dict[str, Any], float]:
        started = time.perf_counter()
        result = await overview.gather("app1")
        return result, time.perf_counter() - started

    result, elapsed = asyncio.run(run())
    assert 0.3 <= elapsed < 0.5  # the sum would be 0.75 s
    assert result["stale"] is False
    assert result["config"] == {"stale": False, "value": {"part": "config", "app": "app1"}}


def test_a_down_part_falls_back_to_its_last_good_value_marked_stale() -> None:
    broken: set[str] = set()
    overview = Overview(parts({"report": 0.01, "postbacks": 0.01, "config": 0.01}, broken), quills.Registry())
    first = asyncio.run(overview.gather("app1"))
    assert first["stale"] is False
    broken.add("postbacks")
    second = asyncio.run(overview.gather("app1"))
    assert second["stale"] is True
    assert second["postbacks"]["stale"] is True
    assert second["postbacks"]["value"] == first["postbacks"]["value"]
    assert "down" in second["postbacks"]["error"]
    assert second["report"]["stale"] is False and second["config"]["stale"] is False


def test_a_hung_part_is_cut_at_its_timeout_and_the_response_still_comes() -> None:
    overview = Overview(
        parts({"report": 30.0, "postbacks": 0.01, "config": 0.01}), quills.Registry(), timeout=0.2
    )

    async def run() -> tuple[dict[str, Any], float]:
        started = time.perf_counter()
        result = await overview.gather("app-new")
        return result, time.perf_counter() - started

    result, elapsed = asyncio.run(run())
    assert elapsed < 1.0
    assert result["report"]["stale"] is True and result["report"]["value"] is None
    assert "Timeout" in result["report"]["error"]
    assert result["postbacks"]["stale"] is False
