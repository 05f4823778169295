"""CPU per event of the Reports service's own work: decode, fold, store, merge.

No broker and no HTTP: events as ``quills loadgen`` offers them (``EventPool`` over the traffic model,
200 per request and app) go through ingest's validation, stamping and encoding and are packed per
request and topic as ingest publishes them; then, topic by topic in the proportions three consumers with
the same wait would see, through the code the Reports service runs: decode (packed messages
flattened), ``fold``, the sink's commit (the batch stored with its positions) and, every
``--merge-every`` events, ``DeltaMerger.merge``. The GC is set as the service sets it. Prints CPU
microseconds per event for each step (``time.process_time``: less sensitive to other load than wall
time) and the aggregate rows per event.

    python bench/pipeline/reports_cpu.py --events 400000 --batch 12000 --merge-every 100000
"""

from __future__ import annotations

import argparse
import gc
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from quills.attribution.db import Database
from quills.attribution.events import INAPPS, INSTALLS, SESSIONS
from quills.attribution.ingest import handlers
from quills.attribution.reports.handlers import fold
from quills.attribution.reports.sinks import DeltaMerger, apply_fold, schema
from quills.attribution.traffic import EventPool, TrafficModel, demo_apps
from quills.streams import Batch, NatsClaim, Topic, pack

TOPICS: dict[str, Topic[Any]] = {t.wire_name: t for t in (INSTALLS, INAPPS, SESSIONS)}


def published(n: int) -> dict[str, list[tuple[int, bytes]]]:
    """``(events, log message)`` per topic, as ingest publishes ``n`` loadgen events."""
    model = TrafficModel(demo_apps(1000), random.Random(5))
    pool = EventPool(model)
    now = int(time.time() * 1000)
    out: dict[str, list[tuple[int, bytes]]] = {name: [] for name in TOPICS}
    for _ in range(0, n, 200):
        body = b"[" + b",".join(pool.events(model.app(), 200, now)) + b"]"
        events = handlers.parse_batch(body, "application/json", 1000)
        assert isinstance(events, list)
        handlers.stamp(events, now)
        for name, values in handlers.encode_by_topic(events).items():
            (message,) = pack(values)  # 200 events of one app: one packed message (at most 256 KiB)
            out[name].append((len(values), message))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--batch", type=int, default=12_000, help="events per round of the three topics")
    parser.add_argument("--merge-every", type=int, default=100_000, help="events between merges")
    args = parser.parse_args()
    by_topic = published(args.events)
    n = sum(count for messages in by_topic.values() for count, _ in messages)
    share = {name: sum(c for c, _ in messages) / n for name, messages in by_topic.items()}
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(str(Path(tmp) / "reports.db"))
        sink = db.sink(apply_fold(db), schema(db))
        merger = DeltaMerger(db)
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 10, 10)  # as the service does (runtime.freeze_startup_heap)
        clock = time.process_time
        spent = {"decode": 0.0, "fold": 0.0, "commit": 0.0, "merge": 0.0}
        rows = since_merge = seq = 0
        cursor = dict.fromkeys(by_topic, 0)
        while any(cursor[name] < len(messages) for name, messages in by_topic.items()):
            for name, messages in by_topic.items():
                start = end = cursor[name]
                events = 0
                while end < len(messages) and events < args.batch * share[name]:
                    events += messages[end][0]
                    end += 1
                if end == start:
                    continue
                cursor[name] = end
                decode = TOPICS[name].any_decoder.decode
                t0 = clock()
                flat = []
                for m in map(decode, [value for _, value in messages[start:end]]):
                    flat.extend(m) if isinstance(m, list) else flat.append(m)
                t1 = clock()
                folded = fold(Batch(name, flat))
                t2 = clock()
                sink.commit(
                    "reports", folded, NatsClaim(name[:1], list(range(seq + 1, seq + 1 + end - start)))
                )
                seq += end - start
                t3 = clock()
                spent["decode"] += t1 - t0
                spent["fold"] += t2 - t1
                spent["commit"] += t3 - t2
                rows += len(folded.rows)
                since_merge += len(flat)
                if since_merge >= args.merge_every:
                    t4 = clock()
                    while merger.merge() and merger.has_more:
                        pass
                    spent["merge"] += clock() - t4
                    since_merge = 0
        merger.close()
        sink.close()
    per = {k: v / n * 1e6 for k, v in spent.items()}
    print(
        f"{n} events, rounds of {args.batch}, merges every {args.merge_every}: "
        + ", ".join(f"{k} {v:.2f}" for k, v in per.items())
        + f", total {sum(per.values()):.2f} us per event; {rows / n:.2f} stored rows per event"
    )


if __name__ == "__main__":
    main()
