"""The dashboard in headless Chromium against a real instance process and a real ``quills monitor``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from .helpers import BROWSER_TIMEOUT, Aggregator, InstanceApp

COMMANDS = {"get_user", "charge", "search"}
POOLS = {"users", "catalog"}
RED, GREEN = "#ff0000", "#00aa00"
CHARGE_FILL = "document.querySelector(\".tile[data-name='charge'] .rate-circle\").getAttribute('fill')"

pytestmark = pytest.mark.timeout(BROWSER_TIMEOUT)


def _tile(page: Page, name: str, kind: str = "commands") -> Any:
    return page.locator(f"#{kind} .tile[data-name='{name}']")


def _names(page: Page, kind: str) -> set[str]:
    return set(page.eval_on_selector_all(f"#{kind} .tile", "tiles => tiles.map(t => t.dataset.name)"))


def _order(page: Page) -> list[str]:
    order: list[str] = page.evaluate("window.quillsDashboard.order()")
    return order


def _order_and_expected(page: Page, field: str) -> tuple[list[str], list[str]]:
    """The shown order, and command names by a view field (highest first, ties by name), at one instant."""
    shown, values = page.evaluate(
        """field => {
          window.quillsDashboard.render();
          const views = [...window.quillsDashboard.page.tiles.values()].filter(t => t.kind === 'command')
            .map(t => [t.view.name, field.split('.').reduce((v, k) => v[k], t.view)]);
          return [window.quillsDashboard.order(), views];
        }""",
        field,
    )
    return shown, [name for name, _ in sorted(values, key=lambda item: (-item[1], item[0]))]


def _wait_for_tiles(page: Page) -> None:
    page.wait_for_function(
        "names => names.every(n => document.querySelector(`#commands .tile[data-name='${n}']`))",
        arg=sorted(COMMANDS),
    )


def _no_console_errors(page: Page) -> None:
    errors = page.console.errors  # type: ignore[attr-defined]
    assert errors == [], errors


def test_instance_dashboard_shows_a_tile_per_command_and_pool(page: Page, instance: InstanceApp) -> None:
    page.goto(f"{instance.base}/dashboard/")
    _wait_for_tiles(page)
    page.wait_for_function("document.querySelectorAll('#pools .tile').length >= 2")
    assert _names(page, "commands") == COMMANDS
    assert _names(page, "pools") == POOLS
    # the stream the page found is kept in the URL
    assert page.evaluate("new URL(location.href).searchParams.getAll('stream')") == ["../hystrix.stream"]
    page.wait_for_function(
        "document.querySelector(\".tile[data-name='get_user'] .count.success\").textContent > 0"
    )
    get_user = _tile(page, "get_user")
    expect(get_user.locator(".circuit-state")).to_have_text("Closed")
    expect(get_user.locator(".hosts")).to_have_text("1")
    expect(page.locator("#streams .stream-state")).to_have_text("live")
    assert float(get_user.locator(".rate-circle").get_attribute("r") or 0) > 5
    assert get_user.locator(".rate-circle").get_attribute("fill") == GREEN
    assert get_user.locator(".host-rate").inner_text().endswith("/s")
    for latency in ("mean", "p50", "p90", "p99", "p995"):
        assert get_user.locator(f".lat-{latency}").inner_text().endswith("ms")
    search_pool = _tile(page, "catalog", "pools")
    assert search_pool.locator(".pool-poolSize").inner_text() != ""
    expect(search_pool.locator(".pool-queueSize")).to_have_text("5")
    expect(page.locator("#empty")).to_be_hidden()
    _no_console_errors(page)


def test_failing_dependency_turns_its_tile_red_and_open_then_recovers(
    page: Page, instance: InstanceApp, aggregator: Aggregator, docs_dir: Path
) -> None:
    page.goto(f"{aggregator.base}/dashboard/")
    _wait_for_tiles(page)
    assert page.evaluate("new URL(location.href).searchParams.getAll('stream')") == [
        "../turbine.stream?cluster=shop"
    ]
    charge = _tile(page, "charge")
    expect(charge.locator(".circuit-state")).to_have_text("Closed")
    instance.fail(True)
    try:
        started = time.monotonic()
        page.wait_for_function(
            "document.querySelector(\".tile[data-name='charge']\").dataset.circuit === 'open'", timeout=10_000
        )
        opened_after = time.monotonic() - started
        expect(charge.locator(".circuit-state")).to_have_text("Open")
        page.wait_for_function(f"{CHARGE_FILL} === '{RED}'")
        assert charge.get_attribute("data-health") == "bad"
        assert _order(page)[0] == "charge"  # error then volume: the broken circuit comes first
        assert opened_after < 8, opened_after
        time.sleep(1.5)  # a little history for the sparkline of the screenshot
        page.screenshot(path=str(docs_dir / "dashboard.png"), full_page=True)
    finally:
        instance.fail(False)
    page.wait_for_function(
        "document.querySelector(\".tile[data-name='charge']\").dataset.circuit === 'closed'", timeout=15_000
    )
    expect(charge.locator(".circuit-state")).to_have_text("Closed")
    page.wait_for_function(f"{CHARGE_FILL} === '{GREEN}'")
    _no_console_errors(page)


def test_a_slow_trial_shows_the_circuit_half_open(
    page: Page, instance: InstanceApp, aggregator: Aggregator
) -> None:
    """quills_circuitState lets the page tell half-open from open (isCircuitBreakerOpen is true for both)."""
    page.goto(f"{aggregator.base}/dashboard/")
    _wait_for_tiles(page)
    charge = _tile(page, "charge")
    instance.fail(True)
    try:
        expect(charge).to_have_attribute("data-circuit", "open", timeout=10_000)
        instance.slow(True)  # the trial after the 1 s sleep window will take 2 s
        instance.fail(False)
        expect(charge).to_have_attribute("data-circuit", "half_open", timeout=10_000)
        expect(charge.locator(".circuit-state")).to_have_text("Half-open")
    finally:
        instance.fail(False)
        instance.slow(False)
    expect(charge).to_have_attribute("data-circuit", "closed", timeout=15_000)
    _no_console_errors(page)


def test_sorting_and_filtering_change_the_order_and_stay_in_the_url(
    page: Page, instance: InstanceApp
) -> None:
    page.goto(f"{instance.base}/dashboard/")
    _wait_for_tiles(page)
    page.wait_for_timeout(1200)  # a second of latency samples
    page.click("#sorts button[data-sort='alpha']")
    assert _order(page) == ["charge", "get_user", "search"]
    # search sleeps 20 ms, get_user 4 ms, charge 2 ms (or more, after the half-open test's 2 s trial)
    for sort, field in (("volume", "rate"), ("mean", "latency.mean"), ("p90", "latency.p90")):
        page.click(f"#sorts button[data-sort='{sort}']")
        shown, expected = _order_and_expected(page, field)
        assert shown == expected, sort
        if sort != "volume":
            assert shown[0] == "search"
    page.fill("#filter", "char")
    assert _order(page) == ["charge"]
    page.fill("#filter", "user, catalog")
    assert _order(page) == ["search", "get_user"]
    assert "sort=p90" in page.url and "filter=user" in page.url
    page.reload()
    _wait_for_tiles(page)
    page.wait_for_timeout(700)
    assert page.input_value("#filter") == "user, catalog"
    assert page.get_attribute("#sorts button[data-sort='p90']", "aria-pressed") == "true"
    assert _order(page) == ["search", "get_user"]
    _no_console_errors(page)


def test_listen_mode_creates_an_audio_context_and_schedules_notes(page: Page, instance: InstanceApp) -> None:
    page.goto(f"{instance.base}/dashboard/")
    _wait_for_tiles(page)
    assert page.evaluate("window.quillsDashboard.page.listener.context") is None
    page.click("#listen")
    assert page.get_attribute("#listen", "aria-pressed") == "true"
    assert page.evaluate("window.quillsDashboard.page.listener.context instanceof AudioContext")
    page.wait_for_function("window.quillsDashboard.page.listener.scheduled >= 3")
    kinds = "new Set(window.quillsDashboard.page.listener.recent.map(n => n.kind))"
    assert page.evaluate(f"[...{kinds}]") == ["rate"]
    instance.fail(True)
    try:
        # errors add low notes; the opening circuit strikes its chord
        page.wait_for_function(f"{kinds}.has('open') && {kinds}.has('error')", timeout=10_000)
    finally:
        instance.fail(False)
    page.wait_for_function(f"{kinds}.has('close')", timeout=15_000)
    chords = page.evaluate(
        """() => {
          const l = window.quillsDashboard.page.listener;
          const count = (kind) => l.scheduledByKind[kind] ?? 0;
          const before = [count('open'), count('close')];
          l.circuitChanged('half_open', 'open');  // a failed trial: no new opening
          const afterFailedTrial = [count('open'), count('close')];
          l.circuitChanged('half_open', 'closed');  // a good trial closes: the resolving chord
          return [before, afterFailedTrial, [count('open'), count('close')]];
        }"""
    )
    assert chords[1] == chords[0] and chords[2] == [chords[1][0], chords[1][1] + 4]
    page.fill("#volume", "20")
    page.check("#mute")
    assert page.evaluate(
        "[window.quillsDashboard.page.listener.volume, window.quillsDashboard.page.listener.muted]"
    ) == [
        0.2,
        True,
    ]
    page.click("#listen")
    assert page.evaluate("window.quillsDashboard.page.listener.context") is None
    _no_console_errors(page)


def test_display_math_reads_aggregated_documents(page: Page, instance: InstanceApp) -> None:
    """Turbine's sums are divided by reportingHosts; booleans become per-host counts."""
    page.goto(f"{instance.base}/dashboard/")
    _wait_for_tiles(page)
    result = page.evaluate(
        """async () => {
          const m = await import('./js/model.js');
          const doc = {
            type: 'HystrixCommand', name: 'c', group: 'g', reportingHosts: 3,
            isCircuitBreakerOpen: '{"false":2,"true":1}', errorPercentage: 90, errorCount: 30,
            requestCount: 300, rollingCountSuccess: 270, rollingCountFailure: 20,
            rollingCountThreadPoolRejected: 4, rollingCountSemaphoreRejected: 9,
            propertyValue_executionIsolationStrategy: 'THREAD',
            propertyValue_metricsRollingStatisticalWindowInMilliseconds: 30000,
            latencyExecute_mean: 30, latencyExecute: {'50': 30, '90': 60, '99': 90, '99.5': 120},
            propertyValue_circuitBreakerForceOpen: false, propertyValue_circuitBreakerForceClosed: false,
          };
          const exact = {...doc, quills_latencyExecute: {'50': 7, '90': 8, '99': 9, '99.5': 10},
                         quills_latencyExecute_mean: 6, quills_circuitState: '{"closed":2,"half_open":1}'};
          const forced = {...doc, propertyValue_circuitBreakerForceOpen: true};
          const forcedClosed = {...doc, isCircuitBreakerOpen: false, quills_circuitState: 'forced_closed'};
          const stockForcedClosed = {...doc, isCircuitBreakerOpen: false,
                                     propertyValue_circuitBreakerForceClosed: true};
          const turbine2 = {...doc, isCircuitBreakerOpen: {true: 3}, reportingHosts: 3,
                            propertyValue_metricsRollingStatisticalWindowInMilliseconds: '10000'};
          const v = m.commandView(doc);
          return {
            errorPct: v.errorPct, rate: v.rate, hostRate: v.hostRate, rejected: v.counts.rejected,
            latency: v.latency, circuit: v.circuit, exact: m.commandView(exact).latency,
            exactCircuit: m.commandView(exact).circuit,
            forced: [forced, forcedClosed, stockForcedClosed].map(d => m.commandView(d).circuit.label),
            turbine2: [m.commandView(turbine2).circuit.label, m.commandView(turbine2).rate],
            colours: [0, 10, 25, 40, 50, 100].map(m.colourOf),
            radii: [0, 400, 10000].map(m.radiusOf),
          };
        }"""
    )
    assert result["errorPct"] == 10  # 30 errors of 300 requests
    assert result["rate"] == 30 and result["hostRate"] == 10  # 300 per 10 s window (30000 / 3 hosts)
    assert result["rejected"] == 4  # THREAD isolation shows thread-pool rejections
    assert result["latency"] == {"mean": 10, "p50": 10, "p90": 20, "p99": 30, "p995": 40}
    assert result["circuit"] == {"kind": "mixed", "label": "Open 1 · Closed 2"}
    assert result["exact"] == {"mean": 6, "p50": 7, "p90": 8, "p99": 9, "p995": 10}
    assert result["exactCircuit"] == {"kind": "mixed", "label": "Closed 2 · Half-open 1"}
    assert result["forced"] == ["Forced open", "Forced closed", "Forced closed"]
    assert result["turbine2"] == ["Open", 30]
    assert result["colours"] == [GREEN, GREEN, "#ffcc00", "#ff9900", RED, RED]
    assert result["radii"] == [5, 40, 40]
    _no_console_errors(page)


