"""A sans-I/O HTTP/1.1 response parser: bytes in, events out, resumable at any byte boundary.

The upstream client feeds it whatever the socket delivers and gets back a list of events: one
:class:`ResponseHead`, body ``bytes`` (framing already removed), then :class:`EndOfMessage`. Keeping it free
of I/O lets the tests drive it with every possible split of a response, and keeps the connection code
down to moving bytes and events around.

Framing follows RFC 9112 section 6.3: responses to HEAD and 1xx/204/304 responses have no body; a
Transfer-Encoding whose last coding is ``chunked`` wins over Content-Length; any other Transfer-Encoding,
or neither header, means the body runs until the server closes the connection. Interim 1xx responses are
skipped (``101 Switching Protocols`` is an error: this client never asks for an upgrade).
:class:`BodyDecoder` then undoes a gzip or deflate Content-Encoding on the body bytes.
Lines must end in CRLF; anything that is not HTTP/1.x raises :class:`ProtocolError` at once, so a
connection to the wrong kind of server fails fast instead of waiting for a head that never comes.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

#: the longest response head (status line and headers), and separately the longest trailer section
MAX_HEAD = 64 * 1024
_MAX_CHUNK_LINE = 4096
_HEX = frozenset(b"0123456789abcdefABCDEF")
_DIGITS = frozenset(b"0123456789")
_HTTP = b"HTTP/"
_NO_BODY_STATUSES = frozenset((204, 304))

_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILERS, _UNTIL_CLOSE, _DONE = range(8)


class ProtocolError(Exception):
    """The bytes are not a well-formed HTTP/1.x response; the connection cannot be used any more."""


@dataclass(slots=True)
class ResponseHead:
    status: int
    reason: str
    #: lower-case names; the first value of a repeated header wins
    headers: dict[str, str]
    #: ``"1.1"`` or ``"1.0"``
    version: str


@dataclass(slots=True)
class EndOfMessage:
    #: trailer fields of a chunked body (lower-case names), usually empty
    trailers: dict[str, str]


Event = ResponseHead | bytes | EndOfMessage


class ResponseParser:
    """Parses one response. ``head_request`` says the request was HEAD, whose response has no body.

    After :class:`EndOfMessage`, ``keep_alive`` says whether the connection may carry another exchange,
    and ``unused`` holds any bytes that came after the response (a well-behaved server sends none).
    """

    __slots__ = (
        "_buf",
        "_head_request",
        "_left",
        "_state",
        "_trailer_bytes",
        "_trailers",
        "keep_alive",
        "unused",
    )

    def __init__(self, *, head_request: bool = False) -> None:
        self._head_request = head_request
        self._state = _HEAD
        self._buf = b""
        self._left = 0
        self._trailers: dict[str, str] = {}
        self._trailer_bytes = 0
        self.keep_alive = False
        self.unused = b""

    @property
    def done(self) -> bool:
        return self._state == _DONE

    def feed(self, data: bytes) -> list[Event]:
        """Events completed by ``data``; partial lines are kept for the next call."""
        if self._state == _DONE:
            self.unused += data
            return []
        if self._buf:
            data = self._buf + data
            self._buf = b""
        events: list[Event] = []
        pos = 0
        end = len(data)
        while pos < end:
            state = self._state
            if state in (_LENGTH, _CHUNK_DATA):
                left = self._left
                if end - pos <= left:
                    events.append(data[pos:] if pos else data)
                    self._left = left - (end - pos)
                    pos = end
                else:
                    events.append(data[pos : pos + left])
                    pos += left
                    self._left = 0
                if self._left == 0:
                    if state == _LENGTH:
                        pos = self._finish(events, data, pos)
                    else:
                        self._state = _CHUNK_END
            elif state == _CHUNK_SIZE:
                eol = data.find(b"\r\n", pos)
                if eol < 0:
                    if end - pos > _MAX_CHUNK_LINE:
                        raise ProtocolError("chunk size line too long")
                    break
                size = _chunk_size(data[pos:eol])
                pos = eol + 2
                if size:
                    self._left = size
                    self._state = _CHUNK_DATA
                else:
                    self._state = _TRAILERS
            elif state == _CHUNK_END:
                if end - pos < 2:
                    if data[pos] != 0x0D:
                        raise ProtocolError("chunk data not followed by CRLF")
                    break
                if data[pos : pos + 2] != b"\r\n":
                    raise ProtocolError("chunk data not followed by CRLF")
                pos += 2
                self._state = _CHUNK_SIZE
            elif state == _HEAD:
                eoh = data.find(b"\r\n\r\n", pos)
                if eoh < 0:
                    _check_partial_head(data[pos:])
                    break
                if eoh - pos > MAX_HEAD:
                    raise ProtocolError("response head too large")
                head = self._parse_head(data[pos:eoh])
                pos = eoh + 4
                if head is not None:
                    events.append(head)
                    if self._state == _DONE:
                        pos = self._finish(events, data, pos)
            elif state == _TRAILERS:
                eol = data.find(b"\r\n", pos)
                if eol < 0:
                    if self._trailer_bytes + end - pos > MAX_HEAD:
                        raise ProtocolError("trailers too large")
                    break
                if eol == pos:
                    pos = self._finish(events, data, pos + 2)
                else:
                    self._trailer_bytes += eol - pos + 2
                    if self._trailer_bytes > MAX_HEAD:
                        raise ProtocolError("trailers too large")
                    _add_field(self._trailers, data[pos:eol])
                    pos = eol + 2
            else:  # _UNTIL_CLOSE (_DONE is never looped over: _finish consumes the rest)
                events.append(data[pos:] if pos else data)
                pos = end
        if pos < end:
            self._buf = data[pos:]
        return events

    def feed_eof(self) -> list[Event]:
        """The server closed the connection: ends a read-until-close body, otherwise the response is cut."""
        if self._state == _DONE:
            return []
        if self._state == _UNTIL_CLOSE:
            self._state = _DONE
            return [EndOfMessage({})]
        if self._state == _HEAD:
            raise ProtocolError("connection closed before the response head was complete")
        raise ProtocolError("connection closed before the response body was complete")

    def _finish(self, events: list[Event], data: bytes, pos: int) -> int:
        """Emit the end of the message; returns the position after which everything is ``unused``."""
        self._state = _DONE
        events.append(EndOfMessage(self._trailers))
        if pos < len(data):
            self.unused += data[pos:]
        return len(data)

    def _parse_head(self, raw: bytes) -> ResponseHead | None:
        """The head, or None for a skipped interim (1xx) response; also decides the body's framing."""
        lines = raw.split(b"\r\n")
        version, status, reason = _status_line(lines[0])
        headers: dict[str, str] = {}
        lengths: list[bytes] = []
        codings: list[str] = []
        connection: list[str] = []
        for line in lines[1:]:
            name, value = _add_field(headers, line)
            if name == "content-length":
                lengths.append(value.strip(b" \t"))
            elif name == "transfer-encoding":
                codings += _tokens(value)
            elif name == "connection":
                connection += _tokens(value)
        if status < 200:
            if status == 101:
                raise ProtocolError("unexpected 101 Switching Protocols")
            return None
        if version == "1.1":
            self.keep_alive = "close" not in connection
        else:
            self.keep_alive = "keep-alive" in connection
        if self._head_request or status in _NO_BODY_STATUSES:
            self._state = _DONE
        elif codings:
            if codings[-1] == "chunked":
                self._state = _CHUNK_SIZE
                if lengths:  # both framings: a smuggling pattern; finish this one, then close
                    self.keep_alive = False
            else:
                self._state = _UNTIL_CLOSE
                self.keep_alive = False
        elif lengths:
            length = lengths[0]
            if not length or not _DIGITS.issuperset(length) or any(v != length for v in lengths):
                raise ProtocolError("invalid Content-Length")
            self._left = int(length)
            self._state = _LENGTH if self._left else _DONE
        else:
            self._state = _UNTIL_CLOSE
            self.keep_alive = False
        return ResponseHead(status, reason, headers, version)


