"""Anthropic request → OpenAI Chat Completions request, and the tool-id mapping both directions."""

from __future__ import annotations

import copy
import re
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccr_fast.protocol.anthropic_ids import (
    from_anthropic_tool_id,
    new_message_id,
    new_tool_use_id,
    to_anthropic_tool_id,
)
from ccr_fast.protocol.openai_dialect import OpenAIDialect
from ccr_fast.protocol.openai_request import anthropic_to_openai
from ccr_fast.protocol.server_tools import client_tool_schema

OPENAI = OpenAIDialect()
DEEPSEEK = OpenAIDialect(max_tokens_cap=8192, thinking_param="deepseek", reasoning_out="reasoning_content")
OPENROUTER = OpenAIDialect(thinking_param="openrouter", reasoning_out="reasoning_details")
VALID_TOOL_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
CACHE = {"type": "ephemeral"}


def translate(body: dict[str, Any], dialect: OpenAIDialect = OPENAI, model: str = "gpt-4o") -> dict[str, Any]:
    return anthropic_to_openai(
        {"model": "claude-sonnet-5", "max_tokens": 1024, **body}, model=model, dialect=dialect
    )


def messages(body: dict[str, Any], dialect: OpenAIDialect = OPENAI) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = translate(body, dialect)["messages"]
    return out


def keys_anywhere(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys_anywhere(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys_anywhere(v)}
    return set()


def check_openai_layout(msgs: list[dict[str, Any]]) -> None:
    """What OpenAI enforces: every tool message answers a tool call of the assistant message right before
    the run of tool messages it belongs to, and every tool call is answered."""
    pending: set[str] = set()
    for message in msgs:
        if message["role"] == "tool":
            assert message["tool_call_id"] in pending
            pending.discard(message["tool_call_id"])
            assert isinstance(message["content"], str)
            continue
        assert not pending, f"unanswered tool calls before a {message['role']} message"
        if message["role"] == "assistant" and message.get("tool_calls"):
            pending = {call["id"] for call in message["tool_calls"]}
    assert not pending


# --- system prompts and roles -----------------------------------------------------------------------------


def test_system_blocks_become_one_system_message_without_cache_control() -> None:
    body = {
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc"},
            {"type": "text", "text": "You are Claude Code.", "cache_control": CACHE},
            {"type": "text", "text": "Main prompt.", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        ],
        "messages": [{"role": "user", "content": "hi"}],
    }
    out = translate(body)
    assert out["messages"] == [
        {
            "role": "system",
            "content": "x-anthropic-billing-header: cc\n\nYou are Claude Code.\n\nMain prompt.",
        },
        {"role": "user", "content": "hi"},
    ]
    assert "cache_control" not in keys_anywhere(out)


def test_system_string_and_developer_role() -> None:
    out = messages(
        {"system": "Be brief.", "messages": [{"role": "user", "content": "hi"}]},
        OpenAIDialect(system_role="developer"),
    )
    assert out[0] == {"role": "developer", "content": "Be brief."}


def test_ccr_bug_14_mid_conversation_system_message_is_kept_in_place() -> None:
    body = {
        "system": "Top.",
        "messages": [
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "two"},
            {
                "role": "system",
                "content": [{"type": "text", "text": "Mid-conversation note.", "cache_control": CACHE}],
            },
            {"role": "user", "content": "three"},
        ],
    }
    assert messages(body) == [
        {"role": "system", "content": "Top."},
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "two"},
        {"role": "system", "content": "Mid-conversation note."},
        {"role": "user", "content": "three"},
    ]


def test_consecutive_same_role_turns_are_merged() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "a"},
            {"role": "user", "content": [{"type": "text", "text": "b"}]},
            {"role": "assistant", "content": "Let me check."},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "LS", "input": {}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "x.py"}],
            },
        ]
    }
    out = messages(body)
    check_openai_layout(out)
    assert out == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "LS", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "x.py"},
    ]


# --- content blocks ---------------------------------------------------------------------------------------


