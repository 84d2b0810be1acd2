"""The outbound guard's rules: which targets are refused (and why), the allowlist, and the
resolver that refuses a name resolving to a refused address (DNS rebinding included)."""

import asyncio
import socket
from ipaddress import IPv4Address

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from pydantic import ValidationError

from infrastructure.outbound_guard import (
    Allowlist,
    GuardedResolver,
    OutboundGuard,
    OutboundRefusedError,
    parse_address_literal,
)
from infrastructure.settings import Settings

# host → what the refusal says (every form of a bad address, however it is spelled)
REFUSED = [
    ("127.0.0.1", "127.0.0.1 is a loopback address"),
    ("127.53.0.9", "loopback"),
    ("::1", "::1 is a loopback address"),
    ("[::1]", "::1 is a loopback address"),
    ("2130706433", "127.0.0.1 is a loopback address (host 2130706433)"),  # decimal
    ("0177.0.0.1", "127.0.0.1 is a loopback address"),  # octal
    ("0x7f.1", "127.0.0.1 is a loopback address"),  # hex, two parts
    ("0x7f000001", "127.0.0.1 is a loopback address"),
    ("017700000001", "127.0.0.1 is a loopback address"),
    ("127.1", "127.0.0.1 is a loopback address"),  # short form
    ("0X7F.0.0.1", "127.0.0.1 is a loopback address"),
    ("10.0.0.5", "10.0.0.5 is a private address"),
    ("172.16.3.4", "private"),
    ("192.168.1.1", "private"),
    ("fd12:3456::1", "private"),
    ("100.64.0.1", "in the shared address space (100.64.0.0/10)"),
    ("169.254.169.254", "169.254.169.254 is a cloud metadata address"),
    ("fd00:ec2::254", "cloud metadata address"),
    ("100.100.100.200", "cloud metadata address"),
    ("169.254.10.10", "link-local"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("0.0.0.0", "unspecified"),
    ("0", "unspecified"),
    ("::", "unspecified"),
    ("fec0::1", "site-local"),
    ("192.0.2.10", "not a public address"),  # documentation
    ("198.18.0.1", "not a public address"),  # benchmarking
    ("::ffff:127.0.0.1", "IPv4-mapped address of 127.0.0.1, which is a loopback address"),
    ("::ffff:7f00:1", "IPv4-mapped address of 127.0.0.1"),
    ("::ffff:10.1.2.3", "IPv4-mapped address of 10.1.2.3, which is a private address"),
    ("::127.0.0.1", "IPv4-compatible address of 127.0.0.1"),
    ("::8.8.8.8", "reserved"),  # IPv4-compatible form: deprecated, never a target
    ("2002:7f00:1::1", "6to4 address of 127.0.0.1"),
    ("2002:a9fe:a9fe::1", "6to4 address of 169.254.169.254, which is a cloud metadata"),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo address of 127.0.0.1"),
    ("64:ff9b::7f00:1", "NAT64 address of 127.0.0.1"),
    ("64:ff9b::a00:5", "NAT64 address of 10.0.0.5, which is a private address"),
    ("metadata.google.internal", "metadata.google.internal is a cloud metadata host name"),
    ("metadata", "cloud metadata host name"),
    ("METADATA.", "cloud metadata host name"),
    ("instance-data", "cloud metadata host name"),
]
PUBLIC = [
    "93.184.216.34",
    "8.8.8.8",
    "2606:4700::1111",
    "2a00:1450:4001:81b::200e",
    "::ffff:93.184.216.34",  # mapped public IPv4: the same host
    "64:ff9b::5db8:d822",  # NAT64 of a public address
    "2002:5db8:d822::1",  # 6to4 of a public address
    "1.2.3",  # legacy short form of 1.2.0.3, a public address
    "example.com",  # a name: checked when resolved
    "metadata.example.com",
]


@pytest.mark.parametrize(("host", "why"), REFUSED)
def test_a_refused_target_is_refused_saying_why(host: str, why: str) -> None:
    with pytest.raises(OutboundRefusedError, match=r"^refused: ") as refused:
        OutboundGuard().check_host(host)
    assert why in str(refused.value)


def test_the_refused_table_covers_at_least_twenty_addresses_and_spellings() -> None:
    assert len(REFUSED) >= 20


@pytest.mark.parametrize("host", PUBLIC)
def test_a_public_target_passes(host: str) -> None:
    OutboundGuard().check_host(host)


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("192.168.257", "192.168.1.1"),
        ("0xa.0xb.0xc.0xd", "10.11.12.13"),
        ("[::1]", "::1"),
        ("127.0.0.1.", "127.0.0.1"),
    ],
)
def test_legacy_spellings_read_as_the_address_the_c_library_makes_of_them(
    host: str, address: str
) -> None:
    assert str(parse_address_literal(host)) == address


@pytest.mark.parametrize(
    "host", ["example.com", "08.1.1.1", "256.1.1.1", "1.2.3.4.5", "0x1g", "4294967296", ""]
)
def test_names_and_impossible_numbers_are_not_address_literals(host: str) -> None:
    assert parse_address_literal(host) is None


