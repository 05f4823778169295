"""``python -m quills.attribution.reports``: run the Reports service (flags override ``QUILLS_*``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from quills.attribution.reports.app import serve
from quills.attribution.reports.config import ReportsConfig
from quills.attribution.runtime import run_main, setup_logging
from quills.errors import ConfigError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m quills.attribution.reports", description=__doc__)
    parser.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default 8081)")
    parser.add_argument(
        "--data-dir", default=None, help="data directory (default QUILLS_DATA_DIR or .quills)"
    )
    parser.add_argument("--db", dest="db_url", default=None, help="database (default QUILLS_DB)")
    parser.add_argument(
        "--broker", dest="broker_url", default=None, help="broker URL (default QUILLS_BROKER)"
    )
    args = parser.parse_args(argv)
    setup_logging("reports")
    try:
        config = ReportsConfig.from_env(**vars(args))
        run_main(lambda: serve(config))
    except ConfigError as exc:
        print(f"reports: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
