"""The aggregator process end to end: real instance processes, ``quills monitor`` over HTTP, SIGKILL, and
DNS SRV discovery against a real dnsmasq."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

import quills
from quills.metrics import histogram
from quills.monitor import DnsSrvDiscovery, HostsChanged, StaticDiscovery, TurbineMonitor, serve

from .helpers import Dnsmasq, InstanceProcess, UvicornThread, free_port, read_until

Start = Callable[..., InstanceProcess]


class _Cli:
    """``python -m quills.cli monitor ...`` as a subprocess on a free port."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.log = tempfile.TemporaryFile()  # a file, not a pipe: a chatty process never blocks on it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "quills.cli", "monitor", "--port", str(self.port), *args],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(self.base + "/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.stderr()
                self.stop()
                raise RuntimeError(f"quills monitor did not start: {err}")
            time.sleep(0.1)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def stderr(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")


@pytest.fixture
def cli() -> Iterator[Callable[..., _Cli]]:
    started: list[_Cli] = []

    def start(*args: str) -> _Cli:
        started.append(_Cli(*args))
        return started[-1]

    yield start
    for process in started:
        process.stop()


def _expected(instances: list[InstanceProcess], command: str, field: str) -> int:
    return sum(int(instance.snapshot[command][field]) for instance in instances)


def _matches(doc: dict[str, Any], instances: list[InstanceProcess]) -> bool:
    return (
        doc.get("name") == "get_user"
        and doc.get("reportingHosts") == len(instances)
        and doc.get("rollingCountSuccess") == _expected(instances, "get_user", "success")
    )


def test_three_instances_sum_to_their_own_snapshots_and_a_killed_one_is_subtracted(
    instances: Start, cli: Callable[..., _Cli]
) -> None:
    group = [
        instances("--ok", "11", "--fail", "2"),
        instances("--ok", "23", "--fail", "5", "--slow-ms", "20"),
        instances("--ok", "7", "--fail", "9"),
    ]
    monitor = cli("--instance", ",".join(i.host for i in group), "--cluster", "shop", "--read-timeout", "2")
    stream = monitor.base + "/turbine.stream?cluster=shop"
    doc = read_until(stream, lambda d: _matches(d, group))
    assert doc["requestCount"] == _expected(group, "get_user", "request_count")
    assert doc["errorCount"] == 0
    assert doc["isCircuitBreakerOpen"] is False and doc["group"] == "users"
    assert doc["propertyValue_circuitBreakerRequestVolumeThreshold"] == 20 * 3  # Turbine sums properties
    assert "currentTime" not in doc

    charge = read_until(stream, lambda d: d.get("name") == "charge" and d.get("reportingHosts") == 3)
    assert charge["rollingCountFailure"] == _expected(group, "charge", "failure") == 16
    assert charge["rollingCountFallbackSuccess"] == _expected(group, "charge", "fallback_success")
    assert charge["errorCount"] == _expected(group, "charge", "error_count")

    # exact cluster percentiles from the summed histograms
    merged = [0] * histogram.SIZE
    for instance in group:
        histogram.add_sparse(merged, {int(k): v for k, v in instance.snapshot["get_user"]["buckets"].items()})
    assert {int(k): v for k, v in doc["quills_latencyExecute_hist"].items()} == histogram.sparse(merged)
    expected = histogram.percentiles(merged, [50.0, 99.0, 100.0])
    tick_ms = 1024 / 1e6
    got = doc["quills_latencyExecute"]
    assert [got["50"], got["99"], got["100"]] == [int(v * tick_ms + 0.5) for v in expected]
    assert got["99"] >= 20  # the slow instance's 20 ms calls are in the top percentiles

    meta = read_until(stream, lambda d: d.get("type") == "meta")
    assert meta["name"] == "meta" and meta["reportingHostsLast10Seconds"] == 3

    pools = read_until(
        monitor.base + "/turbine.stream?cluster=shop&type=HystrixThreadPool&delay=200", lambda d: True
    )
    assert pools["type"] == "HystrixThreadPool" and pools["name"] == "users"

    victim = group.pop(1)
    killed_at = time.monotonic()
    victim.kill()
    after = read_until(stream, lambda d: _matches(d, group), timeout=10)
    assert time.monotonic() - killed_at < 2.0
    assert after["rollingCountSuccess"] == 18 and after["reportingHosts"] == 2

    health = httpx.get(monitor.base + "/health", timeout=5).json()
    assert health["clusters"]["shop"]["instances"] == 3  # still configured, being retried every second
    assert health["clusters"]["shop"]["connected"] == 2
    deadline = time.monotonic() + 5  # the rate needs two samples, one second apart
    while httpx.get(monitor.base + "/health", timeout=5).json()["documentsPerSecond"] <= 0:
        assert time.monotonic() < deadline, "documentsPerSecond stayed 0"
        time.sleep(0.2)
    metrics = httpx.get(monitor.base + "/metrics", timeout=5).text
    assert 'quills_monitor_instances_connected{cluster="shop"} 2.0' in metrics
    assert "quills_monitor_documents_total" in metrics and "quills_monitor_documents_per_second" in metrics

    missing = httpx.get(monitor.base + "/turbine.stream?cluster=nope", timeout=5)
    assert missing.status_code == 404 and missing.text == "Cluster not found"


def test_turbine_stream_has_hystrix_headers_and_pings(instances: Start, cli: Callable[..., _Cli]) -> None:
    one = instances("--ok", "1", "--fail", "0")
    monitor = cli("--instance", one.host, "--cors-origin", "*")
    with httpx.stream("GET", monitor.base + "/turbine.stream", timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream;charset=UTF-8"
        assert response.headers["cache-control"] == "no-cache, no-store, max-age=0, must-revalidate"
        assert response.headers["access-control-allow-origin"] == "*"
        lines = []
        for line in response.iter_lines():
            lines.append(line)
            if line == ": ping":
                break
    assert any(line.startswith("data: ") for line in lines)


def test_dns_srv_discovery_adds_and_removes_an_instance(instances: Start, dnsmasq: Dnsmasq) -> None:
    first = instances("--ok", "5", "--fail", "0")
    second = instances("--ok", "8", "--fail", "0")
    name = "_hystrix._tcp.shop.test"
    record = {"a.shop.test": "127.0.0.1"}
    dnsmasq.serve([(name, "a.shop.test", first.port)], record)
    discovery = DnsSrvDiscovery({name: "shop"}, nameservers=["127.0.0.1"], port=dnsmasq.port, poll_interval=1)
    monitor = TurbineMonitor(discovery, interval=0.1)
    events: list[HostsChanged] = []
    monitor.subscribe(events.append)
    with UvicornThread(monitor.app) as server:
        stream = server.base + "/turbine.stream?cluster=shop"
        doc = read_until(stream, lambda d: d.get("name") == "get_user")
        assert doc["rollingCountSuccess"] == 5 and doc["reportingHosts"] == 1

        dnsmasq.serve([(name, "a.shop.test", first.port), (name, "a.shop.test", second.port)], record)
        both = read_until(stream, lambda d: d.get("name") == "get_user" and d.get("reportingHosts") == 2)
        assert both["rollingCountSuccess"] == 13

        dnsmasq.serve([(name, "a.shop.test", second.port)], record)
        left = read_until(stream, lambda d: d.get("name") == "get_user" and d.get("rollingCountSuccess") == 8)
        assert left["reportingHosts"] == 1
        health = httpx.get(server.base + "/health", timeout=5).json()
        assert health["clusters"]["shop"]["instances"] == 1
        metrics = httpx.get(server.base + "/metrics", timeout=5).text
    first_host, second_host = f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"
    assert [([i.host for i in e.up], [i.host for i in e.down]) for e in events] == [
        ([first_host], []),
        ([second_host], []),
        ([], [first_host]),
    ]
    assert all(i.cluster == "shop" for e in events for i in e.up + e.down)
    assert 'quills_monitor_host_events_total{kind="up"} 2.0' in metrics
    assert 'quills_monitor_host_events_total{kind="down"} 1.0' in metrics


def test_cluster_documents_are_valid_turbine_output(instances: Start, cli: Callable[..., _Cli]) -> None:
    one, two = instances("--ok", "3", "--fail", "1"), instances("--ok", "4", "--fail", "1")
    monitor = cli("--instance", f"{one.host},{two.host}")
    doc = read_until(
        monitor.base + "/turbine.stream", lambda d: d.get("name") == "charge" and d["reportingHosts"] == 2
    )
    # every number Turbine sums is still an integer; no float crept in
    for key, value in doc.items():
        assert not isinstance(value, float), key
    assert msgspec.json.decode(msgspec.json.encode(doc)) == doc


def _write(path: Path, text: str, stamp: int) -> None:
    path.write_text(text)
    os.utime(path, ns=(stamp, stamp))  # distinct mtimes even within one clock tick


def test_file_discovery_adds_marks_down_and_removes_instances(
    instances: Start, cli: Callable[..., _Cli], tmp_path: Path
) -> None:
    first, second = instances("--ok", "2", "--fail", "0"), instances("--ok", "30", "--fail", "0")
    hosts = tmp_path / "instances.txt"
    _write(hosts, f"# shop\n{first.host},shop,up\n", 10**18)
    monitor = cli("--file", str(hosts), "--poll", "0.2")
    stream = monitor.base + "/turbine.stream?cluster=shop"
    assert read_until(stream, lambda d: d.get("name") == "get_user")["rollingCountSuccess"] == 2

    _write(hosts, f"{first.host},shop,up\n{second.host},shop,up\n", 2 * 10**18)
    assert (
        read_until(stream, lambda d: d.get("name") == "get_user" and d["reportingHosts"] == 2)[
            "rollingCountSuccess"
        ]
        == 32
    )

    _write(hosts, f"{first.host},shop,down\n{second.host},shop,up\n", 3 * 10**18)
    left = read_until(stream, lambda d: d.get("name") == "get_user" and d["reportingHosts"] == 1)
    assert left["rollingCountSuccess"] == 30

    _write(hosts, f"{second.host},shop,sideways\n", 4 * 10**18)  # a bad edit: reported, nothing lost
    deadline = time.monotonic() + 5
    while httpx.get(monitor.base + "/health", timeout=5).json()["discoveryErrors"] == 0:
        assert time.monotonic() < deadline, "the bad file was not reported"
        time.sleep(0.1)
    health = httpx.get(monitor.base + "/health", timeout=5).json()
    assert "instances.txt:1" in health["lastDiscoveryError"]
    log = monitor.stderr()
    assert (
        f"host up: {second.host} (cluster shop)" in log and f"host down: {first.host} (cluster shop)" in log
    )
    assert "discovery failed, keeping the last list" in log
    assert health["clusters"]["shop"]["connected"] == 1
    assert read_until(stream, lambda d: d.get("name") == "get_user")["rollingCountSuccess"] == 30


@pytest.mark.slow
def test_repeated_kills_and_restarts_keep_the_cluster_sums_exact(
    instances: Start, cli: Callable[..., _Cli], tmp_path: Path
) -> None:
    rng = random.Random(4)
    live = [instances("--ok", str(n), "--fail", "1") for n in (3, 5, 7, 11)]
    hosts = tmp_path / "instances.txt"
    stamp = 10**18

    def publish(down: list[InstanceProcess]) -> None:
        nonlocal stamp
        stamp += 10**9
        lines = [f"{i.host},shop,up" for i in live] + [f"{i.host},shop,down" for i in down]
        _write(hosts, "\n".join(lines) + "\n", stamp)

    publish([])
    monitor = cli("--file", str(hosts), "--poll", "0.2", "--read-timeout", "2")
    stream = monitor.base + "/turbine.stream?cluster=shop"
    read_until(stream, lambda d: _matches(d, live), timeout=20)
    for _ in range(12):
        victim = live.pop(rng.randrange(len(live)))
        victim.kill()
        started = time.monotonic()
        read_until(stream, lambda d: _matches(d, live), timeout=10)
        assert time.monotonic() - started < 2.0
        live.append(instances("--ok", str(rng.randint(1, 40)), "--fail", str(rng.randint(0, 5))))
        publish([victim])
        doc = read_until(stream, lambda d: _matches(d, live), timeout=20)
        assert doc["requestCount"] == _expected(live, "get_user", "request_count")
        charge = read_until(stream, lambda d: d.get("name") == "charge" and d["reportingHosts"] == len(live))
        assert charge["rollingCountFailure"] == _expected(live, "charge", "failure")


def test_an_empty_cluster_says_why_instead_of_staying_silent() -> None:
    monitor = TurbineMonitor(StaticDiscovery([]), clusters=["quiet"], interval=0.1)
    with UvicornThread(monitor.app) as server:
        status = read_until(
            server.base + "/turbine.stream?cluster=quiet", lambda d: d["type"] == "quills_status"
        )
    assert status["message"] == "no instances in cluster quiet"


def test_a_cluster_of_unreachable_instances_says_so() -> None:
    dead = f"127.0.0.1:{free_port()}"
    monitor = TurbineMonitor(StaticDiscovery([dead], cluster="gone"), interval=0.1, retry_interval=0.2)
    with UvicornThread(monitor.app) as server:
        status = read_until(
            server.base + "/turbine.stream?cluster=gone", lambda d: d["type"] == "quills_status"
        )
    assert status["message"] == "no instance of cluster gone is reachable"


def test_aggregators_can_be_tiered_and_reporting_hosts_add_up() -> None:
    registry = quills.Registry()

    @quills.command(group="g", name="tiered", registry=registry, isolation="semaphore")
    def tiered() -> int:
        return 1

    for _ in range(4):
        tiered()
    with serve(registry=registry, interval=0.1) as a, serve(registry=registry, interval=0.1) as b:
        lower = TurbineMonitor(StaticDiscovery([f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"]), interval=0.1)
        with UvicornThread(lower.app) as tier1:
            upper_source = StaticDiscovery([tier1.base + "/turbine.stream?cluster=default"])
            with UvicornThread(TurbineMonitor(upper_source, interval=0.1).app) as tier2:
                doc = read_until(
                    tier2.base + "/turbine.stream",
                    lambda d: d.get("name") == "tiered" and d["reportingHosts"] == 2,
                )
    assert doc["rollingCountSuccess"] == 8
    assert doc["quills_latencyExecute_hist"] and sum(doc["quills_latencyExecute_hist"].values()) == 8
