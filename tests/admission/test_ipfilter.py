"""IP rules: CIDR blacklist and whitelist for IPv4 and IPv6, longest prefix wins, per-IP limit keys."""

from __future__ import annotations

import ipaddress

import pytest

from ccr_fast.admission import ipfilter
from ccr_fast.admission.ipfilter import ClientIP, IPRules, Verdict, parse_network


def _rules(blacklist: list[str], whitelist: tuple[str, ...] = (), ipv6_prefix: int = 64) -> IPRules:
    return IPRules(
        [parse_network(n)[0] for n in blacklist], [parse_network(n)[0] for n in whitelist], ipv6_prefix
    )


@pytest.mark.parametrize(
    ("address", "verdict"),
    [
        ("203.0.113.9", Verdict.BLOCKED),
        ("203.0.114.9", Verdict.NEUTRAL),
        ("10.200.0.1", Verdict.TRUSTED),
        ("198.51.100.7", Verdict.BLOCKED),  # a single address
        ("198.51.100.8", Verdict.NEUTRAL),
        ("2001:db8:ffff::1", Verdict.BLOCKED),
        ("2001:db8:1::5", Verdict.TRUSTED),  # whitelisted /48 inside the blacklisted /32
        ("2001:db9::1", Verdict.NEUTRAL),
        ("::ffff:203.0.113.9", Verdict.BLOCKED),  # IPv4-mapped IPv6 is matched as IPv4
        ("unix:/run/ccr.sock", Verdict.NEUTRAL),
        ("", Verdict.NEUTRAL),
    ],
)
def test_verdicts(address: str, verdict: Verdict) -> None:
    rules = _rules(["203.0.113.0/24", "198.51.100.7", "2001:db8::/32"], ("10.0.0.0/8", "2001:db8:1::/48"))
    assert rules.lookup(address).verdict is verdict


def test_the_most_specific_range_decides_either_way() -> None:
    rules = _rules(["10.1.2.0/24", "192.0.2.7"], ("10.0.0.0/8", "192.0.2.0/24"))
    assert rules.lookup("10.1.2.3").verdict is Verdict.BLOCKED  # /24 blacklist inside a /8 whitelist
    assert rules.lookup("10.1.3.3").verdict is Verdict.TRUSTED
    assert rules.lookup("192.0.2.7").verdict is Verdict.BLOCKED  # one host out of a whitelisted /24
    assert rules.lookup("192.0.2.8").verdict is Verdict.TRUSTED


def test_zero_length_prefixes_cover_everything_of_their_family() -> None:
    rules = _rules(["0.0.0.0/0"], ("::/0",))
    assert rules.lookup("8.8.8.8").verdict is Verdict.BLOCKED
    assert rules.lookup("2606:4700::1111").verdict is Verdict.TRUSTED


def test_limit_keys_group_ipv6_by_network_and_unwrap_mapped_ipv4() -> None:
    rules = _rules([])
    assert rules.lookup("192.0.2.1") == ClientIP(Verdict.NEUTRAL, "192.0.2.1")
    assert rules.lookup("::ffff:192.0.2.1").limit_key == "192.0.2.1"
    assert rules.lookup("2001:db8:a:b:1:2:3:4").limit_key == "2001:db8:a:b::/64"
    assert rules.lookup("2001:db8:a:b::99").limit_key == "2001:db8:a:b::/64"
    assert rules.lookup("2001:db8:a:c::1").limit_key == "2001:db8:a:c::/64"
    assert rules.lookup("not an address") == ClientIP(Verdict.NEUTRAL, None)
    assert _rules([], ipv6_prefix=128).lookup("2001:db8::1").limit_key == "2001:db8::1/128"
    assert _rules([], ipv6_prefix=48).lookup("2001:db8:a:b::1").limit_key == "2001:db8:a::/48"


def test_parse_network_reports_host_bits() -> None:
    assert parse_network("10.0.0.0/8") == (ipaddress.ip_network("10.0.0.0/8"), False)
    assert parse_network(" 10.1.2.3/8 ") == (ipaddress.ip_network("10.0.0.0/8"), True)
    assert parse_network("2001:db8::1") == (ipaddress.ip_network("2001:db8::1/128"), False)
    with pytest.raises(ValueError):
        parse_network("10.0.0.0/33")


def test_ipv6_prefix_is_checked() -> None:
    with pytest.raises(ValueError):
        IPRules([], [], ipv6_prefix=0)


def test_the_verdict_cache_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ipfilter, "CACHE_SIZE", 8)
    rules = _rules(["192.0.2.0/24"])
    for n in range(50):
        assert rules.lookup(f"192.0.2.{n}").verdict is Verdict.BLOCKED
        assert len(rules._cache) <= 8
