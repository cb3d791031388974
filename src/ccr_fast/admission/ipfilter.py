"""Client IP rules: a blacklist and a whitelist of addresses and CIDR ranges, IPv4 and IPv6.

A blacklisted client is refused outright; a whitelisted one skips the per-IP rate limit (nothing else).
When both lists hold a range that contains the address, the most specific range (longest prefix) decides,
so ``blacklist: ["203.0.113.0/24"], whitelist: ["203.0.113.7"]`` refuses the /24 except one host.  The
same range in both lists is a config error, caught when the config is read.

Lookups run once per request, so ranges are indexed by prefix length: a lookup masks the address once per
distinct prefix length in the lists (a handful) and probes a dict, instead of testing every range.  The
verdict for an address is cached (clients are few: a team's workstations, or nginx in front), in a dict
that is dropped whole when it grows past ``CACHE_SIZE`` so a scan of many addresses cannot grow memory.

IPv4 clients reaching an IPv6 socket appear as IPv4-mapped addresses (``::ffff:192.0.2.1``); they are
matched and limited as the IPv4 address they are.  IPv6 clients are rate-limited per network of
``ipv6_prefix`` bits (a /64 by default), because one host usually holds a whole /64 and could otherwise
rotate addresses to dodge its limit.  An address that is not an IP at all (a unix-socket peer, which is on
this machine) matches no rule and has no per-IP limit.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterable
from typing import Final, NamedTuple

__all__ = ["CACHE_SIZE", "ClientIP", "IPNetwork", "IPRules", "Verdict", "parse_network"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: cached verdicts before the cache is dropped and refilled
CACHE_SIZE: Final = 4096


class Verdict(enum.Enum):
    NEUTRAL = "neutral"
    BLOCKED = "blocked"
    #: whitelisted: exempt from the per-IP limit
    TRUSTED = "trusted"


class ClientIP(NamedTuple):
    """What the rules say about one client address."""

    verdict: Verdict
    #: the per-IP rate-limit key (the address, or its IPv6 network); None when the address is not an IP
    limit_key: str | None


def parse_network(text: str) -> tuple[IPNetwork, bool]:
    """``"10.0.0.0/8"``, ``"2001:db8::/32"`` or a single address; True when host bits were set.

    Host bits are cleared rather than refused (``"10.1.2.3/8"`` is ``10.0.0.0/8``) and reported, so the
    config reader can warn about what was probably a typo.  Raises ``ValueError`` for anything else.
    """
    text = text.strip()
    network = ipaddress.ip_network(text, strict=False)
    try:
        ipaddress.ip_network(text)
    except ValueError:
        return network, True
    return network, False


class _Index:
    """Ranges of one address family, as ``prefix length -> {network number: verdict}``."""

    __slots__ = ("_bits", "_by_length")

    def __init__(self, bits: int) -> None:
        self._bits = bits
        self._by_length: list[tuple[int, dict[int, Verdict]]] = []

    def add(self, network: IPNetwork, verdict: Verdict) -> None:
        shift = self._bits - network.prefixlen
        for length, table in self._by_length:
            if length == network.prefixlen:
                table[int(network.network_address) >> shift] = verdict
                return
        self._by_length.append((network.prefixlen, {int(network.network_address) >> shift: verdict}))
        self._by_length.sort(key=lambda entry: -entry[0])  # longest prefix first

    def match(self, address: int) -> Verdict:
        bits = self._bits
        for length, table in self._by_length:
            found = table.get(address >> (bits - length))
            if found is not None:
                return found
        return Verdict.NEUTRAL


class IPRules:
    """The blacklist and whitelist, and the per-IP limit key of each client address."""

    __slots__ = ("_cache", "_v4", "_v6", "_v6_shift", "ipv6_prefix")

    def __init__(
        self, blacklist: Iterable[IPNetwork], whitelist: Iterable[IPNetwork], ipv6_prefix: int = 64
    ) -> None:
        if not 1 <= ipv6_prefix <= 128:
            raise ValueError(f"ipv6_prefix must be between 1 and 128, not {ipv6_prefix}")
        self.ipv6_prefix = ipv6_prefix
        self._v6_shift = 128 - ipv6_prefix
        self._v4 = _Index(32)
        self._v6 = _Index(128)
        for networks, verdict in ((whitelist, Verdict.TRUSTED), (blacklist, Verdict.BLOCKED)):
            for network in networks:
                (self._v4 if network.version == 4 else self._v6).add(network, verdict)
        self._cache: dict[str, ClientIP] = {}

    def lookup(self, address: str) -> ClientIP:
        found = self._cache.get(address)
        if found is None:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            found = self._cache[address] = self._classify(address)
        return found

    def _classify(self, address: str) -> ClientIP:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return ClientIP(Verdict.NEUTRAL, None)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if isinstance(ip, ipaddress.IPv4Address):
            return ClientIP(self._v4.match(int(ip)), str(ip))
        network = int(ip) >> self._v6_shift << self._v6_shift
        return ClientIP(self._v6.match(int(ip)), f"{ipaddress.IPv6Address(network)}/{self.ipv6_prefix}")
