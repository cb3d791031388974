"""The sans-I/O response parser and body decoder, fed whole, split at every byte and byte by byte."""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccr_fast.upstream.h1_parser import (
    MAX_HEAD,
    BodyDecoder,
    EndOfMessage,
    ProtocolError,
    ResponseHead,
    ResponseParser,
)


@dataclass
class Parsed:
    heads: list[ResponseHead] = field(default_factory=list)
    body: bytes = b""
    trailers: dict[str, str] | None = None
    keep_alive: bool = False
    unused: bytes = b""
    #: events after the end of the message (must stay empty)
    late: int = 0


def run(pieces: list[bytes], *, head_request: bool = False, eof: bool = False) -> Parsed:
    parser = ResponseParser(head_request=head_request)
    out = Parsed()
    events = [event for piece in pieces for event in parser.feed(piece)]
    if eof:
        events += parser.feed_eof()
    for event in events:
        if out.trailers is not None:
            out.late += 1
        elif isinstance(event, ResponseHead):
            out.heads.append(event)
        elif isinstance(event, EndOfMessage):
            out.trailers = event.trailers
        else:
            assert event, "empty body events are noise"
            out.body += event
    out.keep_alive = parser.keep_alive
    out.unused = parser.unused
    assert parser.done == (out.trailers is not None)
    return out


def splits(raw: bytes) -> list[list[bytes]]:
    """``raw`` whole, cut in two at every position, and one byte at a time."""
    cuts = [[raw]] + [[raw[:i], raw[i:]] for i in range(1, len(raw))]
    return [*cuts, [raw[i : i + 1] for i in range(len(raw))]]


def parse_everyhow(raw: bytes, *, head_request: bool = False, eof: bool = False) -> Parsed:
    """Parses every split of ``raw`` and checks they all agree; returns the result."""
    results = [run(pieces, head_request=head_request, eof=eof) for pieces in splits(raw)]
    for result in results[1:]:
        assert result == results[0]
    return results[0]


# --- framing --------------------------------------------------------------------------------------------


def test_content_length_body() -> None:
    raw = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"a": 123}\n'
    out = parse_everyhow(raw)
    [head] = out.heads
    assert (head.status, head.reason, head.version) == (200, "OK", "1.1")
    assert head.headers == {"content-type": "application/json", "content-length": "11"}
    assert out.body == b'{"a": 123}\n'
    assert out.trailers == {}
    assert out.keep_alive
    assert out.unused == b""


def test_chunked_with_extensions_and_trailers() -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n"
        b"6 ; a=b;c\r\n world\r\n"
        b"A\r\n0123456789\r\n"
        b"0;last=1\r\nX-Checksum: abc\r\nServer-Timing: db;dur=53\r\n\r\n"
    )
    out = parse_everyhow(raw)
    assert out.body == b"hello world0123456789"
    assert out.trailers == {"x-checksum": "abc", "server-timing": "db;dur=53"}
    assert out.keep_alive
    assert out.late == 0


def test_chunked_stream_of_sse_events_keeps_every_byte() -> None:
    events = [b'data: {"i": %d}\n\n' % i for i in range(5)]
    raw = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    raw += b"".join(b"%x\r\n%b\r\n" % (len(e), e) for e in events) + b"0\r\n\r\n"
    assert parse_everyhow(raw).body == b"".join(events)


def test_interim_1xx_responses_are_skipped() -> None:
    raw = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
    )
    out = parse_everyhow(raw)
    assert [h.status for h in out.heads] == [201]
    assert "link" not in out.heads[0].headers
    assert out.body == b"ok"


def test_response_to_head_has_no_body_despite_its_length() -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"
    out = parse_everyhow(raw, head_request=True)
    assert out.heads[0].headers["content-length"] == "1234"
    assert out.body == b""
    assert out.trailers == {}
    assert out.keep_alive


