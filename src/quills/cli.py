"""The ``quills`` command: one subcommand per tool (``quills monitor``; ``up`` and ``loadgen`` come later).

Each subcommand is a function ``add_<name>(subparsers)`` that declares its flags and sets ``run``, a
function taking the parsed arguments and returning the exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from quills.errors import ConfigError

if TYPE_CHECKING:
    from quills.monitor.discovery import InstanceDiscovery

__all__ = ("main", "build_parser")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0 or value != value:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535, got {value}")
    return value


def add_monitor(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Declare ``quills monitor``: the Turbine-style aggregator."""
    parser = subparsers.add_parser(
        "monitor",
        help="aggregate many instances' hystrix.stream into /turbine.stream (Turbine 1.x rules)",
        description=(
            "Connect to instance streams found by one discovery (--instance, --file or --dns-srv), aggregate "
            "them per cluster with Turbine 1.x rules and serve /turbine.stream?cluster=NAME, /health and "
            "/metrics."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=8989, help="port to serve on (default 8989)")
    found = parser.add_argument_group("discovery (exactly one kind)")
    found.add_argument(
        "--instance",
        action="append",
        default=[],
        metavar="HOST:PORT|URL",
        help="a static instance; repeat it or separate with commas",
    )
    found.add_argument(
        "--cluster", default="default", help="cluster of the --instance list (default 'default')"
    )
    found.add_argument(
        "--file", metavar="PATH", help="file of 'host,cluster,up|down' lines, re-read on change"
    )
    found.add_argument(
        "--dns-srv",
        action="append",
        default=[],
        metavar="NAME[=CLUSTER]",
        help="an SRV name whose records are instances (cluster default 'default'); repeatable",
    )
    found.add_argument(
        "--dns-server", metavar="IP[:PORT]", help="DNS server for --dns-srv (default: the system's)"
    )
    found.add_argument(
        "--poll", type=_positive, default=None, help="discovery poll period, s (default: file 1, DNS 30)"
    )
    parser.add_argument(
        "--suffix", default="/hystrix.stream", help="path appended to host:port (default /hystrix.stream)"
    )
    parser.add_argument("--interval", type=_positive, default=0.5, help="push period, s (default 0.5)")
    parser.add_argument("--retry", type=_positive, default=1.0, help="reconnect period, s (default 1)")
    parser.add_argument(
        "--read-timeout", type=_positive, default=5.0, help="silence that drops an instance, s (default 5)"
    )
    parser.add_argument("--cors-origin", default=None, help="Access-Control-Allow-Origin (default: none)")
    parser.set_defaults(run=run_monitor)


def _dns_server(text: str) -> tuple[str, int]:
    address, port = text, 53
    if text.count(":") == 1:  # IPv4 with a port; IPv6 addresses have several colons
        address, port_text = text.split(":")
        try:
            port = _port(port_text)
        except argparse.ArgumentTypeError as exc:
            raise ConfigError(f"--dns-server {text!r}: {exc}") from None
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise ConfigError(f"--dns-server {text!r}: expected an IP address, optionally with :PORT") from None
    return address, port


def _discovery(args: argparse.Namespace) -> InstanceDiscovery:
    from quills.monitor.discovery import DnsSrvDiscovery, FileDiscovery, StaticDiscovery

    given = (("--instance", args.instance), ("--file", args.file), ("--dns-srv", args.dns_srv))
    kinds = [flag for flag, value in given if value]
    if len(kinds) != 1:
        raise ConfigError(
            f"give exactly one discovery (--instance, --file or --dns-srv), got {kinds or 'none'}"
        )
    if args.instance:
        hosts = [host.strip() for item in args.instance for host in item.split(",") if host.strip()]
        return StaticDiscovery(hosts, cluster=args.cluster)
    if args.file:
        return FileDiscovery(args.file, poll_interval=args.poll or 1.0)
    names: dict[str, str] = {}
    for item in args.dns_srv:
        name, _, cluster = item.partition("=")
        names[name.strip()] = cluster.strip() or "default"
    nameservers, port = None, 53
    if args.dns_server:
        address, port = _dns_server(args.dns_server)
        nameservers = [address]
    return DnsSrvDiscovery(names, nameservers=nameservers, port=port, poll_interval=args.poll or 30.0)


def run_monitor(args: argparse.Namespace) -> int:
    """Run the aggregator until interrupted."""
    from quills.monitor.turbine_server import TurbineMonitor

    discovery = _discovery(args)
    clusters = [args.cluster] if args.instance else []
    monitor = TurbineMonitor(
        discovery,
        clusters=clusters,
        suffix=args.suffix,
        interval=args.interval,
        retry_interval=args.retry,
        read_timeout=args.read_timeout,
        cors_origin=args.cors_origin,
    )
    print(f"quills monitor: serving http://{args.host}:{args.port}/turbine.stream", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(monitor.serve(args.host, args.port))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``quills`` parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="quills", description="quills: commands, live metrics, streams")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_monitor(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``quills`` console script; returns the exit code (2 for bad usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except ConfigError as exc:
        print(f"quills {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
