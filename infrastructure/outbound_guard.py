"""The outbound guard: duecall sends requests for tenants, so it must not become a way into
the network it runs in (SSRF).

A target is refused when its host is a cloud metadata name, or when the host is, or resolves
to, an address that is not public: loopback, private, link-local, multicast, reserved,
unspecified, shared address space (100.64.0.0/10), a cloud metadata address, or an IPv6 form
that embeds such an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo). A host
with several addresses is refused if ANY of them is refused. Legacy IPv4 spellings that the
C library still accepts (``2130706433``, ``0177.0.0.1``, ``0x7f.1``, ``127.1``) are read as
the address they stand for. The allowlist (``DUECALL_OUTBOUND_ALLOWLIST``) admits chosen
internal targets: by CIDR (the addresses) or by host name (whatever the name resolves to).

Where it applies (``http_sender.py``):
    * the sender checks the host of every request before aiohttp sends it, as aiohttp parsed
      it (aiohttp skips the resolver for IP literals); it follows redirects itself, so each
      hop is such a request;
    * ``GuardedResolver`` resolves host names at connect time and refuses a refused answer, so
      the connection only ever goes to addresses the guard approved (no DNS rebinding between
      a check and the connect).
A refusal is an ``OutboundRefusedError`` whose message says why, e.g.
``refused: 10.0.0.5 is a private address (host internal.example)``.

The address rules and the places they are enforced must be read together to see that no path
around them is left.
"""

import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