def test_the_same_head_without_head_request_waits_for_the_body() -> None:
    out = run([b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"])
    assert out.heads and out.trailers is None


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses(status: int) -> None:
    raw = b"HTTP/1.1 %d X\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n" % status
    out = parse_everyhow(raw)
    assert out.heads[0].status == status
    assert out.body == b""
    assert out.trailers == {}


def test_connection_close_means_no_reuse() -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: Close\r\n\r\nok"
    out = parse_everyhow(raw)
    assert out.body == b"ok"
    assert not out.keep_alive


def test_connection_tokens_are_a_list() -> None:
    out = run([b"HTTP/1.1 200 OK\r\nConnection: upgrade, close\r\nContent-Length: 0\r\n\r\n"])
    assert out.trailers == {} and not out.keep_alive


def test_http10_keeps_alive_only_when_asked() -> None:
    plain = run([b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"])
    asked = run([b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"])
    assert plain.heads[0].version == "1.0"
    assert (plain.body, plain.keep_alive) == (b"ok", False)
    assert (asked.body, asked.keep_alive) == (b"ok", True)


def test_no_length_reads_until_close() -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of this\r\n\r\nand this"
    out = parse_everyhow(raw, eof=True)
    assert out.body == b"all of this\r\n\r\nand this"
    assert out.trailers == {}
    assert not out.keep_alive
    assert run([raw]).trailers is None, "without EOF the body is not over"


def test_a_non_chunked_transfer_encoding_reads_until_close() -> None:
    out = parse_everyhow(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxyz", eof=True)
    assert out.body == b"xyz" and not out.keep_alive


def test_chunked_wins_over_content_length_and_the_connection_is_not_reused() -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    out = parse_everyhow(raw)
    assert out.body == b"abc"
    assert not out.keep_alive


def test_empty_body_ends_with_the_head() -> None:
    out = parse_everyhow(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert out.body == b"" and out.trailers == {} and out.keep_alive


def test_header_details() -> None:
    raw = (
        b"HTTP/1.1 429 \r\nX-A:  first \t\r\nx-a: second\r\nRetry-After:3\r\n"
        b"X-Name: caf\xc3\xa9\r\nContent-Length: 0\r\n\r\n"
    )
    head = run([raw]).heads[0]
    assert (head.status, head.reason) == (429, "")
    assert head.headers == {"x-a": "first", "retry-after": "3", "x-name": "café", "content-length": "0"}


def test_a_status_line_without_reason() -> None:
    assert run([b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"]).heads[0].reason == ""


def test_bytes_after_the_response_are_unused_not_parsed() -> None:
    out = run([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200", b" OK\r\n"])
    assert out.body == b"ok"
    assert out.unused == b"HTTP/1.1 200 OK\r\n"
    assert len(out.heads) == 1 and out.late == 0


@given(
    body=st.binary(max_size=300),
    sizes=st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=20),
    cut=st.integers(min_value=1, max_value=17),
)
def test_any_chunking_of_any_body_round_trips(body: bytes, sizes: list[int], cut: int) -> None:
    wire = bytearray(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    pos = i = 0
    while pos < len(body):
        piece = body[pos : pos + sizes[i % len(sizes)]]
        wire += b"%X\r\n%b\r\n" % (len(piece), piece)
        pos += len(piece)
        i += 1
    wire += b"0\r\n\r\n"
    pieces = [bytes(wire[j : j + cut]) for j in range(0, len(wire), cut)]
    out = run(pieces)
    assert out.body == body and out.trailers == {}


# --- garbage --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"<html>",
        b"HTTP/2 200\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 2x0 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n: empty name\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111\r\n",
    ],
)
def test_garbage_raises_protocol_error_at_every_split(raw: bytes) -> None:
    for pieces in splits(raw):
        parser = ResponseParser()
        with pytest.raises(ProtocolError):
            for piece in pieces:
                parser.feed(piece)


def test_a_head_that_never_ends_is_refused() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises(ProtocolError, match="too large"):
        for _ in range(MAX_HEAD // 1000 + 2):
            parser.feed(b"X-Filler: " + b"a" * 988 + b"\r\n")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"HTTP/1.1 200 OK\r\nContent-Le",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n",
    ],
)
def test_eof_before_the_end_is_an_error(raw: bytes) -> None:
    parser = ResponseParser()
    parser.feed(raw)
    with pytest.raises(ProtocolError, match="connection closed before"):
        parser.feed_eof()


def test_eof_after_the_end_is_nothing() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert parser.feed_eof() == []


# --- content decoding -----------------------------------------------------------------------------------

TEXT = b"data: the same line again and again\n\n" * 200


def decode_bytewise(decoder: BodyDecoder, data: bytes) -> bytes:
    out = b"".join(decoder.decode(data[i : i + 1]) for i in range(len(data)))
    return out + decoder.finish()


def raw_deflate(data: bytes) -> bytes:
    z = zlib.compressobj(wbits=-15)
    return z.compress(data) + z.flush()


@pytest.mark.parametrize(
    ("is_gzip", "compressed"),
    [
        pytest.param(True, gzip.compress(TEXT), id="gzip"),
        pytest.param(False, zlib.compress(TEXT), id="deflate-zlib"),
        pytest.param(False, raw_deflate(TEXT), id="deflate-raw"),
    ],
)
def test_decoder_round_trips_whole_and_bytewise(is_gzip: bool, compressed: bytes) -> None:
    whole = BodyDecoder(is_gzip)
    assert whole.decode(compressed) + whole.finish() == TEXT
    assert decode_bytewise(BodyDecoder(is_gzip), compressed) == TEXT


def test_decoder_of_an_empty_body_is_empty() -> None:
    assert BodyDecoder(True).finish() == b""


@pytest.mark.parametrize("is_gzip", [True, False])
def test_a_truncated_compressed_body_is_an_error(is_gzip: bool) -> None:
    compressed = gzip.compress(TEXT) if is_gzip else zlib.compress(TEXT)
    decoder = BodyDecoder(is_gzip)
    decoder.decode(compressed[: len(compressed) // 2])
    with pytest.raises(ProtocolError, match="truncated"):
        decoder.finish()


def test_a_body_that_is_not_gzip_is_an_error() -> None:
    with pytest.raises(ProtocolError, match="cannot decode"):
        BodyDecoder(True).decode(b"this is plain text, not gzip")
