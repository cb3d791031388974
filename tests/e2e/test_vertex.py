"""The anthropic SDK through a real ccr-fast to Gemini and Claude on the mock's Vertex AI, signed with OAuth
tokens the mock's token endpoint issues for service-account keys made here; and upstream token counting
for Gemini (the Gemini API and Vertex AI) and Claude on Vertex."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from ccr_fast.mock import MockProvider
from ccr_fast.mock.vertex import word_count
from tests.e2e.conftest import gateway_config
from tests.google_keys import ServiceAccount, new_service_account
from tests.servers import RunningServer, run_ccr_fast

pytestmark = pytest.mark.e2e

PROJECT = "ccr-fast-e2e"
API_COUNT = {"default": {"type": "api"}}
TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]
GEMINI_ROOT = f"/v1/projects/{PROJECT}/locations/europe-west4/publishers/google/models"
CLAUDE_ROOT = "/v1/projects/opt-project/locations/us-east5/publishers/anthropic/models"


class Keys:
    """One key per provider, so each test's token traffic is its own."""

    def __init__(self, mock: MockProvider, tmp: Path) -> None:
        self.accounts: dict[str, ServiceAccount] = {}
        self.paths: dict[str, Path] = {}
        for name in ("env", "claude", "refresh", "failing"):
            account = new_service_account(mock.url + "/token", project=PROJECT, name=f"sa-{name}")
            mock.oauth.trust(account.public_pem)
            self.accounts[name] = account
            self.paths[name] = account.write(tmp / f"{name}.json")


def vertex_providers(mock: MockProvider, keys: Keys) -> list[dict[str, Any]]:
    def vertex(name: str, models: list[str], use: list[Any]) -> dict[str, Any]:
        return {
            "name": name,
            "api_base_url": mock.url,
            "api_key": "unused-by-vertex",
            "models": models,
            "transformer": {"use": use},
            "tokenizer": API_COUNT,
        }

    return [
        # as CCR users configure it: everything from the environment
        vertex("vg", ["gemini-2.5-pro"], ["vertex-gemini"]),
        # ccr-fast's options: project, location and key file per provider
        vertex(
            "vc",
            ["claude-sonnet-4@20250514"],
            [
                [
                    "vertex-claude",
                    {
                        "project": "opt-project",
                        "location": "us-east5",
                        "credentials": str(keys.paths["claude"]),
                    },
                ]
            ],
        ),
        vertex(
            "vrefresh", ["gemini-2.5-flash"], [["vertex-gemini", {"credentials": str(keys.paths["refresh"])}]]
        ),
        vertex(
            "vfail", ["gemini-2.5-flash"], [["vertex-gemini", {"credentials": str(keys.paths["failing"])}]]
        ),
        {
            "name": "gemc",
            "api_base_url": f"{mock.url}/v1beta/models/",
            "api_key": "gm-count-key",
            "models": ["gemini-2.5-pro"],
            "transformer": {"use": ["gemini"]},
            "tokenizer": API_COUNT,
        },
    ]


@pytest.fixture(scope="module")
def keys(mock_provider: MockProvider, tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys(mock_provider, tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def vertex_gateway(
    mock_provider: MockProvider, keys: Keys, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    cfg = gateway_config(mock_provider.url)
    cfg["Providers"] = vertex_providers(mock_provider, keys)
    cfg["Router"] = {"default": "vg,gemini-2.5-pro"}
    env = {
        "GOOGLE_APPLICATION_CREDENTIALS": str(keys.paths["env"]),
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "GOOGLE_CLOUD_LOCATION": "europe-west4",
    }
    with run_ccr_fast(cfg, tmp_path_factory.mktemp("vertex-gw"), env=env) as server:
        yield server


@pytest.fixture
def client(vertex_gateway: RunningServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=vertex_gateway.url, api_key="anything", max_retries=0, timeout=20)


def bearer_of(request: dict[str, Any]) -> str:
    scheme, _, token = request["headers"].get("authorization", "").partition(" ")
    assert scheme == "Bearer" and token.startswith("ya29.mock-"), request["headers"]
    return token


def vertex_requests(mock: MockProvider) -> list[dict[str, Any]]:
    return [r for r in mock.requests if r["path"].startswith("/v1/projects/")]


# --- Gemini on Vertex --------------------------------------------------------------------------------------


def test_gemini_non_stream(client: anthropic.Anthropic, mock: MockProvider) -> None:
    mock.script([{"text": "Vertex Gemini says hi", "usage": {"prompt_tokens": 12, "completion_tokens": 4}}])
    msg = client.messages.create(
        model="vg,gemini-2.5-pro", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    )
    assert msg.content[0].type == "text" and msg.content[0].text == "Vertex Gemini says hi"
    assert msg.usage.input_tokens == 12 and msg.usage.output_tokens == 4
    sent = vertex_requests(mock)[-1]
    assert sent["path"] == f"{GEMINI_ROOT}/gemini-2.5-pro:generateContent"
    bearer_of(sent)
    assert "x-goog-api-key" not in sent["headers"]
    assert sent["body"]["contents"][0]["parts"][0]["text"] == "hi"


def test_gemini_stream_with_a_tool_round_trip(client: anthropic.Anthropic, mock: MockProvider) -> None:
    mock.script(
        [{"text": "Checking.", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}]
    )
    with client.messages.stream(
        model="vg,gemini-2.5-pro",
        max_tokens=100,
        tools=TOOLS,
        messages=[{"role": "user", "content": "weather?"}],
    ) as stream:
        final = stream.get_final_message()
    sent = vertex_requests(mock)[-1]
    assert sent["path"] == f"{GEMINI_ROOT}/gemini-2.5-pro:streamGenerateContent"
    assert "alt=sse" in sent["query"]
    bearer_of(sent)
    tool_use = next(b for b in final.content if b.type == "tool_use")
    assert final.stop_reason == "tool_use" and tool_use.input == {"city": "Oslo"}
    mock.script([{"text": "Cold in Oslo."}])
    second = client.messages.create(
        model="vg,gemini-2.5-pro",
        max_tokens=100,
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [b.model_dump() for b in final.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "-3C"}],
            },
        ],
    )
    assert second.content[0].type == "text" and second.content[0].text == "Cold in Oslo."
    parts = [p for c in vertex_requests(mock)[-1]["body"]["contents"] for p in c["parts"]]
    assert any(p.get("functionResponse", {}).get("name") == "get_weather" for p in parts)
    assert mock.stats.get("/token", 0) <= 1  # one key, one token for all of it


