"""Usage peek on Anthropic pass-through streams, under both SSE decoder implementations."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccr_fast import _speedups
from ccr_fast.protocol.anthropic_stream import USAGE_KEYS, AnthropicUsagePeek, usage_from_message

STREAMS = Path(__file__).resolve().parents[1] / "vectors" / "sse" / "streams.json"
NOT_BUILT = "ccr_fast._ext.sse_framer is not built (run: python setup.py build_ext --inplace)"


def _anthropic_fixture() -> bytes:
    cases = json.loads(STREAMS.read_text())["cases"]
    (case,) = [c for c in cases if c["name"] == "anthropic_crlf"]
    return "".join(case["chunks"]).encode()


ANTHROPIC_CRLF = _anthropic_fixture()
FIXTURE_USAGE = {
    "input_tokens": 472,
    "output_tokens": 89,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 2048,
}


@pytest.fixture(
    params=[
        pytest.param("1", id="pure"),
        pytest.param(
            "0",
            id="compiled",
            marks=pytest.mark.skipif(_speedups.compiled("sse_framer") is None, reason=NOT_BUILT),
        ),
    ]
)
def decoder_choice(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Select the SSE decoder the peek loads, through the public CCR_FAST_PURE switch."""
    monkeypatch.setenv("CCR_FAST_PURE", request.param)
    yield request.param


def frame(name: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def message_start(**usage: int) -> bytes:
    message = {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "usage": usage}
    return frame("message_start", {"type": "message_start", "message": message})


def text_delta(text: str) -> bytes:
    delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}
    return frame("content_block_delta", delta)


def message_delta(stop_reason: str | None, **usage: int) -> bytes:
    payload = {"type": "message_delta", "delta": {"stop_reason": stop_reason}, "usage": usage}
    return frame("message_delta", payload)


MESSAGE_STOP = frame("message_stop", {"type": "message_stop"})


def peek_of(*chunks: bytes) -> AnthropicUsagePeek:
    peek = AnthropicUsagePeek()
    for chunk in chunks:
        peek.feed(chunk)
    peek.close()
    return peek


def test_uses_the_selected_decoder(decoder_choice: str) -> None:
    decoder = AnthropicUsagePeek()._decoder  # the one private look: proves the parametrisation is real
    expected = "ccr_fast.protocol.sse" if decoder_choice == "1" else "ccr_fast._ext.sse_framer"
    assert type(decoder).__module__ == expected


def test_fresh_peek_is_empty(decoder_choice: str) -> None:
    peek = AnthropicUsagePeek()
    assert peek.usage == dict.fromkeys(USAGE_KEYS, 0)
    assert (peek.stop_reason, peek.saw_message_stop, peek.error) == (None, False, None)


def test_fixture_stream_in_one_chunk(decoder_choice: str) -> None:
    peek = peek_of(ANTHROPIC_CRLF)
    assert peek.usage == FIXTURE_USAGE
    assert (peek.stop_reason, peek.saw_message_stop, peek.error) == ("tool_use", True, None)


def test_fixture_stream_byte_by_byte(decoder_choice: str) -> None:
    peek = peek_of(*(ANTHROPIC_CRLF[i : i + 1] for i in range(len(ANTHROPIC_CRLF))))
    assert peek.usage == FIXTURE_USAGE
    assert (peek.stop_reason, peek.saw_message_stop) == ("tool_use", True)


@pytest.mark.parametrize(
    "pure",
    [
        pytest.param("1", id="pure"),
        pytest.param(
            "0",
            id="compiled",
            marks=pytest.mark.skipif(_speedups.compiled("sse_framer") is None, reason=NOT_BUILT),
        ),
    ],
)
@settings(max_examples=100, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=len(ANTHROPIC_CRLF)), max_size=30))
def test_fixture_stream_at_random_splits(pure: str, cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(ANTHROPIC_CRLF)]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CCR_FAST_PURE", pure)
        peek = peek_of(*(ANTHROPIC_CRLF[a:b] for a, b in itertools.pairwise(bounds)))
    assert peek.usage == FIXTURE_USAGE
    assert (peek.stop_reason, peek.saw_message_stop, peek.error) == ("tool_use", True, None)


