"""The gateway core driven directly: Request in, Response out, upstream replaced by a MockTransport.

No server and no sockets: every upstream answer is scripted, every upstream request is inspected.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest

from ccr_fast.config import Config, config_from_dict
from ccr_fast.protocol.sse import SSEDecoder
from ccr_fast.server.gateway import Gateway, new_request_id
from ccr_fast.server.http import Request, Response
from ccr_fast.upstream.mock_transport import MockResponse, MockTransport
from ccr_fast.upstream.transport import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamRequest,
    UpstreamTimeout,
)

OAI_URL = "https://oai.example.test/v1/chat/completions"
ANTH_URL = "https://anth.example.test/v1/messages"
SESSION = "5f0c5a1e-aaaa-bbbb-cccc-000000000001"

Handler = Callable[[UpstreamRequest], Awaitable[MockResponse]]


def config_data(**top: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "Providers": [
            {
                "name": "oai",
                "api_base_url": OAI_URL,
                "api_key": "sk-oai-secret-1234",
                "models": ["gpt-test"],
            },
            {
                "name": "anth",
                "api_base_url": ANTH_URL,
                "api_key": "sk-ant-secret-5678",
                "models": ["claude-upstream"],
                "transformer": {"use": ["Anthropic"]},
            },
            {
                "name": "anthclean",
                "api_base_url": ANTH_URL,
                "api_key": "sk-ant-secret-5678",
                "models": ["claude-upstream"],
                "transformer": {"use": ["Anthropic", "cleancache"]},
            },
            {
                "name": "gem",
                "api_base_url": "https://gem.example.test/v1beta/models",
                "api_key": "g",
                "models": ["gemini-x"],
                "transformer": {"use": ["future-endpoint"]},
            },
        ],
        "Router": {"default": "oai,gpt-test"},
        "API_TIMEOUT_MS": 5000,
    }
    data.update(top)
    return data


def make_config(**top: Any) -> Config:
    return config_from_dict(config_data(**top), env={})


def gateway(handler: Handler | None = None, **top: Any) -> tuple[Gateway, MockTransport]:
    async def unexpected(request: UpstreamRequest) -> MockResponse:
        raise AssertionError(f"unexpected upstream call to {request.url}")

    transport = MockTransport(handler or unexpected)
    return Gateway(make_config(**top), transport), transport


def reply(response: MockResponse) -> Handler:
    async def handler(request: UpstreamRequest) -> MockResponse:
        return response

    return handler


def raising(exc: Exception) -> Handler:
    async def handler(request: UpstreamRequest) -> MockResponse:
        raise exc

    return handler


def request(
    method: str = "POST",
    path: str = "/v1/messages",
    body: Any = None,
    headers: dict[str, str] | None = None,
    query: str = "",
) -> Request:
    raw = body if isinstance(body, bytes) else (b"" if body is None else orjson.dumps(body))
    return Request(method, path, query, headers or {}, raw, "127.0.0.1", new_request_id())


def messages_body(model: str = "claude-sonnet-x", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "Say hello"}],
    }
    body.update(extra)
    return body


def header_values(resp: Response, name: str) -> list[str]:
    return [v for k, v in resp.headers if k == name]


def json_of(resp: Response) -> Any:
    assert resp.stream is None
    assert header_values(resp, "content-type") == ["application/json"]
    return orjson.loads(resp.body)


async def drain(resp: Response) -> bytes:
    assert resp.stream is not None
    out = bytearray()
    async for chunk in resp.stream:
        out += chunk
    return bytes(out)


async def drain_chunks(resp: Response) -> list[bytes]:
    assert resp.stream is not None
    return [chunk async for chunk in resp.stream]


def events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    decoder = SSEDecoder()
    found = decoder.feed(raw) + decoder.close()
    return [((name or b"message").decode(), orjson.loads(data)) for name, data in found]


def assert_error(resp: Response, status: int, error_type: str) -> dict[str, Any]:
    assert resp.status == status
    data: dict[str, Any] = json_of(resp)
    assert data["type"] == "error"
    assert data["error"]["type"] == error_type
    assert data["request_id"] == header_values(resp, "request-id")[0]
    return data


def openai_completion(text: str = "Hello!", prompt: int = 11, completion: int = 3) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-test",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion},
    }


def openai_sse(*texts: str, prompt: int = 9, completion: int = 2) -> list[bytes]:
    chunks: list[dict[str, Any]] = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
    ]
    chunks += [{"choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}]} for t in texts]
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    chunks.append({"choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion}})
    return [b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"]


def anthropic_frame(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def anthropic_stream(text: str = "Hi there", input_tokens: int = 21, cache_read: int = 100) -> bytes:
    usage = {"input_tokens": input_tokens, "output_tokens": 1, "cache_read_input_tokens": cache_read}
    message: dict[str, Any] = {
        "id": "msg_up",
        "type": "message",
        "role": "assistant",
        "model": "claude-upstream",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    return b"".join(
        [
            anthropic_frame("message_start", {"type": "message_start", "message": message}),
            anthropic_frame(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            ),
            anthropic_frame(
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
            ),
            b'event: ping\ndata: {"type": "ping"}\n\n',
            anthropic_frame("content_block_stop", {"type": "content_block_stop", "index": 0}),
            anthropic_frame(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": 7},
                },
            ),
            anthropic_frame("message_stop", {"type": "message_stop"}),
        ]
    )


SSE_HEADERS = {"content-type": "text/event-stream"}
JSON_HEADERS = {"content-type": "application/json"}


# --- routing table --------------------------------------------------------------------------------------


async def test_root_and_health() -> None:
    gw, _ = gateway()
    root = await gw.handle(request("GET", "/"))
    assert root.status == 200 and json_of(root)["name"] == "ccr-fast"
    head = await gw.handle(request("HEAD", "/"))
    assert head.status == 200
    health = await gw.handle(request("GET", "/health"))
    assert health.status == 200 and json_of(health)["status"] == "ok"


@pytest.mark.parametrize("path", ["/health/", "/api/transformers/", "/api/config//"])
async def test_a_trailing_slash_reaches_the_same_route(path: str) -> None:
    gw, _ = gateway()
    assert (await gw.handle(request("GET", path))).status == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/nope"), ("POST", "/v1/chat"), ("GET", "/v1/messages/extra"), ("DELETE", "/nowhere/")],
)
async def test_unknown_paths_are_404(method: str, path: str) -> None:
    gw, _ = gateway()
    data = assert_error(await gw.handle(request(method, path)), 404, "not_found_error")
    assert path in data["error"]["message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/messages"),
        ("PUT", "/v1/messages/count_tokens"),
        ("POST", "/"),
        ("POST", "/health"),
        ("GET", "/v1/messages/"),
        ("DELETE", "/health/"),
    ],
)
async def test_known_paths_with_the_wrong_method_are_405(method: str, path: str) -> None:
    gw, _ = gateway()
    data = assert_error(await gw.handle(request(method, path)), 405, "invalid_request_error")
    assert method in data["error"]["message"]


async def test_query_string_does_not_affect_routing() -> None:
    gw, _ = gateway()
    resp = await gw.handle(request(path="/v1/messages/count_tokens", body=messages_body(), query="beta=true"))
    assert resp.status == 200


# --- auth -----------------------------------------------------------------------------------------------


async def test_auth_accepts_x_api_key_or_bearer() -> None:
    gw, _ = gateway(APIKEY="local-key")
    for headers in ({"x-api-key": "local-key"}, {"authorization": "Bearer local-key"}):
        assert (await gw.handle(request("GET", "/api/transformers", headers=headers))).status == 200


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({}, "missing API key"),
        ({"x-api-key": "wrong"}, "invalid API key"),
        ({"authorization": "Bearer no"}, "invalid"),
    ],
)
async def test_auth_rejects_missing_or_wrong_keys(headers: dict[str, str], fragment: str) -> None:
    gw, transport = gateway(APIKEY="local-key")
    for path, method in (
        ("/v1/messages", "POST"),
        ("/api/config", "GET"),
        ("/v1/messages/count_tokens", "POST"),
    ):
        resp = await gw.handle(request(method, path, body=messages_body(), headers=headers))
        data = assert_error(resp, 401, "authentication_error")
        assert fragment in data["error"]["message"]
    assert transport.requests == []


async def test_public_paths_need_no_key() -> None:
    gw, _ = gateway(APIKEY="local-key")
    assert (await gw.handle(request("GET", "/"))).status == 200
    assert (await gw.handle(request("HEAD", "/"))).status == 200
    assert (await gw.handle(request("GET", "/health"))).status == 200


async def test_routing_errors_come_before_auth() -> None:
    gw, _ = gateway(APIKEY="local-key")
    assert (await gw.handle(request("GET", "/nope"))).status == 404


# --- request ids and unhandled errors -------------------------------------------------------------------


async def test_every_response_carries_its_request_id_once() -> None:
    gw, _ = gateway(reply(MockResponse(200, JSON_HEADERS, [orjson.dumps(openai_completion())])))
    for req in (
        request("GET", "/"),
        request("GET", "/health"),
        request("GET", "/nope"),
        request("GET", "/v1/messages"),
        request(body=b"{broken"),
        request(body=messages_body()),
        request(path="/v1/messages/count_tokens", body=messages_body()),
    ):
        resp = await gw.handle(req)
        assert header_values(resp, "request-id") == [req.request_id], (req.method, req.path, resp.status)


def test_request_ids_are_unique_and_prefixed() -> None:
    ids = {new_request_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(i.startswith("req_") and len(i) == 28 for i in ids)


async def test_an_unhandled_exception_is_a_500_without_internals() -> None:
    gw, _ = gateway(raising(RuntimeError("secret internal detail at line 42")))
    resp = await gw.handle(request(body=messages_body()))
    data = assert_error(resp, 500, "api_error")
    text = resp.body.decode()
    assert "secret internal detail" not in text
    assert "Traceback" not in text and "RuntimeError" not in text
    assert "see the server log" in data["error"]["message"]


# --- admin endpoints ------------------------------------------------------------------------------------


async def test_config_endpoint_redacts_secrets() -> None:
    gw, _ = gateway(APIKEY="local-key-that-is-long")
    resp = await gw.handle(request("GET", "/api/config", headers={"x-api-key": "local-key-that-is-long"}))
    assert resp.status == 200
    text = resp.body.decode()
    for secret in ("sk-oai-secret-1234", "sk-ant-secret-5678", "local-key-that-is-long"):
        assert secret not in text
    data = json_of(resp)
    assert data["Router"] == {"default": "oai,gpt-test"}
    assert data["Providers"][0]["api_base_url"] == OAI_URL
    assert data["Providers"][0]["api_key"] != "sk-oai-secret-1234"


async def test_transformers_endpoint() -> None:
    gw, _ = gateway()
    listed = json_of(await gw.handle(request("GET", "/api/transformers")))["transformers"]
    by_name = {t["name"]: t for t in listed}
    assert by_name["Anthropic"]["available"] is True
    assert by_name["gemini"]["available"] is True
    assert by_name["vertex-gemini"]["available"] is True


async def test_count_tokens_counts_without_calling_the_upstream() -> None:
    gw, transport = gateway()
    small = json_of(await gw.handle(request(path="/v1/messages/count_tokens", body=messages_body())))
    big_body = messages_body(messages=[{"role": "user", "content": "hello world " * 200}])
    big = json_of(await gw.handle(request(path="/v1/messages/count_tokens", body=big_body)))
    assert 0 < small["input_tokens"] < big["input_tokens"]
    assert 300 <= big["input_tokens"] <= 500
    assert transport.requests == []


async def test_count_tokens_rejects_bad_bodies() -> None:
    gw, _ = gateway()
    resp = await gw.handle(request(path="/v1/messages/count_tokens", body={"model": "m", "messages": "x"}))
    assert (
        "messages: expected an array" in assert_error(resp, 400, "invalid_request_error")["error"]["message"]
    )


# --- messages: validation and routing -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fragment"),
    [(b"", "empty"), (b"[]", "JSON object"), ({"messages": []}, "model: field required")],
)
async def test_bad_message_bodies_are_400_before_any_upstream_call(body: Any, fragment: str) -> None:
    gw, transport = gateway()
    data = assert_error(await gw.handle(request(body=body)), 400, "invalid_request_error")
    assert fragment in data["error"]["message"]
    assert transport.requests == []


async def test_unknown_provider_is_404() -> None:
    gw, transport = gateway()
    resp = await gw.handle(request(body=messages_body("nosuch,model")))
    assert "nosuch" in assert_error(resp, 404, "not_found_error")["error"]["message"]
    assert transport.requests == []


async def test_a_provider_with_an_unavailable_transformer_answers_400(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("ccr_fast.transformers.plan.NOT_YET_AVAILABLE", frozenset({"future-endpoint"}))
    gw, transport = gateway()
    resp = await gw.handle(request(body=messages_body("gem,gemini-x")))
    assert "'future-endpoint'" in assert_error(resp, 400, "invalid_request_error")["error"]["message"]
    assert transport.requests == []


# --- messages: non-streaming ----------------------------------------------------------------------------


async def test_non_stream_openai_translation() -> None:
    upstream = MockResponse(200, JSON_HEADERS, [orjson.dumps(openai_completion("Hello!", 11, 3))])
    gw, transport = gateway(reply(upstream))
    resp = await gw.handle(request(body=messages_body(system="Be brief")))
    assert resp.status == 200
    message = json_of(resp)
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["model"] == "gpt-test"
    assert message["content"] == [{"type": "text", "text": "Hello!"}]
    assert message["stop_reason"] == "end_turn"
    assert message["usage"]["input_tokens"] == 11 and message["usage"]["output_tokens"] == 3
    assert upstream.closed

    (sent,) = transport.requests
    assert (sent.method, sent.url, sent.provider, sent.stream) == ("POST", OAI_URL, "oai", False)
    assert sent.timeout == 5.0
    assert sent.headers["authorization"] == "Bearer sk-oai-secret-1234"
    assert "accept" not in sent.headers
    payload = orjson.loads(sent.body)
    assert payload["model"] == "gpt-test"
    assert payload["max_tokens"] == 256
    assert payload["messages"] == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "Say hello"},
    ]


async def test_non_stream_anthropic_passthrough_returns_upstream_bytes_identically() -> None:
    raw = (
        b'{ "type":"message",  "id":"msg_up", "role":"assistant", "model":"claude-upstream",'
        b' "content":[{"type":"text","text":"caf\xc3\xa9"}], "stop_reason":"end_turn",'
        b' "usage":{"input_tokens":5,"output_tokens":2}, "x_extra_field": [1, 2.50] }'
    )
    upstream = MockResponse(200, JSON_HEADERS, [raw[:40], raw[40:]])
    gw, transport = gateway(reply(upstream))
    headers = {
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "interleaved-thinking-2025-05-14",
        "x-api-key": "client-key",
        "authorization": "Bearer client-token",
    }
    body = messages_body(
        "anth,claude-upstream", metadata={"user_id": "u"}, cache_control={"type": "ephemeral"}
    )
    resp = await gw.handle(request(body=body, headers=headers))
    assert resp.status == 200
    assert resp.body == raw
    assert upstream.closed

    (sent,) = transport.requests
    assert sent.url == ANTH_URL
    assert sent.headers["x-api-key"] == "sk-ant-secret-5678"
    assert "authorization" not in sent.headers
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    forwarded = orjson.loads(sent.body)
    assert forwarded["model"] == "claude-upstream"
    assert forwarded["metadata"] == {"user_id": "u"}
    assert forwarded["cache_control"] == {"type": "ephemeral"}


async def test_anthropic_version_is_defaulted_when_the_client_sends_none() -> None:
    gw, transport = gateway(reply(MockResponse(200, JSON_HEADERS, [b"{}"])))
    await gw.handle(request(body=messages_body("anth,claude-upstream")))
    assert transport.requests[0].headers["anthropic-version"] == "2023-06-01"
    assert "anthropic-beta" not in transport.requests[0].headers


async def test_anthropic_side_hooks_edit_the_forwarded_body() -> None:
    gw, transport = gateway(reply(MockResponse(200, JSON_HEADERS, [b"{}"])))
    body = messages_body(
        "anthclean,claude-upstream",
        system=[{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}],
    )
    await gw.handle(request(body=body))
    forwarded = orjson.loads(transport.requests[0].body)
    assert forwarded["system"] == [{"type": "text", "text": "s"}]


async def test_upstream_json_that_is_not_an_object_or_not_json_is_502() -> None:
    for raw in (b"<html>oops</html>", b"[1, 2]"):
        gw, _ = gateway(reply(MockResponse(200, JSON_HEADERS, [raw])))
        resp = await gw.handle(request(body=messages_body()))
        assert "'oai'" in assert_error(resp, 502, "api_error")["error"]["message"]


async def test_an_error_object_in_a_200_openai_body_becomes_an_error() -> None:
    raw = orjson.dumps({"error": {"message": "model overloaded, try later", "type": "server_error"}})
    gw, _ = gateway(reply(MockResponse(200, JSON_HEADERS, [raw])))
    data = assert_error(await gw.handle(request(body=messages_body())), 500, "api_error")
    assert data["error"]["message"] == "model overloaded, try later"


async def test_a_body_that_breaks_while_read_is_502_or_504() -> None:
    cases = [
        (UpstreamError("connection reset"), 502, "api_error"),
        (UpstreamTimeout("slow"), 504, "timeout_error"),
    ]
    for exc, status, etype in cases:
        upstream = MockResponse(200, JSON_HEADERS, [b'{"id": '], error_after=exc)
        gw, _ = gateway(reply(upstream))
        assert_error(await gw.handle(request(body=messages_body())), status, etype)
        assert upstream.closed


# --- messages: upstream failures ------------------------------------------------------------------------


async def test_upstream_429_keeps_retry_after() -> None:
    raw = orjson.dumps({"error": {"message": "slow down", "type": "rate_limit"}})
    upstream = MockResponse(429, {"retry-after": "7", "retry-after-ms": "7000", "x-other": "no"}, [raw])
    gw, _ = gateway(reply(upstream))
    resp = await gw.handle(request(body=messages_body()))
    data = assert_error(resp, 429, "rate_limit_error")
    assert data["error"]["message"] == "slow down"
    assert header_values(resp, "retry-after") == ["7"]
    assert header_values(resp, "retry-after-ms") == ["7000"]
    assert header_values(resp, "x-other") == []
    assert upstream.closed


@pytest.mark.parametrize(
    ("status", "expected_status", "expected_type"),
    [
        (503, 529, "overloaded_error"),
        (502, 529, "overloaded_error"),
        (500, 500, "api_error"),
        (401, 401, "authentication_error"),
        (422, 400, "invalid_request_error"),
        (408, 504, "timeout_error"),
    ],
)
async def test_upstream_error_statuses_are_mapped(
    status: int, expected_status: int, expected_type: str
) -> None:
    gw, _ = gateway(reply(MockResponse(status, {}, [b"upstream says no"])))
    data = assert_error(await gw.handle(request(body=messages_body())), expected_status, expected_type)
    assert data["error"]["message"] == "upstream says no"


async def test_an_anthropic_upstream_error_keeps_its_type() -> None:
    raw = orjson.dumps({"type": "error", "error": {"type": "not_found_error", "message": "model: claude-x"}})
    gw, _ = gateway(reply(MockResponse(404, JSON_HEADERS, [raw])))
    data = assert_error(
        await gw.handle(request(body=messages_body("anth,claude-upstream"))), 404, "not_found_error"
    )
    assert data["error"]["message"] == "model: claude-x"


async def test_an_error_body_that_breaks_while_read_still_maps_the_status() -> None:
    upstream = MockResponse(503, {}, [b"partial"], error_after=UpstreamError("reset"))
    gw, _ = gateway(reply(upstream))
    data = assert_error(await gw.handle(request(body=messages_body())), 529, "overloaded_error")
    assert data["error"]["message"] == "upstream returned HTTP 503"
    assert upstream.closed


@pytest.mark.parametrize(
    ("exc", "status", "etype", "fragment"),
    [
        (UpstreamTimeout("no answer within 5s"), 504, "timeout_error", "timed out"),
        (UpstreamConnectError("connection refused"), 502, "api_error", "unreachable"),
        (UpstreamError("tls handshake failed"), 502, "api_error", "request failed"),
    ],
)
async def test_transport_failures_are_mapped(exc: Exception, status: int, etype: str, fragment: str) -> None:
    gw, _ = gateway(raising(exc))
    for stream in (False, True):
        data = assert_error(await gw.handle(request(body=messages_body(stream=stream))), status, etype)
        assert fragment in data["error"]["message"] and "'oai'" in data["error"]["message"]
        assert str(exc) in data["error"]["message"]


# --- messages: streaming --------------------------------------------------------------------------------


async def test_stream_translation() -> None:
    upstream = MockResponse(200, SSE_HEADERS, openai_sse("Hel", "lo"))
    gw, transport = gateway(reply(upstream))
    req = request(body=messages_body(stream=True))
    resp = await gw.handle(req)
    assert resp.status == 200
    assert header_values(resp, "content-type") == ["text/event-stream"]
    assert header_values(resp, "request-id") == [req.request_id]
    found = events(await drain(resp))
    names = [name for name, _ in found]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    text = "".join(d["delta"]["text"] for n, d in found if n == "content_block_delta")
    assert text == "Hello"
    delta = next(d for n, d in found if n == "message_delta")
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"]["output_tokens"] == 2
    assert upstream.closed

    sent = transport.requests[0]
    assert sent.stream is True and sent.headers["accept"] == "text/event-stream"
    payload = orjson.loads(sent.body)
    assert payload["stream"] is True and payload["stream_options"] == {"include_usage": True}


async def test_a_broken_translated_stream_ends_with_an_error_event() -> None:
    for exc, etype in (
        (UpstreamError("reset by peer"), "api_error"),
        (UpstreamTimeout("silent"), "timeout_error"),
    ):
        upstream = MockResponse(200, SSE_HEADERS, openai_sse("partial")[:2], error_after=exc)
        gw, _ = gateway(reply(upstream))
        found = events(await drain(await gw.handle(request(body=messages_body(stream=True)))))
        assert found[0][0] == "message_start"
        assert found[-1][0] == "error"
        assert found[-1][1]["error"]["type"] == etype
        assert "message_stop" not in [n for n, _ in found]
        assert upstream.closed


async def test_upstream_json_for_a_stream_request_is_synthesized_into_sse() -> None:
    upstream = MockResponse(200, JSON_HEADERS, [orjson.dumps(openai_completion("Whole answer", 4, 2))])
    gw, _ = gateway(reply(upstream))
    req = request(body=messages_body(stream=True))
    resp = await gw.handle(req)
    assert header_values(resp, "content-type") == ["text/event-stream"]
    assert header_values(resp, "request-id") == [req.request_id]
    found = events(await drain(resp))
    assert [n for n, _ in found] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert found[2][1]["delta"] == {"type": "text_delta", "text": "Whole answer"}
    assert upstream.closed


async def test_anthropic_passthrough_stream_is_byte_identical_and_cut_at_event_boundaries() -> None:
    raw = anthropic_stream()
    pieces = [raw[i : i + 37] for i in range(0, len(raw), 37)]
    upstream = MockResponse(200, SSE_HEADERS, pieces)
    gw, _ = gateway(reply(upstream))
    resp = await gw.handle(request(body=messages_body("anth,claude-upstream", stream=True)))
    chunks = await drain_chunks(resp)
    assert b"".join(chunks) == raw
    assert all(chunk.endswith(b"\n\n") for chunk in chunks)
    assert len(chunks) > 1
    assert upstream.closed


async def test_passthrough_of_crlf_framed_streams_cuts_after_the_blank_line() -> None:
    raw = anthropic_stream().replace(b"\n", b"\r\n")
    pieces = [raw[i : i + 50] for i in range(0, len(raw), 50)]
    gw, _ = gateway(reply(MockResponse(200, SSE_HEADERS, pieces)))
    chunks = await drain_chunks(
        await gw.handle(request(body=messages_body("anth,claude-upstream", stream=True)))
    )
    assert b"".join(chunks) == raw
    assert all(chunk.endswith(b"\r\n\r\n") for chunk in chunks)


async def test_a_broken_passthrough_stream_drops_the_torn_event_and_appends_an_error() -> None:
    raw = anthropic_stream()
    cut = raw.index(b"event: content_block_delta") + 30
    for exc, etype in (
        (UpstreamError("reset by peer"), "api_error"),
        (UpstreamTimeout("silent"), "timeout_error"),
    ):
        upstream = MockResponse(200, SSE_HEADERS, [raw[:cut]], error_after=exc)
        gw, _ = gateway(reply(upstream))
        out = await drain(await gw.handle(request(body=messages_body("anth,claude-upstream", stream=True))))
        assert out.startswith(raw[: raw.index(b"event: content_block_delta")])
        found = events(out)
        assert [n for n, _ in found] == ["message_start", "content_block_start", "error"]
        assert found[-1][1]["error"]["type"] == etype
        assert str(exc) in found[-1][1]["error"]["message"]
        assert upstream.closed


async def test_a_passthrough_stream_ending_without_message_stop_gets_an_error_event() -> None:
    raw = anthropic_stream()
    complete = raw[: raw.index(b"event: message_delta")]
    for body in (complete, complete + b'event: message_delta\ndata: {"type":"mess'):
        gw, _ = gateway(reply(MockResponse(200, SSE_HEADERS, [body])))
        out = await drain(await gw.handle(request(body=messages_body("anth,claude-upstream", stream=True))))
        assert out.startswith(complete)
        found = events(out)
        assert found[-1][0] == "error"
        assert [n for n, _ in found[:-1]] == [n for n, _ in events(complete)]
        assert found[-1][1]["error"] == {
            "type": "api_error",
            "message": "provider 'anth' ended the stream early",
        }


async def test_a_passthrough_stream_that_carried_an_upstream_error_event_gets_no_second_error() -> None:
    raw = anthropic_stream()
    head = raw[: raw.index(b"event: content_block_stop")]
    upstream_error = anthropic_frame(
        "error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    )
    gw, _ = gateway(reply(MockResponse(200, SSE_HEADERS, [head, upstream_error])))
    out = await drain(await gw.handle(request(body=messages_body("anth,claude-upstream", stream=True))))
    assert out == head + upstream_error


async def test_a_passthrough_stream_whose_last_event_lacks_its_blank_line_is_forwarded_whole() -> None:
    raw = anthropic_stream()[:-1]
    gw, _ = gateway(reply(MockResponse(200, SSE_HEADERS, [raw])))
    out = await drain(await gw.handle(request(body=messages_body("anth,claude-upstream", stream=True))))
    assert out == raw


async def test_an_error_after_message_stop_adds_nothing() -> None:
    raw = anthropic_stream()
    upstream = MockResponse(200, SSE_HEADERS, [raw], error_after=UpstreamError("reset after the end"))
    gw, _ = gateway(reply(upstream))
    out = await drain(await gw.handle(request(body=messages_body("anth,claude-upstream", stream=True))))
    assert out == raw


# --- accounting -----------------------------------------------------------------------------------------


async def test_on_complete_records_session_usage_for_a_passthrough_stream() -> None:
    gw, _ = gateway(
        reply(MockResponse(200, SSE_HEADERS, [anthropic_stream(input_tokens=21, cache_read=100)]))
    )
    headers = {"x-claude-code-session-id": SESSION}
    resp = await gw.handle(request(body=messages_body("anth,claude-upstream", stream=True), headers=headers))
    await drain(resp)
    assert gw.sessions.get(SESSION) is None
    assert resp.on_complete is not None
    resp.on_complete(200)
    assert gw.sessions.get(SESSION) == 121


async def test_on_complete_records_session_usage_for_a_translated_reply() -> None:
    completion = openai_completion(prompt=40, completion=3)
    completion["usage"]["prompt_tokens_details"] = {"cached_tokens": 30}
    gw, _ = gateway(reply(MockResponse(200, JSON_HEADERS, [orjson.dumps(completion)])))
    body = messages_body(metadata={"user_id": f"user_abc_account__session_{SESSION}"})
    resp = await gw.handle(request(body=body))
    assert resp.on_complete is not None
    resp.on_complete(200)
    assert gw.sessions.get(SESSION) == 40


async def test_on_complete_records_session_usage_for_a_translated_stream() -> None:
    gw, _ = gateway(reply(MockResponse(200, SSE_HEADERS, openai_sse("x", prompt=55, completion=1))))
    resp = await gw.handle(
        request(body=messages_body(stream=True), headers={"x-claude-code-session-id": SESSION})
    )
    await drain(resp)
    assert resp.on_complete is not None
    resp.on_complete(200)
    assert gw.sessions.get(SESSION) == 55


async def test_without_a_session_id_nothing_is_recorded() -> None:
    gw, _ = gateway(reply(MockResponse(200, JSON_HEADERS, [orjson.dumps(openai_completion())])))
    resp = await gw.handle(request(body=messages_body()))
    assert resp.on_complete is not None
    resp.on_complete(200)
    assert len(gw.sessions) == 0


async def test_aclose_closes_the_transport() -> None:
    closed: list[bool] = []

    class ClosingTransport(MockTransport):
        async def aclose(self) -> None:
            closed.append(True)

    async def handler(request: UpstreamRequest) -> MockResponse:
        return MockResponse()

    gw = Gateway(make_config(), ClosingTransport(handler))
    await gw.aclose()
    assert closed == [True]


async def chunks_from(items: list[bytes]) -> AsyncIterator[bytes]:
    for item in items:
        yield item


async def test_async_iterator_chunks_stream_through() -> None:
    raw = anthropic_stream()
    gw, _ = gateway(reply(MockResponse(200, SSE_HEADERS, chunks_from([raw[:100], raw[100:]]))))
    out = await drain(await gw.handle(request(body=messages_body("anth,claude-upstream", stream=True))))
    assert out == raw
