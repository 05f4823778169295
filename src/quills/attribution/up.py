"""``quills up``: the whole platform on one machine, each service in its own supervised process.

Processes, in start order: the broker (``nats-server`` with JetStream, store in ``<data-dir>/nats``;
skipped when a broker URL is given), ingest (port 8080), the API with the Reports service, the config API
and the overview (8081), the Postbacks service (health and metrics on 8083), and the monitor
(``quills monitor`` aggregating the ingest, API and postbacks streams, 8082). On first start the demo apps of
the traffic model get ingest keys, an admin key is made, and all of them go to
``<data-dir>/credentials.json``.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from quills.attribution.apps import bootstrap
from quills.attribution.db import Database, database_url
from quills.attribution.runtime import run_main
from quills.attribution.supervisor import ServiceSpec, Supervisor
from quills.attribution.traffic import demo_apps
from quills.errors import ConfigError
from quills.streams import nats_server_binary, parse_broker_url

__all__ = ("UpOptions", "up", "service_specs", "welcome")


@dataclass(frozen=True)
class UpOptions:
    """Flags of ``quills up`` (each also an environment variable; see ``quills up --help``)."""

    data_dir: str = ".quills"
    host: str = "127.0.0.1"
    ingest_port: int = 8080
    api_port: int = 8081
    monitor_port: int = 8082
    postbacks_port: int = 8083
    broker: str = ""
    broker_port: int = 4223
    db: str = ""
    demo_apps: int = 1000
    grace: float = 10.0

    def __post_init__(self) -> None:
        ports = {
            "ingest": self.ingest_port,
            "api": self.api_port,
            "monitor": self.monitor_port,
            "postbacks": self.postbacks_port,
        }
        if not self.broker:
            ports["broker"] = self.broker_port
        for name, port in ports.items():
            if not 1 <= port <= 65535:
                raise ConfigError(f"--{name}-port must be 1..65535, got {port}")
        if len(set(ports.values())) != len(ports):
            raise ConfigError(f"ports must differ, got {ports}")
        if self.broker:
            parse_broker_url(self.broker)
        if not 1 <= self.demo_apps <= 100_000:
            raise ConfigError(f"--demo-apps must be 1..100000, got {self.demo_apps}")

    @property
    def broker_url(self) -> str:
        return self.broker or f"nats://{self.host}:{self.broker_port}"


def service_specs(options: UpOptions, db_url: str) -> list[ServiceSpec]:
    """The supervised processes of the platform."""
    py = sys.executable
    data = str(Path(options.data_dir).resolve())
    env = {"QUILLS_BROKER": options.broker_url, "QUILLS_DATA_DIR": data, "QUILLS_DB": db_url}
    specs: list[ServiceSpec] = []
    if not options.broker:
        store = Path(data) / "nats"
        specs.append(
            ServiceSpec(
                "broker",
                [
                    nats_server_binary(),
                    "-a",
                    options.host,
                    "-p",
                    str(options.broker_port),
                    "-js",
                    "-sd",
                    str(store),
                ],
                ready_port=options.broker_port,
                ready_host=options.host,
            )
        )
    host = ["--host", options.host]
    specs.append(
        ServiceSpec(
            "ingest",
            [py, "-m", "quills.attribution.ingest", *host, "--port", str(options.ingest_port)],
            env,
            ready_port=options.ingest_port,
            ready_host=options.host,
        )
    )
    specs.append(
        ServiceSpec(
            "api",
            [py, "-m", "quills.attribution.reports", *host, "--port", str(options.api_port)],
            env,
            ready_port=options.api_port,
            ready_host=options.host,
        )
    )
    specs.append(
        ServiceSpec(
            "postbacks",
            [py, "-m", "quills.attribution.postbacks", *host, "--port", str(options.postbacks_port)],
            env,
            ready_port=options.postbacks_port,
            ready_host=options.host,
        )
    )
    instances = ",".join(
        f"{options.host}:{port}" for port in (options.ingest_port, options.api_port, options.postbacks_port)
    )
    monitor_args = ["--instance", instances, "--cluster", "platform"]
    specs.append(
        ServiceSpec(
            "monitor",
            [py, "-m", "quills.cli", "monitor", *host, "--port", str(options.monitor_port), *monitor_args],
            env,
        )
    )
    return specs


def welcome(options: UpOptions, creds: dict[str, Any], created: bool, out: TextIO) -> None:
    """Print the keys and a copy-paste example."""
    path = Path(options.data_dir) / "credentials.json"
    app_id, app = next(iter(creds["apps"].items()))
    example = {
        "event_type": "install",
        "event_id": "0b9e6c9e-3f5c-4a8e-9a57-2d1f0c6b7a11",
        "app_id": app_id,
        "platform": app["platform"],
        "event_time": int(time.time() * 1000),
        "sdk_version": "6.14.2",
        "os_version": "14",
        "device_id": "device-1",
        "media_source": "organic",
        "country_code": "US",
    }
    ingest = f"http://{options.host}:{options.ingest_port}"
    api = f"http://{options.host}:{options.api_port}"
    lines = [
        f"quills up: {'created' if created else 'using'} {len(creds['apps'])} demo apps; keys in {path}",
        f"  app {app_id} ingest key: {app['key']}",
        f"  admin key: {creds['admin_key']}",
        "  send an event:",
        f"    curl -i -X POST {ingest}/v1/events -H 'Authorization: Bearer {app['key']}' \\",
        f"      -H 'Content-Type: application/json' -d '{json.dumps(example, separators=(',', ':'))}'",
        "  read a report:",
        f"    curl '{api}/v1/reports?app_id={app_id}&group_by=date,media_source,country' \\",
        f"      -H 'Authorization: Bearer {creds['admin_key']}'",
        f"  ingest {ingest}  api {api}  monitor http://{options.host}:{options.monitor_port}/turbine.stream?cluster=platform",
        f"  dashboard: http://{options.host}:{options.monitor_port}/dashboard/   (every circuit, live)",
        "  load: quills loadgen --rate 1000 --duration 30      stop: Ctrl-C",
    ]
    out.write("\n".join(lines) + "\n")
    out.flush()


def up(options: UpOptions, out: TextIO | None = None) -> int:
    """Bootstrap the data directory, then supervise every service until SIGINT/SIGTERM."""
    out = out or sys.stdout
    Path(options.data_dir).mkdir(parents=True, exist_ok=True)
    db_url = database_url(options.data_dir, options.db or None)
    if not db_url.startswith(("postgresql://", "postgres://")):
        db_url = str(Path(db_url.removeprefix("sqlite:///")).resolve())
    apps = [(a.app_id, a.platform) for a in demo_apps(options.demo_apps)]
    creds, created = bootstrap(Database(db_url), options.data_dir, apps)
    supervisor = Supervisor(
        service_specs(options, db_url),
        run_dir=Path(options.data_dir) / "run",
        grace=options.grace,
        out=out,
        on_ready=lambda: welcome(options, creds, created, out),
    )
    return run_main(supervisor.run)
