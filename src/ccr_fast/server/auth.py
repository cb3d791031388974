"""APIKEY check: `x-api-key` or `Authorization: Bearer`, compared in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from ccr_fast.protocol.errors import GatewayError

PUBLIC_PATHS = frozenset({"/", "/health"})


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


class ApiKeyAuth:
    __slots__ = ("_key",)

    def __init__(self, key: str) -> None:
        self._key = key.encode()

    def check(self, headers: Mapping[str, str]) -> None:
        got = presented_key(headers)
        if got is None:
            raise GatewayError(401, "missing API key: send it in x-api-key or Authorization: Bearer")
        if not hmac.compare_digest(got.encode(), self._key):
            raise GatewayError(401, "invalid API key")
