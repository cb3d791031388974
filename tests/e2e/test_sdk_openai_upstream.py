"""The official anthropic SDK through ccr-fast (real Granian server) to the mock's OpenAI dialect."""

from __future__ import annotations

import anthropic
import pytest

from ccr_fast.mock import MockProvider

pytestmark = pytest.mark.e2e

TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
    {
        "name": "get_time",
        "description": "Time in a timezone",
        "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}},
    },
]


def test_non_stream_text(client: anthropic.Anthropic, mock: MockProvider) -> None:
    mock.script([{"text": "Bonjour, monde €😀", "usage": {"prompt_tokens": 50, "completion_tokens": 7}}])
    msg = client.messages.create(
        model="claude-sonnet-5", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    )
    assert msg.content[0].type == "text"
    assert msg.content[0].text == "Bonjour, monde €😀"
    assert msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens == 50
    assert msg.usage.output_tokens == 7
    sent = mock.requests[-1]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"]["model"] == "gpt-test"
    assert sent["headers"]["authorization"] == "Bearer sk-oai-secret-1234"


def test_stream_text_accumulates(client: anthropic.Anthropic, mock: MockProvider) -> None:
    text = "The quick brown fox jumps over the lazy dog. Ünïcödé ✓ 😀 " * 5
    mock.script([{"text": text, "chunks": 40, "usage": {"prompt_tokens": 123, "completion_tokens": 45}}])
    with client.messages.stream(
        model="claude-sonnet-5", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        final = stream.get_final_message()
    assert "".join(b.text for b in final.content if b.type == "text") == text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 45
    assert final.usage.input_tokens == 123
    body = mock.requests[-1]["body"]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


def test_stream_parallel_tool_calls(client: anthropic.Anthropic, mock: MockProvider) -> None:
    mock.script(
        [
            {
                "text": "Checking both.",
                "tool_calls": [
                    {"id": "call_a", "name": "get_weather", "arguments": {"city": 'Paris, "FR" é'}},
                    {"id": "call_b", "name": "get_time", "arguments": {"tz": "Europe/Paris"}},
                ],
                "quirks": {"args_fragments": 7, "interleave_tool_args": True},
            }
        ]
    )
    with client.messages.stream(
        model="claude-sonnet-5", max_tokens=100, tools=TOOLS, messages=[{"role": "user", "content": "go"}]
    ) as stream:
        final = stream.get_final_message()
    kinds = [b.type for b in final.content]
    assert kinds == ["text", "tool_use", "tool_use"]
    assert final.content[1].input == {"city": 'Paris, "FR" é'}
    assert final.content[1].name == "get_weather"
    assert final.content[2].input == {"tz": "Europe/Paris"}
    assert final.stop_reason == "tool_use"


def test_non_stream_tool_round_trip(client: anthropic.Anthropic, mock: MockProvider) -> None:
    mock.script(
        [
            {"tool_calls": [{"id": "call_1", "name": "get_weather", "arguments": {"city": "Oslo"}}]},
            {"text": "It is cold."},
        ]
    )
    first = client.messages.create(
        model="claude-sonnet-5",
        max_tokens=100,
        tools=TOOLS,
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        messages=[{"role": "user", "content": "weather?"}],
    )
    assert first.stop_reason == "tool_use"
    call = first.content[-1]
    assert call.type == "tool_use" and call.input == {"city": "Oslo"}
    sent = mock.requests[-1]["body"]
    assert sent["tool_choice"] == "required"
    assert sent["parallel_tool_calls"] is False
    second = client.messages.create(
        model="claude-sonnet-5",
        max_tokens=100,
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "-5C"}]},
        ],
    )
    assert second.content[0].text == "It is cold."
    msgs = mock.requests[-1]["body"]["messages"]
    tool_msgs = [m for m in msgs if m["role"] == "tool"]
    assert tool_msgs and tool_msgs[0]["tool_call_id"] == call.id


def test_thinking_stream_comes_first(client: anthropic.Anthropic, mock: MockProvider) -> None:
    mock.script(
        [
            {
                "thinking": "Let me think about it.",
                "text": "42",
                "quirks": {"reasoning_field": "reasoning_content"},
            }
        ]
    )
    with client.messages.stream(
        model="claude-sonnet-5",
        max_tokens=2000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "meaning?"}],
    ) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == "Let me think about it."
    assert final.content[1].text == "42"
    assert mock.requests[-1]["body"]["model"] == "reasoner-test"


def test_upstream_429_keeps_retry_after(client: anthropic.Anthropic, mock: MockProvider) -> None:
    mock.script([{"error": {"status": 429, "message": "slow down", "retry_after": 7}}])
    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.create(
            model="claude-sonnet-5", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.response.headers.get("retry-after") == "7"
    assert info.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert "slow down" in info.value.body["error"]["message"]  # type: ignore[index]
    assert info.value.response.headers.get("request-id", "").startswith("req_")


def test_midstream_failure_becomes_error_event(client: anthropic.Anthropic, mock: MockProvider) -> None:
    mock.script([{"text": "partial answer that will break", "chunks": 10, "fail_after_chunks": 3}])
    seen_text = []
    # the SDK raises on `event: error`
    with (
        pytest.raises(anthropic.APIStatusError) as info,
        client.messages.stream(
            model="claude-sonnet-5", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        ) as stream,
    ):
        for event in stream:
            if event.type == "text":
                seen_text.append(event.text)
    assert "stream failed" in str(info.value) or "api_error" in str(info.value)
    assert seen_text  # what arrived before the break was delivered


def test_mid_conversation_system_message_reaches_upstream(
    client: anthropic.Anthropic, mock: MockProvider
) -> None:
    mock.script([{"text": "ok"}])
    client.messages.create(
        model="claude-sonnet-5",
        max_tokens=10,
        system=[{"type": "text", "text": "sys A", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "two"},
            {"role": "system", "content": "late instruction"},  # type: ignore[list-item,misc]
            {"role": "user", "content": "three"},
        ],
    )
    msgs = mock.requests[-1]["body"]["messages"]
    assert msgs[0]["role"] == "system"
    assert any(m["role"] == "system" and "late instruction" in str(m["content"]) for m in msgs[1:])
    assert "cache_control" not in str(mock.requests[-1]["body"])


def test_deepseek_max_tokens_cap(client: anthropic.Anthropic, mock: MockProvider) -> None:
    mock.script([{"text": "ok"}])
    client.messages.create(
        model="ds,deepseek-chat", max_tokens=32000, messages=[{"role": "user", "content": "x"}]
    )
    assert mock.requests[-1]["body"]["max_tokens"] == 8192


def test_web_search_without_native_search_is_dropped_with_a_warning(
    client: anthropic.Anthropic, mock: MockProvider
) -> None:
    mock.script([{"text": "no search here"}])
    raw = client.messages.with_raw_response.create(
        model="claude-sonnet-5",
        max_tokens=20,
        tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "news?"}],
    )
    assert "web_search" in raw.headers.get("x-ccr-warning", "")
    assert raw.parse().content[0].text == "no search here"
    assert "tools" not in mock.requests[-1]["body"] or not any(
        t.get("type", "function") != "function" for t in mock.requests[-1]["body"]["tools"]
    )
