"""Named API keys in the gateway: which key a request used drives per-key limits, priorities and metrics;
the metrics API's ``scope`` parameter without the Redis backend."""

from __future__ import annotations

from typing import Any

import orjson

from ccr_fast.config import config_from_dict
from ccr_fast.server.gateway import Gateway, new_request_id
from ccr_fast.server.http import Request, Response
from ccr_fast.upstream.mock_transport import MockResponse, MockTransport
from ccr_fast.upstream.transport import UpstreamRequest

KEYS = [{"name": "ci-bot", "key": "sk-ci-1111"}, {"name": "alice", "key": "sk-alice-2222"}]
COMPLETION = {
    "id": "c1",
    "object": "chat.completion",
    "model": "gpt-test",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
}
BODY = {"model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": "hello"}]}


def make_gateway(**top: Any) -> Gateway:
    async def upstream(request: UpstreamRequest) -> MockResponse:
        return MockResponse(200, {"content-type": "application/json"}, [orjson.dumps(COMPLETION)])

    data: dict[str, Any] = {
        "Providers": [
            {
                "name": "oai",
                "api_base_url": "https://oai.test/v1/chat/completions",
                "api_key": "k",
                "models": ["gpt-test"],
            }
        ],
        "Router": {"default": "oai,gpt-test"},
        "APIKEY": "sk-main-0000",
        "APIKEYS": KEYS,
        **top,
    }
    return Gateway(config_from_dict(data, env={}), MockTransport(upstream))


async def call(gw: Gateway, key: str | None, path: str = "/v1/messages", query: str = "") -> Response:
    headers = {} if key is None else {"x-api-key": key}
    method = "POST" if path.startswith("/v1/") else "GET"
    body = orjson.dumps(BODY) if method == "POST" else b""
    resp = await gw.handle(Request(method, path, query, headers, body, "127.0.0.1", new_request_id()))
    if resp.on_complete is not None:
        resp.on_complete(resp.status)
    return resp


def error_of(resp: Response) -> dict[str, Any]:
    found: dict[str, Any] = orjson.loads(resp.body)["error"]
    return found


async def test_every_configured_key_is_accepted_and_others_are_not() -> None:
    gw = make_gateway()
    for key in ("sk-main-0000", "sk-ci-1111", "sk-alice-2222"):
        assert (await call(gw, key)).status == 200
    for key in ("sk-ci-111", "nope", None):
        resp = await call(gw, key)
        assert resp.status == 401 and error_of(resp)["type"] == "authentication_error"


async def test_a_key_limit_applies_to_the_key_that_was_used() -> None:
    gw = make_gateway(
        RateLimit={"perKey": {"requestsPerMinute": 100, "keys": {"ci-bot": {"requestsPerMinute": 1}}}}
    )
    assert (await call(gw, "sk-ci-1111")).status == 200
    refused = await call(gw, "sk-ci-1111")
    assert (
        refused.status == 429 and "this API key allows 1 request per minute" in error_of(refused)["message"]
    )
    assert (await call(gw, "sk-alice-2222")).status == 200
    assert (await call(gw, "sk-main-0000")).status == 200


async def test_api_requests_are_counted_per_key_name() -> None:
    gw = make_gateway()
    for key in ("sk-ci-1111", "sk-ci-1111", "sk-main-0000"):
        await call(gw, key)
    await call(gw, "sk-alice-2222", "/api/metrics/summary")  # reading metrics is not an API request
    text = (await call(gw, "sk-main-0000", "/metrics")).body.decode()
    assert 'ccr_api_key_requests_total{key="ci-bot"} 2' in text
    assert 'ccr_api_key_requests_total{key="default"} 1' in text
    assert 'key="alice"' not in text


async def test_the_cluster_scope_needs_the_redis_backend() -> None:
    gw = make_gateway()
    for view in ("realtime", "summary", "providers"):
        resp = await call(gw, "sk-main-0000", f"/api/metrics/{view}", "scope=cluster")
        assert resp.status == 400 and 'needs State.backend "redis"' in error_of(resp)["message"]
        resp = await call(gw, "sk-main-0000", f"/api/metrics/{view}", "scope=planet")
        assert resp.status == 400 and "unknown scope" in error_of(resp)["message"]
        assert (await call(gw, "sk-main-0000", f"/api/metrics/{view}", "scope=instance")).status == 200
    assert gw.background_jobs() == []
