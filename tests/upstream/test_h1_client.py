"""The request head the HTTP/1.1 client writes (exchanges themselves are in test_fast_transport.py)."""

from __future__ import annotations

import pytest

from ccr_fast.upstream.h1_client import encode_request_head
from ccr_fast.upstream.transport import UpstreamError

HOST = "host: api.example.test\r\n"


def lines(head: bytes) -> list[str]:
    text = head.decode()
    assert text.endswith("\r\n\r\n")
    return text[:-4].split("\r\n")


def test_post_head() -> None:
    head = encode_request_head(
        "POST",
        "/v1/chat/completions?x=1",
        HOST,
        {"content-type": "application/json", "Authorization": "k"},
        42,
    )
    assert lines(head) == [
        "POST /v1/chat/completions?x=1 HTTP/1.1",
        "content-type: application/json",
        "Authorization: k",
        "host: api.example.test",
        "accept-encoding: gzip, deflate",
        "content-length: 42",
    ]


def test_get_without_body_has_no_content_length_but_post_always_has_one() -> None:
    assert not any(
        line.startswith("content-length") for line in lines(encode_request_head("GET", "/", HOST, {}, 0))
    )
    assert "content-length: 0" in lines(encode_request_head("POST", "/", HOST, {}, 0))


def test_the_callers_framing_headers_are_replaced_and_its_host_and_encoding_kept() -> None:
    headers = {
        "Content-Length": "999",
        "transfer-encoding": "chunked",
        "Connection": "close",
        "Host": "other.test",
        "Accept-Encoding": "identity",
    }
    assert lines(encode_request_head("POST", "/", HOST, headers, 3)) == [
        "POST / HTTP/1.1",
        "Host: other.test",
        "Accept-Encoding: identity",
        "content-length: 3",
    ]


@pytest.mark.parametrize(
    "headers",
    [{"x-a": "1\r\nx-injected: 1"}, {"x-a": "1\nx"}, {"x-a": "1\rx"}, {"x-a\r\nx-b": "1"}],
)
def test_cr_or_lf_in_a_header_is_refused(headers: dict[str, str]) -> None:
    with pytest.raises(UpstreamError, match="CR or LF"):
        encode_request_head("POST", "/", HOST, headers, 0)


def test_non_ascii_values_are_sent_as_utf8() -> None:
    head = encode_request_head("POST", "/", HOST, {"x-name": "café"}, 0)
    assert "x-name: café" in lines(head)
