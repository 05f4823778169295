"""A real quills instance for the monitor tests: runs a few commands, prints its own snapshot, serves.

Usage: instance_main.py [--ok N] [--fail N] [--slow-ms MS] [--commands PREFIX]
Prints ``port <n>``, then one JSON line with its own snapshot (command name -> counts), then serves
``/hystrix.stream`` until killed. Metric windows are long (60 s), so the counts stay put during a test.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import quills
from quills.metrics.events import EventType
from quills.monitor import serve


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ok", type=int, default=10)
    parser.add_argument("--fail", type=int, default=3)
    parser.add_argument("--slow-ms", type=float, default=0.0)
    args = parser.parse_args()

    window = {"metrics_window": 60.0, "health_interval": 0.5}

    @quills.command(group="users", name="get_user", timeout=5.0, **window)
    def get_user() -> str:
        if args.slow_ms:
            time.sleep(args.slow_ms / 1000)
        return "ok"

    @quills.command(
        group="payments", name="charge", isolation="semaphore", fallback=lambda: "later", **window
    )
    def charge() -> str:
        raise ConnectionError("payment gateway down")

    for _ in range(args.ok):
        get_user()
    for _ in range(args.fail):
        charge()
    time.sleep(0.6)  # health counts (requestCount, errorCount) come out every 500 ms
    server = serve(port=0)
    print(f"port {server.port}", flush=True)
    own = {
        snap.name: {
            "success": snap.counts[EventType.SUCCESS],
            "failure": snap.counts[EventType.FAILURE],
            "fallback_success": snap.counts[EventType.FALLBACK_SUCCESS],
            "short_circuited": snap.counts[EventType.SHORT_CIRCUITED],
            "request_count": snap.request_count,
            "error_count": snap.error_count,
            "is_open": snap.breaker.is_open,
            "buckets": snap.latency_execute.buckets,
        }
        for snap in quills.registry.snapshots()
    }
    print(json.dumps(own), flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
