"""EventRewriter: pass-through by default, index renumbering when blocks are dropped or added."""

from __future__ import annotations

import random

import orjson
import pytest

from ccr_fast.transformers.event_rewriter import EventRewriter, JSONDict, frame
from tests.sse_checks import blocks, checked, parse
from tests.transformers.sse_helpers import PING, USAGE, run_filter, stream, text, thinking, tool_use


class DropThinking(EventRewriter):
    """Drops thinking blocks: what follows must move down."""

    def on_block_start(self, index: int, block: JSONDict) -> None:
        if block.get("type") != "thinking":
            self.forward_block(index, block)


class Annotate(EventRewriter):
    """Adds a text block after each tool_use block and one more before message_stop."""

    def on_block_stop(self, index: int) -> None:
        self.pass_stop(index)
        out = self.open_block({"type": "text", "text": ""})
        self.write(out, {"type": "text_delta", "text": f"after {index}"})
        self.close_block(out)

    def on_message_stop(self) -> None:
        self.emit("ping", {"type": "ping"})


def test_the_base_class_passes_a_stream_through_byte_for_byte() -> None:
    events = stream(
        thinking("hm"), text("Hello", " there"), tool_use("f", '{"a"', ": 1}"), stop_reason="tool_use"
    )
    events.insert(3, PING)
    raw = b"".join(events)
    assert run_filter(EventRewriter, events) == raw
    assert run_filter(EventRewriter, events, random.Random(3)) == raw


def test_errors_unknown_events_and_non_json_data_pass_through() -> None:
    events = [
        frame("message_start", {"type": "message_start", "message": {"usage": {}}}),
        b'event: future_event\ndata: {"type": "future_event", "x": 1}\n\n',
        b"data: not json\n\n",
        b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": "x"}\n\n',
        frame("error", {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}),
    ]
    assert run_filter(EventRewriter, events) == b"".join(events)


def test_crlf_framing_and_multi_line_data_are_read_and_normalised() -> None:
    raw = b'event: ping\r\ndata: {"type":\r\ndata: "ping"}\r\n\r\n'
    out = run_filter(EventRewriter, [raw])
    assert out == b'event: ping\ndata: {"type":\ndata: "ping"}\n\n'


def test_empty_feeds_give_nothing() -> None:
    f = EventRewriter()
    assert f.feed(b"") == b""
    assert f.close() == b""


def test_dropping_a_block_renumbers_the_rest() -> None:
    events = stream(thinking("a", "b"), text("Hi"), tool_use("f", '{"x": 1}'), stop_reason="tool_use")
    out = run_filter(DropThinking, events)
    indices = [e["index"] for e in parse(out) if "index" in e]
    assert indices == [0, 0, 0, 1, 1, 1]
    message = checked(out)
    assert blocks(message) == [
        {"type": "text", "text": "Hi"},
        {"type": "tool_use", "id": "toolu_01", "name": "f", "input": {"x": 1}},
    ]
    assert message.stop_reason == "tool_use"
    assert message.usage.output_tokens == USAGE["output_tokens"]


def test_deltas_keep_their_bytes_when_the_index_is_unchanged() -> None:
    # spaced the way Anthropic's servers write it, which re-encoding would not reproduce
    delta = (
        b"event: content_block_delta\n"
        b'data: {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "x"}}\n\n'
    )
    events = stream(text("x"))
    events[2] = delta
    assert delta in run_filter(DropThinking, events)


def test_blocks_can_be_added_between_and_after_upstream_blocks() -> None:
    events = stream(text("one"), tool_use("f", "{}"), stop_reason="tool_use")
    out = run_filter(Annotate, events)
    message = checked(out)
    assert [b.get("text") or b["name"] for b in blocks(message)] == ["one", "after 0", "f", "after 1"]
    kinds = [e["type"] for e in parse(out)]
    assert kinds[-3:] == ["message_delta", "ping", "message_stop"]


@pytest.mark.parametrize("seed", range(5))
def test_output_does_not_depend_on_how_events_are_grouped(seed: int) -> None:
    events = stream(thinking("a"), text("b", "c"), tool_use("f", '{"x"', ": 2}"), stop_reason="tool_use")
    assert run_filter(DropThinking, events, random.Random(seed)) == run_filter(DropThinking, events)


def test_frame_is_anthropics_event_form() -> None:
    assert frame("ping", {"type": "ping"}) == b'event: ping\ndata: {"type":"ping"}\n\n'
    assert orjson.loads(frame("x", {"a": "é"}).split(b"data: ")[1]) == {"a": "é"}
