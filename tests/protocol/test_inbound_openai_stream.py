"""Anthropic stream → OpenAI chunk stream: shared vectors, any split of the input, the ``openai`` SDK's view.

Every output is checked three ways: against the vector's chunk list, against the frame rules OpenAI's streams
follow, and by feeding the bytes to the official ``openai`` client through a mock transport and comparing
what its ``ChatCompletionStreamState`` assembles (or the error it raises) with what was meant.  The last
tests check that a streamed answer and the same answer not streamed look identical to an SDK user.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2
import openai
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.lib.streaming.chat import ChatCompletionStreamState, ParsedChatCompletionSnapshot
from openai.types.chat import ChatCompletion

from ccr_fast import _speedups
from ccr_fast.protocol.anthropic_events import message_to_events
from ccr_fast.protocol.inbound_openai_response import anthropic_message_to_openai
from ccr_fast.protocol.inbound_openai_stream import AnthropicToOpenAIStream

VECTORS = Path(__file__).parent.parent / "vectors" / "inbound_openai"
STREAMS = VECTORS / "stream"
NAMES = sorted(p.stem for p in STREAMS.glob("*.sse"))
RESPONSES = sorted(p.stem for p in (VECTORS / "responses").glob("*.json"))
BUILT = _speedups.compiled("sse_framer") is not None
IMPLEMENTATIONS = [
    pytest.param(
        "compiled", id="compiled", marks=pytest.mark.skipif(not BUILT, reason="extensions not built")
    ),
    pytest.param("pure", id="pure"),
]
CHUNK_FIELDS = ["id", "object", "created", "model", "choices"]
CHOICE_FIELDS = ["index", "delta", "logprobs", "finish_reason"]


@pytest.fixture(params=IMPLEMENTATIONS)
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs the test with the compiled SSE decoder and with its pure-Python twin."""
    monkeypatch.setenv("CCR_FAST_PURE", "1" if request.param == "pure" else "0")
    return str(request.param)


# --- helpers ----------------------------------------------------------------------------------------------


def load_vector(name: str) -> tuple[bytes, dict[str, Any]]:
    return (STREAMS / f"{name}.sse").read_bytes(), json.loads((STREAMS / f"{name}.json").read_text())


def run(reads: list[bytes], *, include_usage: bool = False, **options: Any) -> bytes:
    stream = AnthropicToOpenAIStream(model="gpt-vector", include_usage=include_usage, **options)
    return b"".join(stream.feed(read) for read in reads) + stream.close()


def frames(out: bytes) -> list[Any]:
    """The ``data:`` payloads, strictly: no ``event:`` lines, one JSON object (or ``[DONE]``) per frame."""
    assert out.endswith(b"\n\n")
    payloads: list[Any] = []
    for frame in out.split(b"\n\n")[:-1]:
        assert frame.startswith(b"data: ") and b"\n" not in frame
        body = frame[6:]
        payloads.append("[DONE]" if body == b"[DONE]" else orjson.loads(body))
    return payloads


def check_frames(payloads: list[Any], *, include_usage: bool) -> None:
    """What OpenAI's own streams do, which the SDK and other clients rely on."""
    done = payloads[-1] == "[DONE]"
    assert done or set(payloads[-1]) == {"error"}
    chunks = payloads[:-1]
    assert "[DONE]" not in chunks and all("error" not in c for c in chunks)
    if not chunks:
        return
    assert len({(c["id"], c["created"], c["model"]) for c in chunks}) == 1
    assert chunks[0]["id"].startswith("chatcmpl-") and isinstance(chunks[0]["created"], int)
    finishes = []
    for position, chunk in enumerate(chunks):
        assert list(chunk)[:5] == CHUNK_FIELDS and chunk["object"] == "chat.completion.chunk"
        assert ("usage" in chunk) == include_usage
        if chunk["choices"] == []:
            assert include_usage and done and position == len(chunks) - 1 and chunk["usage"]
            continue
        assert include_usage is False or chunk["usage"] is None
        (choice,) = chunk["choices"]
        assert list(choice) == CHOICE_FIELDS and choice["index"] == 0 and choice["logprobs"] is None
        if choice["finish_reason"] is not None:
            finishes.append(position)
            assert choice["delta"] == {}
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    if done:
        assert finishes == [len(chunks) - (2 if include_usage else 1)]
    else:
        assert finishes == []


def normalised(payloads: list[Any]) -> list[Any]:
    """``created`` is the wall clock: the vectors hold 0."""
    return [{**p, "created": 0} if isinstance(p, dict) and "created" in p else p for p in payloads]


def client_for(status: int, content: bytes, content_type: str) -> openai.OpenAI:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, headers={"content-type": content_type}, content=content)

    return openai.OpenAI(
        api_key="test",
        base_url="http://gateway.test/v1",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )


