"""The resilience benchmark: quills commands side by side with the Python breaker libraries.

    python bench/resilience.py [--quick] [--write docs/benchmarks.md] [--json out.json]

Measures, in one run: per-call overhead over a bare call (sync success, async success, open rejection)
against every peer that installs, interleaved; flatness over 1M calls; memory per command with default
windows; the cost of thread isolation; and a healthy command's p99 while another dependency hangs, with a
pool per dependency versus one shared executor. Prints the tables and, with ``--write``, replaces the
``## Resilience`` section of the given markdown file.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _isolation
import _memory
import _overhead
import _peers
import _report

TARGETS_NS = {"sync": 400.0, "async": 500.0, "open_sync": 650.0}
TARGET_MEMORY = 64 * 1024
TARGET_HUNG_P99 = 1.2
COLUMNS = {
    "sync": "sync success",
    "async": "async success",
    "open_sync": "open rejection, sync",
    "open_async": "open rejection, async",
}


@dataclasses.dataclass
class Settings:
    runs: int = 3  # processes for the overhead table, one after the other; their rounds are pooled
    rounds: int = 9  # interleaved rounds per run
    calls: int = 40_000
    open_calls: int = 20_000
    flat_total: int = 1_000_000
    flat_chunk: int = 100_000
    purgatory_flat_total: int = 200_000
    memory_commands: int = 40
    thread_calls: int = 20_000
    hung_repeats: int = 4
    hung: _isolation.Workload = dataclasses.field(default_factory=_isolation.Workload)


QUICK = Settings(
    runs=1,
    rounds=3,
    calls=5_000,
    open_calls=2_000,
    flat_total=200_000,
    flat_chunk=20_000,
    purgatory_flat_total=40_000,
    memory_commands=4,
    thread_calls=2_000,
    hung_repeats=1,
    hung=_isolation.Workload(seconds=1.0),
)


def _machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(terse=True),
        "load_before": os.getloadavg(),
    }


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(settings: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {"machine": _machine(), "started": datetime.datetime.now(datetime.UTC).isoformat()}
    t0 = time.monotonic()
    peers, failed = _peers.load_peers()
    quills_peer = _peers.make_quills()
    everyone = [quills_peer, _peers.make_quills_count_window(), *peers]
    out["peers"] = {p.name: {"version": p.version, "note": p.note} for p in everyone}
    out["failed"] = failed

    _log(
        f"overhead: {settings.runs} runs x {settings.rounds} interleaved rounds of {len(everyone)} libraries"
    )
    samples, per_run = _overhead_runs(settings, everyone)
    out["overhead_runs"] = per_run
    out["overhead"] = {
        section: {
            "bare_ns": s.bare(),
            "cases": {
                case: {
                    "overhead_ns": s.overhead(case),
                    "iqr_ns": s.spread(case) if len(s.per_call[case]) >= 2 else None,
                    "ratio": s.ratio(case),
                    "rounds_ns": s.per_call[case],
                }
                for case in s.per_call
                if case != _overhead.BARE
            },
        }
        for section, s in samples.items()
    }

    _log("flatness over a long run")
    total, chunk = settings.flat_total, settings.flat_chunk
    flats = [
        _overhead.flat_sync("quills, sync success", quills_peer.sync(), total=total, chunk=chunk),  # type: ignore[misc]
        _overhead.flat_async("quills, async success", quills_peer.async_, total=total, chunk=chunk),  # type: ignore[arg-type]
        _overhead.flat_open("quills, open rejection", quills_peer.open_sync(), total=total, chunk=chunk),  # type: ignore[misc]
    ]
    by_name = {p.name: p for p in peers}
    best = by_name.get("circuitbreaker")
    if best is not None and best.open_sync is not None and best.sync is not None:
        flats.append(
            _overhead.flat_sync("circuitbreaker, sync success", best.sync(), total=total, chunk=chunk)
        )
        flats.append(
            _overhead.flat_open("circuitbreaker, open rejection", best.open_sync(), total=total, chunk=chunk)
        )
    purgatory = by_name.get("purgatory")
    if purgatory is not None and purgatory.open_sync is not None:
        flats.append(
            _overhead.flat_open(
                "purgatory, open rejection",
                purgatory.open_sync(),
                total=settings.purgatory_flat_total,
                chunk=chunk,
            )
        )
    out["flatness"] = [dataclasses.asdict(f) | {"growth": f.growth} for f in flats]

    _log("memory per command")
    out["memory"] = [
        dataclasses.asdict(_memory.per_command(commands=settings.memory_commands, spread=spread))
        for spread in ("typical", "wide")
    ]

    _log("thread isolation cost")
    out["thread_cost"] = [dataclasses.asdict(x) for x in _isolation.thread_cost(calls=settings.thread_calls)]

    _log("hung dependency")
    phases, ratios = _isolation.hung_dependency(settings.hung, repeats=settings.hung_repeats)
    out["hung"] = {
        "workload": dataclasses.asdict(settings.hung),
        "repeats": settings.hung_repeats,
        "phases": [dataclasses.asdict(p) for p in phases],
        "p99_ratios": ratios,
        "degradation": {setup: statistics.median(values) for setup, values in ratios.items()},
    }
    out["machine"]["load_after"] = os.getloadavg()
    out["seconds"] = time.monotonic() - t0
    return out


def _overhead_runs(
    settings: Settings, everyone: list[_peers.Peer]
) -> tuple[dict[str, _overhead.Samples], list[dict[str, dict[str, float]]]]:
    """The overhead rounds of ``settings.runs`` runs pooled (one run in this process, more in fresh
    processes), and each run's median overheads."""
    if settings.runs == 1:
        runs = [_measure(settings, everyone)]
    else:
        runs = []
        for _ in range(settings.runs):
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "run.json"
                command = [
                    sys.executable,
                    __file__,
                    "--overhead-run",
                    str(path),
                    "--rounds",
                    str(settings.rounds),
                ]
                command += ["--calls", str(settings.calls), "--open-calls", str(settings.open_calls)]
                subprocess.run(command, check=True)
                runs.append(json.loads(path.read_text()))
    pooled = {section: _overhead.Samples() for section in _overhead.SECTIONS}
    per_run = []
    for run_data in runs:
        medians: dict[str, dict[str, float]] = {}
        for section, per_call in run_data.items():
            one = _overhead.Samples({case: list(values) for case, values in per_call.items()})
            medians[section] = {case: one.overhead(case) for case in per_call if case != _overhead.BARE}
            for case, values in per_call.items():
                pooled[section].per_call.setdefault(case, []).extend(values)
        per_run.append(medians)
    return pooled, per_run


