"""The official anthropic SDK through ccr-fast (real Granian server) to the mock's OpenAI Responses API.

The mock refuses what OpenAI refuses (``ccr_fast.mock.responses_api.request_problem``), so every answer here
also shows that the translated request was one OpenAI would take.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from ccr_fast.mock import MockProvider
from ccr_fast.mock.responses_api import encrypted_reasoning
from ccr_fast.protocol.openai_responses_response import SIGNATURE_PREFIX
from tests.e2e.conftest import gateway_config
from tests.servers import RunningServer, run_ccr_fast

pytestmark = pytest.mark.e2e

MODEL = "resp,gpt-5"
KEY = "sk-resp-secret-9876"
TOOLS: list[Any] = [
    {
        "name": "Read",
        "description": "Read a file",
        "input_schema": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {"file_path": {"type": "string"}},
            "required": ["file_path"],
            "additionalProperties": False,
        },
    },
    {
        "name": "Grep",
        "description": "Search",
        "input_schema": {"type": "object", "properties": {"pattern": {"type": "string"}}},
    },
]
THOUGHT = "Two files are needed; read both at once."


@pytest.fixture(scope="module")
def gateway(mock_provider: MockProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The shared e2e gateway plus providers that speak the Responses API."""
    cfg = gateway_config(mock_provider.url)
    cfg["Providers"] += [
        {
            "name": "resp",
            "api_base_url": f"{mock_provider.url}/v1/responses",
            "api_key": KEY,
            "models": ["gpt-5", "gpt-5-mini"],
            "transformer": {"use": ["openai-responses"]},
        },
        {
            "name": "resp-custom",
            "api_base_url": f"{mock_provider.url}/v1/responses",
            "api_key": KEY,
            "models": ["gpt-5-codex"],
            "transformer": {
                "use": ["openai-responses", ["maxtoken", {"max_tokens": 2048}]],
                "gpt-5-codex": {"use": [["customparams", {"prompt_cache_key": "session-1"}]]},
            },
        },
    ]
    tmp: Path = tmp_path_factory.mktemp("gw-responses")
    with run_ccr_fast(cfg, tmp, workers=1) as server:
        yield server


def sent(mock: MockProvider) -> dict[str, Any]:
    request = mock.requests[-1]
    assert request["path"] == "/v1/responses"
    body: dict[str, Any] = request["body"]
    return body


def test_non_stream_text_and_usage(client: anthropic.Anthropic, mock: MockProvider) -> None:
    mock.script(
        [
            {
                "text": "Bonjour €😀",
                "usage": {"prompt_tokens": 1200, "completion_tokens": 7, "cached_tokens": 1000},
            }
        ]
    )
    msg = client.messages.create(
        model=MODEL,
        max_tokens=100,
        system=[{"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "hi"}],
    )
    assert [b.model_dump(exclude_none=True) for b in msg.content] == [{"type": "text", "text": "Bonjour €😀"}]
    assert msg.stop_reason == "end_turn" and msg.model == "gpt-5"
    assert (msg.usage.input_tokens, msg.usage.cache_read_input_tokens, msg.usage.output_tokens) == (
        200,
        1000,
        7,
    )
    request = mock.requests[-1]
    assert request["headers"]["authorization"] == f"Bearer {KEY}"
    assert request["body"] == {
        "model": "gpt-5",
        "instructions": "Be terse.",
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
        "max_output_tokens": 100,
        "store": False,
    }


def test_stream_text_accumulates(client: anthropic.Anthropic, mock: MockProvider) -> None:
    text = "The quick brown fox jumps over the lazy dog. Ünïcödé ✓ 😀 " * 4
    mock.script([{"text": text, "chunks": 30, "usage": {"prompt_tokens": 123, "completion_tokens": 45}}])
    with client.messages.stream(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        final = stream.get_final_message()
    assert "".join(b.text for b in final.content if b.type == "text") == text
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (123, 45)
    assert sent(mock)["stream"] is True


def test_parallel_tool_calls_and_the_round_trip(client: anthropic.Anthropic, mock: MockProvider) -> None:
    calls = [
        {"name": "Read", "arguments": {"file_path": "/repo/a.py"}},
        {"name": "Grep", "arguments": {"pattern": "def load"}},
    ]
    # the two calls' events interleaved across items: deltas must still reach the right blocks
    mock.script(
        [
            {
                "text": "Looking.",
                "tool_calls": calls,
                "quirks": {"interleave_tool_args": True, "args_fragments": 4},
            }
        ]
    )
    with client.messages.stream(
        model=MODEL, max_tokens=500, tools=TOOLS, messages=[{"role": "user", "content": "find load"}]
    ) as stream:
        final = stream.get_final_message()
    uses = [b for b in final.content if b.type == "tool_use"]
    assert [(u.name, u.input) for u in uses] == [(c["name"], c["arguments"]) for c in calls]
    assert final.stop_reason == "tool_use" and len({u.id for u in uses}) == 2
    tools = sent(mock)["tools"]
    assert [t["name"] for t in tools] == ["Read", "Grep"] and all(t["strict"] is False for t in tools)

    history: list[Any] = [
        {"role": "user", "content": "find load"},
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in final.content]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": uses[0].id, "content": "def load(): ..."},
                {"type": "tool_result", "tool_use_id": uses[1].id, "content": "a.py:1"},
            ],
        },
    ]
    answer = client.messages.create(model=MODEL, max_tokens=500, tools=TOOLS, messages=history)
    assert answer.content[0].text.startswith("Tool result received: ")  # type: ignore[union-attr]
    kinds = [item["type"] for item in sent(mock)["input"]]
    assert kinds == [
        "message",
        "message",
        "function_call",
        "function_call",
        "function_call_output",
        "function_call_output",
    ]


