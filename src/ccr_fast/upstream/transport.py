"""The seam between the gateway and the network: one method, ``send``.

Everything that talks to an upstream goes through a :class:`Transport`; tests swap in
:class:`ccr_fast.upstream.mock_transport.MockTransport`, production uses the aiohttp pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Protocol


@dataclass(slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    #: seconds; the whole exchange for non-streams, the longest silence for streams
    timeout: float
    stream: bool = False
    #: pool key: connections are pooled per provider
    provider: str = ""
    #: outbound proxy URL, or None for a direct connection
    proxy: str | None = None


class UpstreamResponse(Protocol):
    status: int
    #: lower-case header names
    headers: Mapping[str, str]

    async def read(self) -> bytes: ...

    def iter_chunks(self, idle: float | None = None) -> AsyncIterator[bytes]:
        """Body chunks as they arrive; when ``idle`` is set, an empty ``b""`` is yielded after every
        ``idle`` seconds without data (so the caller can send keep-alives), and reading goes on."""
        ...

    def close(self) -> None:
        """Release the connection; if the body was not fully read, the connection is dropped
        (that is how a client disconnect cancels the upstream generation)."""


class Transport(Protocol):
    async def send(self, request: UpstreamRequest) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...


class UpstreamError(Exception):
    """The upstream could not be reached or broke the exchange."""


class UpstreamConnectError(UpstreamError):
    pass


class UpstreamTimeout(UpstreamError):
    pass
