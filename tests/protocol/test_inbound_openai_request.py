"""OpenAI Chat Completions request → Anthropic request: shared vectors, invalid input, SDK-made bodies,
the round trip through the outbound translator, and properties of random conversations.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccr_fast.protocol.anthropic_ids import to_anthropic_tool_id
from ccr_fast.protocol.errors import GatewayError
from ccr_fast.protocol.inbound_openai_request import (
    DEFAULT_MAX_TOKENS,
    EFFORT_BUDGETS,
    RAW_ARGUMENTS_KEY,
    openai_request_to_anthropic,
    stream_include_usage,
)
from ccr_fast.protocol.openai_dialect import OpenAIDialect
from ccr_fast.protocol.openai_request import anthropic_to_openai

VECTORS = Path(__file__).parent.parent / "vectors" / "inbound_openai"
NAMES = sorted(p.stem for p in (VECTORS / "requests").glob("*.json"))
INVALID = json.loads((VECTORS / "invalid_requests.json").read_text())


def load(name: str) -> dict[str, Any]:
    vector: dict[str, Any] = json.loads((VECTORS / "requests" / f"{name}.json").read_text())
    return vector


def sdk_body(params: dict[str, Any]) -> dict[str, Any]:
    """The JSON body the official SDK sends for ``chat.completions.create(**params)``."""
    sent: list[bytes] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(request.read())
        if params.get("stream"):
            return httpx2.Response(
                200, headers={"content-type": "text/event-stream"}, content=b"data: [DONE]\n\n"
            )
        return httpx2.Response(
            200, json={"id": "c", "object": "chat.completion", "created": 1, "model": "m", "choices": []}
        )

    client = openai.OpenAI(
        api_key="test",
        base_url="http://gateway.test/v1",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    result = client.chat.completions.create(**params)
    if params.get("stream"):
        list(result)
    (body,) = sent
    parsed: dict[str, Any] = orjson.loads(body)
    return parsed


# --- the shared vectors -----------------------------------------------------------------------------------


def test_vectors_are_present() -> None:
    assert len(NAMES) >= 10 and len(INVALID) >= 30


@pytest.mark.parametrize("name", NAMES)
def test_vector(name: str) -> None:
    vector = load(name)
    before = copy.deepcopy(vector["openai"])
    assert openai_request_to_anthropic(vector["openai"]) == vector["anthropic"]
    assert vector["openai"] == before  # the input is never changed


@pytest.mark.parametrize("name", NAMES)
def test_bodies_made_by_the_official_sdk(name: str) -> None:
    vector = load(name)
    assert openai_request_to_anthropic(sdk_body(vector["openai"])) == vector["anthropic"]


@pytest.mark.parametrize("case", INVALID, ids=[case["description"] for case in INVALID])
def test_invalid_input_names_the_field(case: dict[str, Any]) -> None:
    with pytest.raises(GatewayError) as raised:
        openai_request_to_anthropic(case["openai"])
    assert raised.value.status == 400
    assert raised.value.error_type == "invalid_request_error"
    assert raised.value.message == case["message"]


# --- single rules -----------------------------------------------------------------------------------------


def request(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}


@pytest.mark.parametrize(
    ("options", "expected"),
    [(None, False), ({}, False), ({"include_usage": False}, False), ({"include_usage": True}, True)],
)
def test_stream_include_usage(options: Any, expected: bool) -> None:
    body = request(stream=True) if options is None else request(stream=True, stream_options=options)
    assert stream_include_usage(body) is expected


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("yes", "stream_options: expected an object"),
        ({"include_usage": 1}, "stream_options.include_usage: expected a boolean"),
    ],
)
def test_stream_include_usage_rejects_wrong_types(options: Any, message: str) -> None:
    with pytest.raises(GatewayError, match=message):
        stream_include_usage(request(stream_options=options))


def test_tool_arguments() -> None:
    def arguments(value: Any) -> Any:
        call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": value}}
        body = request(messages=[{"role": "assistant", "tool_calls": [call]}])
        return openai_request_to_anthropic(body)["messages"][0]["content"][0]["input"]

    assert arguments('{"a": [1, {"b": null}]}') == {"a": [1, {"b": None}]}
    assert arguments("  ") == {}
    assert arguments(None) == {}
    assert arguments({"already": "parsed"}) == {"already": "parsed"}
    assert arguments('["not", "an", "object"]') == {RAW_ARGUMENTS_KEY: '["not", "an", "object"]'}
    assert arguments('{"cut": "of') == {RAW_ARGUMENTS_KEY: '{"cut": "of'}


def test_image_data_url_without_media_type_and_file_data_without_prefix() -> None:
    body = request(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "data:;base64,AAAA"}},
                    {"type": "image_url", "image_url": "https://example.com/a.png"},
                    {"type": "file", "file": {"file_data": "JVBERi0x"}},
                ],
            }
        ]
    )
    assert openai_request_to_anthropic(body)["messages"][0]["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"},
        },
    ]


def test_tool_message_with_image_parts_keeps_them() -> None:
    body = request(
        messages=[
            {
                "role": "assistant",
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "shot"}}],
            },
            {
                "role": "tool",
                "tool_call_id": "c1",
                "content": [{"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/"}}],
            },
        ]
    )
    result = openai_request_to_anthropic(body)["messages"][1]["content"][0]
    assert result == {
        "type": "tool_result",
        "tool_use_id": "c1",
        "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/"}}
        ],
    }


def test_parallel_tool_calls_false_with_none_choice_adds_nothing_to_none() -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    out = openai_request_to_anthropic(request(tools=tools, tool_choice="none", parallel_tool_calls=False))
    assert out["tool_choice"] == {"type": "none"}
    assert out["tools"] == [{"name": "f", "input_schema": {"type": "object", "properties": {}}}]


def test_empty_messages_are_dropped() -> None:
    body = request(
        messages=[
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": None},
            {"role": "user", "content": []},
            {"role": "system", "content": ""},
            {"role": "user", "content": "b"},
        ]
    )
    out = openai_request_to_anthropic(body)
    assert out["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    ]
    assert "system" not in out


def test_the_outbound_translator_gives_the_conversation_back() -> None:
    """OpenAI → Anthropic → OpenAI: what an OpenAI-compatible upstream finally receives."""
    original = load("tool_round_trip")["openai"]
    dialect = OpenAIDialect(reasoning_out="reasoning_content")
    back = anthropic_to_openai(openai_request_to_anthropic(original), model="deepseek-chat", dialect=dialect)
    assert back["messages"] == [
        {"role": "user", "content": "Weather and time in Paris?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "call_w",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_t",
                    "type": "function",
                    # invalid arguments travel as an object holding the raw text: upstreams reject bad JSON
                    "function": {"name": "get_time", "arguments": '{"_raw":"{\\"tz\\": \\"Europe/Par"}'},
                },
            ],
            "reasoning_content": "Two lookups.",
        },
        {"role": "tool", "tool_call_id": "call_w", "content": "18C, cloudy"},
        {"role": "tool", "tool_call_id": "call_t", "content": "14:05"},
        {"role": "user", "content": "Thanks, and tomorrow?"},
    ]
    assert back["parallel_tool_calls"] is False and back["tool_choice"] == "auto"
    assert [t["function"]["name"] for t in back["tools"]] == ["get_weather", "get_time"]


def test_foreign_ids_reach_the_upstream_unchanged() -> None:
    original = load("foreign_tool_ids")["openai"]
    back = anthropic_to_openai(
        openai_request_to_anthropic(original), model="kimi-k2", dialect=OpenAIDialect()
    )
    assert back["messages"][1]["tool_calls"][0]["id"] == "functions.Bash:0"
    assert back["messages"][2]["tool_call_id"] == "functions.Bash:0"


# --- properties of random input ---------------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12)
_call_id = st.one_of(
    st.from_regex(r"call_[A-Za-z0-9]{1,8}", fullmatch=True),
    st.from_regex(r"fn\.[a-z]{1,6}:[0-9]", fullmatch=True),
)


@st.composite
def _conversation(draw: st.DrawFn) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 10))):
        role = draw(st.sampled_from(["system", "developer", "user", "assistant", "tool"]))
        if role == "assistant":
            calls = [
                {
                    "id": draw(_call_id),
                    "type": "function",
                    "function": {"name": "f", "arguments": json.dumps({"q": draw(_text)})},
                }
                for _ in range(draw(st.integers(0, 2)))
            ]
            message: dict[str, Any] = {"role": role, "content": draw(st.none() | _text)}
            if calls:
                message["tool_calls"] = calls
        elif role == "tool":
            message = {"role": role, "tool_call_id": draw(_call_id), "content": draw(_text)}
        else:
            content = draw(_text)
            message = {
                "role": role,
                "content": draw(st.sampled_from([content, [{"type": "text", "text": content}]])),
            }
        messages.append(message)
    return messages


def _openai_items(messages: list[dict[str, Any]]) -> Iterator[tuple[Any, ...]]:
    """The conversation as a flat sequence of (kind, ...) items, with leading system messages apart."""
    leading = True
    for message in messages:
        role = message["role"]
        content = message.get("content")
        text = content if isinstance(content, str) or content is None else content[0]["text"]
        if role in ("system", "developer"):
            yield ("system" if leading else "mid-system", text)
            continue
        leading = False
        if role == "tool":
            yield "tool_result", to_anthropic_tool_id(message["tool_call_id"]), text
            continue
        if text:
            yield role, text
        for call in message.get("tool_calls", []):
            yield "tool_use", to_anthropic_tool_id(call["id"]), call["function"]["arguments"]


def _anthropic_items(body: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
    system = body.get("system", [])
    for block in [{"text": system}] if isinstance(system, str) else system:
        yield "system", block["text"]
    for message in body["messages"]:
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        for block in blocks:
            if message["role"] == "system":
                yield "mid-system", block["text"]
            elif block["type"] == "text":
                yield message["role"], block["text"]
            elif block["type"] == "tool_use":
                yield "tool_use", block["id"], json.dumps(block["input"])
            else:
                yield "tool_result", block["tool_use_id"], block["content"]


@settings(max_examples=200, deadline=None)
@given(messages=_conversation())
def test_random_conversations_keep_every_item_in_order_and_never_repeat_a_role(
    messages: list[dict[str, Any]],
) -> None:
    out = openai_request_to_anthropic({"model": "m", "messages": messages})
    assert list(_anthropic_items(out)) == list(_openai_items(messages))
    roles = [m["role"] for m in out["messages"]]
    assert all(a != b for a, b in itertools.pairwise(roles))


@settings(max_examples=200, deadline=None)
@given(
    effort=st.sampled_from([None, "none", *EFFORT_BUDGETS]),
    limit=st.none() | st.integers(1, 200_000),
    temperature=st.none() | st.floats(0, 2),
)
def test_limits_and_sampling(effort: str | None, limit: int | None, temperature: float | None) -> None:
    out = openai_request_to_anthropic(
        request(reasoning_effort=effort, max_completion_tokens=limit, temperature=temperature)
    )
    thinking = out.get("thinking")
    assert out["max_tokens"] == (
        limit if limit is not None else DEFAULT_MAX_TOKENS + (thinking or {}).get("budget_tokens", 0)
    )
    if thinking is not None:
        assert effort not in (None, "none")
        assert 1024 <= thinking["budget_tokens"] <= EFFORT_BUDGETS[str(effort)]
        assert thinking["budget_tokens"] < out["max_tokens"]  # Anthropic's rule
        assert limit is None or thinking["budget_tokens"] * 2 <= limit  # the answer keeps half
        assert "temperature" not in out
    else:
        assert effort in (None, "none") or (limit is not None and limit // 2 < 1024)
        assert out.get("temperature") == (None if temperature is None else min(temperature, 1))
