"""The text-delta fast path: the compiled module and its pure twin, held to one contract and to each other."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccr_fast import _speedups
from ccr_fast.protocol import openai_fast as pure

COMPILED = _speedups.compiled("openai_fast")
needs_compiled = pytest.mark.skipif(COMPILED is None, reason="ccr_fast._ext.openai_fast is not built")
IMPLEMENTATIONS = [
    pytest.param(pure, id="pure"),
    pytest.param(COMPILED, id="compiled", marks=needs_compiled),
]
HEAD = b'{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1760000000,"model":"gpt-4o-mini",'


def chunk(delta: bytes = b'{"content":"Hi"}', choice_extra: bytes = b"", top_extra: bytes = b"") -> bytes:
    return (
        HEAD
        + b'"choices":[{"index":0,"delta":'
        + delta
        + b',"logprobs":null,"finish_reason":null'
        + choice_extra
        + b"}]"
        + top_extra
        + b"}"
    )


ACCEPTED: dict[str, tuple[bytes, bytes]] = {
    "openai": (chunk(), b"Hi"),
    "role chunk with empty content": (chunk(b'{"role":"assistant","content":"","refusal":null}'), b""),
    "usage null": (chunk(top_extra=b',"usage":null'), b"Hi"),
    "deepseek reasoning null": (chunk(b'{"content":"x","reasoning_content":null}'), b"x"),
    "openrouter empty details": (
        chunk(b'{"role":"assistant","content":"x","reasoning":null,"reasoning_details":[ ]}'),
        b"x",
    ),
    "escapes kept verbatim": (
        chunk(b'{"content":"a\\"b\\\\c\\/d\\n\\t\\u00e9\\ud83d\\ude00"}'),
        b'a\\"b\\\\c\\/d\\n\\t\\u00e9\\ud83d\\ude00',
    ),
    "raw utf-8 and U+2028": (
        '{"choices":[{"index":0,"delta":{"content":"€😀\u2028"}}]}'.encode(),
        "€😀\u2028".encode(),
    ),
    "whitespace everywhere": (
        b' {\n "choices" : [ { "index" : 0 , "delta" : { "content" : "s" } } ] }\r\n',
        b"s",
    ),
    "finish_reason absent": (b'{"choices":[{"index":0,"delta":{"content":"f"}}]}', b"f"),
    "index -0": (b'{"choices":[{"index":-0,"delta":{"content":"z"}}]}', b"z"),
    "keys in any order": (
        b'{"choices":[{"finish_reason":null,"delta":{"content":"o","role":"assistant"},"index":0}],"id":"x"}',
        b"o",
    ),
    "duplicate usage, last null": (
        b'{"usage":{"prompt_tokens":1},"choices":[{"index":0,"delta":{"content":"d"}}],"usage":null}',
        b"d",
    ),
    "duplicate delta key, last has content": (
        b'{"choices":[{"index":0,"delta":{"tool_calls":[1]},"delta":{"content":"l"}}]}',
        b"l",
    ),
    "bad key value overwritten by null": (
        b'{"choices":[{"index":0,"delta":{"content":"w","reasoning":"r","reasoning":null}}]}',
        b"w",
    ),
    "unrelated nested values": (
        b'{"choices":[{"index":0,"delta":{"content":"n"},"logprobs":{"tokens":[1,2.5e3,true,false,null,{}]}}],'
        b'"provider":"x","created":-12.5E-3}',
        b"n",
    ),
}

REJECTED: dict[str, bytes] = {
    "finish reason": chunk().replace(b'"finish_reason":null', b'"finish_reason":"stop"'),
    "usage object": chunk(top_extra=b',"usage":{"prompt_tokens":3}'),
    "tool calls": chunk(b'{"content":"","tool_calls":[{"index":0}]}'),
    "reasoning text": chunk(b'{"content":"","reasoning_content":"hmm"}'),
    "refusal": chunk(b'{"content":"a","refusal":"no"}'),
    "empty object value": chunk(b'{"content":"a","function_call":{}}'),
    "top-level error": chunk(top_extra=b',"error":null'),
    "x_groq": chunk(top_extra=b',"x_groq":{"id":"r"}'),
    "error in choice": chunk(choice_extra=b',"error":{"message":"m"}'),
    "two choices": b'{"choices":[{"index":0,"delta":{"content":"a"}},{"index":1,"delta":{"content":"b"}}]}',
    "no choices": b'{"choices":[]}',
    "choices not a list": b'{"choices":{"index":0,"delta":{"content":"a"}}}',
    "choice not an object": b'{"choices":[1]}',
    "index 1": b'{"choices":[{"index":1,"delta":{"content":"a"}}]}',
    "index missing": b'{"choices":[{"delta":{"content":"a"}}]}',
    "index float": b'{"choices":[{"index":0.0,"delta":{"content":"a"}}]}',
    "index bool": b'{"choices":[{"index":false,"delta":{"content":"a"}}]}',
    "delta not an object": b'{"choices":[{"index":0,"delta":"content"}]}',
    "content null": chunk(b'{"content":null}'),
    "content list": chunk(b'{"content":[{"type":"text","text":"a"}]}'),
    "content missing": chunk(b'{"role":"assistant"}'),
    "role not a string": chunk(b'{"content":"a","role":[]}'),
    "content twice": chunk(b'{"content":"a","content":"b"}'),
    "content as another value": chunk(b'{"content":"a"}', top_extra=b',"model2":"content"'),
    "escape outside content": chunk(top_extra=b',"system_fingerprint":"fp\\u0031"'),
    "escaped key": b'{"choices":[{"index":0,"delta":{"cont\\u0065nt":"a"}}]}',
    "invalid escape": chunk(b'{"content":"a\\x41"}'),
    "lone high surrogate": chunk(b'{"content":"\\ud83d"}'),
    "lone low surrogate": chunk(b'{"content":"\\ude00"}'),
    "high surrogate then non-surrogate": chunk(b'{"content":"\\ud83d\\u0041"}'),
    "raw control character": chunk(b'{"content":"a\x01b"}'),
    "raw newline in content": chunk(b'{"content":"a\nb"}'),
    "trailing garbage": chunk() + b"x",
    "two documents": chunk() + chunk(),
    "trailing comma": b'{"choices":[{"index":0,"delta":{"content":"a"},}]}',
    "not an object": b'[{"choices":[{"index":0,"delta":{"content":"a"}}]}]',
    "done marker": b"[DONE]",
    "empty": b"",
    "bom": b"\xef\xbb\xbf" + chunk(),
    "number overflows a double": chunk(top_extra=b',"created2":1e400'),
    "long integer overflows a double": chunk(top_extra=b',"n":1' + b"0" * 320),
    "leading zero": chunk(top_extra=b',"n":01'),
    "unterminated": chunk()[:-3],
}


@pytest.mark.parametrize("module", IMPLEMENTATIONS)
@pytest.mark.parametrize("name", ACCEPTED)
def test_accepts_plain_text_deltas(module: ModuleType, name: str) -> None:
    data, escaped = ACCEPTED[name]
    assert module.match_text_delta(data) == escaped


@pytest.mark.parametrize("module", IMPLEMENTATIONS)
@pytest.mark.parametrize("name", REJECTED)
def test_rejects_everything_else(module: ModuleType, name: str) -> None:
    assert module.match_text_delta(REJECTED[name]) is None


@pytest.mark.parametrize("module", IMPLEMENTATIONS)
def test_depth_limit_matches_orjson(module: ModuleType) -> None:
    # the top-level object counts as one level: 1 + 1023 arrays is the deepest orjson accepts
    ok = chunk(top_extra=b',"deep":' + b"[" * 1023 + b"]" * 1023)
    too_deep = chunk(top_extra=b',"deep":' + b"[" * 1024 + b"]" * 1024)
    orjson.loads(ok)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(too_deep)
    assert module.match_text_delta(ok) == b"Hi"
    assert module.match_text_delta(too_deep) is None


@pytest.mark.parametrize("module", IMPLEMENTATIONS)
@pytest.mark.parametrize("index", [0, 7, 10, 123456789])
def test_text_delta_event_frame(module: ModuleType, index: int) -> None:
    frame = module.text_delta_event(index, b'say \\"hi\\" \\u00e9')
    head, data, tail = frame.split(b"\n", 2)
    assert head == b"event: content_block_delta"
    assert tail == b"\n"
    assert orjson.loads(data.removeprefix(b"data: ")) == {
        "type": "content_block_delta",
        "index": index,
        "delta": {"type": "text_delta", "text": 'say "hi" é'},
    }
    assert frame == pure.text_delta_event(index, b'say \\"hi\\" \\u00e9')


RUN_EVENTS: list[tuple[bytes | None, bytes]] = [
    *((None, data) for data, _ in ACCEPTED.values()),
    (None, REJECTED["finish reason"]),
    (None, chunk()),
]


@pytest.mark.parametrize("module", IMPLEMENTATIONS)
def test_text_delta_run_stops_at_the_first_event_it_cannot_take(module: ModuleType) -> None:
    out: list[bytes] = []
    stop = module.text_delta_run(RUN_EVENTS, 0, 3, out)
    assert stop == len(ACCEPTED)  # the finish-reason chunk goes to the full translator
    assert out == [pure.text_delta_event(3, text) for _, text in ACCEPTED.values() if text]
    rest: list[bytes] = []
    assert module.text_delta_run(RUN_EVENTS, stop + 1, 3, rest) == len(RUN_EVENTS)
    assert rest == [pure.text_delta_event(3, b"Hi")]


@pytest.mark.parametrize("module", IMPLEMENTATIONS)
@pytest.mark.parametrize(
    "event",
    [(b"message", chunk()), (None, b"[DONE]"), (None, b"not json"), ("x", b"{}"), (None, "str")],
    ids=["named event", "done", "not json", "str name", "str data"],
)
def test_text_delta_run_leaves_other_events_alone(module: ModuleType, event: Any) -> None:
    out: list[bytes] = []
    assert module.text_delta_run([(None, chunk()), event, (None, chunk())], 0, 0, out) == 1
    assert out == [pure.text_delta_event(0, b"Hi")]


@pytest.mark.parametrize("module", IMPLEMENTATIONS)
def test_text_delta_run_edges(module: ModuleType) -> None:
    out: list[bytes] = []
    assert module.text_delta_run([], 0, 0, out) == 0
    assert module.text_delta_run([(None, chunk())], 1, 0, out) == 1
    assert module.text_delta_run([(None, chunk())], -5, 0, out) == 1
    assert module.text_delta_run([[None, chunk()]], 0, 0, out) == 0  # not a (name, data) tuple
    assert out == [pure.text_delta_event(0, b"Hi")]


# --- the compiled scanner and the orjson-based twin agree, and both are sound -----------------------------

JSON_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    JSON_TEXT,
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(JSON_TEXT, inner, max_size=3),
    max_leaves=6,
)
NULLISH = st.sampled_from([None, []])
DELTA_KEYS = [
    "content",
    "role",
    "reasoning",
    "reasoning_content",
    "reasoning_details",
    "tool_calls",
    "refusal",
    "function_call",
]


def _encode(value: Any, ascii_only: bool, spaced: bool) -> bytes:
    """JSON as different servers write it: compact or spaced, raw UTF-8 or \\u escapes."""
    separators = (", ", ": ") if spaced else (",", ":")
    return json.dumps(value, ensure_ascii=ascii_only, separators=separators).encode()


@st.composite
def chunks(draw: st.DrawFn) -> bytes:
    """OpenAI-like text chunks with a few random changes each, so that both answers are common."""
    delta: dict[str, Any] = {"content": draw(JSON_TEXT)}
    choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
    top: dict[str, Any] = {"id": "chatcmpl-x", "model": "gpt", "choices": [choice]}
    extra: list[tuple[str, bytes]] = []  # raw duplicate keys: (where, '"key":value')
    for change in draw(st.lists(st.integers(0, 13), max_size=3)):
        if change == 0:
            delta[draw(st.sampled_from(DELTA_KEYS[1:]))] = draw(NULLISH)
        elif change == 1:
            delta[draw(st.sampled_from(DELTA_KEYS[1:]))] = draw(VALUES)
        elif change == 2:
            delta["content"] = draw(st.sampled_from([None, [], "content", "a\\u0000\\\\"]))
        elif change == 3:
            choice["index"] = draw(st.sampled_from([1, 0.0, False, "0", None]))
        elif change == 4:
            choice.pop(draw(st.sampled_from(["index", "delta", "finish_reason"])), None)
        elif change == 5:
            choice["finish_reason"] = draw(st.sampled_from(["stop", "length", "error"]))
        elif change == 6:
            top["usage"] = draw(st.one_of(st.none(), VALUES))
        elif change == 7:
            top[draw(st.sampled_from(["error", "x_groq"]))] = draw(VALUES)
        elif change == 8:
            top["choices"] = draw(st.sampled_from([[], [choice, choice], [1], {}]))
        elif change == 9:
            choice["logprobs"] = draw(VALUES)
            top["system_fingerprint"] = draw(VALUES)
        elif change == 10:
            key = draw(st.sampled_from(["usage", "choices", "error"]))
            extra.append(
                ("top", b'"' + key.encode() + b'":' + _encode(draw(st.one_of(NULLISH, VALUES)), False, False))
            )
        elif change == 11:
            key = draw(st.sampled_from(DELTA_KEYS))
            extra.append(
                (
                    "delta",
                    b'"' + key.encode() + b'":' + _encode(draw(st.one_of(NULLISH, VALUES)), False, False),
                )
            )
        elif change == 12:
            choice["error"] = draw(VALUES)
        else:
            extra.append(("mutate", b""))
    data = _encode(top, draw(st.booleans()), draw(st.booleans()))
    for where, pair in extra:
        if where == "top":
            data = data[:-1] + b"," + pair + b"}"
        elif where == "delta" and b'"delta":{' in data:
            at = data.index(b'"delta":{') + len(b'"delta":{')
            data = data[:at] + pair + (b"," if data[at : at + 1] != b"}" else b"") + data[at:]
        elif where == "mutate" and data:
            at = draw(st.integers(0, len(data) - 1))
            if draw(st.booleans()):
                data = data[:at] + data[at + 1 :]
            else:
                data = (
                    data[:at]
                    + draw(st.sampled_from([b"\\", b'"', b",", b"}", b"]", b" ", b"\x01", b"0"]))
                    + data[at:]
                )
    return data


def _valid_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


@needs_compiled
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks())
def test_compiled_and_pure_agree_on_generated_chunks(data: bytes) -> None:
    assert COMPILED is not None
    if not _valid_utf8(data):  # the SSE decoder only ever hands over valid UTF-8
        return
    expected = pure.match_text_delta(data)
    assert COMPILED.match_text_delta(data) == expected
    if expected is not None:
        content = orjson.loads(data)["choices"][0]["delta"]["content"]
        assert orjson.loads(b'"' + expected + b'"') == content


@needs_compiled
@settings(max_examples=500, deadline=None)
@given(st.text(max_size=80).map(str.encode))
def test_compiled_and_pure_agree_on_arbitrary_text(data: bytes) -> None:
    assert COMPILED is not None
    assert COMPILED.match_text_delta(data) == pure.match_text_delta(data)


@pytest.mark.parametrize("module", IMPLEMENTATIONS)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=40), ascii_only=st.booleans())
def test_any_text_round_trips_through_the_fast_path(module: ModuleType, text: str, ascii_only: bool) -> None:
    """Whatever the upstream's escaping style, the copied bytes decode to the original text."""
    try:
        data = _encode(
            {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}, ascii_only, False
        )
    except (UnicodeEncodeError, TypeError):
        return
    escaped = module.match_text_delta(data)
    if data.count(b'"content"') != 1:  # the text itself is `content`: the key is ambiguous, slow path
        assert escaped is None
        return
    try:
        decoded = orjson.loads(data)["choices"][0]["delta"]["content"]
    except orjson.JSONDecodeError:  # lone surrogates: not valid JSON for orjson, so not for us either
        assert escaped is None
        return
    assert escaped is not None
    assert orjson.loads(b'"' + escaped + b'"') == decoded == text