def test_reasoning_becomes_thinking_and_goes_back_on_the_next_turn(
    client: anthropic.Anthropic, mock: MockProvider
) -> None:
    mock.script(
        [
            {
                "thinking": THOUGHT,
                "text": "",
                "tool_calls": [{"name": "Read", "arguments": {"file_path": "/a"}}],
            }
        ]
    )
    first = [{"role": "user", "content": "read a"}]
    with client.messages.stream(
        model=MODEL,
        max_tokens=8000,
        thinking={"type": "enabled", "budget_tokens": 4096},
        tools=TOOLS,
        messages=first,  # type: ignore[arg-type]
    ) as stream:
        final = stream.get_final_message()
    thinking, call = final.content
    assert thinking.type == "thinking" and thinking.thinking == THOUGHT
    assert thinking.signature == SIGNATURE_PREFIX + encrypted_reasoning(THOUGHT)
    assert call.type == "tool_use" and final.stop_reason == "tool_use"
    body = sent(mock)
    assert body["reasoning"] == {"effort": "medium", "summary": "auto"}
    assert body["include"] == ["reasoning.encrypted_content"] and body["store"] is False

    mock.script([{"thinking": "The file is short.", "text": "It holds one line."}])
    answer = client.messages.create(
        model=MODEL,
        max_tokens=8000,
        thinking={"type": "enabled", "budget_tokens": 4096},
        tools=TOOLS,
        messages=[
            *first,
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in final.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "one line"}],
            },
        ],  # type: ignore[list-item]
    )
    assert [b.type for b in answer.content] == ["thinking", "text"]
    assert answer.content[0].thinking == "The file is short."  # type: ignore[union-attr]
    replayed = sent(mock)["input"][1]
    assert replayed == {
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": THOUGHT}],
        "encrypted_content": encrypted_reasoning(THOUGHT),
    }


@pytest.mark.parametrize("streamed", [False, True])
def test_max_output_tokens_stop(client: anthropic.Anthropic, mock: MockProvider, streamed: bool) -> None:
    mock.script([{"text": "Once upon a time", "finish_reason": "length"}])
    request: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 1,
        "messages": [{"role": "user", "content": "story"}],
    }
    if streamed:
        with client.messages.stream(**request) as stream:
            final = stream.get_final_message()
    else:
        final = client.messages.create(**request)
    assert final.stop_reason == "max_tokens"
    assert final.content[0].text == "Once upon a time"  # type: ignore[union-attr]
    assert sent(mock)["max_output_tokens"] == 16  # OpenAI's minimum; Claude Code probes with max_tokens 1


def test_upstream_errors_map_like_the_chat_dialect(client: anthropic.Anthropic, mock: MockProvider) -> None:
    mock.script([{"error": {"status": 429, "message": "Rate limit reached for gpt-5", "retry_after": 3}}])
    with pytest.raises(anthropic.RateLimitError) as limited:
        client.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "x"}])
    assert limited.value.response.headers.get("retry-after") == "3"
    assert limited.value.body == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "Rate limit reached for gpt-5"},
        "request_id": limited.value.response.headers["request-id"],
    }
    mock.script([{"error": {"status": 401, "message": "Incorrect API key provided"}}])
    with pytest.raises(anthropic.AuthenticationError):
        client.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "x"}])
    mock.script([{"error": {"status": 503, "message": "overloaded"}}])
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        client.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "x"}])
    assert overloaded.value.status_code == 529


