"""The small, interface-neutral Request/Response the gateway core works on.

The ASGI and RSGI adapters translate to and from these, so the core never knows which server
interface carried the request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import orjson

from ccr_fast.protocol.errors import GatewayError

Headers = list[tuple[str, str]]

#: status recorded for a response whose client went away before it ended (nginx's convention)
CLIENT_CLOSED = 499


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: str
    #: lower-case names; repeated headers joined with ", "
    headers: dict[str, str]
    body: bytes
    client: str
    request_id: str
    #: the name of the API key the client authenticated with (None without keys configured)
    key: str | None = None


@dataclass(slots=True)
class Response:
    status: int
    headers: Headers = field(default_factory=list)
    body: bytes = b""
    #: when set, the body is streamed from this iterator instead
    stream: AsyncIterator[bytes] | None = None
    #: called exactly once after the response ends, however it ends (accounting, logging)
    on_complete: Callable[[int], None] | None = None


JSON_HEADERS: Headers = [("content-type", "application/json")]
SSE_HEADERS: Headers = [
    ("content-type", "text/event-stream"),
    ("cache-control", "no-cache"),
    ("x-accel-buffering", "no"),
]


def json_response(data: object, status: int = 200, headers: Headers | None = None) -> Response:
    return Response(status, [*JSON_HEADERS, *(headers or ())], orjson.dumps(data))


def error_response(err: GatewayError, request_id: str) -> Response:
    headers = [*JSON_HEADERS, *err.headers.items()]
    return Response(err.status, headers, err.body(request_id))
