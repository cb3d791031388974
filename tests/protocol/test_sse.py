"""SSE decoder: the shared vectors, split invariance and compiled-vs-pure equivalence.

Every test runs against both implementations (the pure twin and ``ccr_fast._ext.sse_framer``); the compiled
one is skipped, with the reason shown, when the extension has not been built.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccr_fast import _speedups
from ccr_fast.protocol import sse

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "sse"
COMPILED = _speedups.compiled("sse_framer")
NOT_BUILT = "ccr_fast._ext.sse_framer is not built (run: python setup.py build_ext --inplace)"

Event = tuple[bytes | None, bytes]
Decoder = Any  # either implementation's SSEDecoder class

IMPLS = [
    pytest.param(sse.SSEDecoder, id="pure"),
    pytest.param(
        getattr(COMPILED, "SSEDecoder", None),
        id="compiled",
        marks=pytest.mark.skipif(COMPILED is None, reason=NOT_BUILT),
    ),
]
needs_compiled = pytest.mark.skipif(COMPILED is None, reason=NOT_BUILT)


def _chunk(raw: str | dict[str, str]) -> bytes:
    """Vector chunks are UTF-8 text, or ``{"hex": ...}`` for bytes that are not valid UTF-8."""
    return bytes.fromhex(raw["hex"]) if isinstance(raw, dict) else raw.encode()


def _events(raw: list[list[str | None]]) -> list[Event]:
    return [(None if name is None else name.encode(), str(data).encode()) for name, data in raw]


class Vector:
    def __init__(self, group: str, case: dict[str, Any]) -> None:
        self.id = f"{group}:{case['name']}"
        self.chunks = [_chunk(c) for c in case["chunks"]]
        self.events = _events(case["events"])
        self.close_events = _events(case.get("close_events", []))
        self.last_event_id = str(case.get("last_event_id", "")).encode()
        self.retry: int | None = case.get("retry")

    @property
    def stream(self) -> bytes:
        return b"".join(self.chunks)


def _load_vectors() -> list[Vector]:
    out: list[Vector] = []
    for path in sorted(VECTORS.glob("*.json")):
        doc = json.loads(path.read_text())
        out.extend(Vector(path.stem, case) for case in doc["cases"])
    return out


VECTOR_LIST = _load_vectors()
SMALL_VECTORS = [v for v in VECTOR_LIST if len(v.stream) <= 512]


class Run:
    """Everything observable about decoding one stream fed as ``chunks``."""

    def __init__(self, decoder_cls: Decoder, chunks: list[bytes]) -> None:
        decoder = decoder_cls()
        self.per_feed: list[list[Event]] = [decoder.feed(chunk) for chunk in chunks]
        self.events = [event for batch in self.per_feed for event in batch]
        self.close_events: list[Event] = decoder.close()
        self.last_event_id: bytes = decoder.last_event_id
        self.retry: int | None = decoder.retry

    def summary(self) -> tuple[list[Event], list[Event], bytes, int | None]:
        return self.events, self.close_events, self.last_event_id, self.retry


def _expected(vector: Vector) -> tuple[list[Event], list[Event], bytes, int | None]:
    return vector.events, vector.close_events, vector.last_event_id, vector.retry


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given positions (taken modulo its length + 1; repeats give empty chunks)."""
    points = sorted(c % (len(data) + 1) for c in cuts)
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def test_vectors_were_found() -> None:
    groups = {v.id.split(":")[0] for v in VECTOR_LIST}
    assert {"line_endings", "fields", "utf8", "eof", "streams"} <= groups
    assert len(VECTOR_LIST) > 80


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("vector", VECTOR_LIST, ids=lambda v: v.id)
def test_vector_as_chunked(impl: Decoder, vector: Vector) -> None:
    assert Run(impl, vector.chunks).summary() == _expected(vector)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("vector", VECTOR_LIST, ids=lambda v: v.id)
def test_vector_byte_by_byte(impl: Decoder, vector: Vector) -> None:
    stream = vector.stream
    chunks = [stream[i : i + 1] for i in range(len(stream))]
    assert Run(impl, chunks).summary() == _expected(vector)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("vector", SMALL_VECTORS, ids=lambda v: v.id)
def test_vector_every_two_way_split(impl: Decoder, vector: Vector) -> None:
    stream = vector.stream
    for cut in range(len(stream) + 1):
        assert Run(impl, [stream[:cut], stream[cut:]]).summary() == _expected(vector), cut


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(vector=st.sampled_from(VECTOR_LIST), cuts=st.lists(st.integers(min_value=0), max_size=40))
def test_random_splits_match_unsplit(impl: Decoder, vector: Vector, cuts: list[int]) -> None:
    whole = Run(impl, [vector.stream])
    assert whole.summary() == _expected(vector)
    assert Run(impl, _split(vector.stream, cuts)).summary() == whole.summary()