def sdk_streamed(out: bytes) -> ParsedChatCompletionSnapshot:
    """What the official SDK assembles from our bytes (raises the SDK's error for an error object).

    The accumulated snapshot, because ``get_final_completion`` refuses answers cut off by ``length``.
    """
    client = client_for(200, out, "text/event-stream")
    state: ChatCompletionStreamState[None] = ChatCompletionStreamState()
    for chunk in client.chat.completions.create(
        model="gpt-vector", messages=[{"role": "user", "content": "hi"}], stream=True
    ):
        state.handle_chunk(chunk)
    return state.current_completion_snapshot


def sdk_view(completion: ChatCompletion) -> dict[str, Any]:
    """The parts of an answer a client uses; arguments parsed when they are JSON."""
    (choice,) = completion.choices
    message = choice.message
    calls = []
    for call in message.tool_calls or []:
        assert call.type == "function"
        try:
            arguments = json.loads(call.function.arguments)
        except json.JSONDecodeError:
            arguments = call.function.arguments
        calls.append({"id": call.id, "name": call.function.name, "arguments": arguments})
    return {
        "content": message.content,
        "reasoning_content": (message.model_extra or {}).get("reasoning_content"),
        "tool_calls": calls,
        "finish_reason": choice.finish_reason,
        "usage": completion.usage.model_dump(exclude_none=True) if completion.usage else None,
    }


def check_sdk(expected: dict[str, Any], out: bytes) -> None:
    if "error" in expected:
        with pytest.raises(openai.APIError) as raised:
            sdk_streamed(out)
        assert raised.value.body == expected["error"]
        assert raised.value.message == expected["error"]["message"]
    else:
        assert sdk_view(sdk_streamed(out)) == expected["completion"]


# --- the shared vectors -----------------------------------------------------------------------------------


def test_vectors_are_present() -> None:
    assert len(NAMES) >= 15
    for name in NAMES:
        assert (STREAMS / f"{name}.json").exists(), name


@pytest.mark.parametrize("name", NAMES)
def test_vector(implementation: str, name: str) -> None:
    raw, expected = load_vector(name)
    out = run([raw], include_usage=expected["include_usage"])
    payloads = frames(out)
    check_frames(payloads, include_usage=expected["include_usage"])
    assert normalised(payloads) == expected["chunks"]
    check_sdk(expected, out)


@pytest.mark.parametrize("name", NAMES)
def test_vector_line_by_line_and_byte_by_byte(implementation: str, name: str) -> None:
    raw, expected = load_vector(name)
    whole = normalised(frames(run([raw], include_usage=expected["include_usage"])))
    by_line = run(raw.splitlines(keepends=True), include_usage=expected["include_usage"])
    by_byte = run([raw[i : i + 1] for i in range(len(raw))], include_usage=expected["include_usage"])
    assert normalised(frames(by_line)) == whole
    assert normalised(frames(by_byte)) == whole


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_random_splits_match_the_unsplit_feed(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(NAMES))
    raw, expected = load_vector(name)
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(raw) - 1)), max_size=40)))
    reads = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    out = run(reads, include_usage=expected["include_usage"])
    assert normalised(frames(out)) == expected["chunks"]


# --- behaviour --------------------------------------------------------------------------------------------


