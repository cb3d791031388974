"""OpenAI-format clients: the official openai SDK → ccr-fast /v1/chat/completions → any upstream."""

from __future__ import annotations

import json

import openai
import pytest

from ccr_fast.mock import MockProvider
from tests.servers import RunningServer

pytestmark = pytest.mark.e2e

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.fixture
def oai(gateway: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", max_retries=0, timeout=20)


# claude-sonnet-5 → the OpenAI-compatible upstream; a haiku name → the Anthropic upstream (background rule)
@pytest.mark.parametrize("model", ["claude-sonnet-5", "claude-haiku-4-5"])
def test_non_stream(oai: openai.OpenAI, mock: MockProvider, model: str) -> None:
    mock.script([{"text": "hello from upstream", "usage": {"prompt_tokens": 30, "completion_tokens": 4}}])
    out = oai.chat.completions.create(
        model=model,
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
    )
    assert out.choices[0].message.content == "hello from upstream"
    assert out.choices[0].finish_reason == "stop"
    assert out.usage is not None and out.usage.completion_tokens == 4
    assert out.model == model


@pytest.mark.parametrize("model", ["claude-sonnet-5", "claude-haiku-4-5"])
def test_stream_with_parallel_tools(oai: openai.OpenAI, mock: MockProvider, model: str) -> None:
    mock.script(
        [
            {
                "text": "Let me check.",
                "tool_calls": [
                    {"id": "call_1", "name": "get_weather", "arguments": {"city": "Oslo"}},
                    {"id": "call_2", "name": "get_weather", "arguments": {"city": "Lima"}},
                ],
                "quirks": {"args_fragments": 4},
            }
        ]
    )
    with oai.chat.completions.stream(
        model=model,
        messages=[{"role": "user", "content": "weather in Oslo and Lima"}],
        tools=TOOLS,  # type: ignore[arg-type]
        stream_options={"include_usage": True},
    ) as stream:
        final = stream.get_final_completion()
    msg = final.choices[0].message
    assert msg.content == "Let me check."
    assert msg.tool_calls is not None
    assert [json.loads(c.function.arguments) for c in msg.tool_calls] == [{"city": "Oslo"}, {"city": "Lima"}]
    assert final.choices[0].finish_reason == "tool_calls"
    assert final.usage is not None


def test_upstream_error_in_openai_shape(oai: openai.OpenAI, mock: MockProvider) -> None:
    mock.script([{"error": {"status": 429, "message": "slow down", "retry_after": 3}}])
    with pytest.raises(openai.RateLimitError) as info:
        oai.chat.completions.create(model="claude-sonnet-5", messages=[{"role": "user", "content": "x"}])
    assert info.value.response.headers.get("retry-after") == "3"
    assert "slow down" in str(info.value)


def test_bad_request_names_the_field(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(model="claude-sonnet-5", messages="nope")  # type: ignore[arg-type]
    assert "messages" in str(info.value)
