"""Incremental Server-Sent Events decoder (WHATWG HTML §9.2.5-9.2.6), pure-Python twin.

The compiled ``ccr_fast._ext.sse_framer`` has the same API and behaviour and is what production uses; get the
right one with ``ccr_fast._speedups.load("sse_framer").SSEDecoder``.  Both are held to the same vectors and to
an equivalence property test, so any change here must be mirrored in ``ext/sse_framer.pyx``.

Design notes that explain behaviour a caller can observe:

* The decoder works on **bytes** and splits only on CR, LF and CRLF.  Every other delimiter the format uses
  (``:`` and the one optional space) is ASCII too, and an ASCII byte always ends an invalid UTF-8 sequence, so
  decoding each finished value on its own gives exactly what decoding the whole stream first would.  Unicode
  line breaks such as U+2028 or U+0085 stay inside the data, where JSON allows them.
* Output is UTF-8 bytes, never ``str``: the callers hand data to orjson or forward it, so decoding to ``str``
  would be wasted work.  Invalid sequences become U+FFFD (``b"\\xef\\xbf\\xbd"``) exactly as the spec's
  "UTF-8 decode" does; valid input is returned without any decode/encode round trip.
* A CR that ends a chunk ends its line at once; the decoder only remembers to drop an LF that starts the next
  chunk, so a CRLF split across chunks never yields a spurious blank line (and never dispatches early).
* Partial lines are kept in a ``bytearray`` and each chunk is scanned once, so a 10 MB line fed in 1 KB chunks
  costs linear time; there is no line-length cap.
* ``close()`` is lenient where the spec is strict: the spec discards an event whose terminating blank line
  never arrived, but many OpenAI-compatible upstreams end with ``data: [DONE]\\n`` (or a final usage chunk)
  and no blank line.  Dropping that would lose the end-of-stream marker or the usage, so ``close()`` finishes
  any partial line and dispatches the pending event if it has data.  A truncated JSON payload dispatched this
  way fails to parse in the caller, which is where a broken stream has to be handled anyway.
* ``retry`` takes only non-empty all-ASCII-digit values, as the spec says; values with more than 18
  significant digits are ignored as well, because no reconnection delay that large is meaningful and
  converting arbitrarily long digit strings costs quadratic time (and raises in CPython past 4300 digits).
"""

from __future__ import annotations

from typing import Final

__all__ = ["Event", "SSEDecoder"]

#: One dispatched event: (value of the last ``event:`` field or None, joined ``data:`` values).
Event = tuple[bytes | None, bytes]

_BOM: Final = b"\xef\xbb\xbf"
_MAX_RETRY_DIGITS: Final = 18


def _valid_utf8(value: bytes) -> bytes:
    """``value`` unchanged when it is valid UTF-8, else with each invalid sequence replaced by U+FFFD."""
    if value.isascii():
        return value
    try:
        value.decode()
    except UnicodeDecodeError:
        return value.decode("utf-8", "replace").encode()
    return value


class SSEDecoder:
    """Feed raw stream bytes in chunks of any size; get back the events each chunk completed."""

    __slots__ = ("_at_start", "_data", "_event", "_partial", "_skip_lf", "last_event_id", "retry")

    def __init__(self) -> None:
        #: the last ``id:`` value without NUL; like the spec's buffer it survives dispatch
        self.last_event_id: bytes = b""
        #: the last valid ``retry:`` value in milliseconds
        self.retry: int | None = None
        self._partial = bytearray()  # an unterminated line; never contains CR or LF
        self._data: list[bytes] = []  # the pending event's data values, one per ``data`` line
        self._event: bytes | None = None  # the pending event's type
        self._skip_lf = False  # the previous chunk ended in CR: an LF starting this one belongs to it
        self._at_start = True  # a leading BOM may still be (partly) ahead of us

    def feed(self, data: bytes) -> list[Event]:
        """Consume one chunk of the stream; return the events it completed, in order."""
        if not data:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if data[0] == 10:
                data = data[1:]
                if not data:
                    return []
        if self._at_start:
            stripped = self._strip_bom(data)
            if stripped is None:
                return []
            data = stripped

        has_cr = b"\r" in data
        last = max(data.rfind(b"\n"), data.rfind(b"\r")) if has_cr else data.rfind(b"\n")
        if last < 0:
            self._partial += data
            return []
        ends_chunk = last == len(data) - 1
        partial = self._partial
        if partial:
            partial += data[: last + 1]
            block = bytes(partial)
            partial.clear()
        else:
            block = data if ends_chunk else data[: last + 1]
        if not ends_chunk:
            partial += data[last + 1 :]
        if has_cr:
            # A CR ending the chunk may be the first half of a CRLF whose LF is in the next chunk.
            self._skip_lf = ends_chunk and data[last] == 13
            block = block.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = block.split(b"\n")
        lines.pop()
        return self._lines(lines)

    def close(self) -> list[Event]:
        """End of stream: finish a partial line and dispatch the pending event if it has data.

        Lenient on purpose: the spec discards an event whose blank line never came, but upstreams often end
        with ``data: [DONE]\\n`` and nothing after it (see the module docstring).
        """
        out: list[Event] = []
        self._at_start = False
        self._skip_lf = False
        if self._partial:
            line = bytes(self._partial)
            self._partial.clear()
            out = self._lines([line])
        self._dispatch(out)
        return out

    def _strip_bom(self, data: bytes) -> bytes | None:
        """Drop one leading BOM, which may arrive split across chunks.

        Returns the rest of ``data`` to process, or None when all of it is a still-possible BOM prefix (kept
        in the partial line so that it is processed as ordinary bytes if the BOM never completes).
        """
        held = len(self._partial)
        taken = 0
        while held + taken < 3 and taken < len(data) and data[taken] == _BOM[held + taken]:
            taken += 1
        if held + taken == 3:
            self._at_start = False
            self._partial.clear()
            return data[taken:]
        if taken == len(data):
            self._partial += data
            return None
        self._at_start = False
        return data

    def _lines(self, lines: list[bytes]) -> list[Event]:
        out: list[Event] = []
        data = self._data
        for line in lines:
            if not line:
                self._dispatch(out)
            elif line.startswith(b"data:"):
                data.append(line[6:] if line.startswith(b" ", 5) else line[5:])
            elif line[0] != 58:
                self._field(line)
        return out

    def _field(self, line: bytes) -> None:
        """Apply a non-comment line other than the common ``data:`` form."""
        name, colon, value = line.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = _valid_utf8(value) if value else None
        elif name == b"id":
            if b"\0" not in value:
                self.last_event_id = _valid_utf8(value)
        elif name == b"retry" and value.isdigit() and len(value.lstrip(b"0")) <= _MAX_RETRY_DIGITS:
            self.retry = int(value)

    def _dispatch(self, out: list[Event]) -> None:
        """Blank line: emit the pending event if any ``data`` line came, then start a new one."""
        data = self._data
        if data:
            joined = data[0] if len(data) == 1 else b"\n".join(data)
            out.append((self._event, _valid_utf8(joined)))
            data.clear()
        self._event = None
