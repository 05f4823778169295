"""``python -m quills.attribution.postbacks``: run the Postbacks service (flags override ``QUILLS_*``)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from quills.attribution.postbacks.app import serve
from quills.attribution.postbacks.config import PostbacksConfig
from quills.attribution.runtime import run_main, setup_logging
from quills.errors import ConfigError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m quills.attribution.postbacks", description=__doc__)
    parser.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="health/metrics port (default 8083)")
    parser.add_argument(
        "--data-dir", default=None, help="data directory (default QUILLS_DATA_DIR or .quills)"
    )
    parser.add_argument("--db", dest="db_url", default=None, help="database (default QUILLS_DB)")
    parser.add_argument(
        "--broker", dest="broker_url", default=None, help="broker URL (default QUILLS_BROKER)"
    )
    parser.add_argument("--allow", default=None, help="SSRF allow-list (default QUILLS_POSTBACK_ALLOW)")
    parser.add_argument("--retry-base", type=float, default=None, help="retry backoff base, s (default 30)")
    parser.add_argument(
        "--retry-cap", type=float, default=None, help="longest retry backoff, s (default 1800)"
    )
    args = parser.parse_args(argv)
    setup_logging("postbacks")
    # httpx logs every request at INFO: a line per postback would cost CPU and log device ids
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        config = PostbacksConfig.from_env(**vars(args))
        run_main(lambda: serve(config))
    except ConfigError as exc:
        print(f"postbacks: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
