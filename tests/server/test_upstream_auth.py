"""The upstream-auth seam in the request path, with a fake auth on the plan and a MockTransport upstream:
credentials are added on every attempt, and each kind of auth failure gets its status, retry and failover."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from ccr_fast.config import config_from_dict
from ccr_fast.server.gateway import Gateway, new_request_id
from ccr_fast.server.http import Request, Response
from ccr_fast.transformers import Plan
from ccr_fast.upstream.auth import AuthFailure, UpstreamAuth, UpstreamAuthError
from ccr_fast.upstream.mock_transport import MockResponse, MockTransport
from ccr_fast.upstream.transport import Transport, UpstreamRequest

ANTH_URL = "https://anth.example.test/v1/messages"
JSON_HEADERS = {"content-type": "application/json"}


class FakeAuth:
    """Hands out tokens ``tok-1``, ``tok-2``, ... or raises the scripted failures first."""

    def __init__(self, *failures: AuthFailure) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def authorize(self, request: UpstreamRequest, transport: Transport) -> None:
        self.calls += 1
        if self.failures:
            failure = self.failures.pop(0)
            raise UpstreamAuthError(failure, f"scripted {failure.value} failure")
        request.headers["authorization"] = f"Bearer tok-{self.calls}"


def message(text: str = "hi") -> bytes:
    return orjson.dumps(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-up",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 3, "output_tokens": 1},
        }
    )


def gateway(
    auth: UpstreamAuth, statuses: list[int], *, tokenizer: str = "tiktoken", **top: Any
) -> tuple[Gateway, MockTransport]:
    """Provider ``signed`` carries ``auth``; ``plain`` is a static-key fallback. The upstream answers
    ``statuses`` in order, then 200."""
    data: dict[str, Any] = {
        "Providers": [
            {
                "name": name,
                "api_base_url": ANTH_URL,
                "api_key": f"sk-{name}",
                "models": ["claude-up"],
                "transformer": {"use": ["Anthropic"]},
                "tokenizer": {"default": {"type": tokenizer}},
            }
            for name in ("signed", "plain")
        ],
        "Router": {"default": "signed,claude-up"},
        "circuitBreaker": False,
        "healthCheck": False,
        "retry": {"maxAttempts": 3, "baseDelay": "1ms", "jitter": False},
    }
    data.update(top)
    pending = list(statuses)

    async def upstream(request: UpstreamRequest) -> MockResponse:
        status = pending.pop(0) if pending else 200
        body = message() if status == 200 else b'{"type":"error","error":{"type":"api_error","message":"x"}}'
        return MockResponse(status, JSON_HEADERS, [body])

    transport = MockTransport(upstream)
    gw = Gateway(config_from_dict(data, env={}), transport)
    plans = gw.plans
    original = plans.get

    def with_auth(provider: Any, model: str, *, api_key: str | None = None) -> Plan:
        plan = original(provider, model, api_key=api_key)
        return dataclasses.replace(plan, auth=auth) if provider.name == "signed" else plan

    plans.get = with_auth  # type: ignore[method-assign]
    return gw, transport


async def post(gw: Gateway) -> tuple[Response, dict[str, Any]]:
    body = {"model": "signed,claude-up", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    req = Request("POST", "/v1/messages", "", {}, orjson.dumps(body), "127.0.0.1", new_request_id())
    resp = await gw.handle(req)
    assert resp.stream is None
    return resp, orjson.loads(resp.body)


async def test_every_attempt_is_signed_afresh() -> None:
    auth = FakeAuth()
    gw, transport = gateway(auth, [503])
    resp, data = await post(gw)
    assert resp.status == 200 and data["content"][0]["text"] == "hi"
    assert [r.headers["authorization"] for r in transport.requests] == ["Bearer tok-1", "Bearer tok-2"]
    assert all("x-api-key" in r.headers for r in transport.requests)  # the plan's own headers stay


async def test_a_plan_without_auth_is_sent_with_its_static_key() -> None:
    gw, transport = gateway(FakeAuth(), [], Router={"default": "plain,claude-up"})
    body = {"model": "plain,claude-up", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    req = Request("POST", "/v1/messages", "", {}, orjson.dumps(body), "127.0.0.1", new_request_id())
    assert (await gw.handle(req)).status == 200
    assert transport.requests[0].headers["x-api-key"] == "sk-plain"
    assert "authorization" not in transport.requests[0].headers


@pytest.mark.parametrize(
    ("failure", "status", "error_type"),
    [
        (AuthFailure.CONFIG, 500, "api_error"),
        (AuthFailure.REFUSED, 401, "authentication_error"),
        (AuthFailure.UNAVAILABLE, 502, "api_error"),
        (AuthFailure.TIMEOUT, 504, "timeout_error"),
    ],
)
async def test_auth_failures_are_anthropic_errors_naming_the_provider(
    failure: AuthFailure, status: int, error_type: str
) -> None:
    auth = FakeAuth(*[failure] * 5)
    gw, transport = gateway(auth, [])
    resp, data = await post(gw)
    assert resp.status == status
    assert data["type"] == "error" and data["error"]["type"] == error_type
    assert data["error"]["message"] == f"provider 'signed': scripted {failure.value} failure"
    assert transport.requests == []
    # credentials that do not work are not retried; a token endpoint that failed is
    assert auth.calls == (1 if failure in (AuthFailure.CONFIG, AuthFailure.REFUSED) else 3)


async def test_a_token_endpoint_outage_is_retried_like_a_network_error() -> None:
    auth = FakeAuth(AuthFailure.UNAVAILABLE)
    gw, transport = gateway(auth, [])
    resp, _ = await post(gw)
    assert resp.status == 200
    assert [r.headers["authorization"] for r in transport.requests] == ["Bearer tok-2"]


async def test_unusable_credentials_fail_over_to_the_fallback() -> None:
    auth = FakeAuth(AuthFailure.CONFIG)
    gw, transport = gateway(auth, [], fallback={"default": ["plain,claude-up"]})
    resp, _ = await post(gw)
    assert resp.status == 200
    assert auth.calls == 1
    assert [r.headers.get("x-api-key") for r in transport.requests] == ["sk-plain"]


async def test_count_tokens_counts_locally_when_there_is_no_token() -> None:
    auth = FakeAuth(AuthFailure.REFUSED)
    gw, transport = gateway(auth, [], tokenizer="api")
    body = {"model": "signed,claude-up", "messages": [{"role": "user", "content": "hello there"}]}
    raw = orjson.dumps(body)
    resp = await gw.handle(Request("POST", "/v1/messages/count_tokens", "", {}, raw, "127.0.0.1", "req_1"))
    assert resp.status == 200 and orjson.loads(resp.body)["input_tokens"] > 0
    assert auth.calls == 1 and transport.requests == []
