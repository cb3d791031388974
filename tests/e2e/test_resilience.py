"""Resilience through a real server (two workers, shared breaker state): failover, breakers, retries.

Two mock providers play two deployments of one route: `flaky` (scripted failures, then recovery) and the
shared healthy mock. Each test states what the client sees and how many attempts each upstream got.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ccr_fast.mock import MockProvider, run_in_thread
from tests.e2e.conftest import gateway_config
from tests.servers import run_ccr_fast

pytestmark = pytest.mark.e2e

WORKERS = 2
BODY = {"model": "claude-sonnet-5", "max_tokens": 20, "messages": [{"role": "user", "content": "x"}]}


@pytest.fixture
def flaky() -> Iterator[MockProvider]:
    provider, stop = run_in_thread()
    try:
        yield provider
    finally:
        stop()


def _config(mock: MockProvider, flaky: MockProvider, **extra: Any) -> dict[str, Any]:
    cfg = gateway_config(mock.url, resilience=True, **extra)
    cfg["Providers"].append(
        {"name": "flaky", "api_base_url": f"{flaky.url}/v1/chat/completions", "api_key": "k", "models": ["m"]}
    )
    cfg["Router"]["default"] = "flaky,m"
    return cfg


def _chat_calls(m: MockProvider) -> int:
    return m.stats.get("/v1/chat/completions", 0)


def test_failing_deployment_is_routed_around_and_its_breaker_opens_then_recovers(
    mock: MockProvider, flaky: MockProvider, tmp_path: Path
) -> None:
    cfg = _config(
        mock,
        flaky,
        deployments={
            "flaky,m": {
                "strategy": "round-robin",
                "deployments": [{"provider": "flaky"}, {"provider": "oai", "model": "gpt-test"}],
            }
        },
        retry={"maxAttempts": 1},
        circuitBreaker={"failureThreshold": 3, "timeout": "1500ms", "successThreshold": 1},
        healthCheck={"passive": {"failureThreshold": 3, "ejectionTime": "1s"}},
    )
    flaky.script([{"error": {"status": 500, "message": "down"}}] * 200)
    with run_ccr_fast(cfg, tmp_path, workers=WORKERS) as server:
        for _ in range(24):
            r = httpx.post(server.url + "/v1/messages", json=BODY, timeout=10)
            assert r.status_code == 200, r.text  # every client request succeeds
        # the breaker (shared by both workers) opened after 3 failures: the flaky deployment stopped
        # receiving traffic instead of getting half of the 24 requests
        assert _chat_calls(flaky) == 3, flaky.stats
        assert _chat_calls(mock) == 24
        # it recovers; after the breaker's timeout a probe goes through, succeeds and closes the circuit
        flaky.reset()
        time.sleep(1.7)
        for _ in range(10):
            assert httpx.post(server.url + "/v1/messages", json=BODY, timeout=10).status_code == 200
        assert _chat_calls(flaky) >= 4, flaky.stats  # traffic is back on the recovered deployment


def test_429_with_retry_after_is_waited_out_not_hammered(mock: MockProvider, tmp_path: Path) -> None:
    cfg = gateway_config(mock.url, resilience=True, retry={"maxAttempts": 3, "baseDelay": "50ms"})
    mock.script([{"error": {"status": 429, "message": "slow down", "retry_after": 1}}, {"text": "finally"}])
    with run_ccr_fast(cfg, tmp_path) as server:
        started = time.monotonic()
        r = httpx.post(server.url + "/v1/messages", json=BODY, timeout=20)
        waited = time.monotonic() - started
    assert r.status_code == 200, r.text
    assert r.json()["content"][0]["text"] == "finally"
    assert _chat_calls(mock) == 2  # one 429, one success: no burst of retries
    assert waited >= 0.9  # the retry honoured retry-after (a lower bound, never flaky)


def test_retries_exhausted_tell_the_client_not_to_retry(mock: MockProvider, tmp_path: Path) -> None:
    cfg = gateway_config(
        mock.url, resilience=True, retry={"maxAttempts": 3, "baseDelay": "20ms", "jitter": False}
    )
    mock.script([{"error": {"status": 503, "message": "unavailable"}}] * 3)
    with run_ccr_fast(cfg, tmp_path) as server:
        r = httpx.post(server.url + "/v1/messages", json=BODY, timeout=20)
    assert r.status_code == 529
    assert r.json()["error"]["type"] == "overloaded_error"
    assert r.headers["x-should-retry"] == "false"
    assert _chat_calls(mock) == 3


def test_stream_dying_after_first_bytes_is_not_retried(mock: MockProvider, tmp_path: Path) -> None:
    cfg = gateway_config(mock.url, resilience=True)
    mock.script(
        [{"text": "one two three four five six", "chunks": 6, "fail_after_chunks": 2}, {"text": "dup"}]
    )
    with run_ccr_fast(cfg, tmp_path) as server:
        client = anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0)
        texts: list[str] = []
        with pytest.raises(anthropic.APIStatusError), client.messages.stream(**BODY) as stream:  # type: ignore[arg-type]
            for event in stream:
                if event.type == "text":
                    texts.append(event.text)
    assert "".join(texts) and "dup" not in "".join(texts)
    assert _chat_calls(mock) == 1  # after the first byte nothing is retried


def test_fallback_list_serves_when_the_route_fails(
    mock: MockProvider, flaky: MockProvider, tmp_path: Path
) -> None:
    """CCR v2 `fallback`: the default route fails, the next route in the scenario's list answers."""
    cfg = _config(mock, flaky, fallback={"default": ["oai,gpt-test"]}, retry={"maxAttempts": 1})
    flaky.script([{"error": {"status": 502, "message": "bad gateway"}}])
    mock.script([{"text": "from the fallback"}])
    with run_ccr_fast(cfg, tmp_path) as server:
        r = httpx.post(server.url + "/v1/messages", json=BODY, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["content"][0]["text"] == "from the fallback"
    assert _chat_calls(flaky) == 1 and _chat_calls(mock) == 1
    assert mock.requests[-1]["body"]["model"] == "gpt-test"


def test_active_health_probes_take_a_dead_deployment_out_of_rotation(
    mock: MockProvider, tmp_path: Path
) -> None:
    cfg = gateway_config(
        mock.url,
        resilience=True,
        deployments={
            "dead,m": {
                "strategy": "round-robin",
                "deployments": [{"provider": "dead"}, {"provider": "oai", "model": "gpt-test"}],
            }
        },
        healthCheck={"passive": False, "active": {"interval": "1s", "timeout": "1s", "failureThreshold": 1}},
        circuitBreaker=False,
    )
    cfg["Router"]["default"] = "dead,m"
    with run_ccr_fast(cfg, tmp_path, workers=2) as server:
        deadline = time.monotonic() + 10
        while "health probe of dead,m failed" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "health probe of dead,m failed" in server.log()
        before = server.log().count("(failover)")
        for _ in range(6):
            assert httpx.post(server.url + "/v1/messages", json=BODY, timeout=10).status_code == 200
        # marked down by the probe: no request was sent to it first (none needed a failover)
        assert server.log().count("(failover)") == before


def test_admin_endpoints_view_force_open_and_reset(mock: MockProvider, tmp_path: Path) -> None:
    cfg = gateway_config(mock.url, resilience=True, fallback={"default": ["anth,claude-upstream"]})
    with run_ccr_fast(cfg, tmp_path, workers=2) as server:
        listed = httpx.get(server.url + "/api/circuits").json()["deployments"]
        assert listed["oai,gpt-test"]["circuit"]["state"] == "closed"
        r = httpx.post(server.url + "/api/circuits/open", json={"name": "oai,gpt-test"})
        assert r.status_code == 200 and r.json()["circuit"]["state"] == "open"
        # exported as a metric, read from shared state by whichever worker answers
        families = {
            f.name: f for f in text_string_to_metric_families(httpx.get(server.url + "/metrics").text)
        }
        states = {s.labels["deployment"]: s.value for s in families["ccr_circuit_state"].samples}
        assert states["oai,gpt-test"] == 1 and states["anth,claude-upstream"] == 0
        # forced open in one worker holds in all: the default route now goes to the fallback
        mock.script([{"text": "fallback"}] * 4)
        for _ in range(4):
            r = httpx.post(server.url + "/v1/messages", json=BODY, timeout=10)
            assert r.status_code == 200
        assert all(req["path"] == "/v1/messages" for req in mock.requests)
        httpx.post(server.url + "/api/circuits/reset", json={"name": "oai,gpt-test"})
        mock.script([{"text": "back"}])
        assert (
            httpx.post(server.url + "/v1/messages", json=BODY, timeout=10).json()["content"][0]["text"]
            == "back"
        )
        assert mock.requests[-1]["path"] == "/v1/chat/completions"
        missing = httpx.post(server.url + "/api/circuits/open", json={"name": "nope,x"})
        assert missing.status_code == 404


@pytest.mark.parametrize(
    "failure",
    [
        {"error": {"status": 500, "message": "boom"}},
        {"error": {"status": 502, "message": "bad gateway"}},
        {"error": {"status": 503, "message": "unavailable"}},
        {"error": {"status": 529, "message": "overloaded", "type": "overloaded_error"}},
        {"text": "never arrives", "latency_ms": 3000},  # time to first byte over API_TIMEOUT_MS
    ],
    ids=["500", "502", "503", "529", "ttft-timeout"],
)
def test_each_failure_before_the_first_byte_fails_over_once(
    mock: MockProvider, flaky: MockProvider, tmp_path: Path, failure: dict[str, Any]
) -> None:
    cfg = _config(
        mock,
        flaky,
        fallback={"default": ["oai,gpt-test"]},
        retry={"maxAttempts": 1},
        API_TIMEOUT_MS=800,
    )
    flaky.script([failure])
    mock.script([{"text": "served by the fallback"}])
    with run_ccr_fast(cfg, tmp_path) as server:
        r = httpx.post(server.url + "/v1/messages", json=BODY, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["content"][0]["text"] == "served by the fallback"
    assert _chat_calls(flaky) == 1  # exactly the attempts the policy allows: one, then failover
    assert _chat_calls(mock) == 1


@pytest.mark.parametrize(
    "failure",
    [
        {"text": "cut", "chunks": 5, "fail_after_chunks": 0},  # 200, then the connection closes
        {"text": "late", "chunks": 2, "ttft_ms": 3000},  # 200, then silence past API_TIMEOUT_MS
        {"text": "x", "midstream_error": {"message": "provider overloaded"}, "chunks": 1},  # in-band error
    ],
    ids=["closed-before-content", "silent-before-content", "error-event-before-content"],
)
def test_a_stream_that_breaks_before_any_content_still_fails_over(
    mock: MockProvider, flaky: MockProvider, tmp_path: Path, failure: dict[str, Any]
) -> None:
    cfg = _config(
        mock, flaky, fallback={"default": ["oai,gpt-test"]}, retry={"maxAttempts": 1}, API_TIMEOUT_MS=800
    )
    flaky.script([failure])
    mock.script([{"text": "served by the fallback", "chunks": 3}])
    with run_ccr_fast(cfg, tmp_path) as server:
        client = anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0)
        with client.messages.stream(**BODY) as stream:  # type: ignore[arg-type]
            assert stream.get_final_text() == "served by the fallback"
    assert _chat_calls(flaky) == 1 and _chat_calls(mock) == 1


def test_connection_refused_fails_over_to_fallback_model(mock: MockProvider, tmp_path: Path) -> None:
    """The routed provider refuses connections; `failover.fallbackModel` serves the request."""
    cfg = gateway_config(
        mock.url,
        resilience=True,
        retry={"maxAttempts": 2, "baseDelay": "10ms"},
        failover={"fallbackModel": "oai,gpt-test"},
    )
    cfg["Router"]["default"] = "dead,m"
    mock.script([{"text": "from the fallback model"}])
    with run_ccr_fast(cfg, tmp_path) as server:
        r = httpx.post(server.url + "/v1/messages", json=BODY, timeout=10)
        log = server.log()
    assert r.status_code == 200, r.text
    assert r.json()["content"][0]["text"] == "from the fallback model"
    assert _chat_calls(mock) == 1
    # two attempts at the refusing deployment (maxAttempts 2), then the fallback model
    assert log.count("attempt 2 (retry) -> dead,m") == 1, log[-2000:]
    assert log.count("attempt 3 (failover) -> oai,gpt-test") == 1, log[-2000:]
