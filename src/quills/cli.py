"""The ``quills`` command: one subcommand per tool (``quills monitor``, ``quills up``, ``quills loadgen``).

Each subcommand is a function ``add_<name>(subparsers)`` that declares its flags and sets ``run``, a
function taking the parsed arguments and returning the exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import os
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
    # host up/down events and discovery problems go to stderr, one line each
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    print(f"quills monitor: serving http://{args.host}:{args.port}/turbine.stream", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(monitor.serve(args.host, args.port))
    return 0


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not an integer") from None


def add_up(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Declare ``quills up``: the attribution platform on this machine."""
    parser = subparsers.add_parser(
        "up",
        help="run the attribution platform: broker, ingest, API (reports), monitor",
        description=(
            "Start the embedded broker, ingest (8080), the API with reports (8081) and the monitor (8082), "
            "each in its own process, restarted with backoff if it dies; Ctrl-C stops everything. The first "
            "start creates demo apps, their ingest keys and an admin key in <data-dir>/credentials.json. "
            "Every flag can also be set with the environment variable in brackets."
        ),
    )
    parser.add_argument(
        "--data-dir", default=None, help="data directory [QUILLS_DATA_DIR] (default ./.quills)"
    )
    parser.add_argument(
        "--host", default=None, help="address every service binds [QUILLS_HOST] (default 127.0.0.1)"
    )
    parser.add_argument("--ingest-port", type=_port, default=None, help="[QUILLS_INGEST_PORT] (default 8080)")
    parser.add_argument("--api-port", type=_port, default=None, help="[QUILLS_API_PORT] (default 8081)")
    parser.add_argument(
        "--monitor-port", type=_port, default=None, help="[QUILLS_MONITOR_PORT] (default 8082)"
    )
    parser.add_argument(
        "--postbacks-port", type=_port, default=None, help="[QUILLS_POSTBACKS_PORT] (default 8083)"
    )
    parser.add_argument(
        "--broker",
        default=None,
        help="use this broker (nats://h:p or kafka://h:p) instead of starting one [QUILLS_BROKER]",
    )
    parser.add_argument(
        "--broker-port",
        type=_port,
        default=None,
        help="port of the embedded NATS server [QUILLS_BROKER_PORT] (default 4223, beside NATS's usual 4222)",
    )
    parser.add_argument(
        "--db",
        default=None,
        help="postgresql://... or a SQLite file [QUILLS_DB] (default <data-dir>/quills.db)",
    )
    parser.add_argument(
        "--demo-apps",
        type=int,
        default=None,
        help="demo apps made on first start [QUILLS_DEMO_APPS] (default 1000)",
    )
    parser.set_defaults(run=run_up)


def run_up(args: argparse.Namespace) -> int:
    """Run the platform until interrupted."""
    from quills.attribution.up import UpOptions, up

    options = UpOptions(
        data_dir=args.data_dir or _env("QUILLS_DATA_DIR", ".quills"),
        host=args.host or _env("QUILLS_HOST", "127.0.0.1"),
        ingest_port=args.ingest_port or _env_int("QUILLS_INGEST_PORT", 8080),
        api_port=args.api_port or _env_int("QUILLS_API_PORT", 8081),
        monitor_port=args.monitor_port or _env_int("QUILLS_MONITOR_PORT", 8082),
        postbacks_port=args.postbacks_port or _env_int("QUILLS_POSTBACKS_PORT", 8083),
        broker=args.broker if args.broker is not None else _env("QUILLS_BROKER", ""),
        broker_port=args.broker_port or _env_int("QUILLS_BROKER_PORT", 4223),
        db=args.db or _env("QUILLS_DB", ""),
        demo_apps=args.demo_apps if args.demo_apps is not None else _env_int("QUILLS_DEMO_APPS", 1000),
    )
    return up(options)


def add_loadgen(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Declare ``quills loadgen``: realistic traffic against the ingest API."""
    parser = subparsers.add_parser(
        "loadgen",
        help="send realistic attribution traffic to the ingest API",
        description=(
            "Send install, in-app and session events following the reference traffic model (Zipf apps, "
            "media sources, countries, organic share, event mix) at a steady rate, with a live progress "
            "line and a final summary. Keys come from <data-dir>/credentials.json."
        ),
    )
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second, > 0 (default 1000)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds, > 0 (default 30)")
    parser.add_argument("--batch", type=int, default=1, help="events per request, 1..1000 (default 1)")
    parser.add_argument(
        "--url", default=None, help="ingest URL [QUILLS_INGEST_URL] (default http://127.0.0.1:8080)"
    )
    parser.add_argument(
        "--data-dir", default=None, help="data directory [QUILLS_DATA_DIR] (default ./.quills)"
    )
    parser.add_argument(
        "--credentials", default=None, help="credentials file (default <data-dir>/credentials.json)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=64, help="requests in flight, 1..10000 (default 64)"
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument("--summary-json", default=None, metavar="PATH", help="also write the summary as JSON")
    parser.set_defaults(run=run_loadgen)


def run_loadgen(args: argparse.Namespace) -> int:
    """Send the traffic; exit 0 when every event was accepted, 1 otherwise."""
    from pathlib import Path

    from quills.attribution.loadgen import LoadgenOptions, run_loadgen, summary_json
    from quills.attribution.runtime import run_main

    data_dir = args.data_dir or _env("QUILLS_DATA_DIR", ".quills")
    options = LoadgenOptions(
        rate=args.rate,
        duration=args.duration,
        batch=args.batch,
        url=args.url or _env("QUILLS_INGEST_URL", "http://127.0.0.1:8080"),
        credentials=args.credentials or str(Path(data_dir) / "credentials.json"),
        concurrency=args.concurrency,
        seed=args.seed,
    )
    with contextlib.suppress(KeyboardInterrupt):
        summary = run_main(lambda: run_loadgen(options))
        if args.summary_json:
            Path(args.summary_json).write_text(summary_json(summary))
        return 0 if summary.accepted == summary.sent else 1
    return 130


def build_parser() -> argparse.ArgumentParser:
    """The ``quills`` parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="quills", description="quills: commands, live metrics, streams")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_monitor(subparsers)
    add_up(subparsers)
    add_loadgen(subparsers)
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