def test_message_delta_usage_overwrites_message_start(decoder_choice: str) -> None:
    peek = peek_of(
        message_start(input_tokens=0, output_tokens=1, cache_read_input_tokens=5),
        text_delta("hi"),
        message_delta("end_turn", input_tokens=1200, output_tokens=30),
        message_delta(None, output_tokens=42),
        MESSAGE_STOP,
    )
    assert peek.usage == {
        "input_tokens": 1200,
        "output_tokens": 42,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 5,
    }
    assert peek.stop_reason == "end_turn"


def test_error_event_mid_stream(decoder_choice: str) -> None:
    error = {"type": "overloaded_error", "message": "Overloaded"}
    peek = peek_of(
        message_start(input_tokens=10, output_tokens=1),
        text_delta("a"),
        frame("error", {"type": "error", "error": error}),
    )
    assert peek.error == error
    assert peek.saw_message_stop is False
    assert peek.usage["input_tokens"] == 10


def test_deltas_are_not_parsed(decoder_choice: str, monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[bytes] = []
    real_loads: Callable[[bytes], Any] = orjson.loads

    def counting_loads(payload: bytes) -> Any:
        parsed.append(payload)
        return real_loads(payload)

    monkeypatch.setattr(orjson, "loads", counting_loads)
    deltas = [text_delta(f"word {i} ") for i in range(200)]
    ping = frame("ping", {"type": "ping"})
    block_start = frame("content_block_start", {"type": "content_block_start", "index": 0})
    block_stop = frame("content_block_stop", {"type": "content_block_stop", "index": 0})
    peek = peek_of(
        message_start(input_tokens=3),
        block_start,
        ping,
        *deltas,
        block_stop,
        message_delta("end_turn"),
        MESSAGE_STOP,
    )
    assert [json.loads(p)["type"] for p in parsed] == ["message_start", "message_delta"]
    assert peek.saw_message_stop


def test_odd_payloads_are_skipped_without_raising(decoder_choice: str) -> None:
    peek = peek_of(
        b"event: message_start\ndata: {not json\n\n",
        b"event: message_delta\ndata: [1, 2]\n\n",
        b'event: error\ndata: {"type": "error", "error": "just a string"}\n\n',
        message_delta(None),
        b"event: message_delta\ndata: "
        + orjson.dumps(
            {
                "usage": {"output_tokens": None, "input_tokens": True, "cache_creation": {"x": 1}},
                "delta": {"stop_reason": 5},
            }
        )
        + b"\n\n",
        b"event: content_block_delta\ndata: {broken\n\n",
        b'data: {"type": "message_stop"}\n\n',
    )
    assert peek.usage == dict.fromkeys(USAGE_KEYS, 0)
    assert (peek.stop_reason, peek.error, peek.saw_message_stop) == (None, None, False)


def test_final_event_without_blank_line_counts_at_close(decoder_choice: str) -> None:
    peek = AnthropicUsagePeek()
    peek.feed(message_start(input_tokens=7, output_tokens=1) + message_delta("max_tokens", output_tokens=9))
    peek.feed(b'event: message_stop\ndata: {"type":"message_stop"}\n')
    assert peek.saw_message_stop is False
    peek.close()
    assert peek.saw_message_stop is True
    assert (peek.usage["input_tokens"], peek.usage["output_tokens"], peek.stop_reason) == (7, 9, "max_tokens")


def test_usage_from_message() -> None:
    body = orjson.dumps(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "content": [{"type": "text", "text": "Hi"}],
            "stop_reason": "end_turn",
            "usage": {
                "input_tokens": 25,
                "output_tokens": 12,
                "cache_creation_input_tokens": 100,
                "cache_read_input_tokens": 0,
                "cache_creation": {"ephemeral_5m_input_tokens": 100},
                "service_tier": "standard",
            },
        }
    )
    assert usage_from_message(body) == {
        "input_tokens": 25,
        "output_tokens": 12,
        "cache_creation_input_tokens": 100,
        "cache_read_input_tokens": 0,
    }


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"type": "message"}',
        b'{"usage": null}',
        b'{"usage": {"input_tokens": "5"}}',
    ],
)
def test_usage_from_message_defaults_to_zero(body: bytes) -> None:
    assert usage_from_message(body) == dict.fromkeys(USAGE_KEYS, 0)


def test_usage_from_message_partial_usage() -> None:
    usage = usage_from_message(b'{"usage": {"output_tokens": 3}}')
    assert usage == {**dict.fromkeys(USAGE_KEYS, 0), "output_tokens": 3}
