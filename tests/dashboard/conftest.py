"""Fixtures of the dashboard tests: Debian chromium driven by Playwright, a real instance and aggregator.

The browser is Debian's ``chromium``; when it is missing and we are root, the session installs it with
apt-get (never ``playwright install``, which downloads its own build). With ``CI=true`` a missing browser
fails the run instead of skipping it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from .helpers import CHROMIUM, Aggregator, InstanceApp

FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


def ensure_chromium() -> str:
    """Path of Debian's chromium, installing it with apt when missing and running as root."""
    if not os.path.exists(CHROMIUM) and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True, env=env, timeout=300)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "chromium"],
            check=False,
            capture_output=True,
            env=env,
            timeout=900,
        )
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing and could not be installed (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Debian chromium over the DevTools protocol; Playwright gives it a fresh profile.

    One per module, not per session: Playwright's sync API runs an event loop in the main thread while it
    is started, and later modules call ``asyncio.run()``.
    """
    executable = ensure_chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=FLAGS, timeout=60_000
        )
        yield launched
        launched.close()


class ConsoleLog:
    """Console errors and uncaught exceptions of one page."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page (own context, 1280x800) whose console errors tests can read from ``page.console``."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    new_page = context.new_page()
    new_page.console = ConsoleLog(new_page)  # type: ignore[attr-defined]
    yield new_page
    context.close()


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstanceApp]:
    """A real instance process serving its stream and the dashboard; killed after the module."""
    app = InstanceApp(tmp_path_factory.mktemp("instance") / "fail")
    yield app
    app.stop()


@pytest.fixture(scope="module")
def aggregator(instance: InstanceApp) -> Iterator[Aggregator]:
    """A real ``quills monitor`` process over :func:`instance`, cluster "shop"; killed after the module."""
    process = Aggregator([f"127.0.0.1:{instance.port}"], cluster="shop")
    yield process
    process.stop()


@pytest.fixture
def docs_dir() -> Path:
    """Where the screenshot goes: the gitignored ``build/`` folder, so a test run leaves the tree clean;
    ``QUILLS_UPDATE_SCREENSHOT=1`` writes the repository's ``docs/`` copy instead (on purpose)."""
    root = Path(__file__).resolve().parents[2]
    if os.environ.get("QUILLS_UPDATE_SCREENSHOT") == "1":
        return root / "docs"
    build = root / "build"
    build.mkdir(exist_ok=True)
    return build
