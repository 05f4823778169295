"""The dashboard's files over real HTTP: from ``serve()`` (WSGI) and from the aggregator (ASGI)."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import quills
from quills.monitor import StaticDiscovery, TurbineMonitor, serve
from quills.monitor.dashboard import find_asset, static_dir

from .helpers import UvicornThread


@pytest.fixture(scope="module")
def instance_base() -> Iterator[str]:
    """An instance server (``serve()``) with one command, on a free loopback port."""
    registry = quills.Registry()

    @quills.command(group="g", name="ping", registry=registry)
    def ping() -> int:
        return 1

    ping()
    with serve(port=0, registry=registry) as server:
        yield f"http://127.0.0.1:{server.port}"


@pytest.fixture
def aggregator_base() -> Iterator[str]:
    """An aggregator (``TurbineMonitor``) with clusters "shop" and "ops w" and no instances."""
    monitor = TurbineMonitor(StaticDiscovery([], cluster="shop"), clusters=["shop", "ops w"])
    with UvicornThread(monitor.app) as server:
        yield server.base


def test_serve_redirects_dashboard_to_the_page_with_a_trailing_slash(instance_base: str) -> None:
    response = httpx.get(f"{instance_base}/dashboard")
    assert response.status_code == 308
    assert response.headers["location"] == "/dashboard/"


def test_serve_answers_the_page_its_modules_and_its_stylesheet(instance_base: str) -> None:
    page = httpx.get(f"{instance_base}/dashboard/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="js/main.js">' in page.text
    script = httpx.get(f"{instance_base}/dashboard/js/main.js")
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert (
        httpx.get(f"{instance_base}/dashboard/dashboard.css").headers["content-type"].startswith("text/css")
    )


def test_serve_config_points_the_page_at_its_own_instance_stream(instance_base: str) -> None:
    assert httpx.get(f"{instance_base}/dashboard/config.json").json() == {"streams": ["../hystrix.stream"]}


def test_serve_still_answers_the_stream_and_metrics_beside_the_dashboard(instance_base: str) -> None:
    with httpx.stream("GET", f"{instance_base}/hystrix.stream") as response:
        assert response.status_code == 200
        first = next(line for line in response.iter_lines() if line.startswith("data:"))
    assert '"name":"ping"' in first
    assert "quills_command_requests" in httpx.get(f"{instance_base}/metrics").text


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/nothing.js",
        "/dashboard/../pyproject.toml",
        "/dashboard/%2e%2e/__init__.py",
        "/dashboard/js/../../apps.py",
        "/dashboard/.hidden",
        "/dashboard/js/",
    ],
)
def test_serve_refuses_paths_outside_the_shipped_assets(instance_base: str, path: str) -> None:
    assert httpx.get(f"{instance_base}{path}").status_code == 404


def test_serve_answers_head_without_a_body_and_refuses_post(instance_base: str) -> None:
    head = httpx.head(f"{instance_base}/dashboard/js/main.js")
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) > 0
    assert httpx.post(f"{instance_base}/dashboard/").status_code == 405


def test_aggregator_serves_the_same_page(aggregator_base: str) -> None:
    assert httpx.get(f"{aggregator_base}/dashboard").status_code == 308
    page = httpx.get(f"{aggregator_base}/dashboard/")
    assert page.status_code == 200 and "quills" in page.text
    assert httpx.get(f"{aggregator_base}/dashboard/js/model.js").status_code == 200
    assert httpx.get(f"{aggregator_base}/dashboard/../health").status_code == 200  # normalised by the client
    assert httpx.get(f"{aggregator_base}/dashboard/missing.css").status_code == 404


def test_aggregator_config_offers_every_cluster_stream(aggregator_base: str) -> None:
    config = httpx.get(f"{aggregator_base}/dashboard/config.json").json()
    assert config == {"streams": ["../turbine.stream?cluster=shop", "../turbine.stream?cluster=ops%20w"]}


def test_every_module_the_page_imports_ships_in_the_package() -> None:
    """index.html and each ES module only reference files that exist (no CDN, no build step)."""
    index = (static_dir() / "index.html").read_text()
    referenced = set(re.findall(r'(?:src|href)="([^":]+)"', index))
    for module in static_dir().glob("js/*.js"):
        text = module.read_text()
        referenced |= {f"js/{name}" for name in re.findall(r'from "\./([\w.]+\.js)"', text)}
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text
    assert {"dashboard.css", "js/main.js", "js/model.js", "js/connection.js"} <= referenced
    for name in referenced:
        assert find_asset(name) is not None, f"{name} is referenced but not shipped"
    assert "//" not in index.replace("<!doctype", "")


def test_the_wheel_ships_the_page_and_every_module(tmp_path: Path) -> None:
    """Built with hatchling, as users install it: the static files are package data."""
    from hatchling.builders.wheel import WheelBuilder

    root = Path(__file__).resolve().parents[2]
    wheel = next(iter(WheelBuilder(str(root)).build(directory=str(tmp_path), versions=["standard"])))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    shipped = {
        "quills/monitor/dashboard/" + str(path.relative_to(static_dir().parent))
        for path in static_dir().rglob("*")
        if path.is_file()
    }
    assert "quills/monitor/dashboard/static/index.html" in shipped
    assert shipped <= names, sorted(shipped - names)
