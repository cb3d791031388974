"""Anthropic Messages request → OpenAI Responses API request.

Besides the field-by-field mapping, every translated request is checked against the mock provider's
Responses API rules (``ccr_fast.mock.responses_api.request_problem``), which is what OpenAI would reject.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from ccr_fast.mock.responses_api import encrypted_reasoning, request_problem
from ccr_fast.protocol.anthropic_ids import to_anthropic_tool_id
from ccr_fast.protocol.openai_dialect import OpenAIDialect
from ccr_fast.protocol.openai_responses_request import (
    MIN_OUTPUT_TOKENS,
    anthropic_to_responses,
    reasoning_for,
    unsupported_fields,
)
from ccr_fast.protocol.openai_responses_response import to_client_signature

JSONDict = dict[str, Any]
PLAIN = OpenAIDialect()
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
READ = {
    "name": "Read",
    "description": "Read a file",
    "input_schema": {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"file_path": {"type": "string"}},
        "required": ["file_path"],
    },
    "cache_control": {"type": "ephemeral"},
}


def translate(body: JSONDict, dialect: OpenAIDialect = PLAIN, model: str = "gpt-5") -> JSONDict:
    out = anthropic_to_responses(body, model=model, dialect=dialect)
    assert request_problem(out) is None, (request_problem(out), out)
    return out


def user(text: str) -> JSONDict:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def assistant(text: str) -> JSONDict:
    return {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}


# --- system, messages, content --------------------------------------------------------------------------


def test_system_blocks_become_instructions_and_turns_become_items() -> None:
    body = {
        "model": "claude-sonnet-5",
        "max_tokens": 1024,
        "system": [
            {"type": "text", "text": "You are Claude Code."},
            {"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}},
        ],
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "text", "text": "Hello."}]},
            {
                "role": "user",
                "content": [{"type": "text", "text": "more", "cache_control": {"type": "ephemeral"}}],
            },
        ],
    }
    out = translate(body)
    assert out == {
        "model": "gpt-5",
        "instructions": "You are Claude Code.\n\nBe terse.",
        "input": [user("hi"), assistant("Hello."), user("more")],
        "max_output_tokens": 1024,
        "store": False,
    }


def test_mid_conversation_system_messages_stay_in_place() -> None:
    body = {
        "system": "top",
        "messages": [
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "two"},
            {"role": "system", "content": "late instruction"},
            {"role": "user", "content": "three"},
        ],
    }
    late = {
        "type": "message",
        "role": "system",
        "content": [{"type": "input_text", "text": "late instruction"}],
    }
    assert translate(body)["input"] == [user("one"), assistant("two"), late, user("three")]
    developer = translate(body, OpenAIDialect(system_role="developer"))["input"][2]
    assert developer["role"] == "developer"


def test_consecutive_turns_merge_and_empty_ones_vanish() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "a"},
            {"role": "user", "content": [{"type": "text", "text": "b"}]},
            {"role": "assistant", "content": [{"type": "text", "text": ""}]},
            {"role": "user", "content": []},
        ]
    }
    parts = [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]
    assert translate(body)["input"] == [{"type": "message", "role": "user", "content": parts}]


def test_images_and_documents_become_input_parts() -> None:
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
                    {
                        "type": "document",
                        "title": "spec.pdf",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
                    },
                    {"type": "document", "source": {"type": "url", "url": "https://example.com/b.pdf"}},
                    {"type": "document", "title": "Notes", "source": {"type": "text", "data": "plain"}},
                    {"type": "image", "source": {"type": "file", "file_id": "f"}},
                ],
            }
        ]
    }
    (message,) = translate(body)["input"]
    assert message["content"] == [
        {"type": "input_text", "text": "look"},
        {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "auto"},
        {"type": "input_image", "image_url": "https://example.com/a.jpg", "detail": "auto"},
        {"type": "input_file", "filename": "spec.pdf", "file_data": "data:application/pdf;base64,JVBERi0="},
        {"type": "input_file", "file_url": "https://example.com/b.pdf"},
        {"type": "input_text", "text": "Notes\n\nplain"},
    ]


# --- tools ----------------------------------------------------------------------------------------------


def test_tools_are_flat_functions_without_anthropic_fields() -> None:
    web = {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
    bash = {"type": "bash_20250124", "name": "bash"}
    out = translate({"tools": [READ, web, bash], "messages": [{"role": "user", "content": "x"}]})
    read, shell = out["tools"]
    assert read == {
        "type": "function",
        "name": "Read",
        "description": "Read a file",
        "parameters": READ["input_schema"],
        "strict": False,
    }
    assert shell["name"] == "bash" and shell["parameters"]["properties"]["command"]["type"] == "string"
    assert "cache_control" not in orjson.dumps(out).decode()


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "Read"}, {"type": "function", "name": "Read"}),
    ],
)
def test_tool_choice(choice: JSONDict, expected: Any) -> None:
    body = {"tools": [READ], "tool_choice": choice, "messages": [{"role": "user", "content": "x"}]}
    assert translate(body)["tool_choice"] == expected


def test_unknown_forced_tool_is_not_sent_and_parallel_calls_can_be_turned_off() -> None:
    choice = {"type": "tool", "name": "Missing", "disable_parallel_tool_use": True}
    out = translate({"tools": [READ], "tool_choice": choice, "messages": [{"role": "user", "content": "x"}]})
    assert "tool_choice" not in out and out["parallel_tool_calls"] is False


def test_tool_use_and_results_become_calls_and_outputs_in_order() -> None:
    odd_id = "functions.Bash:0"  # Kimi's style: encoded for the client, decoded for the upstream
    client_id = to_anthropic_tool_id(odd_id)
    body = {
        "tools": [READ],
        "messages": [
            {"role": "user", "content": "read both"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Reading."},
                    {"type": "tool_use", "id": "toolu_01A", "name": "Read", "input": {"file_path": "/a"}},
                    {"type": "tool_use", "id": client_id, "name": "Read", "input": {"file_path": "/b"}},
                ],
            },
            {"role": "system", "content": "a reminder between the turns"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "here you go"},
                    {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "alpha"},
                    {
                        "type": "tool_result",
                        "tool_use_id": client_id,
                        "is_error": True,
                        "content": [{"type": "text", "text": "no such file"}],
                    },
                ],
            },
        ],
    }
    items = translate(body)["input"]
    assert [item["type"] for item in items] == [
        "message",
        "message",
        "function_call",
        "function_call",
        "function_call_output",
        "function_call_output",
        "message",
        "message",
    ]
    assert items[2] == {
        "type": "function_call",
        "call_id": "toolu_01A",
        "name": "Read",
        "arguments": '{"file_path":"/a"}',
    }
    assert items[3]["call_id"] == odd_id
    assert items[4] == {"type": "function_call_output", "call_id": "toolu_01A", "output": "alpha"}
    assert items[5] == {"type": "function_call_output", "call_id": odd_id, "output": "Error: no such file"}
    assert items[6]["role"] == "system" and items[7] == user("here you go")


def test_a_tool_result_with_an_image_keeps_it_as_an_input_part() -> None:
    result = {
        "type": "tool_result",
        "tool_use_id": "toolu_01S",
        "content": [
            {"type": "text", "text": "screenshot:"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        ],
    }
    body = {
        "messages": [
            {"role": "user", "content": "shoot"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_01S", "name": "Shot", "input": {}}],
            },
            {"role": "user", "content": [result]},
        ]
    }
    call, output = translate(body)["input"][1:]
    assert call["arguments"] == "{}"
    assert output["output"] == [
        {"type": "input_text", "text": "screenshot:"},
        {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "auto"},
    ]
    empty = {"type": "tool_result", "tool_use_id": "toolu_01S", "is_error": True}
    body["messages"][2]["content"] = [empty]
    assert translate(body)["input"][2]["output"] == "Error"


# --- thinking and its round trip ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("thinking", "output_config", "expected"),
    [
        ({"type": "enabled", "budget_tokens": 1024}, None, {"effort": "low", "summary": "auto"}),
        ({"type": "enabled", "budget_tokens": 4096}, None, {"effort": "medium", "summary": "auto"}),
        ({"type": "enabled", "budget_tokens": 16384}, None, {"effort": "high", "summary": "auto"}),
        ({"type": "enabled", "budget_tokens": 31999}, None, {"effort": "high", "summary": "auto"}),
        ({"type": "adaptive"}, {"effort": "low"}, {"effort": "low", "summary": "auto"}),
        ({"type": "adaptive"}, {"effort": "max"}, {"effort": "high", "summary": "auto"}),
        ({"type": "adaptive"}, None, {"effort": "medium", "summary": "auto"}),
        ({"type": "adaptive", "display": "omitted"}, {"effort": "high"}, {"effort": "high"}),
        ({"type": "disabled"}, None, None),
        (None, None, None),
    ],
)
def test_thinking_becomes_a_reasoning_effort(thinking: Any, output_config: Any, expected: Any) -> None:
    assert reasoning_for(thinking, output_config) == expected


def test_reasoning_asks_for_encrypted_content_and_leaves_sampling_out() -> None:
    body = {
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "temperature": 1,
        "top_p": 0.9,
        "top_k": 5,
        "stop_sequences": ["END"],
        "messages": [{"role": "user", "content": "x"}],
    }
    out = translate(body)
    assert out["reasoning"] == {"effort": "low", "summary": "auto"}
    assert out["include"] == ["reasoning.encrypted_content"] and out["store"] is False
    assert not {"temperature", "top_p", "top_k", "stop", "stop_sequences"} & set(out)
    assert unsupported_fields(body) == ["stop_sequences", "top_k", "temperature", "top_p"]


def test_without_reasoning_sampling_is_sent() -> None:
    body = {"temperature": 0.2, "top_p": 0.5, "messages": [{"role": "user", "content": "x"}]}
    out = translate(body)
    assert out["temperature"] == 0.2 and out["top_p"] == 0.5
    assert "reasoning" not in out and "include" not in out
    assert unsupported_fields(body) == []
    assert unsupported_fields({"stop_sequences": ["", 3]}) == []


def test_reasoning_from_openai_goes_back_as_a_reasoning_item() -> None:
    token = encrypted_reasoning("I should read the file.")
    body = {
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "messages": [
            {"role": "user", "content": "read it"},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "thinking",
                        "thinking": "I should read the file.",
                        "signature": to_client_signature(token),
                    },
                    {"type": "tool_use", "id": "call_1", "name": "Read", "input": {"file_path": "/a"}},
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "data"}],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "", "signature": to_client_signature(token)},
                    {"type": "text", "text": "Done."},
                ],
            },
            {"role": "user", "content": "thanks"},
        ],
    }
    items = translate(body)["input"]
    assert items[1] == {
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "I should read the file."}],
        "encrypted_content": token,
    }
    assert items[4] == {"type": "reasoning", "summary": [], "encrypted_content": token}
    assert [item["type"] for item in items] == [
        "message",
        "reasoning",
        "function_call",
        "function_call_output",
        "reasoning",
        "message",
        "message",
    ]


def test_thinking_signed_by_another_provider_is_left_out() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "x"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "Anthropic's", "signature": "RXJsaWVyU2lnbmF0dXJl"},
                    {"type": "thinking", "thinking": "Gemini's", "signature": "gemini:c2ln"},
                    {"type": "thinking", "thinking": "unsigned", "signature": ""},
                    {"type": "thinking", "thinking": "empty", "signature": "openai-responses:"},
                    {"type": "redacted_thinking", "data": "opaque"},
                    {"type": "text", "text": "answer"},
                ],
            },
        ]
    }
    assert translate(body)["input"] == [user("x"), assistant("answer")]


# --- limits and the rest --------------------------------------------------------------------------------


def test_max_tokens_is_capped_and_raised_to_openais_minimum() -> None:
    body = {"max_tokens": 1, "stream": True, "messages": [{"role": "user", "content": "quota"}]}
    out = translate(body)
    assert out["max_output_tokens"] == MIN_OUTPUT_TOKENS and out["stream"] is True
    body["max_tokens"] = 32000
    assert translate(body, OpenAIDialect(max_tokens_cap=8192))["max_output_tokens"] == 8192


def test_extra_body_is_merged_and_drop_keys_removed() -> None:
    dialect = OpenAIDialect(
        extra_body={"store": True, "reasoning": {"summary": "detailed"}, "prompt_cache_key": "k"},
        drop_keys=("parallel_tool_calls",),
    )
    body = {
        "thinking": {"type": "enabled", "budget_tokens": 8000},
        "tools": [READ],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "messages": [{"role": "user", "content": "x"}],
    }
    out = translate(body, dialect)
    assert out["store"] is True and out["prompt_cache_key"] == "k"
    assert out["reasoning"] == {"effort": "medium", "summary": "detailed"}
    assert "parallel_tool_calls" not in out
    out["reasoning"]["effort"] = "changed"
    assert dialect.extra_body["reasoning"] == {"summary": "detailed"}


def test_the_input_body_is_not_changed() -> None:
    body = {
        "system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}],
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "tools": [READ],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "x"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "Read", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "r"}]},
        ],
    }
    before = copy.deepcopy(body)
    translate(body)
    assert body == before


def test_malformed_parts_of_a_body_are_skipped() -> None:
    body = {
        "system": 5,
        "tools": "nope",
        "messages": [
            "junk",
            {"role": "user", "content": 7},
            {"role": "user", "content": ["junk", {"type": "text", "text": "ok"}, {"type": "unknown"}]},
        ],
    }
    assert translate(body) == {"model": "gpt-5", "input": [user("ok")], "store": False}
