"""The mock provider's OpenAI Responses API against the official ``openai`` SDK, and its request checks.

If the SDK's typed models and its stream accumulator take what the mock sends, a proxy tested against the
mock meets what OpenAI sends; if the mock refuses what OpenAI refuses, a proxy that passes it sends what
OpenAI takes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
import orjson
import pytest

from ccr_fast.mock import MockProvider
from ccr_fast.mock.replies import parse_reply, usage_for
from ccr_fast.mock.responses_api import (
    RESPONSES,
    encrypted_reasoning,
    read_encrypted_reasoning,
    request_problem,
)

JSONDict = dict[str, Any]
TOOL = {"type": "function", "name": "Read", "parameters": {"type": "object"}, "strict": False}
REASONING = {"reasoning": {"effort": "low", "summary": "auto"}, "include": ["reasoning.encrypted_content"]}


@pytest.fixture
async def mock() -> AsyncIterator[MockProvider]:
    async with MockProvider() as provider:
        yield provider


@pytest.fixture
async def oai(mock: MockProvider) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=f"{mock.url}/v1", api_key="sk-test", max_retries=0) as client:
        yield client


# --- replies through the SDK --------------------------------------------------------------------------------


async def test_non_stream_output_items_and_usage(oai: openai.AsyncOpenAI, mock: MockProvider) -> None:
    mock.script(
        [
            {
                "thinking": "think first",
                "text": "Reading.",
                "tool_calls": [{"name": "Read", "arguments": {"file_path": "/a"}}],
                "usage": {"prompt_tokens": 90, "completion_tokens": 12, "cached_tokens": 40},
            }
        ]
    )
    response = await oai.responses.create(model="gpt-5", input="hi", tools=[TOOL], **REASONING)  # type: ignore[arg-type]
    assert response.model == "gpt-5" and response.status == "completed"
    reasoning, message, call = response.output
    assert reasoning.type == "reasoning" and [s.text for s in reasoning.summary] == ["think first"]
    assert read_encrypted_reasoning(reasoning.encrypted_content) == "think first"
    assert message.type == "message" and response.output_text == "Reading."
    assert (
        call.type == "function_call"
        and call.name == "Read"
        and orjson.loads(call.arguments) == {"file_path": "/a"}
    )
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (90, 12)
    assert response.usage.input_tokens_details.cached_tokens == 40
    sent = mock.requests[-1]
    assert sent["path"] == "/v1/responses" and sent["headers"]["authorization"] == "Bearer sk-test"


async def test_reasoning_is_shown_and_encrypted_only_when_asked(
    oai: openai.AsyncOpenAI, mock: MockProvider
) -> None:
    mock.script([{"thinking": "secret", "text": "ok"}])
    response = await oai.responses.create(model="gpt-5", input="hi")
    (reasoning, _) = response.output
    assert reasoning.type == "reasoning"
    assert reasoning.summary == [] and reasoning.encrypted_content is None


async def test_stream_accumulates_in_the_sdk(oai: openai.AsyncOpenAI, mock: MockProvider) -> None:
    calls = [
        {"name": "Read", "arguments": {"file_path": "/a"}},
        {"name": "Read", "arguments": {"file_path": "/b"}},
    ]
    mock.script(
        [
            {
                "thinking": "two files",
                "text": "Reading both files.",
                "tool_calls": calls,
                "chunks": 3,
                "quirks": {"args_fragments": 4},
            }
        ]
    )
    async with oai.responses.stream(model="gpt-5", input="hi", tools=[TOOL], **REASONING) as stream:  # type: ignore[arg-type]
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert kinds.count("response.output_text.delta") == 3
    assert kinds.count("response.function_call_arguments.delta") == 8
    assert final.output_text == "Reading both files."
    arguments = [orjson.loads(item.arguments) for item in final.output if item.type == "function_call"]
    assert arguments == [{"file_path": "/a"}, {"file_path": "/b"}]
    assert mock.requests[-1]["body"]["stream"] is True


async def test_length_is_an_incomplete_response(oai: openai.AsyncOpenAI, mock: MockProvider) -> None:
    mock.script([{"text": "Once upon", "finish_reason": "length"}])
    response = await oai.responses.create(model="gpt-5", input="story", max_output_tokens=16)
    assert response.status == "incomplete"
    assert (
        response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"
    )
    mock.script([{"text": "Once upon", "finish_reason": "length"}])
    async with oai.responses.stream(model="gpt-5", input="story") as stream:
        kinds = [event.type async for event in stream]
    assert kinds[-1] == "response.incomplete"


async def test_errors_and_retry_after(oai: openai.AsyncOpenAI, mock: MockProvider) -> None:
    mock.script([{"error": {"status": 429, "message": "slow down", "retry_after": 2}}])
    with pytest.raises(openai.RateLimitError) as raised:
        await oai.responses.create(model="gpt-5", input="hi")
    assert raised.value.response.headers["retry-after"] == "2"
    assert raised.value.body == {
        "message": "slow down",
        "type": "rate_limit_exceeded",
        "param": None,
        "code": None,
    }


async def test_midstream_error_is_a_failed_response(oai: openai.AsyncOpenAI, mock: MockProvider) -> None:
    mock.script([{"text": "one two three", "midstream_error": {"message": "backend died"}}])
    stream = await oai.responses.create(model="gpt-5", input="hi", stream=True)
    events = [event async for event in stream]
    assert events[-1].type == "response.failed"
    error = events[-1].response.error  # type: ignore[union-attr]
    assert error is not None and error.message == "backend died" and error.code == "server_error"


async def test_auto_mode_tool_round_trip(oai: openai.AsyncOpenAI, mock: MockProvider) -> None:
    first = await oai.responses.create(
        model="gpt-5", input='MOCK_TOOL:Read:{"file_path": "/etc/hosts"}', tools=[TOOL]
    )  # type: ignore[list-item]
    (call,) = first.output
    assert call.type == "function_call" and call.name == "Read"
    second = await oai.responses.create(
        model="gpt-5",
        tools=[TOOL],  # type: ignore[list-item]
        input=[
            {"role": "user", "content": 'MOCK_TOOL:Read:{"file_path": "/etc/hosts"}'},
            {"type": "function_call", "call_id": call.call_id, "name": "Read", "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "127.0.0.1 localhost"},
        ],
    )
    assert second.output_text == "Tool result received: 127.0.0.1 localhost"


async def test_a_rejected_request_does_not_use_up_the_script(
    oai: openai.AsyncOpenAI, mock: MockProvider
) -> None:
    mock.script([{"text": "scripted"}])
    with pytest.raises(openai.BadRequestError) as raised:
        await oai.responses.create(model="gpt-5", input="hi", extra_body={"stop": ["END"]})
    assert raised.value.body == {
        "message": "Unknown parameter: 'stop'.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    assert (await oai.responses.create(model="gpt-5", input="hi")).output_text == "scripted"
    assert len(mock.requests) == 2  # the rejected request is in the log too


def test_stream_sequence_numbers_and_crlf() -> None:
    reply = parse_reply({"text": "a b", "chunks": 2, "quirks": {"crlf": True}})
    ctx = RESPONSES.context(
        {"model": "m", "stream": True}, path="/v1/responses", query="", body_len=8, serial=1
    )
    frames = RESPONSES.stream(reply, usage_for(reply, 8), ctx)
    assert all(frame.data.endswith(b"\r\n\r\n") for frame in frames)
    events = [orjson.loads(frame.data.split(b"data: ", 1)[1]) for frame in frames]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


# --- request checks -----------------------------------------------------------------------------------------


def body(*items: JSONDict, **extra: Any) -> JSONDict:
    return {"model": "gpt-5", "input": list(items), "store": False, **extra}


USER = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
CALL = {"type": "function_call", "call_id": "call_1", "name": "Read", "arguments": "{}"}
OUTPUT = {"type": "function_call_output", "call_id": "call_1", "output": "data"}


@pytest.mark.parametrize(
    ("request_body", "problem"),
    [
        (body(USER, max_tokens=10), "Unknown parameter: 'max_tokens'."),
        ({"input": "hi"}, "Missing required parameter: 'model'."),
        (body(USER, max_output_tokens=5), "Expected a value >= 16, but got 5 instead."),
        (body(OUTPUT), "No tool call found for function call output with call_id call_1."),
        (body(USER, CALL), "No tool output found for function call call_1."),
        (body(CALL, CALL, OUTPUT), "Duplicate function call id: 'call_1'."),
        (body({"type": "reasoning", "summary": []}), "Items are not persisted when `store` is set to false."),
        (
            body({"type": "reasoning", "summary": [], "encrypted_content": "gAAAAABx"}),
            "could not be verified",
        ),
        (body({"type": "message", "role": "user", "content": [{"type": "text", "text": "x"}]}), "'text'"),
        (
            body({"type": "message", "role": "assistant", "content": [{"type": "input_text", "text": "x"}]}),
            "role",
        ),
        (body({"type": "message", "role": "tool", "content": "x"}), "Invalid value for 'input[0].role'"),
        (body({"type": "tool_result"}), "Invalid value: 'tool_result'."),
        (body(USER, tools=[{"type": "function", "function": {"name": "x"}}]), "tools[0].name"),
        (body(USER, tools=[TOOL], tool_choice={"type": "function", "name": "Nope"}), "tool_choice"),
        (body(USER, tools=[TOOL], tool_choice="any"), "tool_choice"),
        (body(USER, reasoning={"effort": "extreme"}), "reasoning.effort"),
        (body(USER, include=["reasoning.text"]), "Invalid value for 'include'"),
        (body({"type": "message", "role": "user", "content": [{"type": "input_image"}]}), "image_url"),
    ],
)
def test_requests_openai_would_refuse(request_body: JSONDict, problem: str) -> None:
    found = request_problem(request_body)
    assert found is not None and problem in found


def test_requests_openai_takes() -> None:
    token = encrypted_reasoning("thought")
    reasoning = {
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "t"}],
        "encrypted_content": token,
    }
    image = {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "auto"}
    ok = body(
        {"role": "system", "content": "be terse"},
        USER,
        reasoning,
        CALL,
        {**OUTPUT, "output": [{"type": "input_text", "text": "see"}, image]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "done"}]},
        instructions="sys",
        tools=[TOOL],
        tool_choice={"type": "function", "name": "Read"},
        reasoning={"effort": "high", "summary": "auto"},
        include=["reasoning.encrypted_content"],
        max_output_tokens=16,
        stream=True,
    )
    assert request_problem(ok) is None
    assert request_problem({"model": "gpt-5", "input": "plain text"}) is None
    stored = body({"type": "reasoning", "id": "rs_1", "summary": []}, store=True)
    assert request_problem(stored) is None
    assert read_encrypted_reasoning("gAAAAABmock!!") is None and read_encrypted_reasoning(5) is None