def test_midstream_failure_becomes_an_error_event(client: anthropic.Anthropic, mock: MockProvider) -> None:
    mock.script([{"text": "one two three four", "chunks": 4, "midstream_error": {"message": "backend died"}}])
    with (
        pytest.raises(anthropic.APIStatusError) as raised,
        client.messages.stream(
            model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "x"}]
        ) as stream,
    ):
        stream.get_final_message()
    assert isinstance(raised.value.body, dict)
    assert raised.value.body["error"] == {"type": "api_error", "message": "backend died"}


def test_a_broken_connection_mid_stream_becomes_an_error_event(
    client: anthropic.Anthropic, mock: MockProvider
) -> None:
    mock.script([{"text": "one two three four", "chunks": 4, "fail_after_chunks": 2}])
    with (
        pytest.raises(anthropic.APIStatusError) as raised,
        client.messages.stream(
            model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "x"}]
        ) as stream,
    ):
        stream.get_final_message()
    assert isinstance(raised.value.body, dict) and raised.value.body["error"]["type"] == "api_error"


def test_what_the_responses_api_cannot_take_is_named_in_a_warning(
    client: anthropic.Anthropic, mock: MockProvider
) -> None:
    mock.script([{"text": "One, two, three."}])
    raw = client.messages.with_raw_response.create(
        model=MODEL,
        max_tokens=50,
        stop_sequences=["END"],
        tools=[*TOOLS, {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}],
        messages=[{"role": "user", "content": "count"}],
    )
    warning = raw.headers.get("x-ccr-warning", "")
    assert "stop_sequences" in warning and "web_search_20250305" in warning
    assert raw.parse().content[0].text == "One, two, three."  # type: ignore[union-attr]
    body = sent(mock)
    assert "stop" not in body and "stop_sequences" not in body
    assert [t["name"] for t in body["tools"]] == ["Read", "Grep"]
    mock.script([{"text": "plain"}])
    clean = client.messages.with_raw_response.create(
        model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "x"}]
    )
    assert "x-ccr-warning" not in clean.headers


def test_a_claude_code_shaped_request(client: anthropic.Anthropic, mock: MockProvider) -> None:
    """System blocks with cache_control, a mid-conversation system message, adaptive thinking with an effort,
    metadata and tool schemas with $schema: all of it reaches the upstream in a shape OpenAI takes."""
    mock.script([{"text": "ok"}])
    raw = client.messages.with_raw_response.create(
        model=MODEL,
        max_tokens=32000,
        system=[
            {"type": "text", "text": "You are Claude Code."},
            {"type": "text", "text": "Main prompt.", "cache_control": {"type": "ephemeral"}},
        ],
        thinking={"type": "adaptive"},  # type: ignore[typeddict-item]
        extra_body={"output_config": {"effort": "high"}, "temperature": 1},
        metadata={"user_id": '{"device_id": "d", "session_id": "s"}'},
        tools=TOOLS,
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "<system-reminder>r</system-reminder>"}]},
            {"role": "assistant", "content": "noted"},
            {"role": "system", "content": "late instruction"},  # type: ignore[list-item,misc]
            {"role": "user", "content": "go"},
        ],
    )
    assert raw.parse().content[0].text == "ok"  # type: ignore[union-attr]
    assert "temperature" in raw.headers.get("x-ccr-warning", "")
    body = sent(mock)
    assert body["instructions"] == "You are Claude Code.\n\nMain prompt."
    assert body["reasoning"] == {"effort": "high", "summary": "auto"}
    assert body["input"][2] == {
        "type": "message",
        "role": "system",
        "content": [{"type": "input_text", "text": "late instruction"}],
    }
    assert not {"temperature", "metadata", "thinking", "output_config"} & set(body)
    assert "cache_control" not in json.dumps(body)


def test_other_transformers_in_the_chain_apply(client: anthropic.Anthropic, mock: MockProvider) -> None:
    mock.script([{"text": "ok"}])
    client.messages.create(
        model="resp-custom,gpt-5-codex", max_tokens=32000, messages=[{"role": "user", "content": "x"}]
    )
    body = sent(mock)
    assert body["max_output_tokens"] == 2048 and body["prompt_cache_key"] == "session-1"


def test_the_transformer_is_listed_as_available(gateway: RunningServer) -> None:
    with urllib.request.urlopen(gateway.url + "/api/transformers", timeout=5) as resp:
        listed = {t["name"]: t for t in json.load(resp)["transformers"]}
    assert listed["openai-responses"]["available"] is True
    assert listed["openai-responses"]["endpoint"] == "/v1/responses"
