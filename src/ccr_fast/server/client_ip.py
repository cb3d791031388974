"""The client's real address behind trusted reverse proxies (nginx), for logs and per-IP rules.

Forwarding headers are believed only when the direct peer is a configured proxy; otherwise anyone
could claim any address. X-Forwarded-For is read right to left, skipping our own proxies, so a value
the client itself put at the left end is never taken.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse(addr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    addr = addr.strip()
    if addr.startswith("[") and "]" in addr:  # [v6]:port
        addr = addr[1 : addr.index("]")]
    elif addr.count(":") == 1:  # v4:port
        addr = addr.split(":", 1)[0]
    try:
        return ipaddress.ip_address(addr)
    except ValueError:
        return None


class ClientAddress:
    __slots__ = ("_nets",)

    def __init__(self, trusted: tuple[str, ...]) -> None:
        self._nets: tuple[IPNetwork, ...] = tuple(ipaddress.ip_network(n, strict=False) for n in trusted)

    @property
    def enabled(self) -> bool:
        return bool(self._nets)

    def _trusted(self, addr: str) -> bool:
        ip = _parse(addr)
        if ip is None:
            # not an IP: a unix-socket peer, reachable only from this machine
            return True
        return any(ip in net for net in self._nets)

    def resolve(self, peer: str, headers: Mapping[str, str]) -> str:
        if not self._nets or not self._trusted(peer):
            return peer
        xff = headers.get("x-forwarded-for")
        if xff:
            hops = [h.strip() for h in xff.split(",") if h.strip()]
            for hop in reversed(hops):
                if _parse(hop) is None:
                    break
                if not self._trusted(hop):
                    return hop
            if hops and _parse(hops[0]) is not None:
                return hops[0]
        real = headers.get("x-real-ip")
        if real and _parse(real) is not None:
            return real.strip()
        return peer
