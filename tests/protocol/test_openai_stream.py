"""OpenAI stream → Anthropic stream: shared vectors (compiled and pure), event-order rules, the SDK's view.

Every output is checked three ways: against the vector's expected event list, against the ordering rules the
Anthropic SDK's accumulator relies on (protocols.md §2.3), and by feeding the bytes to the official
``anthropic`` client through a mock transport and comparing the message it assembles.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.sse_checks import check_order, check_vector, parse, sdk_message, sdk_view, without_minted_ids

from ccr_fast import _speedups
from ccr_fast.protocol import openai_stream
from ccr_fast.protocol.openai_stream import Implementation, OpenAIStreamTranslator

VECTORS = Path(__file__).parent.parent / "vectors" / "openai"
NAMES = sorted(p.stem for p in VECTORS.glob("*.sse"))
BUILT = _speedups.compiled("openai_fast") is not None and _speedups.compiled("sse_framer") is not None
IMPLEMENTATIONS = [
    pytest.param(
        "compiled", id="compiled", marks=pytest.mark.skipif(not BUILT, reason="extensions not built")
    ),
    pytest.param("pure", id="pure"),
]


# --- helpers ----------------------------------------------------------------------------------------------


def load_vector(name: str) -> tuple[bytes, dict[str, Any]]:
    return (VECTORS / f"{name}.sse").read_bytes(), json.loads((VECTORS / f"{name}.json").read_text())


def translator(implementation: Implementation, input_tokens: int = 0) -> OpenAIStreamTranslator:
    return OpenAIStreamTranslator(
        model="claude-vector",
        message_id="msg_vector",
        input_tokens=input_tokens,
        implementation=implementation,
    )


def run(implementation: Implementation, reads: list[bytes], input_tokens: int = 0) -> bytes:
    t = translator(implementation, input_tokens)
    return b"".join(t.feed(read) for read in reads) + t.close()


def run_stable(implementation: Implementation, reads: list[bytes], input_tokens: int = 0) -> bytes:
    """``run`` with minted (random) tool ids replaced, so that two runs can be compared byte for byte."""
    return without_minted_ids(run(implementation, reads, input_tokens))


def sse(*chunks: Any) -> bytes:
    """Upstream SSE for the given chunk objects; the string "[DONE]" is the end marker."""
    return b"".join(
        b"data: " + (c.encode() if isinstance(c, str) else orjson.dumps(c)) + b"\n\n" for c in chunks
    )


def choice(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}], **extra}


def lines_of(raw: bytes) -> list[bytes]:
    return raw.splitlines(keepends=True)


# --- the shared vectors -----------------------------------------------------------------------------------


def test_vectors_are_present() -> None:
    assert len(NAMES) >= 30
    for name in NAMES:
        assert (VECTORS / f"{name}.json").exists(), name


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("name", NAMES)
def test_vector_in_one_read(implementation: Implementation, name: str) -> None:
    raw, expected = load_vector(name)
    check_vector(expected, run(implementation, [raw], expected["input_tokens"]))


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("name", NAMES)
def test_vector_line_by_line_and_byte_by_byte(implementation: Implementation, name: str) -> None:
    """protocols §6.1: any split of the upstream bytes gives the same output bytes."""
    raw, expected = load_vector(name)
    whole = run_stable(implementation, [raw], expected["input_tokens"])
    assert run_stable(implementation, lines_of(raw), expected["input_tokens"]) == whole
    assert (
        run_stable(implementation, [raw[i : i + 1] for i in range(len(raw))], expected["input_tokens"])
        == whole
    )


@pytest.mark.skipif(not BUILT, reason="extensions not built")
@pytest.mark.parametrize("name", NAMES)
def test_compiled_and_pure_emit_the_same_events(name: str) -> None:
    raw, expected = load_vector(name)
    assert parse(run_stable("compiled", [raw], expected["input_tokens"])) == parse(
        run_stable("pure", [raw], expected["input_tokens"])
    )


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_random_splits_match_the_unsplit_feed(implementation: Implementation, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(NAMES))
    raw, expected = load_vector(name)
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(raw) - 1)), max_size=40)))
    reads = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    assert run_stable(implementation, reads, expected["input_tokens"]) == run_stable(
        implementation, [raw], expected["input_tokens"]
    )


# --- CCR bugs, by name ------------------------------------------------------------------------------------


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_ccr_bug_1_usage_in_the_same_read_as_finish_reason_is_kept(implementation: Implementation) -> None:
    usage = {"prompt_tokens": 30, "completion_tokens": 2, "total_tokens": 32}
    raw = sse(choice({"content": "Hi"})) + sse(choice({}, "stop"), {"choices": [], "usage": usage}, "[DONE]")
    t = translator(implementation)
    t.feed(sse(choice({"role": "assistant", "content": ""})))
    t.feed(raw[: raw.index(b"data:", 1)])
    last = parse(t.feed(raw[raw.index(b"data:", 1) :]))
    assert [e["type"] for e in last] == ["content_block_stop", "message_delta", "message_stop"]
    assert last[1]["usage"] == {
        "input_tokens": 30,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 2,
    }
    assert t.usage["output_tokens"] == 2 and t.stop_reason == "end_turn" and t.finished and not t.errored


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_ccr_bug_2_text_after_a_tool_call_gets_a_new_block(implementation: Implementation) -> None:
    raw = sse(
        choice({"content": "Checking."}),
        choice(
            {"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "Read", "arguments": "{}"}}]}
        ),
        choice({"content": "Done."}, "tool_calls"),
        "[DONE]",
    )
    events = parse(run(implementation, [raw]))
    check_order(events)
    starts = [(e["index"], e["content_block"]["type"]) for e in events if e["type"] == "content_block_start"]
    assert starts == [(0, "text"), (1, "tool_use"), (2, "text")]
    last_text = [e for e in events if e["type"] == "content_block_delta"][-1]
    assert last_text == {
        "type": "content_block_delta",
        "index": 2,
        "delta": {"type": "text_delta", "text": "Done."},
    }


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_ccr_bug_3_mid_stream_error_has_anthropics_shape(implementation: Implementation) -> None:
    raw = sse(
        choice({"content": "par"}),
        {"error": {"message": "Rate limit reached", "type": "rate_limit_exceeded"}},
    )
    t = translator(implementation)
    events = parse(t.feed(raw) + t.close())
    assert events[-1] == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "Rate limit reached"},
    }
    assert "message_stop" not in [e["type"] for e in events]
    assert t.errored and t.finished
    assert t.feed(sse(choice({"content": "late"}))) == b"" and t.close() == b""


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_ccr_bug_6_and_22_missing_usage_still_reports_usage(implementation: Implementation) -> None:
    events = parse(run(implementation, [sse(choice({"content": "x"}, "stop"), "[DONE]")], input_tokens=77))
    assert events[-2]["usage"] == {
        "input_tokens": 77,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 0,
    }


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_usage_without_prompt_tokens_keeps_the_input_estimate(implementation: Implementation) -> None:
    raw = sse(choice({"content": "x"}, "stop", usage={"completion_tokens": 5}), "[DONE]")
    events = parse(run(implementation, [raw], input_tokens=50))
    assert events[-2]["usage"]["input_tokens"] == 50
    assert events[-2]["usage"]["output_tokens"] == 5


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_ccr_bug_9_no_arguments_reach_a_closed_block(implementation: Implementation) -> None:
    """Three calls whose fragments arrive round-robin, in many reads."""
    frags = {0: ['{"a":', '"x"', "}"], 1: ['{"b":', "[1,", "2]}"], 2: ['{"c":', "true", "}"]}
    chunks: list[Any] = [
        choice(
            {"tool_calls": [{"index": i, "id": f"call_{i}", "function": {"name": f"t{i}", "arguments": ""}}]}
        )
        for i in range(3)
    ]
    for step in range(3):
        chunks += [
            choice({"tool_calls": [{"index": i, "function": {"arguments": frags[i][step]}}]})
            for i in range(3)
        ]
    raw = sse(*chunks, choice({}, "tool_calls"), "[DONE]")
    events = parse(run(implementation, [raw]))
    check_order(events)
    arguments: dict[int, str] = {}
    for event in events:
        if event["type"] == "content_block_delta":
            arguments[event["index"]] = arguments.get(event["index"], "") + event["delta"]["partial_json"]
    assert {i: json.loads(a) for i, a in arguments.items()} == {
        0: {"a": "x"},
        1: {"b": [1, 2]},
        2: {"c": True},
    }
    assert [b.input for b in sdk_message(run(implementation, [raw])).content] == [
        {"a": "x"},
        {"b": [1, 2]},
        {"c": True},
    ]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_ccr_bug_10_many_events_per_read_and_events_split_across_reads(
    implementation: Implementation,
) -> None:
    usage = {"prompt_tokens": 8, "completion_tokens": 3}
    raw = sse(
        choice({"content": "a"}),
        choice({"content": "b"}),
        choice({}, "stop"),
        {"choices": [], "usage": usage},
        "[DONE]",
    )
    middle = raw.index(b"usage") + 3  # the usage event is cut in two
    out = run(implementation, [raw[:middle], raw[middle:]])
    assert sdk_view(sdk_message(out))["usage"]["output_tokens"] == 3
    assert out == run(implementation, [raw])


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_ccr_bug_11_upstream_failure_mid_stream_ends_with_an_error_event(
    implementation: Implementation,
) -> None:
    t = translator(implementation)
    head = t.feed(sse(choice({"role": "assistant", "content": ""}), choice({"content": "Hel"})))
    tail = t.fail("api_error", "upstream connection reset")
    events = parse(head + tail)
    check_order(events)
    assert events[-1] == {
        "type": "error",
        "error": {"type": "api_error", "message": "upstream connection reset"},
    }
    assert t.errored and t.finished and t.stop_reason is None
    assert t.fail("api_error", "again") == b"" and t.close() == b""


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_ccr_bug_11_clean_eof_without_done_still_ends_the_message(implementation: Implementation) -> None:
    t = translator(implementation)
    out = t.feed(sse(choice({"content": "cut"}))) + t.close()
    events = parse(out)
    check_order(events)
    assert events[-1]["type"] == "message_stop" and t.stop_reason == "end_turn"
    assert t.fail("api_error", "too late") == b""


# --- behaviours beyond the vectors ------------------------------------------------------------------------


@pytest.mark.skipif(not BUILT, reason="extensions not built")
def test_plain_text_chunks_are_copied_without_reencoding() -> None:
    """The fast path keeps the upstream's own escaping; the parse-and-dump path would write raw UTF-8."""
    first = b'data: {"choices":[{"index":0,"delta":{"content":"caf\\u00e9"},"finish_reason":null}]}\n\n'
    t = translator("compiled")
    opened = t.feed(first)
    assert "café".encode() in opened  # slow path (the block was not open yet): re-encoded by orjson
    assert b"caf\\u00e9" in t.feed(first)  # fast path: verbatim


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_text_waits_behind_an_unfinished_tool_call(implementation: Implementation) -> None:
    raw = sse(
        choice(
            {
                "tool_calls": [
                    {"index": 0, "id": "call_1", "function": {"name": "Bash", "arguments": '{"command":'}}
                ]
            }
        ),
        choice({"content": "meanwhile"}),
        choice({"tool_calls": [{"index": 0, "function": {"arguments": '"ls"}'}}]}),
        choice({"content": " more"}),
        "[DONE]",
    )
    message = sdk_message(run(implementation, [raw]))
    assert [b.type for b in message.content] == ["tool_use", "text"]
    assert message.content[0].input == {"command": "ls"}  # type: ignore[union-attr]
    assert message.content[1].text == "meanwhile more"  # type: ignore[union-attr]
    assert message.stop_reason == "tool_use"


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_tool_name_arriving_after_the_id_is_waited_for(implementation: Implementation) -> None:
    raw = sse(
        choice({"tool_calls": [{"index": 0, "id": "call_1", "function": {"arguments": ""}}]}),
        choice({"tool_calls": [{"index": 0, "function": {"name": "Glob", "arguments": '{"pattern":"*"}'}}]}),
        "[DONE]",
    )
    events = parse(run(implementation, [raw]))
    check_order(events)
    assert events[1]["content_block"] == {
        "type": "tool_use",
        "id": "call_1",
        "name": "Glob",
        "input": {},
    }


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_legacy_function_call_and_list_content(implementation: Implementation) -> None:
    raw = sse(
        choice({"content": [{"type": "text", "text": "Calling."}]}),
        choice({"function_call": {"name": "lookup", "arguments": '{"q":'}}),
        choice({"function_call": {"arguments": '"x"}'}}, "function_call"),
        "[DONE]",
    )
    message = sdk_message(run(implementation, [raw]))
    assert [b.type for b in message.content] == ["text", "tool_use"]
    assert message.content[1].name == "lookup" and message.content[1].input == {"q": "x"}  # type: ignore[union-attr]
    assert message.content[1].id.startswith("toolu_01")  # type: ignore[union-attr]
    assert message.stop_reason == "tool_use"


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_other_choices_keep_alives_and_garbage_are_ignored(implementation: Implementation) -> None:
    raw = (
        b": OPENROUTER PROCESSING\n\n"
        + sse({"choices": [{"index": 1, "delta": {"content": "other"}, "finish_reason": None}]})
        + b"data: not json\n\n"
        + sse([1, 2], choice({"content": "mine"}, "stop"), "[DONE]")
        + sse(choice({"content": "after done"}))
    )
    message = sdk_message(run(implementation, [raw]))
    assert [b.model_dump(include={"type", "text"}) for b in message.content] == [
        {"type": "text", "text": "mine"}
    ]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_error_event_name_from_upstream(implementation: Implementation) -> None:
    raw = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"busy"}}\n\n'
    events = parse(run(implementation, [raw]))
    assert events == [{"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_empty_upstream_stream_still_yields_a_valid_message(implementation: Implementation) -> None:
    events = parse(run(implementation, [b""]))
    check_order(events)
    assert [e["type"] for e in events] == ["message_start", "message_delta", "message_stop"]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_message_start_carries_model_id_and_estimate(implementation: Implementation) -> None:
    t = OpenAIStreamTranslator(model="claude-opus-4-8", input_tokens=1234, implementation=implementation)
    start = parse(t.feed(sse(choice({"role": "assistant", "content": ""}))))[0]["message"]
    assert start["model"] == "claude-opus-4-8"
    assert re.fullmatch(r"msg_01[0-9A-Za-z]{24}", start["id"])
    assert start["usage"]["input_tokens"] == 1234
    assert t.usage["input_tokens"] == 1234 and not t.finished


def test_asking_for_compiled_modules_that_are_not_built_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_speedups, "compiled", lambda name: None)
    with pytest.raises(RuntimeError, match="not built"):
        openai_stream._hot_paths.__wrapped__("compiled")