def _measure(settings: Settings, everyone: list[_peers.Peer]) -> dict[str, dict[str, list[float]]]:
    samples = _overhead.measure(
        everyone, rounds=settings.rounds, calls=settings.calls, open_calls=settings.open_calls
    )
    return {section: s.per_call for section, s in samples.items()}


def _overhead_run(path: Path, settings: Settings) -> None:
    """One run of the overhead rounds, for a parent process (``--overhead-run``)."""
    peers, _ = _peers.load_peers()
    everyone = [_peers.make_quills(), _peers.make_quills_count_window(), *peers]
    path.write_text(json.dumps(_measure(settings, everyone)))


# -- rendering -------------------------------------------------------------------------------------
def _ns(value: float) -> str:
    return f"{value:,.0f}"


def _best_peers(result: dict[str, Any]) -> dict[str, tuple[str, float]]:
    best = {}
    for section, data in result["overhead"].items():
        peers = {name: c["overhead_ns"] for name, c in data["cases"].items() if not name.startswith("quills")}
        if peers:
            name = min(peers, key=peers.__getitem__)
            best[section] = (name, peers[name])
    return best


def render(result: dict[str, Any], command: str) -> str:
    overhead = result["overhead"]
    best = _best_peers(result)
    machine = result["machine"]
    lines = [
        _report.SECTION,
        "",
        f"Command: `{command}` ({result['seconds']:.0f} s). Machine: {machine['cores']} shared cores, "
        f"{machine['implementation']} {machine['python']}, {machine['platform']}, load average "
        f"{machine['load_before'][0]:.2f} before / {machine['load_after'][0]:.2f} after "
        f"(other engineers' tests were running). Run at {result['started'][:16]} UTC.",
        "",
        "### Per-call overhead over a bare call (ns)",
        "",
        f"Bare calls: sync `f()` {overhead['sync']['bare_ns']:.0f} ns, `await f()` "
        f"{overhead['async']['bare_ns']:.0f} ns per call (loop included; it cancels out), timed in thread "
        "CPU time (descheduling by other processes does not count). Cell: median over "
        f"{len(next(iter(overhead['sync']['cases'].values()))['rounds_ns'])} interleaved rounds "
        f"({len(result['overhead_runs'])} processes run one after the other, rounds pooled) of the "
        "per-round overhead (case minus bare, same round), then `(case/bare)`. quills: default options "
        '(1 s timeout, Hystrix windows, full rolling metrics and latency histogram), `isolation="semaphore"` '
        "for sync. Open rejection: the breaker is open, no fallback, the caller catches the library's "
        "open error; the harness checks that the target never ran.",
        "",
    ]
    names = list(result["peers"])
    rows = []
    for name in names:
        version = result["peers"][name]["version"]
        library, _, variant = name.partition(" ")
        row = [f"{library} {version} {variant}".strip()]
        for section in COLUMNS:
            case = overhead[section]["cases"].get(name)
            row.append("n/a" if case is None else f"{_ns(case['overhead_ns'])} ({case['ratio']:.1f}x)")
        rows.append(row)
    rows.append(
        ["**quills / best peer**"]
        + [
            f"**{overhead[s]['cases']['quills']['overhead_ns'] / best[s][1]:.2f}** (vs {best[s][0]})"
            if s in best and "quills" in overhead[s]["cases"]
            else "n/a"
            for s in COLUMNS
        ]
    )
    rows.append(
        ["target for quills"] + [f"<= {TARGETS_NS[s]:.0f}" if s in TARGETS_NS else "-" for s in COLUMNS]
    )
    lines.append(_report.table(["library", *COLUMNS.values()], rows))
    iqr = [
        f"{name} {section}: {_ns(case['iqr_ns'][0])}-{_ns(case['iqr_ns'][1])}"
        for section, data in overhead.items()
        for name, case in data["cases"].items()
        if name.startswith("quills") and case["iqr_ns"]
    ]
    lines += ["", "Interquartile range of quills' per-round overheads: " + "; ".join(iqr) + "."]
    if len(result["overhead_runs"]) > 1:
        each = [
            f"{section} " + " / ".join(f"{run[section]['quills']:,.0f}" for run in result["overhead_runs"])
            for section in COLUMNS
        ]
        lines += ["", "quills' median in each process: " + "; ".join(each) + " ns."]
    notes = [f"{name}: {p['note']}" for name, p in result["peers"].items() if p["note"]]
    notes += [f"{name} left out: {why}" for name, why in result["failed"].items()]
    if notes:
        lines += ["", "Notes: " + "; ".join(notes) + "."]

    lines += [
        "",
        "### Flat over a long run",
        "",
        "One continuous run per path, in consecutive chunks; a chunk's figure is the median of its "
        f"{_overhead.SLICES} slices (ns/call over a bare call, thread CPU time). Bytes kept per call: "
        f"memory still allocated after {_overhead.KEPT_CALLS:,} more calls at the end of the run "
        "(tracemalloc, after a full collection).",
        "",
    ]
    rows = []
    for f in result["flatness"]:
        n = f["chunk"] * len(f["chunks"])
        rows.append(
            [
                f["label"],
                f"{n:,}",
                _ns(f["chunks"][0]),
                _ns(f["chunks"][-1]),
                _ns(max(f["chunks"])),
                f"{f['growth']:.2f}",
                f"{f['kept_bytes_per_call']:,.0f}",
            ]
        )
    chunk = result["flatness"][0]["chunk"]
    lines.append(
        _report.table(
            [
                "path",
                "calls",
                f"first {chunk:,} (ns)",
                f"last {chunk:,} (ns)",
                "worst chunk (ns)",
                "last/first",
                "bytes kept per call",
            ],
            rows,
        )
    )

    if any(f["label"].startswith("purgatory") for f in result["flatness"]):
        lines += [
            "",
            "purgatory raises one exception object for every rejection, so its traceback (and the frames it "
            "holds) grows with each call; the garbage collector then traverses that chain, which is where "
            "its time goes (about 1.8 us per rejection with `gc.disable()`, 10-24 us with it on, measured "
            "here). Its per-chunk time therefore follows the collector's schedule; what grows steadily is "
            "the memory it keeps.",
        ]
    lines += ["", "### Memory per command (default windows, every bucket filled)", ""]
    rows = [
        [
            m["label"],
            str(m["commands"]),
            f"{m['calls_per_command']:,}",
            str(m["distinct_latency_buckets"]),
            f"{m['bytes_per_command'] / 1024:.1f} KiB",
        ]
        for m in result["memory"]
    ]
    lines.append(
        _report.table(
            [
                "latencies",
                "commands",
                "calls each over 70 s",
                "distinct histogram buckets (one command)",
                "bytes per command",
            ],
            rows,
        )
    )
    lines += [
        "",
        "tracemalloc over building and exercising the commands (semaphore isolation, FakeClock advanced by "
        "each call's drawn latency, 2 % errors). typical: ~100 calls/s, lognormal latencies around 2 ms; "
        "wide: back-to-back calls, log-uniform 10 us-50 ms (worst case for the sparse histograms kept for "
        "closed percentile buckets).",
    ]

    lines += ["", "### Cost of thread isolation (per call, ns)", ""]
    rows = [
        [x["label"], _ns(x["p50_ns"]), _ns(x["p99_ns"]), _ns(x["added_p50_ns"]), _ns(x["added_p99_ns"])]
        for x in result["thread_cost"]
    ]
    lines.append(_report.table(["way to call `f`", "p50", "p99", "added p50", "added p99"], rows))

    hung = result["hung"]
    work = hung["workload"]
    lines += [
        "",
        "### One dependency hung: a healthy command's latency",
        "",
        f"Workload per phase ({work['seconds']:.0f} s; {hung['repeats']} repeats, each a baseline and a hung "
        f"phase back to back; rows pool the repeats' samples): {work['healthy_callers']} callers x "
        f"{work['rate_hz']:.0f} calls/s to a healthy dependency (sleeps {work['healthy_sleep'] * 1e3:g} ms, "
        f"timeout {work['healthy_timeout']:g} s) and {work['other_callers']} callers x {work['rate_hz']:.0f} "
        f"calls/s to another dependency (timeout {work['other_timeout']:g} s), open loop. baseline: the "
        "other dependency is healthy too; hung: it blocks forever (released after the phase). quills: "
        f"default thread isolation, one pool of {work['pool_size']} per dependency; shared: one "
        f"ThreadPoolExecutor({2 * work['pool_size']}) and `submit().result(timeout)`. The tail of a 1 ms "
        "sleep moves with what other processes do, so each repeat compares a baseline and a hung phase run "
        "back to back and the verdict takes the median of those ratios.",
        "",
    ]
    rows = [
        [
            p["setup"],
            p["phase"],
            str(p["healthy_calls"]),
            str(p["healthy_errors"]),
            f"{p['p50_ms']:.2f}",
            f"{p['p99_ms']:.2f}",
            ", ".join(f"{k} {v}" for k, v in p["other_outcomes"].items()),
        ]
        for p in hung["phases"]
    ]
    lines.append(
        _report.table(
            [
                "setup",
                "phase",
                "healthy calls",
                "healthy errors",
                "healthy p50 ms",
                "healthy p99 ms",
                "other dependency's outcomes",
            ],
            rows,
        )
    )
    lines += ["", "### Reading", ""]
    lines += [f"- {line}" for line in verdicts(result)]
    return "\n".join(lines) + "\n"


