"""``python -m quills.attribution.reports``: run the Reports service (flags override ``QUILLS_*``)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from quills.attribution.reports.app import serve
from quills.attribution.reports.config import ReportsConfig
from quills.attribution.runtime import run_service, service_parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = service_parser("quills.attribution.reports", __doc__, "port (default 8081)")
    args = parser.parse_args(argv)
    return run_service("reports", args, ReportsConfig.from_env, serve)


if __name__ == "__main__":
    sys.exit(main())