def test_the_allowlist_admits_its_networks_and_nothing_else() -> None:
    guard = OutboundGuard(Allowlist.parse("10.0.0.0/8, 127.0.0.1/32,fd00::/8"))
    guard.check_host("10.0.0.5")
    guard.check_host("127.0.0.1")
    guard.check_host("0x7f.1")  # the same address, however spelled
    guard.check_host("::ffff:127.0.0.1")  # IPv4-mapped: the same host
    guard.check_host("fd00:ec2::254")  # allowlisted explicitly (here: by its network)
    with pytest.raises(OutboundRefusedError, match=r"127\.0\.0\.2 is a loopback address"):
        guard.check_host("127.0.0.2")
    with pytest.raises(OutboundRefusedError, match=r"192\.168\.0\.1 is a private address"):
        guard.check_host("192.168.0.1")


def test_the_allowlist_admits_host_names_whatever_they_resolve_to() -> None:
    guard = OutboundGuard(Allowlist.parse("localhost,Internal.Example."))
    guard.check_resolved("localhost", ["127.0.0.1", "::1"])
    guard.check_resolved("internal.example", ["10.0.0.5"])
    guard.check_resolved("INTERNAL.example.", ["10.0.0.5"])
    with pytest.raises(OutboundRefusedError, match=r"10\.0\.0\.5 is a private address \(host"):
        guard.check_resolved("other.example", ["10.0.0.5"])


def test_a_name_is_refused_if_any_of_its_addresses_is_refused() -> None:
    guard = OutboundGuard()
    guard.check_resolved("example.com", ["93.184.216.34", "2606:2800:220:1::1"])
    with pytest.raises(
        OutboundRefusedError,
        match=r"^refused: 10\.0\.0\.5 is a private address \(host internal\.example\)$",
    ):
        guard.check_resolved("internal.example", ["93.184.216.34", "10.0.0.5"])


def test_an_allowlist_parses_cidrs_addresses_and_names_and_refuses_nonsense() -> None:
    allowlist = Allowlist.parse(" 127.0.0.1/32 , ::1, localhost,, 10.0.0.0/8 ")
    assert str(allowlist) == "127.0.0.1/32,::1/128,10.0.0.0/8,localhost"
    assert Allowlist.parse("") == Allowlist()
    with pytest.raises(ValueError, match="neither a CIDR nor a host name"):
        Allowlist.parse("10.0.0.0/8,not a host")


def test_the_setting_is_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUECALL_OUTBOUND_ALLOWLIST", "127.0.0.1/32,::1/128,localhost")
    allowlist = Settings().allowlist
    assert allowlist.admits_address(IPv4Address("127.0.0.1"))
    assert allowlist.admits_host("localhost")
    assert Settings(outbound_allowlist="").allowlist == Allowlist()
    monkeypatch.setenv("DUECALL_OUTBOUND_ALLOWLIST", "127.0.0.1/33")
    with pytest.raises(ValidationError, match="outbound_allowlist"):
        Settings()


# -- at connect time: the resolver ---------------------------------------------------------


class FakeResolver(AbstractResolver):
    """Answers with the next of ``answers`` for every lookup (a DNS that changes its mind)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        addresses = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return [
            ResolveResult(hostname=host, host=a, port=port, family=family, proto=0, flags=0)
            for a in addresses
        ]

    async def close(self) -> None:
        pass


def _resolve(resolver: GuardedResolver, host: str) -> list[str]:
    return [r["host"] for r in asyncio.run(resolver.resolve(host, 80))]


def test_the_resolver_returns_only_answers_the_guard_approved() -> None:
    inner = FakeResolver(["93.184.216.34", "2606:4700::1111"])
    assert _resolve(GuardedResolver(OutboundGuard(), inner), "example.com") == [
        "93.184.216.34", "2606:4700::1111"]


@pytest.mark.parametrize(
    "answer", [["10.0.0.5"], ["93.184.216.34", "127.0.0.1"], ["::ffff:169.254.169.254"]]
)
def test_the_resolver_refuses_a_name_with_any_refused_address(answer: list[str]) -> None:
    resolver = GuardedResolver(OutboundGuard(), FakeResolver(answer))
    with pytest.raises(OutboundRefusedError, match=r"\(host rebind\.example\)"):
        _resolve(resolver, "rebind.example")


def test_dns_rebinding_is_refused_at_the_next_connect() -> None:
    inner = FakeResolver(["93.184.216.34"], ["127.0.0.1"])
    resolver = GuardedResolver(OutboundGuard(), inner)
    assert _resolve(resolver, "rebind.example") == ["93.184.216.34"]
    with pytest.raises(OutboundRefusedError, match=r"127\.0\.0\.1 is a loopback address"):
        _resolve(resolver, "rebind.example")
    assert inner.asked == ["rebind.example", "rebind.example"]


def test_the_resolver_refuses_metadata_names_without_asking_dns() -> None:
    inner = FakeResolver(["93.184.216.34"])
    with pytest.raises(OutboundRefusedError, match="cloud metadata host name"):
        _resolve(GuardedResolver(OutboundGuard(), inner), "metadata.google.internal")
    assert inner.asked == []


def test_an_allowlisted_name_resolves_to_whatever_it_resolves_to() -> None:
    guard = OutboundGuard(Allowlist.parse("db.internal"))
    resolver = GuardedResolver(guard, FakeResolver(["10.0.0.5"]))
    assert _resolve(resolver, "db.internal") == ["10.0.0.5"]
