"""OpenAI Chat Completions response → Anthropic message, and the shared mapping tables."""

from __future__ import annotations

import re
from typing import Any

import anthropic
import pytest

from ccr_fast.protocol.errors import GatewayError
from ccr_fast.protocol.openai_response import (
    UNPARSED_ARGUMENTS_KEY,
    anthropic_usage,
    openai_error,
    openai_to_anthropic,
    stop_reason_for,
    tool_input,
)


def completion(message: dict[str, Any], finish: str | None = "stop", **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1760000000,
        "model": "deepseek-chat",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
        **extra,
    }


def translate(body: dict[str, Any]) -> dict[str, Any]:
    out = openai_to_anthropic(body, model="claude-sonnet-5", message_id="msg_test")
    anthropic.types.Message.model_validate(out)  # the SDK's own model accepts it
    return out


def test_plain_text_answer() -> None:
    usage = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    assert translate(completion({"content": "Hello!"}, usage=usage)) == {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-5",
        "content": [{"type": "text", "text": "Hello!"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 12,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 5,
        },
    }


def test_ccr_bug_4_thinking_comes_first() -> None:
    body = completion(
        {
            "content": "Let me check.",
            "reasoning_content": "The user wants the weather.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"SF"}'},
                }
            ],
        },
        "tool_calls",
    )
    assert translate(body)["content"] == [
        {"type": "thinking", "thinking": "The user wants the weather.", "signature": ""},
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "SF"}},
    ]


def test_openrouter_reasoning_field_and_details() -> None:
    plain = translate(completion({"content": "A", "reasoning": "thought"}))
    assert plain["content"][0] == {"type": "thinking", "thinking": "thought", "signature": ""}
    detailed = translate(
        completion(
            {
                "content": "B",
                "reasoning": "one two",
                "reasoning_details": [
                    {
                        "type": "reasoning.text",
                        "text": "one",
                        "signature": "s1",
                        "format": "anthropic-claude-v1",
                    },
                    {"type": "reasoning.encrypted", "data": "ENC"},
                    {"type": "reasoning.text", "text": " two", "signature": "s2"},
                ],
            }
        )
    )
    assert detailed["content"] == [
        {"type": "thinking", "thinking": "one", "signature": "s1"},
        {"type": "redacted_thinking", "data": "ENC"},
        {"type": "thinking", "thinking": " two", "signature": "s2"},
        {"type": "text", "text": "B"},
    ]
    encrypted_only = translate(
        completion(
            {
                "content": "C",
                "reasoning": "visible",
                "reasoning_details": [{"type": "reasoning.encrypted", "data": "E"}],
            }
        )
    )
    assert [b["type"] for b in encrypted_only["content"]] == ["thinking", "redacted_thinking", "text"]


def test_tool_calls_with_foreign_ids_and_odd_arguments() -> None:
    body = completion(
        {
            "content": None,
            "tool_calls": [
                {
                    "id": "functions.Bash:0",
                    "type": "function",
                    "function": {"name": "Bash", "arguments": '{"command":"ls"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "Read", "arguments": '"{\\"f\\":\\"a\\"}"'},
                },
                {
                    "id": "call_3",
                    "type": "function",
                    "function": {"name": "Edit", "arguments": '{"old": "x", '},
                },
                {"type": "function", "function": {"name": "LS", "arguments": ""}},
            ],
        },
        "tool_calls",
    )
    content = translate(body)["content"]
    assert [b["type"] for b in content] == ["tool_use"] * 4
    assert content[0]["id"] == "toolu_enc_ZnVuY3Rpb25zLkJhc2g6MA" and content[0]["input"] == {"command": "ls"}
    assert content[1]["input"] == {"f": "a"}
    assert content[2]["input"] == {UNPARSED_ARGUMENTS_KEY: '{"old": "x", '}
    assert re.fullmatch(r"toolu_01[0-9A-Za-z]{24}", content[3]["id"]) and content[3]["input"] == {}


def test_legacy_function_call_and_list_content() -> None:
    body = completion(
        {
            "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            "function_call": {"name": "f", "arguments": "{}"},
        },
        "function_call",
    )
    out = translate(body)
    assert out["content"][0] == {"type": "text", "text": "ab"}
    assert out["content"][1]["name"] == "f" and out["stop_reason"] == "tool_use"


def test_refusal() -> None:
    out = translate(completion({"content": None, "refusal": "I can't help with that."}))
    assert out["content"] == [{"type": "text", "text": "I can't help with that."}]
    assert out["stop_reason"] == "refusal"


def test_empty_answer_and_choice_selection() -> None:
    body = {
        "choices": [
            {"index": 1, "message": {"content": "second"}, "finish_reason": "stop"},
            {"index": 0, "message": {"content": ""}, "finish_reason": "length"},
        ]
    }
    out = translate(body)
    assert out["content"] == [] and out["stop_reason"] == "max_tokens"


def test_minted_message_id() -> None:
    out = openai_to_anthropic(completion({"content": "x"}), model="m")
    assert re.fullmatch(r"msg_01[0-9A-Za-z]{24}", out["id"]) and out["model"] == "m"


@pytest.mark.parametrize(
    ("finish", "tool_calls", "refusal", "expected"),
    [
        ("stop", False, False, "end_turn"),
        ("stop", True, False, "tool_use"),  # Gemini / vLLM say stop after tool calls (protocols §6.19)
        ("length", False, False, "max_tokens"),
        ("length", True, False, "max_tokens"),
        ("tool_calls", True, False, "tool_use"),
        ("tool_calls", False, False, "end_turn"),
        ("function_call", True, False, "tool_use"),
        ("content_filter", False, False, "refusal"),
        ("stop", False, True, "refusal"),
        (None, False, False, "end_turn"),
        (None, True, False, "tool_use"),
        ("something_new", False, False, "end_turn"),
    ],
)
def test_stop_reason_table(finish: str | None, tool_calls: bool, refusal: bool, expected: str) -> None:
    assert stop_reason_for(finish, tool_calls=tool_calls, refusal=refusal) == expected


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (  # protocols §6.23
            {"prompt_tokens": 1000, "completion_tokens": 50, "prompt_tokens_details": {"cached_tokens": 800}},
            (200, 0, 800, 50),
        ),
        (
            {
                "prompt_tokens": 1000,
                "completion_tokens": 50,
                "prompt_tokens_details": {"cached_tokens": 600, "cache_write_tokens": 300},
            },
            (100, 300, 600, 50),
        ),
        (
            {
                "prompt_tokens": 1000,
                "completion_tokens": 9,
                "prompt_cache_hit_tokens": 900,
                "prompt_cache_miss_tokens": 100,
            },
            (100, 0, 900, 9),
        ),
        (
            {
                "prompt_tokens": 10,
                "completion_tokens": 20,
                "completion_tokens_details": {"reasoning_tokens": 15},
            },
            (10, 0, 0, 20),
        ),
        ({"prompt_tokens": True, "completion_tokens": "7", "prompt_tokens_details": None}, (0, 0, 0, 0)),
        (
            {"prompt_tokens": 5, "completion_tokens": -3, "prompt_tokens_details": {"cached_tokens": 9}},
            (0, 0, 9, 0),
        ),
        (None, (0, 0, 0, 0)),
    ],
)
def test_usage_mapping(usage: Any, expected: tuple[int, int, int, int]) -> None:
    assert anthropic_usage(usage) == dict(
        zip(
            ["input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens"],
            expected,
            strict=True,
        )
    )


