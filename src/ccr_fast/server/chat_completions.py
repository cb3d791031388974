"""POST /v1/chat/completions: OpenAI-format clients through the same pipeline.

The request is translated to an Anthropic Messages body, routed and served exactly like
/v1/messages (to any upstream), and the Anthropic result — JSON, SSE or error — is translated back.
Errors keep OpenAI's shape here, since OpenAI SDKs are the clients.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import orjson

from ccr_fast.protocol.errors import GatewayError
from ccr_fast.protocol.inbound_openai_request import openai_request_to_anthropic, stream_include_usage
from ccr_fast.protocol.inbound_openai_response import anthropic_error_to_openai, anthropic_message_to_openai
from ccr_fast.protocol.inbound_openai_stream import AnthropicToOpenAIStream
from ccr_fast.server.http import JSON_HEADERS, Response
from ccr_fast.server.messages import dispatch
from ccr_fast.server.validate import parse_json_body, validate_messages_body

if TYPE_CHECKING:
    from ccr_fast.server.gateway import Gateway
    from ccr_fast.server.http import Request


def _openai_error(err: GatewayError) -> Response:
    return Response(
        err.status, [*JSON_HEADERS, *err.headers.items()], anthropic_error_to_openai(err.status, err.body())
    )


async def handle_chat_completions(gw: Gateway, req: Request) -> Response:
    started = time.perf_counter()
    try:
        raw = parse_json_body(req.body)
        body = openai_request_to_anthropic(raw)
        include_usage = stream_include_usage(raw)
        validate_messages_body(body)
        resp = await dispatch(gw, req, body, started)
    except GatewayError as err:
        return _openai_error(err)
    model = str(raw.get("model", ""))
    if resp.status >= 300:
        return Response(
            resp.status,
            resp.headers,
            anthropic_error_to_openai(resp.status, resp.body),
            on_complete=resp.on_complete,
        )
    if resp.stream is None:
        message = orjson.loads(resp.body)
        return Response(
            200,
            resp.headers,
            orjson.dumps(anthropic_message_to_openai(message, model=model)),
            on_complete=resp.on_complete,
        )
    return Response(
        200,
        resp.headers,
        stream=_to_openai_stream(
            resp.stream, AnthropicToOpenAIStream(model=model, include_usage=include_usage)
        ),
        on_complete=resp.on_complete,
    )


async def _to_openai_stream(
    stream: AsyncIterator[bytes], out: AnthropicToOpenAIStream
) -> AsyncIterator[bytes]:
    try:
        async for data in stream:
            converted = out.feed(data)
            if converted:
                yield converted
        tail = out.close()
        if tail:
            yield tail
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
