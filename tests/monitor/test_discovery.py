"""Discovery: static lists, files re-read on change, and DNS SRV against a real dnsmasq on loopback."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from quills.errors import ConfigError
from quills.monitor.discovery import (
    DiscoveryError,
    DnsSrvDiscovery,
    FileDiscovery,
    Instance,
    StaticDiscovery,
    diff_instances,
    parse_instance_lines,
)

from .helpers import Dnsmasq, free_udp_port


def test_instance_lines_are_parsed_with_comments_and_blank_lines() -> None:
    text = "# cluster file\n\n10.0.0.1:8080,orders,up\napi-2:8080, orders , DOWN  # draining\n"
    assert parse_instance_lines(text, "f") == [
        Instance("10.0.0.1:8080", "orders", True),
        Instance("api-2:8080", "orders", False),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("host:1,orders", "expected 'host,cluster,up|down'"),
        ("host:1,orders,maybe", "state must be 'up' or 'down'"),
        ("host 1,orders,up", "is not host"),
        ("host:1,ord ers,up", "cluster 'ord ers'"),
        ("host:1,,up", "cluster ''"),
    ],
)
def test_bad_instance_lines_are_refused_naming_the_line(line: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_instance_lines("ok:1,c,up\n" + line, "hosts.txt")
    assert "hosts.txt:2" in str(info.value)


def test_diff_reports_hosts_up_and_down() -> None:
    a, b, c = Instance("a:1"), Instance("b:1"), Instance("c:1")
    up, down = diff_instances([a, b], [b, Instance("a:1", is_up=False), c])
    assert up == [c] and down == [a]


def test_instance_url_adds_scheme_and_suffix_unless_given_a_url() -> None:
    assert Instance("h:8080").url() == "http://h:8080/hystrix.stream"
    assert Instance("h:8080").url("/ops/hystrix.stream", "https") == "https://h:8080/ops/hystrix.stream"
    assert Instance("http://h/x.stream").url() == "http://h/x.stream"


def test_static_discovery_lists_its_hosts_in_one_cluster() -> None:
    found = asyncio.run(StaticDiscovery(["a:1", "http://b:2/s"], cluster="web").instances())
    assert found == [Instance("a:1", "web"), Instance("http://b:2/s", "web")]
    with pytest.raises(ConfigError):
        StaticDiscovery(["not a host"])


def test_file_discovery_rereads_on_change_and_keeps_going_through_bad_versions(tmp_path: Path) -> None:
    path = tmp_path / "hosts.txt"
    path.write_text("a:1,web,up\n")
    discovery = FileDiscovery(path, poll_interval=0.1)
    assert asyncio.run(discovery.instances()) == [Instance("a:1", "web")]
    path.write_text("a:1,web,up\nb:1,web,down\n")
    os.utime(path, ns=(1, 10**18))  # a distinct mtime even on coarse clocks
    assert asyncio.run(discovery.instances()) == [Instance("a:1", "web"), Instance("b:1", "web", False)]
    path.write_text("a:1,web\n")
    os.utime(path, ns=(1, 2 * 10**18))
    with pytest.raises(DiscoveryError, match=r"hosts\.txt:1"):
        asyncio.run(discovery.instances())
    path.write_text("c:1,web,up\n")
    os.utime(path, ns=(1, 3 * 10**18))
    assert asyncio.run(discovery.instances()) == [Instance("c:1", "web")]


def test_file_discovery_refuses_a_missing_or_invalid_file_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        FileDiscovery(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("x:1,web,sideways\n")
    with pytest.raises(ConfigError, match=r"bad\.txt:1"):
        FileDiscovery(bad)


def test_dns_srv_records_become_instances_and_follow_the_zone(dnsmasq: Dnsmasq) -> None:
    name = "_hystrix._tcp.orders.test"
    dnsmasq.serve(
        [(name, "api-1.orders.test", 8081), (name, "api-2.orders.test", 8082)],
        {"api-1.orders.test": "127.0.0.11", "api-2.orders.test": "127.0.0.12"},
    )
    discovery = DnsSrvDiscovery(
        {name: "orders"}, nameservers=["127.0.0.1"], port=dnsmasq.port, poll_interval=1
    )
    found = asyncio.run(discovery.instances())
    assert sorted(found, key=lambda i: i.host) == [
        Instance("127.0.0.11:8081", "orders"),
        Instance("127.0.0.12:8082", "orders"),
    ]
    dnsmasq.serve([(name, "api-2.orders.test", 8082)], {"api-2.orders.test": "127.0.0.12"})
    assert asyncio.run(discovery.instances()) == [Instance("127.0.0.12:8082", "orders")]


def test_dns_name_without_records_means_no_instances(dnsmasq: Dnsmasq) -> None:
    dnsmasq.serve([("_hystrix._tcp.a.test", "x.a.test", 1)], {"x.a.test": "127.0.0.1"})
    discovery = DnsSrvDiscovery(
        {"_hystrix._tcp.nothing.test": "a"}, nameservers=["127.0.0.1"], port=dnsmasq.port
    )
    assert asyncio.run(discovery.instances()) == []


def test_unreachable_dns_server_is_an_error_not_an_empty_cluster() -> None:
    discovery = DnsSrvDiscovery(
        {"_hystrix._tcp.a.test": "a"}, nameservers=["127.0.0.1"], port=free_udp_port(), timeout=0.3
    )
    with pytest.raises(DiscoveryError, match="failed"):
        asyncio.run(discovery.instances())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"names": {}}, "at least one"),
        ({"names": {"bad name": "a"}}, "not a DNS name"),
        ({"names": {"_x._tcp.a": "bad cluster"}}, "cluster"),
        ({"names": {"_x._tcp.a": "a"}, "port": 0}, "port"),
        ({"names": {"_x._tcp.a": "a"}, "poll_interval": 0.1}, "poll_interval"),
    ],
)
def test_dns_discovery_options_are_validated(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DnsSrvDiscovery(**kwargs)  # type: ignore[arg-type]
