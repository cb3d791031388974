"""OpenAI Responses API response → Anthropic message, and the tables the stream translator shares."""

from __future__ import annotations

from typing import Any

import pytest

from ccr_fast.protocol.errors import GatewayError
from ccr_fast.protocol.openai_response import UNPARSED_ARGUMENTS_KEY
from ccr_fast.protocol.openai_responses_response import (
    SIGNATURE_PREFIX,
    anthropic_usage,
    from_client_signature,
    item_block,
    response_error,
    responses_to_anthropic,
    stop_reason_for,
    to_client_signature,
)

JSONDict = dict[str, Any]


def response(*output: JSONDict, **extra: Any) -> JSONDict:
    return {
        "id": "resp_1",
        "object": "response",
        "status": "completed",
        "error": None,
        "incomplete_details": None,
        "output": list(output),
        "usage": {
            "input_tokens": 1200,
            "input_tokens_details": {"cached_tokens": 1000},
            "output_tokens": 40,
            "output_tokens_details": {"reasoning_tokens": 12},
            "total_tokens": 1240,
        },
        **extra,
    }


def reasoning(*summary: str, encrypted: str | None = "gAAAAABtoken", **extra: Any) -> JSONDict:
    item: JSONDict = {
        "id": "rs_1",
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": s} for s in summary],
        **extra,
    }
    if encrypted is not None:
        item["encrypted_content"] = encrypted
    return item


