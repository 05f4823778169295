"""``python -m quills.attribution.ingest``: run the ingest service (flags override ``QUILLS_*``)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from quills.attribution.ingest.app import serve
from quills.attribution.ingest.config import IngestConfig
from quills.attribution.runtime import run_service, service_parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = service_parser("quills.attribution.ingest", __doc__, "port (default 8080)")
    parser.add_argument("--publish-timeout", type=float, default=None, help="seconds (default 3)")
    parser.add_argument(
        "--no-pack",
        dest="pack_events",
        action="store_false",
        default=None,
        help="publish one log message per event (default: one per topic and app per flush)",
    )
    args = parser.parse_args(argv)
    return run_service("ingest", args, IngestConfig.from_env, serve)


if __name__ == "__main__":
    sys.exit(main())
