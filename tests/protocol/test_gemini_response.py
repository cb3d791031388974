"""Gemini ``generateContent`` body → Anthropic message, the shared tables (stop reasons, usage, errors), the
name and signature encodings, and a real non-stream round trip through the mock provider."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import anthropic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccr_fast.mock import MockProvider
from ccr_fast.protocol.errors import GatewayError
from ccr_fast.protocol.gemini_request import anthropic_to_gemini, gemini_url
from ccr_fast.protocol.gemini_response import (
    SIGNATURE_PREFIX,
    anthropic_usage,
    from_client_signature,
    from_gemini_name,
    gemini_to_anthropic,
    stop_reason_for,
    to_client_signature,
    to_gemini_name,
)

MINTED_ID = re.compile(r"toolu_01[0-9A-Za-z]{24}")
SIG = "CiQBjz1rX8Zm4Q=="


def body(parts: list[Any], finish: str | None = "STOP", **extra: Any) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "modelVersion": "gemini-2.5-flash", "responseId": "r", **extra}


def translate(response: dict[str, Any]) -> dict[str, Any]:
    message = gemini_to_anthropic(response, model="claude-x", message_id="msg_test")
    anthropic.types.Message.model_validate(message)  # the shape the official SDK parses
    return message


# --- content ----------------------------------------------------------------------------------------------


def test_text_parts_append_into_one_block_and_the_message_shape() -> None:
    message = translate(body([{"text": "Hello"}, {"text": ", world"}, {"text": ""}]))
    assert message == {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [{"type": "text", "text": "Hello, world"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 0,
        },
    }


def test_message_id_is_minted_when_not_given() -> None:
    message = gemini_to_anthropic(body([{"text": "x"}]), model="m")
    assert re.fullmatch(r"msg_01[0-9A-Za-z]{24}", message["id"])


def test_thoughts_become_a_thinking_block_signed_by_the_next_part() -> None:
    message = translate(
        body(
            [
                {"text": "Let me ", "thought": True},
                {"text": "think.", "thought": True},
                {"text": "Answer.", "thoughtSignature": SIG},
            ]
        )
    )
    assert message["content"] == [
        {"type": "thinking", "thinking": "Let me think.", "signature": SIGNATURE_PREFIX + SIG},
        {"type": "text", "text": "Answer."},
    ]


def test_a_signed_call_without_thoughts_gets_a_thinking_block_in_front() -> None:
    message = translate(
        body(
            [
                {"text": "Checking."},
                {"functionCall": {"name": "Read", "args": {"path": "a"}}, "thoughtSignature": SIG},
                {"functionCall": {"name": "Read", "args": {"path": "b"}}},
            ]
        )
    )
    content = message["content"]
    assert [b["type"] for b in content] == ["text", "thinking", "tool_use", "tool_use"]
    assert content[1] == {"type": "thinking", "thinking": "", "signature": "gemini:" + SIG}
    assert content[2]["input"] == {"path": "a"} and content[3]["input"] == {"path": "b"}
    assert MINTED_ID.fullmatch(content[2]["id"]) and content[2]["id"] != content[3]["id"]
    assert message["stop_reason"] == "tool_use"


def test_signature_only_parts_open_no_block() -> None:
    """protocols §6.27: a trailing signature-only part has no block to sign and is dropped; one in front of
    a call waits for it; one after thoughts signs them."""
    trailing = translate(body([{"text": "Done."}, {"text": "", "thoughtSignature": SIG}]))
    assert trailing["content"] == [{"type": "text", "text": "Done."}]
    before_call = translate(
        body([{"text": "", "thoughtSignature": SIG}, {"functionCall": {"name": "Bash", "args": {}}}])
    )
    assert [b["type"] for b in before_call["content"]] == ["thinking", "tool_use"]
    assert before_call["content"][0]["signature"] == "gemini:" + SIG
    after_thoughts = translate(body([{"text": "hm", "thought": True}, {"text": "", "thoughtSignature": SIG}]))
    assert after_thoughts["content"] == [{"type": "thinking", "thinking": "hm", "signature": "gemini:" + SIG}]


def test_call_ids_names_and_arguments() -> None:
    message = translate(
        body(
            [
                {"functionCall": {"id": "abc-1", "name": "_1password", "args": {"vault": "x"}}},
                {"functionCall": {"id": "functions.Bash:0", "name": "Bash"}},
                {"functionCall": {"name": "__2fa", "args": "not an object"}},
            ]
        )
    )
    calls = message["content"]
    assert [(c["id"], c["name"], c["input"]) for c in calls[:1]] == [("abc-1", "1password", {"vault": "x"})]
    assert calls[1]["id"].startswith("toolu_enc_") and calls[1]["input"] == {}
    assert calls[2]["name"] == "_2fa" and calls[2]["input"] == {}


def test_other_candidates_and_unknown_parts_are_ignored() -> None:
    response = body([{"text": "mine"}, {"executableCode": {"code": "1"}}, "junk"])
    response["candidates"].insert(0, {"index": 1, "content": {"parts": [{"text": "alternative"}]}})
    assert translate(response)["content"] == [{"type": "text", "text": "mine"}]


# --- stop reasons, usage, feedback and errors -------------------------------------------------------------


@pytest.mark.parametrize(
    ("finish", "calls", "expected"),
    [
        ("STOP", False, "end_turn"),
        ("STOP", True, "tool_use"),
        (None, False, "end_turn"),
        (None, True, "tool_use"),
        ("MAX_TOKENS", True, "max_tokens"),
        ("SAFETY", False, "refusal"),
        ("RECITATION", True, "refusal"),
        ("BLOCKLIST", False, "refusal"),
        ("PROHIBITED_CONTENT", False, "refusal"),
        ("SPII", False, "refusal"),
        ("IMAGE_SAFETY", False, "refusal"),
        ("MALFORMED_FUNCTION_CALL", False, "end_turn"),
        ("OTHER", False, "end_turn"),
        ("LANGUAGE", False, "end_turn"),
        ("UNEXPECTED_TOOL_CALL", False, "end_turn"),
        ("FINISH_REASON_UNSPECIFIED", True, "tool_use"),
    ],
)
def test_finish_reason_table(finish: str | None, calls: bool, expected: str) -> None:
    assert stop_reason_for(finish, tool_calls=calls) == expected
    parts: list[Any] = [{"functionCall": {"name": "f", "args": {}}}] if calls else [{"text": "x"}]
    assert translate(body(parts, finish))["stop_reason"] == expected


def test_usage_mapping() -> None:
    """Cached tokens leave the input, thoughts join the output, tool-use prompt tokens are input."""
    metadata = {
        "promptTokenCount": 1000,
        "cachedContentTokenCount": 800,
        "candidatesTokenCount": 50,
        "thoughtsTokenCount": 120,
        "toolUsePromptTokenCount": 30,
        "totalTokenCount": 1200,
    }
    assert translate(body([{"text": "x"}], usageMetadata=metadata))["usage"] == {
        "input_tokens": 230,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 800,
        "output_tokens": 170,
    }
    assert anthropic_usage({"candidatesTokenCount": 4}, input_estimate=77)["input_tokens"] == 77
    assert anthropic_usage({"promptTokenCount": True, "candidatesTokenCount": -3}) == anthropic_usage(None)


def test_blocked_prompt_is_an_empty_refusal() -> None:
    blocked = {
        "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
        "usageMetadata": {"promptTokenCount": 12, "totalTokenCount": 12},
    }
    message = translate(blocked)
    assert message["content"] == [] and message["stop_reason"] == "refusal"
    assert message["usage"]["input_tokens"] == 12


def test_no_candidates_and_no_feedback_is_an_error() -> None:
    with pytest.raises(GatewayError) as raised:
        gemini_to_anthropic({"usageMetadata": {}}, model="m")
    assert raised.value.status == 500 and raised.value.error_type == "api_error"


@pytest.mark.parametrize(
    ("error", "status", "error_type"),
    [
        (
            {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"},
            429,
            "rate_limit_error",
        ),
        ({"code": 400, "message": "Bad schema", "status": "INVALID_ARGUMENT"}, 400, "invalid_request_error"),
        ({"code": 403, "message": "No", "status": "PERMISSION_DENIED"}, 403, "permission_error"),
        ({"code": 503, "message": "Overloaded", "status": "UNAVAILABLE"}, 529, "overloaded_error"),
        ({"code": 504, "message": "Slow", "status": "DEADLINE_EXCEEDED"}, 504, "timeout_error"),
        ({"message": "no code"}, 500, "api_error"),
        ("plain string", 500, "api_error"),
    ],
)
def test_error_bodies_raise_the_mapped_error(error: Any, status: int, error_type: str) -> None:
    with pytest.raises(GatewayError) as raised:
        gemini_to_anthropic({"error": error}, model="m")
    assert (raised.value.status, raised.value.error_type) == (status, error_type)
    assert raised.value.message == (error["message"] if isinstance(error, dict) else error)


# --- encodings that cross the client ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "gemini"),
    [
        ("Bash", "Bash"),
        ("mcp__ide__getDiagnostics", "mcp__ide__getDiagnostics"),
        ("_private", "_private"),
        ("1password", "_1password"),
        ("-dash", "_-dash"),
        ("_1x", "__1x"),
        ("___", "___"),
    ],
)
def test_function_names(name: str, gemini: str) -> None:
    assert to_gemini_name(name) == gemini
    assert from_gemini_name(gemini) == name


@given(st.from_regex(r"[A-Za-z0-9_-]{1,63}", fullmatch=True))
def test_every_anthropic_tool_name_round_trips_as_a_valid_gemini_name(name: str) -> None:
    gemini = to_gemini_name(name)
    assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.:-]*", gemini) or set(gemini) == {"_"}
    assert from_gemini_name(gemini) == name


def test_signatures_are_marked_so_foreign_ones_are_recognised() -> None:
    assert from_client_signature(to_client_signature(SIG)) == SIG
    assert from_client_signature("EqQBCkgIARABGAIiQO...") is None  # an Anthropic signature
    assert from_client_signature("") is None
    assert from_client_signature(SIGNATURE_PREFIX) is None
    assert from_client_signature(None) is None


# --- a real round trip through the mock provider -----------------------------------------------------------


async def test_non_stream_round_trip_with_the_mock_provider(mock: MockProvider) -> None:
    mock.script(
        [
            {
                "thinking": "Two steps.",
                "text": "Calling the tool.",
                "tool_calls": [{"name": "Glob", "arguments": {"pattern": "*.py"}}],
                "usage": {"prompt_tokens": 40, "completion_tokens": 12},
            }
        ]
    )
    request = {
        "model": "claude-haiku-5-5",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "find python files"}]}],
        "tools": [{"name": "Glob", "input_schema": {"type": "object", "properties": {"pattern": {}}}}],
        "tool_choice": {"type": "any"},
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            gemini_url(mock.url + "/v1beta/models/", "gemini-2.5-pro", stream=False),
            json=anthropic_to_gemini(request, model="gemini-2.5-pro"),
        ) as resp,
    ):
        assert resp.status == 200
        upstream = await resp.json()
    message = translate(upstream)
    assert [b["type"] for b in message["content"]] == ["thinking", "text", "tool_use"]
    assert message["content"][0]["thinking"] == "Two steps."
    assert message["content"][2]["name"] == "Glob" and message["content"][2]["input"] == {"pattern": "*.py"}
    assert message["stop_reason"] == "tool_use"
    assert message["usage"]["input_tokens"] == 40 and message["usage"]["output_tokens"] == 12
    sent = mock.requests[-1]
    assert sent["path"] == "/v1beta/models/gemini-2.5-pro:generateContent"
    assert sent["body"]["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}


async def test_non_stream_error_from_the_mock_provider(mock: MockProvider) -> None:
    mock.script([{"error": {"status": 429, "message": "Slow down", "retry_after": 3}}])
    request = {"model": "c", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            gemini_url(mock.url, "gemini-2.5-flash", stream=False),
            json=anthropic_to_gemini(request, model="gemini-2.5-flash"),
        ) as resp,
    ):
        assert resp.status == 429
        upstream = await resp.json()
    with pytest.raises(GatewayError) as raised:
        gemini_to_anthropic(upstream, model="c")
    assert raised.value.error_type == "rate_limit_error" and raised.value.message == "Slow down"
