# ruff: noqa: E501 - the report is built from long Markdown f-strings
"""``make bench-pipeline``: the ingest service against a plain FastAPI + pydantic peer, and the whole
pipeline end to end under ``quills up``. Writes the ``## Pipeline`` section of docs/benchmarks.md.

Ingest: each server runs alone against the same embedded NATS server and receives the same pre-built
realistic requests from wrk (C, one thread, bench/pipeline/requests.lua) for a fixed time: single-event
requests per second and events per second in batches, with the CPU the server, the broker and wrk used.
End to end: ``quills up`` (broker, ingest, reports, postbacks, monitor) loaded by ``quills loadgen`` at a
fixed rate (``--e2e-rate``, default 50,000 events/s, in batches), the reports lag
(``now - data_complete_until``) sampled every second, and every process's RSS and CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import msgspec
import uvloop

sys.path.insert(0, str(Path(__file__).parent))
from rawclient import build_request, write_requests, wrk

from quills.attribution.apps import bootstrap
from quills.attribution.db import Database
from quills.attribution.loadgen import percentile
from quills.attribution.traffic import DemoApp, TrafficModel, demo_apps
from quills.streams import EmbeddedNats, connect

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 60) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_all(pids: dict[str, int]) -> dict[str, float]:
    return {n: rss_mib(p) for n, p in pids.items() if os.path.exists(f"/proc/{p}")}


def requests_for(apps: list[DemoApp], keys: dict[str, str], port: int, batch: int, n: int) -> list[bytes]:
    model = TrafficModel(apps, random.Random(5))
    now = int(time.time() * 1000)
    out = []
    for _ in range(n):
        app = model.app()
        headers = {"Authorization": f"Bearer {keys[app.app_id]}", "Content-Type": "application/json"}
        if batch == 1:
            out.append(
                build_request(
                    "127.0.0.1", port, "/v1/events", msgspec.json.encode(model.event(app, now)), headers
                )
            )
        else:
            body = msgspec.json.encode([model.event(app, now) for _ in range(batch)])
            out.append(build_request("127.0.0.1", port, "/v1/events/batch", body, headers))
    return out


def measure(
    pid: int,
    broker_pid: int | None,
    port: int,
    reqs: list[bytes],
    seconds: float,
    connections: int,
    work: Path,
) -> dict[str, Any]:
    path = write_requests(work / f"requests-{port}-{len(reqs)}.bin", reqs)
    wrk(port, path, seconds=2, connections=min(connections, 16))  # warm up
    cpu0 = cpu_seconds(pid)
    broker0 = cpu_seconds(broker_pid) if broker_pid else 0.0
    result = wrk(port, path, seconds=seconds, connections=connections)
    cpu = cpu_seconds(pid) - cpu0
    broker = cpu_seconds(broker_pid) - broker0 if broker_pid else 0.0
    ok, elapsed = result.ok, result.elapsed
    return {
        "requests_per_s": ok / elapsed,
        "server_cpu": cpu / elapsed,  # cores the server process used
        "requests_per_cpu_s": ok / cpu if cpu > 0 else 0.0,
        "broker_cpu": broker / elapsed,
        "client_cpu": result.client_cpu / elapsed,
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "statuses": {"2xx": ok, **result.errors},
    }


def bench_ingest(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="quills-bench-pipeline-"))
    nats = EmbeddedNats(tmp / "nats", port=free_port())
    nats.start()
    try:
        db = tmp / "quills.db"
        apps = demo_apps(100)
        creds, _ = bootstrap(Database(str(db)), tmp, [(a.app_id, a.platform) for a in apps])
        keys = {a: v["key"] for a, v in creds["apps"].items()}

        async def topics() -> None:
            async with await connect(nats.url) as backbone:
                for t in ("installs.v1", "inapps.v1", "sessions.v1"):
                    await backbone.ensure_topic(t)

        uvloop.run(topics())
        results: dict[str, Any] = {}
        servers = {
            "quills": [
                sys.executable,
                "-m",
                "quills.attribution.ingest",
                "--broker",
                nats.url,
                "--db",
                str(db),
            ],
            "fastapi": [
                args.peer_python,
                str(Path(__file__).with_name("fastapi_peer.py")),
                "--nats",
                nats.url,
                "--db",
                str(db),
            ],
        }
        for name, argv in servers.items():
            port = free_port()
            proc = subprocess.Popen(
                [*argv, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            try:
                wait_port(port)
                single = requests_for(apps, keys, port, 1, 2000)
                batch = requests_for(apps, keys, port, args.batch, 100)
                one = measure(proc.pid, nats.pid, port, single, args.seconds, args.connections, tmp)
                many = measure(proc.pid, nats.pid, port, batch, args.seconds, args.batch_connections, tmp)
                many["events_per_s"] = many["requests_per_s"] * args.batch
                many["events_per_cpu_s"] = many["requests_per_cpu_s"] * args.batch
                results[name] = {"single": one, "batch": many}
                print(name, json.dumps(results[name]), flush=True)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
        return results
    finally:
        nats.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def bench_e2e(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="quills-bench-e2e-"))
    ports = {k: free_port() for k in ("ingest", "api", "monitor", "broker", "postbacks")}
    argv = [str(Path(sys.executable).parent / "quills"), "up", "--data-dir", str(tmp / "data")]
    for k, v in ports.items():
        argv += [f"--{k}-port", str(v)]
    up = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for k in ("broker", "ingest", "api", "postbacks"):
            wait_port(ports[k])
        pids = {p.stem: int(p.read_text()) for p in (tmp / "data" / "run").glob("*.pid")}
        summary_path = tmp / "loadgen.json"
        argv = [str(Path(sys.executable).parent / "quills"), "loadgen", "--rate", str(args.e2e_rate)]
        argv += ["--duration", str(args.e2e_seconds), "--batch", str(args.e2e_batch), "--seed", "5"]
        argv += ["--url", f"http://127.0.0.1:{ports['ingest']}", "--data-dir", str(tmp / "data")]
        argv += ["--concurrency", str(args.e2e_connections), "--summary-json", str(summary_path)]
        loadgen = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        pids["loadgen"] = loadgen.pid
        samples: list[dict[str, Any]] = []

        async def sample() -> None:
            async with httpx.AsyncClient(timeout=5) as client:
                while loadgen.poll() is None:
                    row: dict[str, Any] = {"t": time.monotonic()}
                    try:
                        health = (await client.get(f"http://127.0.0.1:{ports['api']}/healthz")).json()
                        row["lag"] = health["lag_seconds"]
                        row["consumed"] = sum(c["messages"] for c in health["consumers"])
                    except (httpx.HTTPError, ValueError, KeyError):
                        row["lag"] = None
                    row["rss"] = rss_all(pids)
                    row["cpu"] = _cpu_all(pids)
                    if loadgen.poll() is None:  # a row taken as loadgen exits would lack its numbers
                        samples.append(row)
                    await asyncio.sleep(1.0)

        uvloop.run(sample())
        loadgen.wait()
        summary = json.loads(summary_path.read_text())
        result = SimpleNamespace(
            elapsed=summary["elapsed"],
            by_status={int(k): v for k, v in summary["statuses"].items() if k.isdigit()},
            sent=summary["sent"],
            accepted=summary["accepted"],
        )
        client_cpu = (samples[-1]["cpu"].get("loadgen", 0.0) - samples[0]["cpu"].get("loadgen", 0.0)) * (
            result.elapsed / max(1e-9, samples[-1]["t"] - samples[0]["t"])
        )
        return _e2e_summary(args, result, samples, pids, client_cpu)
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(60)
        shutil.rmtree(tmp, ignore_errors=True)


def _cpu_all(pids: dict[str, int]) -> dict[str, float]:
    out = {}
    for name, pid in pids.items():
        try:
            out[name] = cpu_seconds(pid)
        except OSError:
            pass
    return out


def _e2e_summary(
    args: argparse.Namespace,
    result: Any,
    samples: list[dict[str, Any]],
    pids: dict[str, int],
    client_cpu: float,
) -> dict[str, Any]:
    """Rates, lag percentiles, RSS growth and CPU per process over the samples after warm-up."""
    accepted = result.accepted
    warm = [s for s in samples if s["t"] - samples[0]["t"] >= min(30.0, args.e2e_seconds * 0.2)]
    lags = [s["lag"] for s in warm if s.get("lag") is not None]
    rss_growth = {}
    for name in pids:
        series = [s["rss"][name] for s in warm if name in s["rss"]]
        if len(series) >= 2:
            rss_growth[name] = {"first_mib": round(series[0], 1), "last_mib": round(series[-1], 1),
                                "max_mib": round(max(series), 1),
                                "growth_pct": round((series[-1] / series[0] - 1) * 100, 1)}  # fmt: skip
    consumed = [s["consumed"] for s in warm if "consumed" in s]
    span = warm[-1]["t"] - warm[0]["t"] if len(warm) > 1 else 1.0
    consumed_n = consumed[-1] - consumed[0] if len(consumed) > 1 else 0
    # CPU per process over the warm window: cores used, and microseconds per event folded by reports
    cpu: dict[str, dict[str, float]] = {}
    if len(warm) > 1:
        for name in pids:
            if name in warm[0]["cpu"] and name in warm[-1]["cpu"]:
                used = warm[-1]["cpu"][name] - warm[0]["cpu"][name]
                cpu[name] = {
                    "cores": round(used / span, 3),
                    "us_per_event": round(used / consumed_n * 1e6, 2) if consumed_n else 0.0,
                }
    return {
        "seconds": result.elapsed,
        "accepted_events_per_s": accepted / result.elapsed,
        "consumed_events_per_s": consumed_n / span,
        "offered_events_per_s": args.e2e_rate,
        "sent_events": result.sent,
        "statuses": {str(k): v for k, v in result.by_status.items()},
        "lag_p50_s": percentile(lags, 50),
        "lag_p99_s": percentile(lags, 99),
        "lag_max_s": max(lags) if lags else None,
        "lag_series_s": [round(x, 2) for x in lags],
        "rss": rss_growth,
        "cpu": cpu,
        "client_cores": round(client_cpu / result.elapsed, 3),
        "load": "{:.1f} / {:.1f} / {:.1f}".format(*os.getloadavg()),
    }


def write_e2e_subsection(path: Path, text: str) -> None:
    """Replace only the end-to-end subsection of the Pipeline section (an e2e-only run keeps the ingest
    results already written there)."""
    doc = path.read_text()
    start = doc.find("### End to end")
    end = doc.find("\nWhere the time goes", start)
    new_start, new_end = text.find("### End to end"), text.find("\nWhere the time goes")
    if start < 0 or end < 0 or new_start < 0 or new_end < 0:
        write_section(path, text)
        return
    path.write_text(doc[:start] + text[new_start:new_end] + doc[end:])


def run_meta() -> dict[str, Any]:
    load = os.getloadavg()
    return {
        "command": f"bench/pipeline/run.py {' '.join(sys.argv[1:])}",
        "time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}",
        "load": f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}",
    }


def section(
    ingest: dict[str, Any] | None, e2e: dict[str, Any] | None, args: argparse.Namespace, meta: dict[str, Any]
) -> str:
    lines = [
        "## Pipeline",
        "",
        f"`make bench-pipeline` (`{meta['command']}`), {meta['time']}, {meta['machine']}, load average at the "
        f"end {meta['load']} (1/5/15 min; the benchmark's own processes share the 2 cores, so wall-clock "
        "rates are below what one process would do with a core to itself).",
        "",
    ]
    if ingest:
        q, f = ingest["quills"], ingest["fastapi"]
        lines += [
            f"### Ingest, one process each, same broker, same requests ({args.seconds:.0f} s per case, load from wrk)",
            "",
            "| case | quills (raw ASGI on uvicorn + msgspec, micro-batched publish) | FastAPI + pydantic (publish per event) | ratio |",
            "|---|---|---|---|",
            f"| single-event requests/s ({args.connections} connections) | {q['single']['requests_per_s']:,.0f} "
            f"(p50 {q['single']['p50_ms']:.1f} ms, p99 {q['single']['p99_ms']:.1f} ms) | "
            f"{f['single']['requests_per_s']:,.0f} (p50 {f['single']['p50_ms']:.1f} ms, "
            f"p99 {f['single']['p99_ms']:.1f} ms) | {q['single']['requests_per_s'] / max(f['single']['requests_per_s'], 1e-9):.1f}x |",
            f"| cores used meanwhile: server / broker / wrk | {_cores(q['single'])} | {_cores(f['single'])} | |",
            f"| single-event requests per server CPU-second | {q['single']['requests_per_cpu_s']:,.0f} | {f['single']['requests_per_cpu_s']:,.0f} | "
            f"{q['single']['requests_per_cpu_s'] / max(f['single']['requests_per_cpu_s'], 1e-9):.1f}x |",
            f"| batch events/s ({args.batch} per request, {args.batch_connections} connections) | {q['batch']['events_per_s']:,.0f} "
            f"(p99 {q['batch']['p99_ms']:.0f} ms) | {f['batch']['events_per_s']:,.0f} "
            f"(p99 {f['batch']['p99_ms']:.0f} ms) | "
            f"{q['batch']['events_per_s'] / max(f['batch']['events_per_s'], 1e-9):.1f}x |",
            f"| cores used meanwhile: server / broker / wrk | {_cores(q['batch'])} | {_cores(f['batch'])} | |",
            f"| batch events per server CPU-second | {q['batch']['events_per_cpu_s']:,.0f} | {f['batch']['events_per_cpu_s']:,.0f} | "
            f"{q['batch']['events_per_cpu_s'] / max(f['batch']['events_per_cpu_s'], 1e-9):.1f}x |",
            "",
            "Per CPU-second: what one process would do with a core to itself (the server's own CPU time, from",
            "/proc, divided into the requests it answered); the rows above are wall-clock rates on the shared machine,",
            "where the server, the broker (nats-server, S2-compressed file storage) and wrk share 2 cores with",
            "other work. Each 202 means the broker acknowledged every event of the request.",
            "",
            "Targets: >= 3x the peer, >= 10k single-event requests/s and >= 150k batch events/s per process. "
            + verdict(
                [
                    (
                        "3x peer (single, wall)",
                        q["single"]["requests_per_s"] >= 3 * f["single"]["requests_per_s"],
                    ),
                    ("3x peer (batch, wall)", q["batch"]["events_per_s"] >= 3 * f["batch"]["events_per_s"]),
                    ("10k requests/s (wall)", q["single"]["requests_per_s"] >= 10_000),
                    ("10k requests per CPU-second", q["single"]["requests_per_cpu_s"] >= 10_000),
                    ("150k events/s (wall)", q["batch"]["events_per_s"] >= 150_000),
                    ("150k events per CPU-second", q["batch"]["events_per_cpu_s"] >= 150_000),
                ]
            ),
            "",
        ]
    if e2e:
        rss = ", ".join(
            f"{n} {v['first_mib']}->{v['last_mib']} MiB ({v['growth_pct']:+.1f} %)"
            for n, v in sorted(e2e["rss"].items())
        )
        lines += [
            f"### End to end under `quills up` ({e2e['seconds']:.0f} s, `quills loadgen --rate {args.e2e_rate:.0f} --batch {args.e2e_batch} --concurrency {args.e2e_connections}`)",
            "",
            f"`{meta['command']}`, {meta['time']}, load average at the end {meta['load']} (1/5/15 min).",
            "",
            f"- accepted by ingest: {e2e['accepted_events_per_s']:,.0f} events/s; folded by reports: {e2e['consumed_events_per_s']:,.0f} events/s",
            f"- reports lag (now - data_complete_until, sampled every second after warm-up): p50 {e2e['lag_p50_s']:.2f} s, p99 {e2e['lag_p99_s']:.2f} s, max {e2e['lag_max_s']}",
            f"- RSS after warm-up, first -> last: {rss}",
            f"- CPU after warm-up, cores (us per event folded): {_cpu_line(e2e)}",
            f"- statuses: {e2e['statuses']}",
            "",
            "Targets: >= 50k events/s sustained for 5 minutes, lag p99 < 2 s, every service's RSS flat within 10 % "
            "(loadgen's is shown, not judged). "
            + verdict(
                [
                    (
                        "50k events/s",
                        e2e["consumed_events_per_s"] >= 50_000 and e2e["accepted_events_per_s"] >= 50_000,
                    ),
                    ("lag p99 < 2 s", e2e["lag_p99_s"] < 2),
                    (
                        "RSS within 10 %",
                        all(abs(v["growth_pct"]) <= 10 for n, v in e2e["rss"].items() if n != "loadgen"),
                    ),
                ]
            ),
            "",
            *E2E_NOTES,
        ]
    lines += [
        "Where the time goes (before packed publishing; py-spy --gil, /proc and micro-benchmarks, inflated by the",
        "other load): a single-event request costs the ingest process ~70-90 us of CPU, of which uvicorn and the",
        "event loop take ~45-55 (a bare ASGI app answering 202 costs ~31 us here with one write per response,",
        "36-39 with two), the socket write of the answer alone ~15 %, and our handling ~20 (decoding and",
        "validating the event ~2.5 us, stamping and encoding ~1 us). In a 500-event batch, per event: decoding",
        "and validating ~2.2-2.9 us, encoding ~0.9, NATS framing ~0.4 and the socket write to the broker ~1,",
        "freeing the request's objects ~1. The broker acknowledges a fast-ingest batch in 0.15-0.6 ms (an atomic",
        "batch took 3-10 ms) and spends ~5 us of CPU per event (S2 included), so at these rates it needs nearly a",
        "core of the two. Reports: see the end-to-end notes above.",
        "",
    ]
    return "\n".join(lines)


def _cores(case: dict[str, Any]) -> str:
    # Runs saved before wrk drove the load have no broker or client figures.
    return " / ".join(
        f"{case[k]:.2f}" if k in case else "?" for k in ("server_cpu", "broker_cpu", "client_cpu")
    )


E2E_NOTES = [
    "What the end-to-end run exercises: ingest packs each flush's events per topic and app into packed log",
    "messages (`quills.streams.packing`), so the broker stores, delivers and acks a few log messages per",
    "flush instead of one per event (5.5 us of broker CPU per event here, against 17-20 us one event per",
    "message); the load comes from `quills loadgen` itself (pooled traffic-model events, a body in one",
    "`%`, sent with aiohttp). Ingest",
    "and Reports are each one process. Where the CPU per event goes: ingest ~15 us (decoding and validating",
    "the full event schema ~3-5 us, stamping and encoding ~1-2, the HTTP body and the request ~the rest);",
    "Reports (`api`) ~21 us (decoding the fields it reads, folding ~0.7 new aggregate rows per event,",
    "the SQLite commit). At 50k events/s that is ~1.8 cores for the platform alone on this machine, which",
    "is also ~1.7-2x slower than the one of earlier runs (a bare aiohttp request: 231 us here, 125-140",
    "there). Reports falls behind first: the lag grows through the run. The `api` RSS grows while its",
    "bounded caches fill (SQLite page cache 64 MiB, up to 300,000 remembered row keys of ~600 B), the",
    "postbacks RSS while its delivery log's page cache fills; the broker's follows JetStream's block cache.",
    "",
]


def _cpu_line(e2e: dict[str, Any]) -> str:
    cpu = e2e.get("cpu") or {}
    parts = [f"{n} {v['cores']:.2f} ({v['us_per_event']:.1f} us)" for n, v in sorted(cpu.items())]
    if "client_cores" in e2e:
        parts.append(f"load client {e2e['client_cores']:.2f}")
    return ", ".join(parts) or "not measured"


def verdict(checks: list[tuple[str, bool]]) -> str:
    met = [name for name, ok in checks if ok]
    missed = [name for name, ok in checks if not ok]
    return f"Met: {', '.join(met) or 'none'}. Missed: {', '.join(missed) or 'none'}."


def write_section(path: Path, text: str) -> None:
    doc = path.read_text() if path.exists() else "# Benchmarks\n"
    start = doc.find("## Pipeline")
    if start >= 0:
        end = doc.find("\n## ", start + 5)
        text = _keep_unmeasured(doc[start : end if end >= 0 else len(doc)], text)
        doc = doc[:start] + text.rstrip() + "\n" + (doc[end:] if end >= 0 else "")
    else:
        doc = doc.rstrip() + "\n\n" + text.rstrip() + "\n"
    path.write_text(doc)


_KEPT = "(Kept from an earlier run: this one skipped it.)"


def _keep_unmeasured(old: str, new: str) -> str:
    """``new`` plus the ``###`` parts of ``old`` that this run skipped (``--skip-ingest``/``--skip-e2e``)."""
    kept = []
    for heading in ("### Ingest", "### End to end"):
        if heading in new or heading not in old:
            continue
        at = old.index(heading)
        ends = [i for i in (old.find("\n### ", at + 4), old.find("\nWhere the time goes", at)) if i >= 0]
        block = old[at : min(ends or [len(old)])].replace(_KEPT, "").strip()
        kept.append(f"{block}\n\n{_KEPT}\n")
    if not kept:
        return new
    where = new.find("Where the time goes")
    where = where if where >= 0 else len(new)
    return new[:where] + "\n".join(kept) + "\n" + new[where:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--peer-python", default=str(ROOT / "bench/.venvs/fastapi/bin/python"))
    parser.add_argument("--seconds", type=float, default=10.0, help="per ingest case")
    parser.add_argument("--connections", type=int, default=256, help="single-event case")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--batch-connections", type=int, default=16)
    parser.add_argument("--e2e-seconds", type=float, default=300.0)
    parser.add_argument("--e2e-batch", type=int, default=200)
    parser.add_argument("--e2e-connections", type=int, default=32, help="loadgen's requests in flight")
    parser.add_argument(
        "--e2e-rate", type=float, default=50_000, help="events/s offered end to end (0: as fast as accepted)"
    )
    parser.add_argument("--e2e-only", action="store_true", help="only the end-to-end part (= --skip-ingest)")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--write", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--from-json", type=Path, default=None, help="rewrite the section from a saved run")
    args = parser.parse_args()
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        ingest, e2e, meta = saved["ingest"], saved["e2e"], saved["meta"]
    else:
        ingest = None if args.skip_ingest or args.e2e_only else bench_ingest(args)
        e2e = None if args.skip_e2e else bench_e2e(args)
        meta = run_meta()
    if e2e:
        print("e2e", json.dumps(e2e), flush=True)
    text = section(ingest, e2e, args, meta)
    print(text)
    if args.json and not args.from_json:
        args.json.write_text(json.dumps({"ingest": ingest, "e2e": e2e, "meta": meta}, indent=1))
    if args.write:
        if ingest is None and e2e is not None:
            write_e2e_subsection(args.write, text)
        else:
            write_section(args.write, text)


if __name__ == "__main__":
    main()
