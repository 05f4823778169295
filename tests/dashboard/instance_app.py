"""A real quills instance for the dashboard tests: three commands called in a loop, served by ``serve()``.

Usage: instance_app.py --fail-file PATH [--port P]
Prints ``port <n>`` once serving. ``charge`` fails while PATH exists, so its circuit opens within a couple
of seconds; removing the file lets the next trial succeed and the circuit closes again. While PATH.slow
exists each ``charge`` call takes 2 s, so a trial keeps the circuit half-open that long. Windows are short
(5 s rolling stats, 1 s sleep window) so a browser sees each change quickly.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

import quills
from quills import BreakerOptions, ThreadPoolOptions
from quills.monitor import serve


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fail-file", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()

    fast = {"metrics_window": 5.0, "health_interval": 0.25}
    breaker = BreakerOptions(request_volume_threshold=5, sleep_window=1.0)

    @quills.command(group="users", name="get_user", timeout=2.0, breaker=breaker, **fast)
    def get_user() -> str:
        time.sleep(0.004)
        return "ok"

    @quills.command(
        group="catalog",
        name="search",
        timeout=2.0,
        pool="catalog",
        pool_options=ThreadPoolOptions(core_size=4),
        breaker=breaker,
        **fast,
    )
    def search() -> str:
        time.sleep(0.02)
        return "ok"

    @quills.command(
        group="payments",
        name="charge",
        isolation="semaphore",
        fallback=lambda: "later",
        timeout=5.0,
        breaker=breaker,
        **fast,
    )
    def charge() -> str:
        if os.path.exists(args.fail_file):
            raise ConnectionError("payment gateway down")
        time.sleep(2.0 if os.path.exists(args.fail_file + ".slow") else 0.002)
        return "charged"

    def loop(call: object, pause: float) -> None:
        while True:
            call()  # type: ignore[operator]
            time.sleep(pause)

    for call, pause in ((get_user, 0.02), (search, 0.1), (charge, 0.03)):
        threading.Thread(target=loop, args=(call, pause), daemon=True).start()
    server = serve(port=args.port)
    print(f"port {server.port}", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