def test_user_media_blocks() -> None:
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look:", "cache_control": CACHE},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"},
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
                    {
                        "type": "document",
                        "title": "spec.pdf",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"},
                        "citations": {"enabled": True},
                    },
                    {
                        "type": "document",
                        "title": "Notes",
                        "source": {"type": "text", "media_type": "text/plain", "data": "n1"},
                    },
                    {"type": "document", "source": {"type": "url", "url": "https://x.test/b.pdf"}},
                    {
                        "type": "document",
                        "source": {"type": "content", "content": [{"type": "text", "text": "inner"}]},
                    },
                    {
                        "type": "search_result",
                        "title": "T",
                        "source": "https://s.test",
                        "content": [{"type": "text", "text": "snippet"}],
                    },
                    {"type": "text", "text": ""},
                ],
            }
        ]
    }
    assert messages(body) == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look:"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
                {
                    "type": "file",
                    "file": {"filename": "spec.pdf", "file_data": "data:application/pdf;base64,JVBER"},
                },
                {"type": "text", "text": "Notes\n\nn1"},
                {"type": "text", "text": "Document: https://x.test/b.pdf"},
                {"type": "text", "text": "inner"},
                {"type": "text", "text": "T\nhttps://s.test\nsnippet"},
            ],
        }
    ]


def test_tool_use_arguments_are_compact_json() -> None:
    tool_input = {"command": "echo 'é' \"q\"", "nested": {"a": [1, 2.5, None, True]}}
    body = {
        "messages": [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "toolu_9",
                        "name": "Bash",
                        "input": tool_input,
                        "cache_control": CACHE,
                    }
                ],
            },
        ]
    }
    call = messages(body)[1]
    assert call["content"] is None
    arguments = call["tool_calls"][0]["function"]["arguments"]
    assert arguments == orjson.dumps(tool_input).decode() and ": " not in arguments
    assert orjson.loads(arguments) == tool_input


def test_tool_results_come_right_after_the_assistant_turn_before_user_text() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "run both"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Running."},
                    {"type": "tool_use", "id": "toolu_a", "name": "Bash", "input": {"command": "ls"}},
                    {"type": "tool_use", "id": "toolu_b", "name": "Screenshot", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>r</system-reminder>"},
                    {"type": "tool_result", "tool_use_id": "toolu_a", "content": "boom", "is_error": True},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_b",
                        "content": [
                            {"type": "text", "text": "captured"},
                            {
                                "type": "image",
                                "source": {"type": "base64", "media_type": "image/png", "data": "AAA"},
                            },
                        ],
                        "cache_control": CACHE,
                    },
                    {"type": "text", "text": "continue"},
                ],
            },
        ]
    }
    out = messages(body)
    check_openai_layout(out)
    assert out[2:] == [
        {"role": "tool", "tool_call_id": "toolu_a", "content": "Error: boom"},
        {"role": "tool", "tool_call_id": "toolu_b", "content": "captured"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "[images from tool result toolu_b]"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}},
                {"type": "text", "text": "<system-reminder>r</system-reminder>"},
                {"type": "text", "text": "continue"},
            ],
        },
    ]


def test_image_only_and_empty_error_tool_results() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "x"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "t1", "name": "Shot", "input": {}},
                    {"type": "tool_use", "id": "t2", "name": "Fail", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [
                            {"type": "image", "source": {"type": "url", "url": "https://i.test/1.png"}}
                        ],
                    },
                    {"type": "tool_result", "tool_use_id": "t2", "is_error": True},
                ],
            },
        ]
    }
    out = messages(body)
    check_openai_layout(out)
    assert out[2]["content"] == "(the tool returned images; they follow in the next user message)"
    assert out[3] == {"role": "tool", "tool_call_id": "t2", "content": "Error"}
    assert out[4]["content"][1] == {"type": "image_url", "image_url": {"url": "https://i.test/1.png"}}


def test_tool_results_step_over_a_system_message_between_the_turns() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "LS", "input": {}}]},
            {"role": "system", "content": "Note."},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": "ok"},
                    {"type": "text", "text": "next"},
                ],
            },
        ]
    }
    out = messages(body)
    check_openai_layout(out)
    assert [m["role"] for m in out] == ["user", "assistant", "tool", "system", "user"]


# --- thinking in history ----------------------------------------------------------------------------------

HISTORY = {
    "messages": [
        {"role": "user", "content": "q1"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Plan A.", "signature": "sigA"},
                {"type": "redacted_thinking", "data": "ENC1"},
                {"type": "text", "text": "Calling."},
                {"type": "tool_use", "id": "toolu_1", "name": "LS", "input": {"path": "."}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.py"}]},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_2", "name": "Read", "input": {"f": "a.py"}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_2", "content": "print()"}],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Done.", "signature": "sigB"},
                {"type": "text", "text": "It prints."},
            ],
        },
        {"role": "user", "content": "thanks"},
    ]
}


def test_thinking_is_dropped_for_plain_openai() -> None:
    out = messages(HISTORY)
    check_openai_layout(out)
    assert not {"reasoning_content", "reasoning_details", "thinking", "signature"} & keys_anywhere(out)


