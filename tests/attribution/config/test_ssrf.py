"""SSRF checks: private, loopback, link-local, multicast, metadata addresses and names resolving to them
are refused unless allow-listed."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from quills.attribution.config import TargetPolicy, UnsafeTarget, is_public_address

BAD = [
    "http://127.0.0.1/x",
    "http://10.1.2.3/x",
    "http://172.16.0.1/x",
    "http://192.168.1.1/x",
    "http://169.254.169.254/latest/meta-data",
    "http://[::1]/x",
    "http://[fd00:ec2::254]/x",
    "http://[fe80::1]/x",
    "http://224.0.0.1/x",
    "http://0.0.0.0/x",
    "http://100.64.0.1/x",
    "http://[::ffff:127.0.0.1]/x",
    "http://localhost/x",  # a DNS name that resolves to loopback
    "http://localhost.:8080/x",
    "ftp://93.184.216.34/x",
]


@pytest.mark.parametrize("url", BAD)
def test_unsafe_targets_are_refused(url: str) -> None:
    with pytest.raises(UnsafeTarget):
        asyncio.run(TargetPolicy().resolve(url))


def test_public_literal_address_is_allowed() -> None:
    host, port, ip = asyncio.run(TargetPolicy().resolve("https://93.184.216.34/p?x=1"))
    assert (host, port, str(ip)) == ("93.184.216.34", 443, "93.184.216.34")


def test_allow_listed_network_is_allowed_and_resolves_to_the_checked_address() -> None:
    policy = TargetPolicy.parse("127.0.0.0/8")
    host, port, ip = asyncio.run(policy.resolve("http://localhost:8123/p"))
    assert host == "localhost" and port == 8123 and ip == ipaddress.ip_address("127.0.0.1")


def test_allow_list_does_not_open_other_private_ranges() -> None:
    with pytest.raises(UnsafeTarget):
        asyncio.run(TargetPolicy.parse("127.0.0.0/8").resolve("http://10.0.0.1/x"))


def test_unresolvable_host_is_refused() -> None:
    with pytest.raises(UnsafeTarget, match="cannot resolve"):
        asyncio.run(TargetPolicy().resolve("http://no-such-host.invalid/x"))


def test_public_address_classification() -> None:
    assert is_public_address(ipaddress.ip_address("8.8.8.8"))
    assert not is_public_address(ipaddress.ip_address("169.254.169.254"))
    assert not is_public_address(ipaddress.ip_address("::ffff:10.0.0.1"))