def _status_line(line: bytes) -> tuple[str, int, str]:
    parts = line.split(b" ", 2)
    if len(parts) < 2 or parts[0] not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise ProtocolError("malformed status line")
    code = parts[1]
    if len(code) != 3 or not _DIGITS.issuperset(code):
        raise ProtocolError("malformed status code")
    reason = parts[2].decode("latin-1") if len(parts) == 3 else ""
    return parts[0][5:].decode(), int(code), reason


def _add_field(fields: dict[str, str], line: bytes) -> tuple[str, bytes]:
    """Adds one ``name: value`` line (first value wins); returns the lower-case name and the raw value."""
    name, sep, value = line.partition(b":")
    if not sep or not name or name.strip(b" \t") != name or b" " in name:
        raise ProtocolError("malformed header line")
    key = name.decode("latin-1").lower()
    if key not in fields:
        fields[key] = value.strip(b" \t").decode("utf-8", "surrogateescape")
    return key, value


def _tokens(value: bytes) -> list[str]:
    return [token.strip(" \t").lower() for token in value.decode("latin-1").split(",") if token.strip()]


def _chunk_size(line: bytes) -> int:
    size = line.split(b";", 1)[0].strip(b" \t")
    if not size or len(size) > 16 or not _HEX.issuperset(size):
        raise ProtocolError("malformed chunk size")
    return int(size, 16)


def _check_partial_head(partial: bytes) -> None:
    """Reject an incomplete head that cannot become a response, without waiting for more bytes."""
    if len(partial) > MAX_HEAD:
        raise ProtocolError("response head too large")
    start = partial[:5]
    if start != _HTTP[: len(start)]:
        raise ProtocolError("not an HTTP/1.x response")


class BodyDecoder:
    """Undoes a gzip or deflate Content-Encoding, chunk by chunk.

    "deflate" is meant to be zlib-wrapped, but some servers send raw deflate; like browsers, the first
    two bytes decide which one it is.
    """

    __slots__ = ("_fed", "_gzip", "_pending", "_z")

    def __init__(self, gzip: bool) -> None:
        self._gzip = gzip
        self._z: zlib._Decompress | None = zlib.decompressobj(31) if gzip else None
        self._pending = b""
        self._fed = False

    def decode(self, data: bytes) -> bytes:
        self._fed = True
        z = self._z
        if z is None:
            data = self._pending + data
            if len(data) < 2:
                self._pending = data
                return b""
            self._pending = b""
            zlib_wrapped = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            z = self._z = zlib.decompressobj(15 if zlib_wrapped else -15)
        try:
            return z.decompress(data)
        except zlib.error as exc:
            raise ProtocolError(f"cannot decode the response body: {exc}") from None

    def finish(self) -> bytes:
        """The decoder's remaining output; a compressed stream cut short is an error."""
        if not self._fed:
            return b""
        z = self._z
        if z is None:
            raise ProtocolError("cannot decode the response body: it ends inside the deflate header")
        tail = z.flush()
        if not z.eof:
            raise ProtocolError("cannot decode the response body: the compressed stream is truncated")
        return tail