def test_ccr_bug_8_deepseek_gets_reasoning_content_on_tool_call_turns() -> None:
    assistants = [m for m in messages(HISTORY, DEEPSEEK) if m["role"] == "assistant"]
    assert [m.get("reasoning_content") for m in assistants] == ["Plan A.", "", "Done."]
    assert assistants[1]["content"] is None and assistants[1]["tool_calls"][0]["id"] == "toolu_2"


def test_ccr_bug_14_openrouter_gets_reasoning_details_unchanged_and_in_order() -> None:
    assistants = [m for m in messages(HISTORY, OPENROUTER) if m["role"] == "assistant"]
    assert assistants[0]["reasoning_details"] == [
        {"type": "reasoning.text", "text": "Plan A.", "signature": "sigA"},
        {"type": "reasoning.encrypted", "data": "ENC1"},
    ]
    assert "reasoning_details" not in assistants[1]
    assert assistants[2]["reasoning_details"] == [
        {"type": "reasoning.text", "text": "Done.", "signature": "sigB"}
    ]


def test_thinking_only_assistant_turn() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "s"}]},
        ]
    }
    assert messages(body) == [{"role": "user", "content": "a"}]
    assert messages(body, DEEPSEEK)[1] == {"role": "assistant", "content": "", "reasoning_content": "hm"}


# --- tools ------------------------------------------------------------------------------------------------

TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        "cache_control": CACHE,
        "strict": True,
    },
    {"name": "Deferred", "input_schema": {"type": "object", "properties": {}}, "defer_loading": True},
    {"type": "bash_20250124", "name": "bash"},
    {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool", "cache_control": CACHE},
    {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
    {"type": "web_fetch_20250910", "name": "web_fetch"},
]


def test_tools_become_functions_and_server_tools_are_dropped() -> None:
    out = translate({"messages": [{"role": "user", "content": "hi"}], "tools": TOOLS})
    assert out["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": TOOLS[0]["input_schema"],
                "strict": True,
            },
        },
        {
            "type": "function",
            "function": {"name": "Deferred", "parameters": {"type": "object", "properties": {}}},
        },
        {"type": "function", "function": {"name": "bash", "parameters": client_tool_schema("bash_20250124")}},
        {
            "type": "function",
            "function": {
                "name": "str_replace_based_edit_tool",
                "parameters": client_tool_schema("text_editor_20250728"),
            },
        },
    ]
    assert not {"cache_control", "defer_loading", "max_uses"} & keys_anywhere(out)
    out["tools"][2]["function"]["parameters"]["properties"]["x"] = {"type": "string"}  # edited downstream
    again = translate({"messages": [{"role": "user", "content": "hi"}], "tools": TOOLS})
    assert again["tools"][2]["function"]["parameters"] == client_tool_schema("bash_20250124")


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "any"}, {"tool_choice": "required"}),  # CCR bug 5
        ({"type": "none"}, {"tool_choice": "none"}),
        (
            {"type": "tool", "name": "get_weather"},
            {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
        ),
        ({"type": "tool", "name": "web_search"}, {}),
        (
            {"type": "auto", "disable_parallel_tool_use": True},
            {"tool_choice": "auto", "parallel_tool_calls": False},
        ),
        ({"type": "any", "disable_parallel_tool_use": False}, {"tool_choice": "required"}),
    ],
)
def test_ccr_bugs_5_and_14_tool_choice(choice: dict[str, Any], expected: dict[str, Any]) -> None:
    out = translate({"messages": [{"role": "user", "content": "hi"}], "tools": TOOLS, "tool_choice": choice})
    assert {k: out[k] for k in ("tool_choice", "parallel_tool_calls") if k in out} == expected


def test_no_tool_choice_without_tools() -> None:
    out = translate(
        {
            "messages": [{"role": "user", "content": "hi"}],
            "tools": TOOLS[4:],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        }
    )
    assert not {"tools", "tool_choice", "parallel_tool_calls"} & set(out)


# --- parameters -------------------------------------------------------------------------------------------


def test_ccr_bug_14_sampling_parameters_and_user() -> None:
    body = {
        "messages": [{"role": "user", "content": "hi"}],
        "stop_sequences": ["\n\nHuman:", "END"],
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 40,
        "metadata": {"user_id": '{"device_id":"d","session_id":"s"}'},
    }
    plain = translate(body)
    assert plain["stop"] == ["\n\nHuman:", "END"] and plain["temperature"] == 0.2 and plain["top_p"] == 0.9
    assert "top_k" not in plain and "user" not in plain
    extended = translate(body, OpenAIDialect(send_top_k=True, send_user=True))
    assert extended["top_k"] == 40 and extended["user"] == '{"device_id":"d","session_id":"s"}'


