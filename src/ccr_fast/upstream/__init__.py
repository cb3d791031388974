"""Upstream HTTP: the one-method transport seam, its aiohttp implementation and a mock."""

from ccr_fast.upstream.transport import (
    Transport,
    UpstreamConnectError,
    UpstreamError,
    UpstreamRequest,
    UpstreamResponse,
    UpstreamTimeout,
)

__all__ = [
    "Transport",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamRequest",
    "UpstreamResponse",
    "UpstreamTimeout",
]
