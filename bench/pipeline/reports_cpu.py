"""CPU per event of the Reports service's own work: decode, fold, and the SQLite sink's commit.

No broker and no HTTP: traffic-model events (JSON, as ingest stores them) go through the same code the
consumer runs, one batch at a time, with the GC settings of the service. ``--cycle N`` repeats the first
N events (what ``bench_e2e`` sends: 400 pre-built requests of 200 events), ``--cycle 0`` draws fresh
events throughout. Prints CPU microseconds per event for each step (``time.process_time``: less
sensitive to other load than wall time).

    python bench/pipeline/reports_cpu.py --events 300000 --batch 10000 --cycle 80000
"""

from __future__ import annotations

import argparse
import gc
import random
import tempfile
import time
from pathlib import Path

import msgspec

from quills.attribution.db import Database
from quills.attribution.events import EventView
from quills.attribution.reports.handlers import fold
from quills.attribution.reports.sinks import apply_fold, schema
from quills.attribution.traffic import TrafficModel, demo_apps
from quills.streams import Batch, NatsClaim


def events(n: int, cycle: int) -> list[bytes]:
    model = TrafficModel(demo_apps(1000), random.Random(5))
    now = int(time.time() * 1000)
    encode = msgspec.json.encode
    out: list[bytes] = []
    distinct = cycle or n
    while len(out) < distinct:
        app = model.app()
        out.extend(encode(model.event(app, now)) for _ in range(200))  # one request's worth per app
    out = out[:distinct]
    return [out[i % distinct] for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--cycle", type=int, default=80_000, help="distinct events repeated (0: all fresh)")
    parser.add_argument("--default-gc", action="store_true", help="CPython's GC thresholds (older versions)")
    args = parser.parse_args()
    payloads = events(args.events, args.cycle)
    decode = msgspec.json.Decoder(EventView).decode
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(str(Path(tmp) / "reports.db"))
        sink = db.sink(apply_fold(db), schema(db))
        if not args.default_gc:
            gc.collect()
            gc.freeze()
            gc.set_threshold(50_000, 10, 10)  # as the service does (reports.app)
        clock = time.process_time
        spent = {"decode": 0.0, "fold": 0.0, "commit": 0.0}
        rows = 0
        for start in range(0, len(payloads), args.batch):
            chunk = payloads[start : start + args.batch]
            t0 = clock()
            messages = [decode(p) for p in chunk]
            t1 = clock()
            folded = fold(Batch("sessions.v1", messages))
            t2 = clock()
            sink.commit("reports", folded, NatsClaim("S", list(range(start + 1, start + len(chunk) + 1))))
            t3 = clock()
            spent["decode"] += t1 - t0
            spent["fold"] += t2 - t1
            spent["commit"] += t3 - t2
            rows += len(folded.rows)
        sink.close()
    n = len(payloads)
    per = {k: v / n * 1e6 for k, v in spent.items()}
    print(
        f"{n} events, batches of {args.batch}, cycle {args.cycle or 'fresh'}: "
        + ", ".join(f"{k} {v:.2f}" for k, v in per.items())
        + f", total {sum(per.values()):.2f} us per event; {rows / n:.2f} rows per event"
    )


if __name__ == "__main__":
    main()