@pytest.mark.parametrize(
    ("dialect", "asked", "field", "sent"),
    [
        (OPENAI, 32000, "max_tokens", 32000),
        (OpenAIDialect(max_tokens_field="max_completion_tokens"), 32000, "max_completion_tokens", 32000),
        (DEEPSEEK, 32000, "max_tokens", 8192),
        (DEEPSEEK, 1000, "max_tokens", 1000),
    ],
)
def test_max_tokens_field_and_cap(dialect: OpenAIDialect, asked: int, field: str, sent: int) -> None:
    out = translate({"messages": [{"role": "user", "content": "hi"}], "max_tokens": asked}, dialect)
    assert out[field] == sent
    assert {"max_tokens", "max_completion_tokens"} & set(out) == {field}


def test_ccr_bug_6_streams_ask_for_usage() -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
    assert translate(body)["stream_options"] == {"include_usage": True} and translate(body)["stream"] is True
    assert "stream_options" not in translate(body, OpenAIDialect(include_usage=False))
    assert not {"stream", "stream_options"} & set(
        translate({"messages": [{"role": "user", "content": "hi"}]})
    )


@pytest.mark.parametrize(
    ("thinking", "output_config", "dialect", "expected"),
    [
        ({"type": "enabled", "budget_tokens": 2048}, None, OPENAI, {}),
        (
            {"type": "enabled", "budget_tokens": 2048},
            None,
            OpenAIDialect(thinking_param="reasoning_effort"),
            {"reasoning_effort": "low"},
        ),
        (
            {"type": "enabled", "budget_tokens": 4000},
            None,
            OpenAIDialect(thinking_param="reasoning_effort"),
            {"reasoning_effort": "low"},
        ),
        (
            {"type": "enabled", "budget_tokens": 10000},
            None,
            OpenAIDialect(thinking_param="reasoning_effort"),
            {"reasoning_effort": "medium"},
        ),
        (
            {"type": "enabled", "budget_tokens": 31999},
            None,
            OpenAIDialect(thinking_param="reasoning_effort"),
            {"reasoning_effort": "high"},
        ),
        (
            {"type": "adaptive"},
            {"effort": "high"},
            OpenAIDialect(thinking_param="reasoning_effort"),
            {"reasoning_effort": "high"},
        ),
        (
            {"type": "adaptive"},
            None,
            OpenAIDialect(thinking_param="reasoning_effort"),
            {"reasoning_effort": "medium"},
        ),
        ({"type": "enabled", "budget_tokens": 31999}, None, OPENROUTER, {"reasoning": {"max_tokens": 31999}}),
        ({"type": "adaptive", "display": "omitted"}, None, OPENROUTER, {"reasoning": {"enabled": True}}),
        ({"type": "enabled", "budget_tokens": 5000}, None, DEEPSEEK, {"thinking": {"type": "enabled"}}),
        ({"type": "disabled"}, None, DEEPSEEK, {}),
    ],
)
def test_thinking_request_per_dialect(
    thinking: dict[str, Any],
    output_config: dict[str, Any] | None,
    dialect: OpenAIDialect,
    expected: dict[str, Any],
) -> None:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}], "thinking": thinking}
    if output_config is not None:
        body["output_config"] = output_config
    out = translate(body, dialect)
    assert {k: out[k] for k in ("reasoning_effort", "reasoning", "thinking") if k in out} == expected


def test_ccr_bug_7_only_openai_fields_reach_the_upstream() -> None:
    body = {
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "hi", "cache_control": CACHE, "citations": []}],
            }
        ],
        "system": [{"type": "text", "text": "S", "cache_control": CACHE}],
        "cache_control": CACHE,
        "context_management": {"edits": []},
        "output_config": {"effort": "high"},
        "service_tier": "auto",
        "container": "c",
        "thinking": {"type": "adaptive"},
        "metadata": {"user_id": "u"},
        "top_k": 5,
        "stream": True,
    }
    out = translate(body)
    assert set(out) == {"model", "messages", "max_tokens", "stream", "stream_options"}
    assert not {"cache_control", "citations", "media_type"} & keys_anywhere(out)