METADATA_ADDRESSES = frozenset(
    ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
SHARED_ADDRESS_SPACE = IPv4Network("100.64.0.0/10")
PRIVATE_NETWORKS = tuple(
    ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
NAT64 = IPv6Network("64:ff9b::/96")
_LEGACY_IPV4_PART = re.compile(r"0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*")
_HOST_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")


class OutboundRefusedError(Exception):
    """duecall refused to send to this target; the message says why."""


# -- pure functions -------------------------------------------------------------------------


def normalise_host(host: str) -> str:
    """``[::1]`` → ``::1``, ``Example.COM.`` → ``example.com``."""
    name = host.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    return name[:-1] if name.endswith(".") else name


def parse_address_literal(host: str) -> IPAddress | None:
    """The address a host stands for if it is an IP literal, legacy spellings included
    (``0x7f.1`` → 127.0.0.1); None for a host name."""
    name = normalise_host(host)
    try:
        return ip_address(name)
    except ValueError:
        return _legacy_ipv4(name)


def _legacy_ipv4(text: str) -> IPv4Address | None:
    """inet_aton's forms: 1 to 4 parts, each decimal, octal (leading 0) or hex (0x); the last
    part fills the remaining bytes (``127.1`` → 127.0.0.1, ``2130706433`` → 127.0.0.1)."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(_LEGACY_IPV4_PART.fullmatch(p) for p in parts):
        return None
    values = [
        int(p[2:] or "0", 16) if p[:2] in ("0x", "0X") else int(p, 8 if p[0] == "0" else 10)
        for p in parts
    ]
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    return IPv4Address(sum(v << (8 * (3 - i)) for i, v in enumerate(head)) + last)


def _embedded_ipv4(address: IPv6Address) -> tuple[str, IPv4Address] | None:
    """The IPv4 address an IPv6 form carries, with the form's name."""
    if address.ipv4_mapped is not None:
        return "an IPv4-mapped address", address.ipv4_mapped
    if address in NAT64:
        return "a NAT64 address", IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return "a 6to4 address", address.sixtofour
    if address.teredo is not None:
        return "a Teredo address", address.teredo[1]
    if address.packed[:12] == bytes(12):
        return "an IPv4-compatible address", IPv4Address(address.packed[12:])
    return None


def why_refused(address: IPAddress) -> str | None:
    """Why duecall must not send to ``address`` (completes "<address> is ..."), or None when
    it is a public address."""
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    embedded = _embedded_ipv4(address) if isinstance(address, IPv6Address) else None
    if embedded is not None:
        form, inner = embedded
        reason = why_refused(inner)
        if reason is not None:
            return f"{form} of {inner}, which is {reason}"
        if form in ("an IPv4-mapped address", "a NAT64 address", "a 6to4 address"):
            return None  # the same public IPv4 host, reached another way
    return _special_purpose(address)


def _special_purpose(address: IPAddress) -> str | None:
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address in SHARED_ADDRESS_SPACE:
        return "in the shared address space (100.64.0.0/10)"
    if isinstance(address, IPv6Address) and address.is_site_local:
        return "a site-local address"
    if any(address in network for network in PRIVATE_NETWORKS):
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "not a public address"
    return None


@dataclass(frozen=True)
class Allowlist:
    """Targets admitted despite the guard: networks (by address) and host names (by name)."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, text: str) -> "Allowlist":
        """``"127.0.0.1/32, ::1/128, localhost"``; ValueError names a bad entry."""
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for entry in (e.strip() for e in text.split(",")):
            if not entry:
                continue
            try:
                networks.append(ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            name = normalise_host(entry)
            if not _HOST_NAME.fullmatch(name):
                raise ValueError(f"{entry!r} is neither a CIDR nor a host name")
            hosts.add(name)
        return cls(tuple(networks), frozenset(hosts))

    def admits_host(self, host: str) -> bool:
        return normalise_host(host) in self.hosts

    def admits_address(self, address: IPAddress) -> bool:
        mapped = address.ipv4_mapped if isinstance(address, IPv6Address) else None
        return any(address in n or (mapped is not None and mapped in n) for n in self.networks)

    def __str__(self) -> str:
        return ",".join([*(str(n) for n in self.networks), *sorted(self.hosts)])


_MAX_HOST_VERDICTS = 10_000


class OutboundGuard:
    """The checks, with the allowlist applied; each raises ``OutboundRefusedError``."""

    def __init__(self, allowlist: Allowlist | None = None) -> None:
        self.allowlist = allowlist or Allowlist()
        # check_host's verdict depends on the host alone, so it is parsed once per host, not
        # per request. host -> the refusal, or None when admitted.
        self._host_verdicts: dict[str, str | None] = {}

    def check_host(self, host: str) -> None:
        """Before resolving: an IP literal (any spelling) or a metadata host name."""
        try:
            refusal = self._host_verdicts[host]
        except KeyError:
            refusal = self._host_refusal(host)
            if len(self._host_verdicts) >= _MAX_HOST_VERDICTS:
                self._host_verdicts.clear()
            self._host_verdicts[host] = refusal
        if refusal is not None:
            raise OutboundRefusedError(refusal)

    def _host_refusal(self, host: str) -> str | None:
        if self.allowlist.admits_host(host):
            return None
        address = parse_address_literal(host)
        if address is not None:
            try:
                self._check_address(address, host)
            except OutboundRefusedError as refused:
                return str(refused)
        elif normalise_host(host) in METADATA_HOSTS:
            return f"refused: {host} is a cloud metadata host name"
        return None

    def check_resolved(self, host: str, addresses: Iterable[str]) -> None:
        """After resolving: every address ``host`` resolved to must be admitted."""
        if self.allowlist.admits_host(host):
            return
        for text in addresses:
            self._check_address(ip_address(text), host)

    def _check_address(self, address: IPAddress, host: str) -> None:
        if self.allowlist.admits_address(address):
            return
        reason = why_refused(address)
        if reason is not None:
            named = "" if normalise_host(host) == str(address) else f" (host {host})"
            raise OutboundRefusedError(f"refused: {address} is {reason}{named}")


# -- the adapter: aiohttp's resolver ----------------------------------------------------------


class GuardedResolver(AbstractResolver):
    """Resolves (with ``inner``, the C library's getaddrinfo by default) and refuses a name
    whose answer holds a refused address: aiohttp connects only to what this returns."""

    def __init__(self, guard: OutboundGuard, inner: AbstractResolver | None = None) -> None:
        self._guard = guard
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self._guard.check_host(host)
        if self._inner is None:
            self._inner = aiohttp.ThreadedResolver()  # needs the running loop: made here
        results = await self._inner.resolve(host, port, family)
        self._guard.check_resolved(host, [r["host"] for r in results])
        return results

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()
