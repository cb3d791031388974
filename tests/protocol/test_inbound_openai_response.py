"""Anthropic message / error → OpenAI response: shared vectors, mapping tables, the ``openai`` SDK's view."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2
import openai
import orjson
import pytest

from ccr_fast.protocol.errors import STATUS_TO_TYPE, GatewayError
from ccr_fast.protocol.inbound_openai_response import (
    anthropic_error_to_openai,
    anthropic_message_to_openai,
    completion_id_for,
    finish_reason_for,
    openai_tool_id,
    openai_usage,
)
from ccr_fast.protocol.openai_response import anthropic_usage, openai_error

RESPONSES = Path(__file__).parent.parent / "vectors" / "inbound_openai" / "responses"
NAMES = sorted(p.stem for p in RESPONSES.glob("*.json"))


def client_for(status: int, body: bytes) -> openai.OpenAI:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, headers={"content-type": "application/json"}, content=body)

    return openai.OpenAI(
        api_key="test",
        base_url="http://gateway.test/v1",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )


def sdk_completion(body: dict[str, Any]) -> openai.types.chat.ChatCompletion:
    client = client_for(200, orjson.dumps(body))
    return client.chat.completions.create(model="gpt-vector", messages=[{"role": "user", "content": "hi"}])


def message(content: list[Any], stop_reason: str = "end_turn", **extra: Any) -> dict[str, Any]:
    return {
        "id": "msg_x",
        "type": "message",
        "role": "assistant",
        "content": content,
        "stop_reason": stop_reason,
        **extra,
    }


# --- the shared vectors -----------------------------------------------------------------------------------


def test_vectors_are_present() -> None:
    assert len(NAMES) >= 8


@pytest.mark.parametrize("name", NAMES)
def test_vector(name: str) -> None:
    vector = json.loads((RESPONSES / f"{name}.json").read_text())
    out = anthropic_message_to_openai(vector["anthropic"], model="gpt-vector")
    assert isinstance(out["created"], int) and out["created"] > 0
    assert {**out, "created": 0} == vector["openai"]


@pytest.mark.parametrize("name", NAMES)
def test_the_sdk_reads_what_was_meant(name: str) -> None:
    vector = json.loads((RESPONSES / f"{name}.json").read_text())
    expected = vector["openai"]["choices"][0]
    completion = sdk_completion(anthropic_message_to_openai(vector["anthropic"], model="gpt-vector"))
    (choice,) = completion.choices
    assert choice.finish_reason == expected["finish_reason"]
    assert choice.message.content == expected["message"]["content"]
    assert (choice.message.model_extra or {}).get("reasoning_content") == expected["message"].get(
        "reasoning_content"
    )
    calls = [
        {"id": c.id, "type": c.type, "function": {"name": c.function.name, "arguments": c.function.arguments}}
        for c in choice.message.tool_calls or []
        if c.type == "function"
    ]
    assert calls == expected["message"].get("tool_calls", [])
    assert completion.usage is not None
    assert completion.usage.model_dump(exclude_none=True) == vector["openai"]["usage"]


# --- mapping tables ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stop_reason", "tool_calls", "finish_reason"),
    [
        ("end_turn", False, "stop"),
        ("stop_sequence", False, "stop"),
        ("pause_turn", False, "stop"),
        ("max_tokens", False, "length"),
        ("max_tokens", True, "length"),
        ("model_context_window_exceeded", False, "length"),
        ("tool_use", True, "tool_calls"),
        ("tool_use", False, "stop"),
        ("end_turn", True, "tool_calls"),
        ("refusal", False, "content_filter"),
        (None, False, "stop"),
        (None, True, "tool_calls"),
        ("something_new", False, "stop"),
    ],
)
def test_finish_reason(stop_reason: str | None, tool_calls: bool, finish_reason: str) -> None:
    assert finish_reason_for(stop_reason, tool_calls=tool_calls) == finish_reason


def test_usage_adds_cached_tokens_back_and_reverses_exactly() -> None:
    usage = {
        "input_tokens": 200,
        "cache_read_input_tokens": 800,
        "cache_creation_input_tokens": 50,
        "output_tokens": 30,
    }
    out = openai_usage(usage)
    assert out == {
        "prompt_tokens": 1050,
        "completion_tokens": 30,
        "total_tokens": 1080,
        "prompt_tokens_details": {"cached_tokens": 800, "cache_write_tokens": 50},
    }
    assert anthropic_usage(out) == usage  # the outbound translator's formula undoes this one


@pytest.mark.parametrize("usage", [None, {}, {"input_tokens": -3, "output_tokens": True}, "junk"])
def test_usage_without_numbers_is_zero(usage: Any) -> None:
    assert openai_usage(usage) == {
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "total_tokens": 0,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


def test_ids() -> None:
    assert completion_id_for("msg_01abc") == "chatcmpl-msg_01abc"
    assert completion_id_for(None).startswith("chatcmpl-msg_01")
    assert openai_tool_id("toolu_enc_ZnVuY3Rpb25zLkJhc2g6MA") == "functions.Bash:0"
    assert openai_tool_id("toolu_01abc") == "toolu_01abc"
    minted = openai_tool_id(None)
    assert minted.startswith("call_01") and minted != openai_tool_id("")


def test_malformed_blocks_are_skipped() -> None:
    out = anthropic_message_to_openai(
        message(["junk", {"type": "text", "text": 5}, {"type": "text", "text": "ok"}, {"type": "tool_use"}]),
        model="m",
    )
    reply = out["choices"][0]["message"]
    assert reply["content"] == "ok"
    assert reply["tool_calls"][0]["function"] == {"name": "", "arguments": "{}"}
    assert reply["tool_calls"][0]["id"].startswith("call_")


def test_mixed_input_keeps_a_raw_key_as_an_ordinary_argument() -> None:
    block = {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"_raw": "x", "other": 1}}
    out = anthropic_message_to_openai(message([block], "tool_use"), model="m")
    assert (
        json.loads(out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]) == block["input"]
    )


# --- errors -----------------------------------------------------------------------------------------------

SDK_ERRORS: dict[int, type[openai.APIStatusError]] = {
    400: openai.BadRequestError,
    401: openai.AuthenticationError,
    403: openai.PermissionDeniedError,
    404: openai.NotFoundError,
    429: openai.RateLimitError,
    500: openai.InternalServerError,
    529: openai.InternalServerError,
}


@pytest.mark.parametrize(("status", "error_type"), sorted(STATUS_TO_TYPE.items()))
def test_gateway_errors_become_openai_errors_the_sdk_raises(status: int, error_type: str) -> None:
    body = GatewayError(status, f"something about {error_type}").body("req_1")
    out = orjson.loads(anthropic_error_to_openai(status, body))
    assert list(out) == ["error"]
    assert list(out["error"]) == ["message", "type", "param", "code"]
    assert out["error"]["message"] == f"something about {error_type}"
    assert openai_error(out["error"])[0] == error_type  # the outbound translator reads the type back
    with pytest.raises(SDK_ERRORS.get(status, openai.APIStatusError)) as raised:
        client_for(status, orjson.dumps(out)).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
    assert raised.value.status_code == status
    assert raised.value.body == out["error"]
    assert raised.value.code == out["error"]["code"]
    assert raised.value.type == out["error"]["type"]


@pytest.mark.parametrize(
    ("error_type", "openai_type", "code"),
    [
        ("api_error", "server_error", None),
        ("authentication_error", "authentication_error", "invalid_api_key"),
        ("billing_error", "billing_error", "insufficient_quota"),
        ("rate_limit_error", "rate_limit_error", "rate_limit_exceeded"),
        ("overloaded_error", "overloaded_error", None),
        ("invalid_request_error", "invalid_request_error", None),
    ],
)
def test_error_type_and_code(error_type: str, openai_type: str, code: str | None) -> None:
    out = orjson.loads(anthropic_error_to_openai(400, GatewayError(400, "m", error_type).body()))
    assert out == {"error": {"message": "m", "type": openai_type, "param": None, "code": code}}


@pytest.mark.parametrize(
    ("status", "body", "message", "openai_type"),
    [
        (502, b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>", "server_error"),
        (503, b"", "upstream returned HTTP 503", "server_error"),
        (
            404,
            b'{"error": {"message": "no such model", "type": "invalid_request_error"}}',
            "no such model",
            "invalid_request_error",
        ),
        (400, b'{"message": "bad field"}', "bad field", "invalid_request_error"),
        (429, b"[1, 2]", "upstream returned HTTP 429", "rate_limit_error"),
    ],
)
def test_bodies_of_other_shapes_still_give_a_message(
    status: int, body: bytes, message: str, openai_type: str
) -> None:
    out = orjson.loads(anthropic_error_to_openai(status, body))
    assert out["error"]["message"] == message
    assert out["error"]["type"] == openai_type
