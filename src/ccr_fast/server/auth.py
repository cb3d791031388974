"""API key check: `x-api-key` or `Authorization: Bearer`, compared in constant time against every key.

CCR has one `APIKEY`; ccr-fast adds named keys (`APIKEYS: [{name, key}]`), and `APIKEY` keeps working as the
key named "default".  `check` answers the name of the key the client presented, which the gateway puts on
the request for per-key limits, queue priorities, logs and metrics.

Timing: the presented key is hashed once (SHA-256) and the digest compared with `hmac.compare_digest`
against the digest of *every* configured key, without stopping at a match and without branching on one,
so neither the time taken nor its variation tells which key matched, how many keys there are before it,
or how long any key is (all digests are 32 bytes).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping

from ccr_fast.protocol.errors import GatewayError

__all__ = ["DEFAULT_KEY_NAME", "PUBLIC_PATHS", "ApiKeyAuth", "is_public", "presented_key"]

PUBLIC_PATHS = frozenset({"/", "/health"})
#: the name `APIKEY` goes by
DEFAULT_KEY_NAME = "default"


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path == "/ui" or path.startswith("/ui/")


def presented_key(headers: Mapping[str, str]) -> str | None:
    key = headers.get("x-api-key")
    if key:
        return key
    auth = headers.get("authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return None


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class ApiKeyAuth:
    """The configured keys, by name; `check` returns the name of the key a request presented."""

    __slots__ = ("_digests", "_names")

    def __init__(self, keys: str | Mapping[str, str] | Iterable[tuple[str, str]]) -> None:
        """`keys`: one key (named "default"), or name -> key pairs; at least one, all different."""
        if isinstance(keys, str):
            pairs = [(DEFAULT_KEY_NAME, keys)]
        elif isinstance(keys, Mapping):
            pairs = list(keys.items())
        else:
            pairs = list(keys)
        if not pairs:
            raise ValueError("ApiKeyAuth needs at least one key")
        digests = [_digest(key) for _, key in pairs]
        if len(set(digests)) != len(digests) or any(not key for _, key in pairs):
            raise ValueError("API keys must be non-empty and all different")
        #: index 0 is "no key matched"; key i is at index i + 1
        self._names: tuple[str | None, ...] = (None, *(name for name, _ in pairs))
        self._digests = tuple(digests)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name in self._names if name is not None)

    def check(self, headers: Mapping[str, str]) -> str:
        """The name of the key presented in `headers`; 401 `authentication_error` when none matches."""
        got = presented_key(headers)
        if got is None:
            raise GatewayError(401, "missing API key: send it in x-api-key or Authorization: Bearer")
        digest = _digest(got)
        found = 0
        for index, expected in enumerate(self._digests, 1):
            # every digest is compared; at most one matches (keys are distinct), so this is its index
            found |= index * hmac.compare_digest(digest, expected)
        name = self._names[found]
        if name is None:
            raise GatewayError(401, "invalid API key")
        return name
