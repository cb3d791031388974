"""Incoming Messages bodies: JSON parsing and the type checks, each answered with its field path.

(Named after its directory: ``tests/config/test_validate.py`` already takes the plain basename.)
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from ccr_fast.protocol.errors import GatewayError
from ccr_fast.server.validate import parse_json_body, validate_messages_body

#: a field value meaning "leave the field out"
MISSING: Any = object()


def valid(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-x",
        "max_tokens": 100,
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "text", "text": "hello"}]},
        ],
    }
    body.update(extra)
    return body


def rejection(body: dict[str, Any], *, count_tokens: bool = False) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        validate_messages_body(body, count_tokens=count_tokens)
    assert caught.value.status == 400
    assert caught.value.error_type == "invalid_request_error"
    return caught.value


# --- parse_json_body ------------------------------------------------------------------------------------


def test_parse_returns_the_object() -> None:
    assert parse_json_body(orjson.dumps(valid())) == valid()


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"", "request body is empty"),
        (b"{not json", "malformed JSON in request body"),
        (b'{"a": 1', "malformed JSON"),
        (b"[1, 2]", "must be a JSON object, got an array"),
        (b'"text"', "got a string"),
        (b"3.5", "got a number"),
        (b"true", "got a boolean"),
        (b"null", "got null"),
    ],
)
def test_parse_rejects_non_objects_with_a_400(raw: bytes, fragment: str) -> None:
    with pytest.raises(GatewayError) as caught:
        parse_json_body(raw)
    assert caught.value.status == 400
    assert fragment in caught.value.message


# --- validate_messages_body -----------------------------------------------------------------------------


def test_a_full_valid_body_passes() -> None:
    validate_messages_body(
        valid(
            system=[{"type": "text", "text": "s"}],
            stream=True,
            stop_sequences=["END"],
            temperature=0,
            top_p=0.9,
            top_k=5,
            tools=[{"name": "t", "input_schema": {"type": "object"}}],
            tool_choice={"type": "auto"},
            thinking={"type": "enabled", "budget_tokens": 1024},
            metadata={"user_id": "u"},
        )
    )


def test_system_role_messages_are_accepted() -> None:
    validate_messages_body(valid(messages=[{"role": "system", "content": "mid-conversation note"}]))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": MISSING}, "model: field required"),
        ({"model": ""}, "model: expected a non-empty string, got a string"),
        ({"model": "   "}, "model: expected a non-empty string"),
        ({"model": 7}, "model: expected a non-empty string, got a number"),
        ({"messages": MISSING}, "messages: field required"),
        ({"messages": {"role": "user"}}, "messages: expected an array, got an object"),
        ({"messages": ["hi"]}, "messages[0]: expected an object, got a string"),
        (
            {"messages": [{"role": "user", "content": "a"}, {"role": "tool", "content": "b"}]},
            "messages[1].role: expected one of user, assistant, system, got 'tool'",
        ),
        (
            {"messages": [{"content": "a"}]},
            "messages[0].role: expected one of user, assistant, system, got None",
        ),
        (
            {"messages": [{"role": "user", "content": 5}]},
            "messages[0].content: expected a string or an array of content blocks, got a number",
        ),
        (
            {"messages": [{"role": "user"}]},
            "messages[0].content: expected a string or an array of content blocks, got null",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"text": "b"}]}]},
            "messages[0].content[1]: expected a content block object with a type",
        ),
        (
            {"messages": [{"role": "user", "content": ["plain"]}]},
            "messages[0].content[0]: expected a content block object with a type",
        ),
        ({"max_tokens": -1}, "max_tokens: expected a non-negative integer, got a number"),
        ({"max_tokens": 1.5}, "max_tokens: expected a non-negative integer"),
        ({"max_tokens": True}, "max_tokens: expected a non-negative integer, got a boolean"),
        ({"max_tokens": "100"}, "max_tokens: expected a non-negative integer, got a string"),
        ({"stream": "yes"}, "stream: expected a boolean, got a string"),
        ({"stop_sequences": "END"}, "stop_sequences: expected an array of strings, got a string"),
        ({"stop_sequences": ["a", 1]}, "stop_sequences: expected an array of strings, got an array"),
        ({"temperature": "hot"}, "temperature: expected a number, got a string"),
        ({"temperature": False}, "temperature: expected a number, got a boolean"),
        ({"top_p": [0.5]}, "top_p: expected a number, got an array"),
        ({"top_k": 1.5}, "top_k: expected an integer, got a number"),
        ({"top_k": True}, "top_k: expected an integer, got a boolean"),
        ({"system": 5}, "system: expected a string or an array of text blocks, got a number"),
        ({"system": ["text"]}, "system[0]: expected a text block object, got a string"),
        ({"tools": {"name": "t"}}, "tools: expected an array, got an object"),
        ({"tools": ["t"]}, "tools[0]: expected an object, got a string"),
        ({"tools": [{"name": "a"}, {"description": "no name"}]}, "tools[1].name: field required (a string)"),
        ({"tool_choice": "auto"}, "tool_choice: expected an object, got a string"),
        ({"thinking": True}, "thinking: expected an object, got a boolean"),
        ({"metadata": []}, "metadata: expected an object, got an array"),
    ],
)
def test_each_bad_field_is_named(change: dict[str, Any], message: str) -> None:
    body = {key: value for key, value in {**valid(), **change}.items() if value is not MISSING}
    assert message in rejection(body).message


def test_max_tokens_zero_is_allowed() -> None:
    validate_messages_body(valid(max_tokens=0))


def test_count_tokens_skips_the_generation_parameters() -> None:
    body = valid(max_tokens="lots", stream="yes", stop_sequences=5, temperature="x", top_k="y")
    validate_messages_body(body, count_tokens=True)
    assert "max_tokens" in rejection(body).message


def test_count_tokens_still_checks_messages_system_and_tools() -> None:
    assert "messages[0]" in rejection(valid(messages=[1]), count_tokens=True).message
    assert "system" in rejection(valid(system=1), count_tokens=True).message
    assert "tools[0].name" in rejection(valid(tools=[{}]), count_tokens=True).message


def test_unknown_fields_are_left_to_the_upstream() -> None:
    validate_messages_body(valid(container="c", context_management={"edits": []}, service_tier="auto"))
