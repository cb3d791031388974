"""The mock provider against the official SDKs: if they accept it, a proxy tested against it meets reality."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import openai
import pytest

from ccr_fast.mock import MockProvider

ANTHROPIC_MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]
OPENAI_MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]


@pytest.fixture
async def mock() -> AsyncIterator[MockProvider]:
    async with MockProvider() as provider:
        yield provider


@pytest.fixture
async def oai(mock: MockProvider) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=f"{mock.url}/v1", api_key="sk-test", max_retries=0) as client:
        yield client


@pytest.fixture
async def claude(mock: MockProvider) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(base_url=mock.url, api_key="sk-ant-test", max_retries=0) as client:
        yield client


# --- OpenAI ------------------------------------------------------------------------------------------


async def test_openai_non_stream_echoes_model_and_counts_usage(
    oai: openai.AsyncOpenAI, mock: MockProvider
) -> None:
    completion = await oai.chat.completions.create(model="gpt-test", messages=OPENAI_MESSAGES)
    assert completion.model == "gpt-test"
    assert completion.choices[0].message.content == "Hello from the ccr-fast mock provider."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 6
    sent = mock.requests[-1]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"]["model"] == "gpt-test"


async def test_openai_stream_with_usage_only_when_asked(oai: openai.AsyncOpenAI, mock: MockProvider) -> None:
    mock.script([{"text": "one two three four", "chunks": 4}])
    stream = await oai.chat.completions.create(
        model="gpt-test", messages=OPENAI_MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    assert all(c.usage is None for c in chunks[:-1])

    plain = await oai.chat.completions.create(model="gpt-test", messages=OPENAI_MESSAGES, stream=True)
    plain_chunks = [chunk async for chunk in plain]
    assert all(c.choices for c in plain_chunks)
    assert all(c.usage is None for c in plain_chunks)


async def test_openai_stream_tool_calls_accumulate(oai: openai.AsyncOpenAI, mock: MockProvider) -> None:
    calls = [
        {"id": "call_a", "name": "get_weather", "arguments": {"city": "Paris"}},
        {"name": "get_time", "arguments": {"tz": "Europe/Paris", "format": "24h"}},
    ]
    mock.script(
        [{"text": "", "tool_calls": calls, "quirks": {"args_fragments": 5, "interleave_tool_args": True}}]
    )
    async with oai.chat.completions.stream(model="gpt-test", messages=OPENAI_MESSAGES) as stream:
        final = await stream.get_final_completion()
    message = final.choices[0].message
    assert final.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls is not None
    got = [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls]
    assert got[0] == ("call_a", "get_weather", '{"city":"Paris"}')
    assert got[1][1:] == ("get_time", '{"tz":"Europe/Paris","format":"24h"}')


async def test_openai_reasoning_content(oai: openai.AsyncOpenAI, mock: MockProvider) -> None:
    mock.script([{"thinking": "let me think", "text": "answer"}])
    completion = await oai.chat.completions.create(model="deepseek-reasoner", messages=OPENAI_MESSAGES)
    message = completion.choices[0].message
    assert message.content == "answer"
    assert message.model_extra is not None and message.model_extra["reasoning_content"] == "let me think"


async def test_openai_rate_limit_error_carries_retry_after(
    oai: openai.AsyncOpenAI, mock: MockProvider
) -> None:
    mock.script([{"error": {"status": 429, "message": "slow down", "retry_after": 1}}])
    with pytest.raises(openai.RateLimitError) as info:
        await oai.chat.completions.create(model="gpt-test", messages=OPENAI_MESSAGES)
    assert info.value.response.headers["retry-after"] == "1"
    assert info.value.body == {
        "message": "slow down",
        "type": "rate_limit_exceeded",
        "param": None,
        "code": None,
    }


async def test_openai_midstream_error_raises(oai: openai.AsyncOpenAI, mock: MockProvider) -> None:
    mock.script(
        [{"text": "partial answer here", "chunks": 3, "midstream_error": {"message": "upstream died"}}]
    )
    stream = await oai.chat.completions.create(model="gpt-test", messages=OPENAI_MESSAGES, stream=True)
    seen: list[str] = []
    with pytest.raises(openai.APIError, match="upstream died"):
        async for chunk in stream:
            seen.append(chunk.choices[0].delta.content or "")
    assert "".join(seen) == "partial answer here"


async def test_openai_auto_mode_tool_round_trip(oai: openai.AsyncOpenAI) -> None:
    ask = [{"role": "user", "content": 'run it\nMOCK_TOOL:Bash:{"command": "ls -la"}\nthanks'}]
    first = await oai.chat.completions.create(model="gpt-test", messages=ask)  # type: ignore[arg-type]
    calls = first.choices[0].message.tool_calls
    assert calls is not None and first.choices[0].finish_reason == "tool_calls"
    call = calls[0]
    assert call.function.name == "Bash"  # type: ignore[union-attr]
    assert call.function.arguments == '{"command":"ls -la"}'  # type: ignore[union-attr]

    history: list[Any] = [
        *ask,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "x" * 300},
    ]
    second = await oai.chat.completions.create(model="gpt-test", messages=history)
    assert second.choices[0].message.content == "Tool result received: " + "x" * 200


# --- Anthropic ---------------------------------------------------------------------------------------


async def test_anthropic_non_stream(claude: anthropic.AsyncAnthropic, mock: MockProvider) -> None:
    message = await claude.messages.create(model="claude-test", max_tokens=100, messages=ANTHROPIC_MESSAGES)
    assert message.model == "claude-test"
    assert message.stop_reason == "end_turn"
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello from the ccr-fast mock provider."
    assert message.usage.output_tokens == 6
    headers = mock.requests[-1]["headers"]
    assert "anthropic-version" in headers
    assert "sk-ant-test" in (
        headers.get("x-api-key"),
        headers.get("authorization", "").removeprefix("Bearer "),
    )


async def test_anthropic_stream_thinking_text_and_tools(
    claude: anthropic.AsyncAnthropic, mock: MockProvider
) -> None:
    mock.script(
        [
            {
                "thinking": "first I consider the question",
                "text": "Let me check that for you.",
                "tool_calls": [{"name": "Read", "arguments": {"file_path": "/tmp/a.txt"}}],
                "usage": {"prompt_tokens": 1000, "cached_tokens": 800},
                "chunks": 3,
                "quirks": {"args_fragments": 4},
            }
        ]
    )
    async with claude.messages.stream(
        model="claude-test", max_tokens=100, messages=ANTHROPIC_MESSAGES
    ) as stream:
        events = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert events[0] == "message_start"
    assert [block.type for block in final.content] == ["thinking", "text", "tool_use"]
    thinking, text, tool = final.content
    assert thinking.type == "thinking" and thinking.thinking == "first I consider the question"
    assert thinking.signature
    assert text.type == "text" and text.text == "Let me check that for you."
    assert tool.type == "tool_use" and tool.name == "Read" and tool.input == {"file_path": "/tmp/a.txt"}
    assert final.stop_reason == "tool_use"
    assert final.usage.input_tokens == 200
    assert final.usage.cache_read_input_tokens == 800


async def test_anthropic_query_string_and_request_log(
    claude: anthropic.AsyncAnthropic, mock: MockProvider
) -> None:
    await claude.messages.create(
        model="claude-test", max_tokens=10, messages=ANTHROPIC_MESSAGES, extra_query={"beta": "true"}
    )
    assert mock.requests[-1]["query"] == "beta=true"
    assert mock.requests[-1]["path"] == "/v1/messages"


async def test_anthropic_errors_map_to_sdk_classes(
    claude: anthropic.AsyncAnthropic, mock: MockProvider
) -> None:
    mock.script(
        [
            {"error": {"status": 429, "message": "rate limited", "retry_after": 2}},
            {"error": {"status": 529, "message": "busy"}},
        ]
    )
    with pytest.raises(anthropic.RateLimitError) as limited:
        await claude.messages.create(model="claude-test", max_tokens=10, messages=ANTHROPIC_MESSAGES)
    assert limited.value.response.headers["retry-after"] == "2"
    assert isinstance(limited.value.body, dict)
    assert limited.value.body["error"] == {"type": "rate_limit_error", "message": "rate limited"}
    with pytest.raises(anthropic.OverloadedError):
        await claude.messages.create(model="claude-test", max_tokens=10, messages=ANTHROPIC_MESSAGES)


async def test_anthropic_midstream_error_event(claude: anthropic.AsyncAnthropic, mock: MockProvider) -> None:
    mock.script(
        [{"text": "a b c", "midstream_error": {"message": "overloaded now", "type": "overloaded_error"}}]
    )
    with pytest.raises(anthropic.APIStatusError, match="overloaded now"):
        async with claude.messages.stream(
            model="claude-test", max_tokens=10, messages=ANTHROPIC_MESSAGES
        ) as stream:
            async for _ in stream:
                pass


async def test_anthropic_auto_mode_tool_round_trip(claude: anthropic.AsyncAnthropic) -> None:
    ask = [{"role": "user", "content": [{"type": "text", "text": 'MOCK_TOOL:Bash:{"command":"pwd"}'}]}]
    async with claude.messages.stream(model="claude-test", max_tokens=100, messages=ask) as stream:  # type: ignore[arg-type]
        first = await stream.get_final_message()
    assert first.stop_reason == "tool_use"
    tool = first.content[0]
    assert tool.type == "tool_use" and tool.name == "Bash" and tool.input == {"command": "pwd"}

    history: list[Any] = [
        *ask,
        {"role": "assistant", "content": [tool.model_dump()]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": tool.id,
                    "content": [{"type": "text", "text": "/home/me"}],
                }
            ],
        },
    ]
    second = await claude.messages.create(model="claude-test", max_tokens=100, messages=history)
    assert second.content[0].type == "text"
    assert second.content[0].text == "Tool result received: /home/me"


async def test_anthropic_count_tokens_does_not_consume_script(
    claude: anthropic.AsyncAnthropic, mock: MockProvider
) -> None:
    mock.script([{"text": "scripted"}])
    counted = await claude.messages.count_tokens(model="claude-test", messages=ANTHROPIC_MESSAGES)
    assert counted.input_tokens > 0
    message = await claude.messages.create(model="claude-test", max_tokens=10, messages=ANTHROPIC_MESSAGES)
    assert message.content[0].type == "text" and message.content[0].text == "scripted"


async def test_stream_honours_ttft(oai: openai.AsyncOpenAI, mock: MockProvider) -> None:
    mock.script([{"text": "late", "ttft_ms": 150}])
    started = time.monotonic()
    stream = await oai.chat.completions.create(model="gpt-test", messages=OPENAI_MESSAGES, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text == "late"
    assert time.monotonic() - started >= 0.15