def test_extra_body_is_deep_merged_last_and_drop_keys_win() -> None:
    dialect = OpenAIDialect(
        thinking_param="openrouter",
        extra_body={
            "reasoning": {"exclude": False},
            "stream_options": {"include_usage": False},
            "provider": {"order": ["a"]},
        },
        drop_keys=("parallel_tool_calls", "provider"),
    )
    body = {
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "tools": TOOLS[:1],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
    }
    snapshot = (copy.deepcopy(body), copy.deepcopy(dialect.extra_body))
    out = translate(body, dialect, model="anthropic/claude-sonnet-5")
    assert out["model"] == "anthropic/claude-sonnet-5"
    assert out["reasoning"] == {"max_tokens": 2000, "exclude": False}
    assert out["stream_options"] == {"include_usage": False}
    assert "parallel_tool_calls" not in out and "provider" not in out
    out["reasoning"]["exclude"] = True
    assert (body, dialect.extra_body) == snapshot


def test_claude_code_shaped_request_for_deepseek() -> None:
    body = {
        "model": "claude-sonnet-5",
        "max_tokens": 32000,
        "stream": True,
        "system": [
            {"type": "text", "text": "hdr"},
            {"type": "text", "text": "intro", "cache_control": CACHE},
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>x</system-reminder>"},
                    {"type": "text", "text": "fix it", "cache_control": CACHE},
                ],
            },
            {"role": "system", "content": "mid"},
            HISTORY["messages"][1],
            HISTORY["messages"][2],
        ],
        "tools": TOOLS,
        "metadata": {"user_id": '{"session_id":"abc"}'},
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "medium"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015"}]},
    }
    out = anthropic_to_openai(body, model="deepseek-chat", dialect=DEEPSEEK)
    check_openai_layout(out["messages"])
    assert [m["role"] for m in out["messages"]] == ["system", "user", "system", "assistant", "tool"]
    assert out["max_tokens"] == 8192 and out["thinking"] == {"type": "enabled"}
    assert out["messages"][3]["reasoning_content"] == "Plan A."
    assert set(out) == {"model", "messages", "tools", "max_tokens", "stream", "stream_options", "thinking"}


# --- tool ids (protocols §6.29) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "upstream_id", ["call_abc123", "functions.Bash:0", "toolu_enc_looks_like_ours", "call_" + "x" * 30, "é/ü"]
)
def test_tool_ids_round_trip(upstream_id: str) -> None:
    client_id = to_anthropic_tool_id(upstream_id)
    assert VALID_TOOL_ID.fullmatch(client_id)
    assert from_anthropic_tool_id(client_id) == upstream_id


def test_long_tool_ids_stay_consistent_between_call_and_result() -> None:
    client_id = to_anthropic_tool_id("call_" + "y" * 80)
    assert VALID_TOOL_ID.fullmatch(client_id) and client_id == to_anthropic_tool_id("call_" + "y" * 80)
    body = {
        "messages": [
            {"role": "user", "content": "x"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": client_id, "name": "LS", "input": {}}],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": client_id, "content": "ok"}]},
        ]
    }
    check_openai_layout(messages(body))


def test_foreign_ids_are_restored_for_the_upstream() -> None:
    client_id = to_anthropic_tool_id("functions.Bash:0")
    body = {
        "messages": [
            {"role": "user", "content": "x"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": client_id, "name": "Bash", "input": {}}],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": client_id, "content": "ok"}]},
        ]
    }
    out = messages(body)
    assert out[1]["tool_calls"][0]["id"] == "functions.Bash:0"
    assert out[2]["tool_call_id"] == "functions.Bash:0"


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=90))
def test_any_tool_id_maps_to_a_valid_one(upstream_id: str) -> None:
    try:
        upstream_id.encode()
    except UnicodeEncodeError:
        return
    client_id = to_anthropic_tool_id(upstream_id)
    assert VALID_TOOL_ID.fullmatch(client_id)
    assert client_id == to_anthropic_tool_id(upstream_id)
    if len(upstream_id.encode()) <= 39 or VALID_TOOL_ID.fullmatch(upstream_id):
        assert from_anthropic_tool_id(client_id) == upstream_id


def test_minted_ids() -> None:
    assert re.fullmatch(r"msg_01[0-9A-Za-z]{24}", new_message_id())
    assert re.fullmatch(r"toolu_01[0-9A-Za-z]{24}", new_tool_use_id())
    assert new_tool_use_id() != new_tool_use_id()
    assert re.fullmatch(r"toolu_01[0-9A-Za-z]{24}", to_anthropic_tool_id(None))
    assert re.fullmatch(r"toolu_01[0-9A-Za-z]{24}", to_anthropic_tool_id(""))
