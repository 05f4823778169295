"""``quills up`` and ``quills loadgen`` flags: documented defaults, clear errors for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from quills.attribution.loadgen import LoadgenOptions
from quills.attribution.up import UpOptions, service_specs
from quills.cli import build_parser, main
from quills.errors import ConfigError


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["loadgen", "--rate", "0"], "--rate must be > 0"),
        (["loadgen", "--rate", "nan"], "--rate must be > 0"),
        (["loadgen", "--duration", "-1"], "--duration must be > 0"),
        (["loadgen", "--batch", "0"], "--batch must be 1..1000"),
        (["loadgen", "--batch", "1001"], "--batch must be 1..1000"),
        (
            ["loadgen", "--credentials", "/nonexistent/credentials.json"],
            "start the platform with 'quills up'",
        ),
        (["up", "--ingest-port", "8081"], "ports must differ"),
        (["up", "--broker", "redis://x:1"], "must start with kafka:// or nats://"),
        (["up", "--demo-apps", "0"], "--demo-apps must be 1..100000"),
    ],
)
def test_bad_flags_exit_2_with_a_clear_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"quills {argv[0]}: error: ") and message in err


def test_up_defaults_are_the_documented_ports() -> None:
    args = build_parser().parse_args(["up"])
    assert args.command == "up"
    options = UpOptions()
    assert (options.ingest_port, options.api_port, options.monitor_port, options.broker_port) == (
        8080,
        8081,
        8082,
        4223,
    )
    assert options.postbacks_port == 8083
    assert options.host == "127.0.0.1" and options.data_dir == ".quills"
    names = [s.name for s in service_specs(options, "x.db")]
    assert names == ["broker", "ingest", "api", "postbacks", "monitor"]
    external = service_specs(UpOptions(broker="nats://10.0.0.1:4222"), "x.db")
    assert [s.name for s in external] == ["ingest", "api", "postbacks", "monitor"]
    assert external[0].env["QUILLS_BROKER"] == "nats://10.0.0.1:4222"


def test_loadgen_options_validate_at_construction(tmp_path: Path) -> None:
    assert LoadgenOptions(rate=10, duration=1).batch == 1
    with pytest.raises(ConfigError, match="--url"):
        LoadgenOptions(rate=10, duration=1, url="127.0.0.1:8080")