def message(*texts: str, refusal: str | None = None) -> JSONDict:
    content: list[JSONDict] = [{"type": "output_text", "text": t, "annotations": []} for t in texts]
    if refusal is not None:
        content.append({"type": "refusal", "refusal": refusal})
    return {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed", "content": content}


def call(name: str, arguments: str, call_id: str = "call_1") -> JSONDict:
    return {
        "id": "fc_1",
        "type": "function_call",
        "status": "completed",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def test_reasoning_text_and_calls_in_order_with_usage() -> None:
    body = response(
        reasoning("First, look.", "Then, read."),
        message("I will read ", "both files."),
        call("Read", '{"file_path": "/a"}'),
        call("Read", '{"file_path": "/b"}', call_id="call_2"),
        {"id": "ws_1", "type": "web_search_call", "status": "completed"},
    )
    msg = responses_to_anthropic(body, model="claude-sonnet-5", message_id="msg_x")
    assert msg == {
        "id": "msg_x",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-5",
        "content": [
            {
                "type": "thinking",
                "thinking": "First, look.\n\nThen, read.",
                "signature": SIGNATURE_PREFIX + "gAAAAABtoken",
            },
            {"type": "text", "text": "I will read both files."},
            {"type": "tool_use", "id": "call_1", "name": "Read", "input": {"file_path": "/a"}},
            {"type": "tool_use", "id": "call_2", "name": "Read", "input": {"file_path": "/b"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 200,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 1000,
            "output_tokens": 40,
        },
    }


def test_reasoning_blocks_need_text_or_encrypted_content() -> None:
    assert item_block(reasoning(encrypted=None)) is None
    assert item_block(reasoning("", encrypted="")) is None
    hidden = item_block(reasoning())
    assert hidden == {"type": "thinking", "thinking": "", "signature": SIGNATURE_PREFIX + "gAAAAABtoken"}
    raw = reasoning(encrypted=None, content=[{"type": "reasoning_text", "text": "raw thoughts"}])
    assert item_block(raw) == {"type": "thinking", "thinking": "raw thoughts", "signature": ""}


def test_signatures_round_trip_and_foreign_ones_are_refused() -> None:
    assert from_client_signature(to_client_signature("abc")) == "abc"
    for foreign in ("abc", "gemini:abc", SIGNATURE_PREFIX, None, 5):
        assert from_client_signature(foreign) is None


def test_function_calls_keep_odd_ids_and_broken_arguments() -> None:
    block = item_block(call("Bash", '{"command": "ls"', call_id="functions.Bash:0"))
    assert block is not None
    assert block["id"].startswith("toolu_enc_")
    assert block["input"] == {UNPARSED_ARGUMENTS_KEY: '{"command": "ls"'}
    assert item_block(call("Bash", ""))["input"] == {}  # type: ignore[index]
    assert item_block({"type": "function_call", "arguments": "{}"})["id"].startswith("toolu_01")  # type: ignore[index]


@pytest.mark.parametrize(
    ("status", "details", "calls", "refusal", "expected"),
    [
        ("completed", None, False, False, "end_turn"),
        ("completed", None, True, False, "tool_use"),
        ("incomplete", {"reason": "max_output_tokens"}, False, False, "max_tokens"),
        ("incomplete", {"reason": "max_output_tokens"}, True, False, "max_tokens"),
        ("incomplete", {"reason": "content_filter"}, False, False, "refusal"),
        ("incomplete", None, False, False, "end_turn"),
        ("completed", None, False, True, "refusal"),
        ("completed", None, True, True, "tool_use"),
    ],
)
def test_stop_reasons(status: str, details: Any, calls: bool, refusal: bool, expected: str) -> None:
    assert stop_reason_for(status, details, tool_calls=calls, refusal=refusal) == expected


def test_incomplete_and_refused_responses() -> None:
    cut = response(
        message("Once upon a"), status="incomplete", incomplete_details={"reason": "max_output_tokens"}
    )
    assert responses_to_anthropic(cut, model="m")["stop_reason"] == "max_tokens"
    refused = responses_to_anthropic(response(message(refusal="I can't help with that.")), model="m")
    assert refused["content"] == [{"type": "text", "text": "I can't help with that."}]
    assert refused["stop_reason"] == "refusal"
    empty = responses_to_anthropic({"status": "completed", "output": "junk"}, model="m")
    assert empty["content"] == [] and empty["stop_reason"] == "end_turn"
    assert empty["usage"] == anthropic_usage(None)


def test_usage_takes_cached_and_written_tokens_out_of_the_input() -> None:
    usage = {"input_tokens": 100, "input_tokens_details": {"cached_tokens": 30, "cache_write_tokens": 50}}
    assert anthropic_usage(usage) == {
        "input_tokens": 20,
        "cache_creation_input_tokens": 50,
        "cache_read_input_tokens": 30,
        "output_tokens": 0,
    }
    assert anthropic_usage({"input_tokens": True, "output_tokens": -3})["output_tokens"] == 0


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"code": "rate_limit_exceeded", "message": "slow down"}, ("rate_limit_error", "slow down")),
        ({"code": "server_error", "message": "boom"}, ("api_error", "boom")),
        ({"code": "invalid_prompt", "message": "no"}, ("invalid_request_error", "no")),
        ({"code": "invalid_image_url", "message": "bad"}, ("invalid_request_error", "bad")),
        ({"code": "vector_store_timeout", "message": ""}, ("timeout_error", "the upstream response failed")),
        ({"type": "insufficient_quota", "message": "pay"}, ("billing_error", "pay")),
        (None, ("api_error", "the upstream response failed")),
        ("plain text", ("api_error", "plain text")),
    ],
)
def test_response_errors(error: Any, expected: tuple[str, str]) -> None:
    assert response_error(error) == expected


def test_a_failed_response_raises_the_mapped_error() -> None:
    failed = response(status="failed", error={"code": "rate_limit_exceeded", "message": "Too many requests"})
    with pytest.raises(GatewayError) as raised:
        responses_to_anthropic(failed, model="m")
    assert (raised.value.status, raised.value.error_type) == (429, "rate_limit_error")
    assert raised.value.message == "Too many requests"
    with pytest.raises(GatewayError) as unexplained:
        responses_to_anthropic({"status": "failed"}, model="m")
    assert unexplained.value.status == 500 and unexplained.value.error_type == "api_error"
