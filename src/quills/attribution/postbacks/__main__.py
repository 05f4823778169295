"""``python -m quills.attribution.postbacks``: run the Postbacks service (flags override ``QUILLS_*``)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from quills.attribution.postbacks.app import serve
from quills.attribution.postbacks.config import PostbacksConfig
from quills.attribution.runtime import run_service, service_parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = service_parser("quills.attribution.postbacks", __doc__, "health/metrics port (default 8083)")
    parser.add_argument("--allow", default=None, help="SSRF allow-list (default QUILLS_POSTBACK_ALLOW)")
    parser.add_argument("--retry-base", type=float, default=None, help="retry backoff base, s (default 30)")
    parser.add_argument(
        "--retry-cap", type=float, default=None, help="longest retry backoff, s (default 1800)"
    )
    args = parser.parse_args(argv)
    # httpx logs every request at INFO: a line per postback would cost CPU and log device ids
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return run_service("postbacks", args, PostbacksConfig.from_env, serve)


if __name__ == "__main__":
    sys.exit(main())
