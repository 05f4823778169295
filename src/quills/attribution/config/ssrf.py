"""SSRF protection: which addresses a postback may reach, checked at save and again at every send.

A host is resolved (``getaddrinfo`` in a thread) and every address it resolves to must be public: no
private, loopback, link-local, multicast, reserved, unspecified, shared (CGNAT) or cloud-metadata address
(``169.254.169.254``, ``fd00:ec2::254``), unless allow-listed. The sender then connects to the address that
was checked (never resolving again, so DNS rebinding cannot swap it) and never follows redirects.

The allow-list comes from configuration (``QUILLS_POSTBACK_ALLOW``: comma-separated CIDRs or host names);
tests allow-list ``127.0.0.0/8`` explicitly.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from quills.errors import ConfigError

__all__ = ("UnsafeTarget", "TargetPolicy", "is_public_address")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_METADATA = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
_SHARED = ipaddress.ip_network("100.64.0.0/10")


class UnsafeTarget(ValueError):
    """A postback URL points somewhere it must not (its message says where and why)."""


def is_public_address(ip: IPAddress) -> bool:
    """Whether ``ip`` is a public unicast address (IPv4-mapped IPv6 is judged by its IPv4 address)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in _METADATA:
        return False
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED:
        return False
    bad = ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
    bad = bad or ip.is_reserved or ip.is_unspecified
    if isinstance(ip, ipaddress.IPv6Address):
        bad = bad or ip.is_site_local
    return not bad


@dataclass(frozen=True)
class TargetPolicy:
    """Where postbacks may go.

    Args:
        allow_networks: networks allowed even though not public (e.g. ``127.0.0.0/8`` in tests).
        allow_hosts: host names whose addresses are not checked (lower case, exact).
        ports: allowed ports; empty (default) allows any.
    """

    allow_networks: tuple[IPNetwork, ...] = ()
    allow_hosts: frozenset[str] = frozenset()
    ports: frozenset[int] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, text: str) -> TargetPolicy:
        """From ``"127.0.0.0/8,partner.internal"``: CIDRs (or single IPs) and host names."""
        nets: list[IPNetwork] = []
        hosts: set[str] = set()
        for item in (t.strip() for t in text.split(",")):
            if not item:
                continue
            try:
                nets.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                if not all(c.isalnum() or c in "-._" for c in item):
                    raise ConfigError(
                        f"postback allow-list entry {item!r} is neither a CIDR nor a host"
                    ) from None
                hosts.add(item.lower().rstrip("."))
        return cls(tuple(nets), frozenset(hosts))

    @classmethod
    def from_env(cls) -> TargetPolicy:
        """From ``QUILLS_POSTBACK_ALLOW`` (empty: public addresses only)."""
        return cls.parse(os.environ.get("QUILLS_POSTBACK_ALLOW", ""))

    def is_allowed(self, ip: IPAddress) -> bool:
        return is_public_address(ip) or any(ip in net for net in self.allow_networks)

    def check_literal(self, host: str) -> bool:
        """For a host that is an IP literal, raise ``UnsafeTarget`` unless it is allowed; returns whether
        ``host`` is a literal (a name must go through ``resolve_host``)."""
        try:
            ip = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return False
        if not self.is_allowed(ip):
            raise UnsafeTarget(
                f"{host} is a private, loopback, link-local, multicast, reserved or metadata address"
            )
        return True

    async def resolve_host(self, host: str, port: int) -> list[IPAddress]:
        """Every address of the name ``host``, all checked (raises ``UnsafeTarget`` if any is refused)."""
        name = host.rstrip(".")
        try:
            infos = await asyncio.to_thread(socket.getaddrinfo, name, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise UnsafeTarget(f"cannot resolve {name!r}: {exc}") from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(str(i[4][0]).split("%")[0]) for i in infos))
        if not addresses:
            raise UnsafeTarget(f"{name!r} resolves to no address")
        if name.lower() not in self.allow_hosts:
            for ip in addresses:
                if not self.is_allowed(ip):
                    raise UnsafeTarget(
                        f"{name!r} resolves to {ip}, a private, loopback, link-local, multicast, reserved or "
                        "metadata address; refused (allow-list it in QUILLS_POSTBACK_ALLOW if intended)"
                    )
        return addresses

    async def resolve(self, url: str) -> tuple[str, int, IPAddress]:
        """Check ``url`` and resolve its host: returns ``(host, port, address to connect to)``.

        Raises ``UnsafeTarget`` for a non-http(s) URL, a refused port, a host that does not resolve, or
        any resolved address that is not allowed (one bad address refuses the host: an attacker's DNS
        could answer with it next time).
        """
        try:
            split = urlsplit(url)
            port = split.port
        except ValueError as exc:
            raise UnsafeTarget(f"invalid URL: {exc}") from None
        if split.scheme not in ("http", "https"):
            raise UnsafeTarget(f"only http and https URLs are allowed, got {split.scheme!r}")
        host = (split.hostname or "").rstrip(".")
        if not host:
            raise UnsafeTarget("the URL has no host")
        port = port or (443 if split.scheme == "https" else 80)
        if self.ports and port not in self.ports:
            raise UnsafeTarget(f"port {port} is not allowed")
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            self.check_literal(host)
            return host, port, literal
        return host, port, (await self.resolve_host(host, port))[0]
