"""The ``quills`` command: subcommands, and clear errors for bad flags and discovery files."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from quills.cli import build_parser, main


def test_monitor_is_a_subcommand_with_documented_defaults() -> None:
    args = build_parser().parse_args(["monitor", "--instance", "a:1"])
    assert args.command == "monitor"
    assert (args.host, args.port, args.interval, args.retry, args.read_timeout) == (
        "127.0.0.1",
        8989,
        0.5,
        1.0,
        5.0,
    )
    assert args.cors_origin is None and args.cluster == "default"


def test_console_script_is_installed_and_lists_monitor() -> None:
    script = shutil.which("quills", path=str(Path(sys.executable).parent))
    assert script is not None
    out = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=30, check=True).stdout
    assert "monitor" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["monitor"], "give exactly one discovery"),
        (["monitor", "--instance", "a:1", "--dns-srv", "_x._tcp.a"], "give exactly one discovery"),
        (["monitor", "--instance", "not a host"], "is not host[:port]"),
        (["monitor", "--instance", "a:1", "--cluster", "bad cluster"], "cluster 'bad cluster'"),
        (["monitor", "--dns-srv", "_x._tcp.a", "--dns-server", "dns.example"], "expected an IP address"),
        (["monitor", "--dns-srv", "_x._tcp.a", "--dns-server", "127.0.0.1:99999"], "port must be"),
        (["monitor", "--dns-srv", "bad name"], "not a DNS name"),
        (["monitor", "--file", "/nonexistent/hosts.txt"], "cannot read"),
        (["monitor", "--instance", "a:1", "--suffix", "hystrix.stream"], "suffix must be a path"),
        (["monitor", "--instance", "a:1", "--cors-origin", ""], "cors_origin must be an origin"),
        (["monitor", "--instance", "a:1", "--interval", "90"], "interval must be 0.05..60"),
    ],
)
def test_bad_monitor_configuration_exits_2_with_a_clear_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("quills monitor: error: ") and message in err


def test_bad_discovery_file_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("a:1,web,up\nb:1,web,perhaps\n")
    assert main(["monitor", "--file", str(hosts)]) == 2
    assert f"{hosts}:2: state must be 'up' or 'down'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["monitor", "--instance", "a:1", "--port", "70000"],
        ["monitor", "--instance", "a:1", "--interval", "-1"],
    ],
)
def test_out_of_range_numbers_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "quills monitor: error: argument" in capsys.readouterr().err
