"""Where the instances are: a static list, a file, or DNS SRV records (pluggable, polled).

An :class:`InstanceDiscovery` answers "which instances exist now, in which cluster, up or down?". The
aggregator polls it every ``poll_interval`` seconds and turns the difference between two answers into
hosts-up and hosts-down events (Turbine's ``InstanceObservable``). A failed poll raises
:class:`DiscoveryError` and the previous answer stays in force, so a DNS hiccup never drops a cluster.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import dns.asyncresolver
import dns.exception
import dns.rdatatype
import dns.resolver

from quills.errors import ConfigError, QuillsError

__all__ = (
    "Instance",
    "InstanceDiscovery",
    "DiscoveryError",
    "StaticDiscovery",
    "FileDiscovery",
    "DnsSrvDiscovery",
    "parse_instance_lines",
    "diff_instances",
    "HostsChanged",
)

_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
_HOST = re.compile(r"^(https?://\S+|\[[0-9A-Fa-f:.]+\](:\d{1,5})?|[A-Za-z0-9_.\-]+(:\d{1,5})?)$")


class DiscoveryError(QuillsError):
    """A poll failed (file unreadable or invalid, DNS server unreachable); the last answer stays."""


@dataclass(frozen=True, slots=True)
class Instance:
    """One instance: ``host`` is ``host:port`` (or a full ``http(s)://`` stream URL), ``cluster`` its
    cluster, ``is_up`` whether it should be read."""

    host: str
    cluster: str = "default"
    is_up: bool = True

    def url(self, suffix: str = "/hystrix.stream", scheme: str = "http") -> str:
        """The stream URL: ``host`` itself if it is a URL, else ``scheme://host`` + ``suffix``."""
        if self.host.startswith(("http://", "https://")):
            return self.host
        return f"{scheme}://{self.host}{suffix}"


@dataclass(frozen=True, slots=True)
class HostsChanged:
    """Event: between two polls, these instances went up (new or turned up) and down (gone or turned down)."""

    up: tuple[Instance, ...]
    down: tuple[Instance, ...]
    at_ms: int


class InstanceDiscovery(Protocol):
    """What the aggregator needs from a discovery: a poll period and the instances now."""

    poll_interval: float

    async def instances(self) -> list[Instance]:
        """Every known instance (up or down). Raises :class:`DiscoveryError` when it cannot tell."""
        ...


def validate_host(host: str, where: str) -> str:
    """``host`` if it is ``name[:port]``, ``[v6][:port]`` or an http(s) URL; ConfigError naming ``where``."""
    if not _HOST.match(host):
        raise ConfigError(f"{where}: {host!r} is not host[:port] or an http(s):// URL")
    return host


def validate_cluster(cluster: str, where: str) -> str:
    """``cluster`` if it is a plain name (letters, digits, ``_.-``); ConfigError naming ``where``."""
    if not _NAME.match(cluster):
        raise ConfigError(f"{where}: cluster {cluster!r} must be letters, digits, '_', '.' or '-'")
    return cluster


def parse_instance_lines(text: str, source: str) -> list[Instance]:
    """Parse ``host,cluster,up|down`` lines (blank lines and ``#`` comments allowed).

    Raises:
        ConfigError: a line is malformed; the message names ``source`` and the line number.
    """
    out: list[Instance] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{source}:{number}"
        parts = [part.strip() for part in line.split(",")]
        if len(parts) != 3:
            raise ConfigError(f"{where}: expected 'host,cluster,up|down', got {raw.strip()!r}")
        host, cluster, state = parts
        if state.lower() not in ("up", "down"):
            raise ConfigError(f"{where}: state must be 'up' or 'down', got {state!r}")
        out.append(
            Instance(validate_host(host, where), validate_cluster(cluster, where), state.lower() == "up")
        )
    return out


def diff_instances(old: Iterable[Instance], new: Iterable[Instance]) -> tuple[list[Instance], list[Instance]]:
    """(hosts up, hosts down) going from answer ``old`` to ``new``; gone or turned-down count as down."""
    old_up = {(i.host, i.cluster): i for i in old if i.is_up}
    new_up = {(i.host, i.cluster): i for i in new if i.is_up}
    up = [i for key, i in new_up.items() if key not in old_up]
    down = [i for key, i in old_up.items() if key not in new_up]
    return up, down


class StaticDiscovery:
    """A fixed list. Strings are ``host:port`` or URLs in ``cluster`` (default ``"default"``)."""

    def __init__(self, instances: Iterable[Instance | str], *, cluster: str = "default") -> None:
        validate_cluster(cluster, "static discovery")
        self._instances = [
            item if isinstance(item, Instance) else Instance(validate_host(item, "static discovery"), cluster)
            for item in instances
        ]
        self.poll_interval = 3600.0

    async def instances(self) -> list[Instance]:
        return list(self._instances)


class FileDiscovery:
    """A file of ``host,cluster,up|down`` lines, re-read when its modification time or size changes.

    The constructor reads it once and raises ConfigError if it is missing or invalid. A later invalid or
    unreadable version raises :class:`DiscoveryError` from :meth:`instances` (the aggregator keeps the
    last good list) until the file is fixed.

    Args:
        path: the file.
        poll_interval: seconds between checks for a change, 0.1..3600. Default 1.0.
    """

    def __init__(self, path: str | os.PathLike[str], *, poll_interval: float = 1.0) -> None:
        if not 0.1 <= poll_interval <= 3600:
            raise ConfigError(f"FileDiscovery.poll_interval must be 0.1..3600 s, got {poll_interval!r}")
        self.path = Path(path)
        self.poll_interval = poll_interval
        self._stamp: tuple[int, int] | None = None
        self._instances: list[Instance] = []
        try:
            self._reload()
        except DiscoveryError as exc:
            raise ConfigError(str(exc)) from None

    def _reload(self) -> None:
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp == self._stamp:
                return
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DiscoveryError(f"discovery file {self.path}: cannot read: {exc}") from exc
        try:
            self._instances = parse_instance_lines(text, str(self.path))
        except ConfigError as exc:
            raise DiscoveryError(str(exc)) from exc
        self._stamp = stamp

    async def instances(self) -> list[Instance]:
        self._reload()
        return list(self._instances)


class DnsSrvDiscovery:
    """Instances from DNS SRV records (Consul, Kubernetes headless services, plain zone files).

    Each SRV record ``priority weight port target`` of a name is one up instance at ``target:port`` (the
    target's A/AAAA address when the server gives one, else the name). A name that does not exist, or has
    no SRV records, means no instances; an unreachable server raises :class:`DiscoveryError`.

    Args:
        names: SRV name -> cluster, e.g. ``{"_hystrix._tcp.orders.svc.cluster.local": "orders"}``.
        nameservers: DNS server addresses; None (default) uses the system's resolv.conf.
        port: DNS server port, 1..65535. Default 53.
        poll_interval: seconds between polls, 1..86400. Default 30.0.
        timeout: seconds for one poll, 0.1..60. Default 3.0.
    """

    def __init__(
        self,
        names: Mapping[str, str],
        *,
        nameservers: list[str] | None = None,
        port: int = 53,
        poll_interval: float = 30.0,
        timeout: float = 3.0,
    ) -> None:
        if not names:
            raise ConfigError("DnsSrvDiscovery needs at least one SRV name")
        for name, cluster in names.items():
            if not _NAME.match(name.rstrip(".")):
                raise ConfigError(f"DnsSrvDiscovery: {name!r} is not a DNS name")
            validate_cluster(cluster, f"DnsSrvDiscovery name {name!r}")
        if not 1 <= port <= 65535:
            raise ConfigError(f"DnsSrvDiscovery.port must be 1..65535, got {port}")
        if not 1 <= poll_interval <= 86400:
            raise ConfigError(f"DnsSrvDiscovery.poll_interval must be 1..86400 s, got {poll_interval!r}")
        if not 0.1 <= timeout <= 60:
            raise ConfigError(f"DnsSrvDiscovery.timeout must be 0.1..60 s, got {timeout!r}")
        self.names = dict(names)
        self.poll_interval = poll_interval
        self._resolver = dns.asyncresolver.Resolver(configure=nameservers is None)
        if nameservers is not None:
            self._resolver.nameservers = list(nameservers)
        self._resolver.port = port
        self._resolver.lifetime = timeout
        self._resolver.cache = None

    async def instances(self) -> list[Instance]:
        out: list[Instance] = []
        for name, cluster in self.names.items():
            out.extend(Instance(host, cluster) for host in await self._lookup(name))
        return out

    async def _lookup(self, name: str) -> list[str]:
        try:
            answer = await self._resolver.resolve(name, "SRV", raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.exception.Timeout, dns.resolver.NoNameservers, dns.resolver.LifetimeTimeout) as exc:
            raise DiscoveryError(f"DNS SRV lookup of {name!r} failed: {exc}") from exc
        if answer.rrset is None:
            return []
        addresses: dict[str, str] = {}
        for rrset in answer.response.additional:
            if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                addresses.setdefault(rrset.name.to_text(), rrset[0].to_text())
        hosts = []
        for record in sorted(answer.rrset, key=lambda r: (r.priority, -r.weight, r.target.to_text(), r.port)):
            target = record.target.to_text()
            address = addresses.get(target) or await self._address(target)
            host = f"[{address}]" if ":" in address else address
            hosts.append(f"{host}:{record.port}")
        return hosts

    async def _address(self, target: str) -> str:
        try:
            answer = await self._resolver.resolve(target, "A", raise_on_no_answer=False)
            if answer.rrset is not None:
                return str(answer.rrset[0].to_text())
        except dns.exception.DNSException:
            pass  # fall back to the name; the HTTP client's own resolver may know it
        return target.rstrip(".")