def test_usage_from_the_body_and_from_x_groq() -> None:
    cached = completion(
        {"content": "x"},
        usage={
            "prompt_tokens": 1000,
            "completion_tokens": 3,
            "prompt_tokens_details": {"cached_tokens": 800},
        },
    )
    assert translate(cached)["usage"] == {
        "input_tokens": 200,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 800,
        "output_tokens": 3,
    }
    groq = completion(
        {"content": "x"}, x_groq={"id": "req", "usage": {"prompt_tokens": 21, "completion_tokens": 4}}
    )
    assert translate(groq)["usage"]["input_tokens"] == 21 and translate(groq)["usage"]["output_tokens"] == 4


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"a":1}', {"a": 1}),
        ("", {}),
        ("   ", {}),
        (None, {}),
        ({"already": "parsed"}, {"already": "parsed"}),
        ('"{\\"a\\":1}"', {"a": 1}),
        ("[1,2]", {UNPARSED_ARGUMENTS_KEY: "[1,2]"}),
        ('"just text"', {UNPARSED_ARGUMENTS_KEY: '"just text"'}),
        ('{"a":', {UNPARSED_ARGUMENTS_KEY: '{"a":'}),
    ],
)
def test_tool_input_never_raises(arguments: Any, expected: dict[str, Any]) -> None:
    assert tool_input(arguments) == expected


@pytest.mark.parametrize(
    ("body", "status", "error_type", "message"),
    [
        ({"error": {"message": "Rate limited", "code": 429}}, 429, "rate_limit_error", "Rate limited"),
        ({"error": {"message": "boom", "type": "server_error"}}, 500, "api_error", "boom"),
        (
            {"error": {"message": "bad key", "code": "invalid_api_key"}},
            401,
            "authentication_error",
            "bad key",
        ),
        ({"choices": []}, 500, "api_error", "the upstream response has no choices"),
        (
            {
                "choices": [{"index": 0, "message": {"content": ""}, "finish_reason": "error"}],
                "error": {"code": 502, "message": "Provider returned error"},
            },
            529,
            "overloaded_error",
            "Provider returned error",
        ),
        (
            {"choices": [{"index": 0, "message": {"content": ""}, "finish_reason": "error"}]},
            500,
            "api_error",
            "the upstream reported an error",
        ),
    ],
)
def test_error_bodies_raise_gateway_errors(
    body: dict[str, Any], status: int, error_type: str, message: str
) -> None:
    with pytest.raises(GatewayError) as raised:
        openai_to_anthropic(body, model="m")
    assert (raised.value.status, raised.value.error_type, raised.value.message) == (
        status,
        error_type,
        message,
    )


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("plain text", ("api_error", "plain text")),
        (None, ("api_error", "the upstream reported an error")),
        ({"message": "m", "code": "503"}, ("overloaded_error", "m")),
        ({"message": "m", "type": "insufficient_quota"}, ("billing_error", "m")),
        ({"message": "m", "type": "overloaded_error"}, ("overloaded_error", "m")),
        (
            {"message": "m", "code": "context_length_exceeded", "type": "invalid_request_error"},
            ("invalid_request_error", "m"),
        ),
        ({"message": "m", "code": True}, ("api_error", "m")),
    ],
)
def test_openai_error_mapping(error: Any, expected: tuple[str, str]) -> None:
    assert openai_error(error) == expected