# Byte soup: arbitrary bytes biased towards everything the decoder treats specially.
_FRAGMENTS = [
    b"data",
    b"data:",
    b"data: ",
    b"event",
    b"event: ",
    b"id",
    b"id: ",
    b"retry",
    b"retry:",
    b":",
    b" ",
    b"\r",
    b"\n",
    b"\r\n",
    b"\n\n",
    b"\xef\xbb\xbf",
    b"\xef",
    b"\xbb\xbf",
    b"\xff",
    b"\x80",
    b"\xe2\x82",
    b"\xac",
    b"\xf0\x9f\x98",
    b"\xed\xa0\x80",
    b"\xf4\x90",
    b"\xe0\x80",
    b"\xf0\x8f",
    b"\xc2",
    b"\xdf\xbf",
    b"\x00",
    b"0",
    b"42",
    b"x",
    b"{}",
    "€".encode(),
    "😀".encode(),
    "\u2028".encode(),
]
_token = st.one_of(
    st.sampled_from(_FRAGMENTS), st.sampled_from([b"\r", b"\n", b"\r\n"]), st.binary(max_size=6)
)
#: Chunks cut at token boundaries, so splits land right before and after CR, LF, BOM and UTF-8 fragments.
soup_chunks = st.lists(st.lists(_token, max_size=12).map(b"".join), max_size=12)


@needs_compiled
@settings(max_examples=1500, deadline=None)
@given(chunks=soup_chunks)
def test_compiled_matches_pure_on_byte_soup(chunks: list[bytes]) -> None:
    pure = Run(sse.SSEDecoder, chunks)
    compiled = Run(COMPILED.SSEDecoder, chunks)  # type: ignore[union-attr]
    assert compiled.per_feed == pure.per_feed
    assert compiled.summary() == pure.summary()


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=500, deadline=None)
@given(chunks=soup_chunks)
def test_byte_soup_split_invariant_and_valid_utf8(impl: Decoder, chunks: list[bytes]) -> None:
    whole = Run(impl, [b"".join(chunks)])
    assert Run(impl, chunks).summary() == whole.summary()
    for name, data in whole.events + whole.close_events:
        data.decode()
        if name is not None:
            assert name
            name.decode()
    whole.last_event_id.decode()
    assert b"\0" not in whole.last_event_id


@pytest.mark.parametrize("impl", IMPLS)
def test_ten_megabyte_line_in_one_kilobyte_chunks(impl: Decoder) -> None:
    payload = b'{"image":"' + ("QUJD€" * (10 * 1024 * 1024 // 7)).encode() + b'"}'
    stream = b"event: big\r\ndata: " + payload + b"\r\n\r\ndata: after\r\n\r\n"
    chunks = [stream[i : i + 1024] for i in range(0, len(stream), 1024)]
    run = Run(impl, chunks)
    assert run.events == [(b"big", payload), (None, b"after")]
    assert run.close_events == []


@pytest.mark.parametrize("impl", IMPLS)
def test_many_cr_only_lines_in_one_chunk(impl: Decoder) -> None:
    stream = b"data: x\r" * 20_000 + b"\r"
    run = Run(impl, [stream])
    assert run.events == [(None, b"\n".join([b"x"] * 20_000))]


@pytest.mark.parametrize("impl", IMPLS)
def test_each_feed_returns_only_the_events_it_completed(impl: Decoder) -> None:
    decoder = impl()
    assert decoder.feed(b"event: a\ndata: 1\n") == []
    assert decoder.feed(b"\ndata: 2\n\ndata: 3") == [(b"a", b"1"), (None, b"2")]
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"\n") == [(None, b"3")]
    assert decoder.close() == []
    assert decoder.close() == []


@pytest.mark.parametrize("impl", IMPLS)
def test_state_attributes_start_empty_and_are_writable(impl: Decoder) -> None:
    decoder = impl()
    assert decoder.last_event_id == b""
    assert decoder.retry is None
    decoder.last_event_id = b"resume-7"
    decoder.retry = 1500
    decoder.feed(b"data: x\n\n")
    assert (decoder.last_event_id, decoder.retry) == (b"resume-7", 1500)


@pytest.mark.parametrize("impl", IMPLS)
def test_decoders_are_independent(impl: Decoder) -> None:
    first, second = impl(), impl()
    first.feed(b"id: 1\nevent: a\ndata: one")
    assert second.feed(b"data: two\n\n") == [(None, b"two")]
    assert first.feed(b"\n\n") == [(b"a", b"one")]
    assert (first.last_event_id, second.last_event_id) == (b"1", b"")


@pytest.mark.parametrize("impl", IMPLS)
def test_repeated_event_names_are_equal_values(impl: Decoder) -> None:
    decoder = impl()
    events = decoder.feed(
        b"event: d\ndata: 1\n\nevent: d\ndata: 2\n\nevent: e\ndata: 3\n\nevent: d\ndata: 4\n\n"
    )
    assert events == [(b"d", b"1"), (b"d", b"2"), (b"e", b"3"), (b"d", b"4")]


def test_speedups_load_picks_compiled_unless_forced_pure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCR_FAST_PURE", "1")
    assert _speedups.load("sse_framer").SSEDecoder is sse.SSEDecoder
    monkeypatch.delenv("CCR_FAST_PURE")
    expected = sse.SSEDecoder if COMPILED is None else COMPILED.SSEDecoder
    assert _speedups.load("sse_framer").SSEDecoder is expected