def verdicts(result: dict[str, Any]) -> list[str]:
    out = []
    overhead = result["overhead"]
    best = _best_peers(result)
    for section, target in TARGETS_NS.items():
        case = overhead[section]["cases"].get("quills")
        if case is None:
            continue
        value = case["overhead_ns"]
        peer = f"; best peer {best[section][0]} {value / best[section][1]:.2f}x" if section in best else ""
        if value <= target:
            out.append(f"{COLUMNS[section]}: {value:.0f} ns, target <= {target:.0f} met{peer}.")
        else:
            out.append(
                f"{COLUMNS[section]}: {value:.0f} ns, target <= {target:.0f} "
                f"**missed by {value - target:.0f} ns ({value / target:.2f}x)**{peer}."
            )
    for f in result["flatness"]:
        if f["label"].startswith("quills"):
            flat = "flat" if 0.8 <= f["growth"] <= 1.25 else "**not flat**"
            out.append(
                f"{f['label']} over {f['chunk'] * len(f['chunks']):,} calls: {flat} "
                f"(last/first chunk {f['growth']:.2f})."
            )
    worst = max(m["bytes_per_command"] for m in result["memory"])
    verdict = "met" if worst <= TARGET_MEMORY else f"**missed ({worst / TARGET_MEMORY:.2f}x)**"
    out.append(f"Memory per command: at most {worst / 1024:.1f} KiB, target <= 64 KiB {verdict}.")
    cost = {x["label"]: x for x in result["thread_cost"]}
    thread = cost.get('quills isolation="thread"')
    if thread is not None:
        out.append(
            f"Thread isolation adds {thread['added_p50_ns'] / 1e3:.1f} us at the median and "
            f"{thread['added_p99_ns'] / 1e3:.1f} us at p99 per call (a hand-off to a worker and back)."
        )
    open_thread = cost.get('quills isolation="thread", circuit open (raise + catch)')
    open_semaphore = cost.get('quills isolation="semaphore", circuit open (raise + catch)')
    if open_thread is not None and open_semaphore is not None:
        out.append(
            "Open rejection by isolation (per call, raise + catch): thread "
            f"{open_thread['p50_ns']:,.0f} ns p50 / {open_thread['p99_ns']:,.0f} ns p99, semaphore "
            f"{open_semaphore['p50_ns']:,.0f} / {open_semaphore['p99_ns']:,.0f} ns."
        )
    for setup, ratio in result["hung"]["degradation"].items():
        each = ", ".join(f"{r:.2f}" for r in result["hung"]["p99_ratios"][setup])
        if setup.startswith("quills"):
            verdict = "met" if ratio <= TARGET_HUNG_P99 else "**missed**"
            out.append(
                f"Hung dependency, {setup}: healthy p99 {ratio:.2f}x its baseline (median of the repeats: "
                f"{each}), target <= 1.2x {verdict}."
            )
        else:
            out.append(f"Hung dependency, {setup}: healthy p99 {ratio:.0f}x its baseline (repeats: {each}).")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run (numbers not meaningful)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds for the overhead table")
    parser.add_argument("--write", type=Path, help="markdown file whose '## Resilience' section is replaced")
    parser.add_argument("--json", type=Path, help="also dump every raw number here")
    parser.add_argument("--runs", type=int, help="processes for the overhead table (default 3)")
    parser.add_argument("--overhead-run", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--open-calls", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    settings = dataclasses.replace(QUICK) if args.quick else Settings()
    if args.rounds:
        settings.rounds = args.rounds
    if args.runs:
        settings.runs = args.runs
    if args.calls:
        settings.calls = args.calls
    if args.open_calls:
        settings.open_calls = args.open_calls
    if args.overhead_run is not None:
        _overhead_run(args.overhead_run, settings)
        return 0
    result = run(settings)
    command = "make bench-resilience" if not args.quick else "python bench/resilience.py --quick"
    text = render(result, command)
    print(text)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1, default=str))
    if args.write is not None:
        _report.replace_section(args.write, text)
        _log(f"wrote the resilience section of {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