# --- Claude on Vertex --------------------------------------------------------------------------------------


def test_claude_non_stream_tool_use(client: anthropic.Anthropic, mock: MockProvider) -> None:
    mock.script(
        [{"text": "Let me look.", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Rome"}}]}]
    )
    msg = client.messages.create(
        model="vc,claude-sonnet-4@20250514",
        max_tokens=64,
        tools=TOOLS,
        messages=[{"role": "user", "content": "weather in Rome?"}],
    )
    tool_use = next(b for b in msg.content if b.type == "tool_use")
    assert msg.stop_reason == "tool_use" and tool_use.input == {"city": "Rome"}
    assert msg.model == "claude-sonnet-4@20250514"  # Vertex's own answer, passed through
    sent = vertex_requests(mock)[-1]
    assert sent["path"] == f"{CLAUDE_ROOT}/claude-sonnet-4@20250514:rawPredict"
    assert "model" not in sent["body"] and sent["body"]["anthropic_version"] == "vertex-2023-10-16"
    assert sent["body"]["tools"][0]["name"] == "get_weather"
    bearer_of(sent)
    assert "x-api-key" not in sent["headers"]


def test_claude_stream(client: anthropic.Anthropic, mock: MockProvider) -> None:
    mock.script(
        [{"text": "Streaming from Vertex Claude", "usage": {"prompt_tokens": 30, "completion_tokens": 5}}]
    )
    with client.messages.stream(
        model="vc,claude-sonnet-4@20250514", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Streaming from Vertex Claude"
    assert final.usage.input_tokens == 30
    sent = vertex_requests(mock)[-1]
    assert sent["path"] == f"{CLAUDE_ROOT}/claude-sonnet-4@20250514:streamRawPredict"
    assert sent["body"]["stream"] is True and "model" not in sent["body"]


# --- tokens: refresh and failures --------------------------------------------------------------------------


async def test_an_expired_token_is_refreshed_once_for_concurrent_requests(
    vertex_gateway: RunningServer, mock: MockProvider
) -> None:
    mock.oauth.lifetime = 2
    client = anthropic.AsyncAnthropic(base_url=vertex_gateway.url, api_key="x", max_retries=0, timeout=20)

    async def ask() -> str:
        msg = await client.messages.create(
            model="vrefresh,gemini-2.5-flash", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
        )
        block = msg.content[0]
        return block.text if block.type == "text" else ""

    assert await ask()
    first = {bearer_of(r) for r in vertex_requests(mock)}
    grants = mock.stats.get("/token", 0)
    await asyncio.sleep(2.2)  # the token has expired at the mock
    answers = await asyncio.gather(*(ask() for _ in range(8)))
    assert all(answers)
    assert mock.stats.get("/token", 0) == grants + 1  # one refresh for all eight
    later = [bearer_of(r) for r in vertex_requests(mock)[1:]]
    assert len(later) == 8 and len(set(later)) == 1 and set(later).isdisjoint(first)
    await client.close()


def test_token_endpoint_failures_are_clear_errors(client: anthropic.Anthropic, mock: MockProvider) -> None:
    ask: dict[str, Any] = {
        "model": "vfail,gemini-2.5-flash",
        "max_tokens": 20,
        "messages": [{"role": "user", "content": "hi"}],
    }
    mock.oauth.fail(400, "invalid_grant", "Invalid grant: account not found")
    with pytest.raises(anthropic.AuthenticationError) as refused:
        client.messages.create(**ask)
    message = refused.value.body["error"]["message"]  # type: ignore[index]
    assert "provider 'vfail'" in message and "invalid_grant" in message and "sa-failing@" in message
    mock.oauth.fail(503, "backend_error", "try again later")
    with pytest.raises(anthropic.InternalServerError) as down:
        client.messages.create(**ask)
    assert down.value.status_code == 502
    assert "HTTP 503 backend_error" in down.value.body["error"]["message"]  # type: ignore[index]
    assert vertex_requests(mock) == []  # nothing reached Vertex without a token
    mock.oauth.recover()
    assert client.messages.create(**ask).content  # the next request fetches a token again


def test_no_credentials_warn_at_start_up_and_fail_clearly(mock: MockProvider, tmp_path: Path) -> None:
    cfg = gateway_config(mock.url)
    cfg["Providers"] = [
        {
            "name": "vnone",
            "api_base_url": mock.url,
            "api_key": "unused",
            "models": ["gemini-2.5-pro"],
            "transformer": {"use": ["vertex-gemini"]},
        },
        {
            "name": "vbad",
            "api_base_url": mock.url,
            "api_key": "unused",
            "models": ["claude-x"],
            "transformer": {"use": [["vertex-claude", {"credentials": str(tmp_path / "missing.json")}]]},
        },
    ]
    cfg["Router"] = {"default": "vnone,gemini-2.5-pro"}
    # no key anywhere, no gcloud credentials in the private HOME, not on Google Cloud
    env = {"GOOGLE_APPLICATION_CREDENTIALS": "", "GOOGLE_CLOUD_PROJECT": PROJECT, "NO_GCE_CHECK": "true"}
    with run_ccr_fast(cfg, tmp_path / "gw", env=env) as server:
        client = anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0, timeout=20)
        for model, fragment in (
            ("vnone,gemini-2.5-pro", "GOOGLE_APPLICATION_CREDENTIALS"),
            ("vbad,claude-x", "missing.json"),
        ):
            with pytest.raises(anthropic.InternalServerError) as caught:
                client.messages.create(
                    model=model, max_tokens=5, messages=[{"role": "user", "content": "hi"}]
                )
            assert caught.value.status_code == 500
            error = caught.value.body["error"]  # type: ignore[index]
            assert error["type"] == "api_error" and fragment in error["message"]
            assert "Traceback" not in error["message"]
        log = server.log()
    assert "warning: provider 'vnone' (vertex-gemini): no Google credentials found" in log
    assert "warning: provider 'vbad' (vertex-claude): cannot read" in log
    assert vertex_requests(mock) == [] and "/token" not in mock.stats


# --- upstream token counting -------------------------------------------------------------------------------

COUNT_BODY: dict[str, Any] = {
    "system": "You answer in one word.",
    "messages": [{"role": "user", "content": "antidisestablishmentarianism " * 40}],
    "tools": TOOLS,
}


def test_gemini_api_count_tokens_is_the_upstreams(client: anthropic.Anthropic, mock: MockProvider) -> None:
    counted = client.messages.count_tokens(model="gemc,gemini-2.5-pro", **COUNT_BODY)
    sent = mock.requests[-1]
    assert sent["path"] == "/v1beta/models/gemini-2.5-pro:countTokens"
    assert sent["headers"]["x-goog-api-key"] == "gm-count-key"
    request = sent["body"]["generateContentRequest"]
    assert request["systemInstruction"] and request["tools"]
    assert counted.input_tokens == word_count(request)  # the mock's count, not a local one


def test_vertex_gemini_count_tokens_is_the_upstreams(client: anthropic.Anthropic, mock: MockProvider) -> None:
    counted = client.messages.count_tokens(model="vg,gemini-2.5-pro", **COUNT_BODY)
    sent = vertex_requests(mock)[-1]
    assert sent["path"] == f"{GEMINI_ROOT}/gemini-2.5-pro:countTokens"
    bearer_of(sent)
    assert set(sent["body"]) == {"contents", "systemInstruction", "tools"}
    assert counted.input_tokens == word_count(sent["body"])


def test_vertex_claude_count_tokens_is_the_upstreams(client: anthropic.Anthropic, mock: MockProvider) -> None:
    counted = client.messages.count_tokens(model="vc,claude-sonnet-4@20250514", **COUNT_BODY)
    sent = vertex_requests(mock)[-1]
    assert sent["path"] == f"{CLAUDE_ROOT}/count-tokens:rawPredict"
    assert sent["body"]["model"] == "claude-sonnet-4@20250514"
    bearer_of(sent)
    assert counted.input_tokens == word_count(sent["body"])


def test_a_complete_setup_starts_without_vertex_warnings(vertex_gateway: RunningServer) -> None:
    warnings = [line for line in vertex_gateway.log().splitlines() if "warning:" in line]
    assert not any("vertex" in line for line in warnings), warnings
