"""The anthropic SDK through ccr-fast to the mock's native Gemini API (generate and stream)."""

from __future__ import annotations

import anthropic
import pytest

from ccr_fast.mock import MockProvider

pytestmark = pytest.mark.e2e

MODEL = "gem,gemini-2.5-pro"
TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather",
        "input_schema": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "city": {"type": ["string", "null"]},
                "days": {"type": "integer", "exclusiveMinimum": 0},
            },
        },
    }
]


def test_non_stream_text(client: anthropic.Anthropic, mock: MockProvider) -> None:
    mock.script([{"text": "Gemini says hi", "usage": {"prompt_tokens": 12, "completion_tokens": 3}}])
    msg = client.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    assert msg.content[0].text == "Gemini says hi"
    assert msg.stop_reason == "end_turn"
    sent = mock.requests[-1]
    assert sent["path"] == "/v1beta/models/gemini-2.5-pro:generateContent"
    assert sent["headers"]["x-goog-api-key"] == "gm-secret-key"
    assert "authorization" not in sent["headers"]
    assert sent["body"]["contents"][0]["parts"][0]["text"] == "hi"


def test_stream_tool_call_and_round_trip(client: anthropic.Anthropic, mock: MockProvider) -> None:
    mock.script(
        [{"text": "Checking.", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}]
    )
    with client.messages.stream(
        model=MODEL, max_tokens=100, tools=TOOLS, messages=[{"role": "user", "content": "weather?"}]
    ) as stream:
        final = stream.get_final_message()
    sent = mock.requests[-1]
    assert sent["path"] == "/v1beta/models/gemini-2.5-pro:streamGenerateContent"
    assert "alt=sse" in sent["query"]
    params = sent["body"]["tools"][0]["functionDeclarations"][0]["parameters"]
    assert "$schema" not in str(params) and "additionalProperties" not in str(params)
    tool_uses = [b for b in final.content if b.type == "tool_use"]
    assert final.stop_reason == "tool_use"
    assert tool_uses[0].input == {"city": "Oslo"} and tool_uses[0].id
    mock.script([{"text": "It is cold in Oslo."}])
    second = client.messages.create(
        model=MODEL,
        max_tokens=100,
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [b.model_dump() for b in final.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": tool_uses[0].id, "content": "-3C"}],
            },
        ],
    )
    assert second.content[0].text == "It is cold in Oslo."
    parts = [p for c in mock.requests[-1]["body"]["contents"] for p in c["parts"]]
    responses = [p["functionResponse"] for p in parts if "functionResponse" in p]
    assert responses and responses[0]["name"] == "get_weather"


def test_upstream_error_mapped(client: anthropic.Anthropic, mock: MockProvider) -> None:
    mock.script([{"error": {"status": 429, "message": "quota", "retry_after": 2}}])
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}])
