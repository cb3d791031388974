"""An in-process Transport for tests of the gateway core: no sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from ccr_fast.upstream.transport import UpstreamRequest


@dataclass
class MockResponse:
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    chunks: Iterable[bytes] | AsyncIterator[bytes] = ()
    #: raised after the chunks are sent (simulates a broken stream)
    error_after: Exception | None = None
    closed: bool = False

    async def read(self) -> bytes:
        out = bytearray()
        async for c in self.iter_chunks():
            out += c
        return bytes(out)

    async def iter_chunks(self, idle: float | None = None) -> AsyncIterator[bytes]:
        if isinstance(self.chunks, AsyncIterator):
            async for c in self.chunks:
                yield c
        else:
            for c in self.chunks:
                yield c
        if self.error_after is not None:
            raise self.error_after

    def close(self) -> None:
        self.closed = True


Handler = Callable[[UpstreamRequest], Awaitable[MockResponse]]


class MockTransport:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[UpstreamRequest] = []

    async def send(self, request: UpstreamRequest) -> MockResponse:
        self.requests.append(request)
        return await self.handler(request)

    async def aclose(self) -> None:
        return None