def test_listen_mapping_follows_the_documented_scale(page: Page, instance: InstanceApp) -> None:
    """Rate to pitch on C4..E6 pentatonic, errors to a low minor second, distinct open and close chords."""
    page.goto(f"{instance.base}/dashboard/")
    _wait_for_tiles(page)
    result = page.evaluate(
        """async () => {
          const a = await import('./js/audio.js');
          return {
            pitches: [0.1, 1, 10, 100, 400, 5000].map(a.pitchOf),
            errors: [10, 50, 100].map(a.errorNotesOf),
            open: a.OPEN_CHORD, close: a.CLOSE_CHORD,
          };
        }"""
    )
    pitches = result["pitches"]
    assert pitches == sorted(pitches) and pitches[0] == 60 and pitches[-1] == 88  # C4 .. E6
    assert all(p % 12 in (0, 2, 4, 7, 9) for p in pitches)  # major pentatonic
    assert [pair[1] - pair[0] for pair in result["errors"]] == [1, 1, 1]  # minor seconds
    assert result["errors"][0][0] > result["errors"][2][0] >= 36  # lower as errors grow, not below C2
    assert result["open"] == [47, 50, 53, 56]  # B2 D3 F3 G#3: diminished seventh
    assert result["close"] == [60, 64, 67, 72]  # C major
    _no_console_errors(page)