def test_the_sdk_stream_helper_reads_the_same_answer() -> None:
    raw, expected = load_vector("parallel_tool_calls")
    client = client_for(200, run([raw], include_usage=True), "text/event-stream")
    with client.chat.completions.stream(
        model="gpt-vector", messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        final = stream.get_final_completion()
    assert sdk_view(final) == expected["completion"]


def test_completion_id_can_be_given_and_is_on_every_chunk() -> None:
    raw, _ = load_vector("usage_with_cache")
    payloads = frames(run([raw], include_usage=True, completion_id="chatcmpl-fixed"))
    assert {p["id"] for p in payloads[:-1]} == {"chatcmpl-fixed"}


def test_done_comes_at_message_stop_and_nothing_after_it() -> None:
    raw, _ = load_vector("text_only")
    head, stop = raw.split(b"event: message_stop")
    stream = AnthropicToOpenAIStream(model="gpt-vector")
    assert not stream.feed(head).endswith(b"data: [DONE]\n\n")
    assert not stream.finished
    assert stream.feed(b"event: message_stop" + stop).endswith(b"data: [DONE]\n\n")
    assert stream.finished and not stream.errored
    assert stream.feed(raw) == b"" and stream.close() == b""


def test_nothing_follows_an_error() -> None:
    raw, _ = load_vector("error_after_text")
    stream = AnthropicToOpenAIStream(model="gpt-vector", include_usage=True)
    out = stream.feed(raw + b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    assert out.endswith(b"\n\n") and b"[DONE]" not in out
    assert stream.finished and stream.errored
    assert stream.close() == b""


def test_empty_input_is_an_error_not_an_empty_answer() -> None:
    payloads = frames(run([]))
    assert payloads == [
        {
            "error": {
                "message": "the upstream stream ended before the answer was complete",
                "type": "server_error",
                "param": None,
                "code": None,
            }
        }
    ]


def test_error_event_without_json_still_reports_its_text() -> None:
    start, _ = load_vector("text_only")
    head = start.split(b"event: content_block_start")[0]
    payloads = frames(run([head + b"event: error\ndata: upstream exploded\n\n"]))
    assert payloads[-1]["error"]["message"] == "upstream exploded"
    assert payloads[-1]["error"]["type"] == "server_error"


def test_content_before_message_start_still_gives_a_well_formed_stream() -> None:
    raw, _ = load_vector("text_only")
    body = raw.split(b"\n\n", 1)[1]  # the message_start frame removed
    payloads = frames(run([body]))
    check_frames(payloads, include_usage=False)
    assert payloads[0]["id"].startswith("chatcmpl-msg_01")
    assert "".join(p["choices"][0]["delta"].get("content", "") for p in payloads[:-1]) == "Hello, world!"


def test_deltas_for_unknown_blocks_or_of_the_wrong_type_are_dropped() -> None:
    raw, _ = load_vector("text_only")
    head, tail = raw.split(b"event: content_block_stop")
    stray = (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":7,'
        b'"delta":{"type":"text_delta","text":"lost"}}\n\n'
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"input_json_delta","partial_json":"{}"}}\n\n'
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"thinking_delta","thinking":"lost"}}\n\n'
    )
    out = run([head + stray + b"event: content_block_stop" + tail])
    assert sdk_view(sdk_streamed(out))["content"] == "Hello, world!"
    assert b"lost" not in out


# --- streamed and not streamed look the same --------------------------------------------------------------


def sdk_not_streamed(message: dict[str, Any]) -> ChatCompletion:
    body = orjson.dumps(anthropic_message_to_openai(message, model="gpt-vector"))
    client = client_for(200, body, "application/json")
    return client.chat.completions.create(model="gpt-vector", messages=[{"role": "user", "content": "hi"}])


def same_answer(message: dict[str, Any], reads: list[bytes]) -> None:
    streamed = sdk_view(sdk_streamed(run(reads, include_usage=True)))
    whole = sdk_view(sdk_not_streamed(message))
    # OpenAI itself sends content null for tool-call-only answers and starts streams with content ""
    if whole["content"] is None:
        whole["content"] = ""
    assert streamed == whole


@pytest.mark.parametrize(
    "name",
    # kept verbatim only in a complete message: a stream forwards argument fragments untouched anyway
    [n for n in RESPONSES if n != "unparsed_arguments_unwrapped"],
)
def test_response_vectors_streamed_and_not_streamed_agree(name: str) -> None:
    message = json.loads((VECTORS / "responses" / f"{name}.json").read_text())["anthropic"]
    same_answer(message, [message_to_events(message)])


_text = st.text(st.characters(codec="utf-8"), max_size=30)
_json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | _text,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True), inner, max_size=3)
    ),
    max_leaves=8,
)
_blocks = st.lists(
    st.one_of(
        st.builds(lambda t: {"type": "text", "text": t}, _text),
        st.builds(lambda t: {"type": "thinking", "thinking": t, "signature": "sig"}, _text),
        st.builds(
            lambda i, n, args: {"type": "tool_use", "id": f"toolu_{i}", "name": n, "input": args},
            st.from_regex(r"[A-Za-z0-9]{1,12}", fullmatch=True),
            st.from_regex(r"[a-z_]{1,10}", fullmatch=True),
            st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True), _json_value, max_size=4),
        ),
    ),
    max_size=6,
)
_usage = st.fixed_dictionaries(
    {
        "input_tokens": st.integers(0, 10**6),
        "output_tokens": st.integers(0, 10**5),
        "cache_read_input_tokens": st.integers(0, 10**6),
        "cache_creation_input_tokens": st.integers(0, 10**5),
    }
)
_stop = st.sampled_from(
    [
        "end_turn",
        "max_tokens",
        "stop_sequence",
        "tool_use",
        "pause_turn",
        "refusal",
        "model_context_window_exceeded",
    ]
)


@settings(max_examples=100, deadline=None)
@given(content=_blocks, stop_reason=_stop, usage=_usage, data=st.data())
def test_random_answers_streamed_in_random_pieces_match_the_whole_answer(
    content: list[dict[str, Any]], stop_reason: str, usage: dict[str, int], data: st.DataObject
) -> None:
    message = {
        "id": "msg_random",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }
    raw = message_to_events(message)
    cuts = sorted(data.draw(st.sets(st.integers(1, len(raw) - 1), max_size=30)))
    same_answer(message, [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)])
