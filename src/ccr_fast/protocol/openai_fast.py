"""Fast path for the OpenAI → Anthropic stream rewrite, pure-Python twin of ``ccr_fast._ext.openai_fast``.

Almost every chunk of a streamed answer means only "append this text".  Parsing such a chunk into a dict and
serialising a new event costs several microseconds; recognising it and copying the JSON-escaped text into an
event template costs a fraction of that.  ``match_text_delta`` recognises those chunks, ``text_delta_event``
builds the Anthropic frame around the copied bytes.

The contract both implementations keep (and the tests hold them to, including a differential property test):
``match_text_delta(data)`` returns the raw bytes between the quotes of ``choices[0].delta.content`` if and
only if all of these hold, else None:

* ``data`` is one JSON document (orjson's rules: RFC 8259, nesting depth at most 1024, numbers finite as
  doubles) whose top level is an object;
* the top level has no ``error`` and no ``x_groq`` key, and ``usage`` is absent or null;
* ``choices`` is an array of exactly one object, whose ``index`` is the integer 0 and whose
  ``finish_reason`` is absent or null, with no ``error`` key;
* its ``delta`` is an object whose ``content`` is a string, whose ``role`` (if any) is a string or null, and
  whose every other key is null or an empty array (how servers spell "no tool calls / no reasoning");
* the byte sequence ``"content"`` occurs exactly once in ``data`` and no backslash occurs outside the
  content string, so every key is literal and nothing is hidden behind an escape.

For duplicate keys the last occurrence counts, as it does for orjson.  ``data`` is the output of the SSE
decoder and therefore valid UTF-8; the returned bytes are a valid JSON string body (valid escapes, paired
surrogates, no raw control characters) and can be copied into an event verbatim.
"""

from __future__ import annotations

import re
from typing import Any, Final

import orjson

__all__ = ["match_text_delta", "text_delta_event", "text_delta_run"]

_CONTENT_KEY: Final = b'"content"'
#: after the key: the colon and the string token; orjson has already validated what the body contains
_CONTENT_VALUE: Final = re.compile(rb'[ \t\n\r]*:[ \t\n\r]*"([^"\\]*(?:\\.[^"\\]*)*)"', re.DOTALL)
_EVENT_HEAD: Final = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
_EVENT_MID: Final = b',"delta":{"type":"text_delta","text":"'
_EVENT_TAIL: Final = b'"}}\n\n'


def _is_plain_delta(chunk: Any) -> bool:
    """The semantic half of the contract, checked on the parsed chunk."""
    if type(chunk) is not dict or "error" in chunk or "x_groq" in chunk or chunk.get("usage") is not None:
        return False
    choices = chunk.get("choices")
    if type(choices) is not list or len(choices) != 1:
        return False
    choice = choices[0]
    if type(choice) is not dict or "error" in choice or choice.get("finish_reason") is not None:
        return False
    index = choice.get("index", 1)
    if type(index) is not int or index != 0:
        return False
    delta = choice.get("delta")
    if type(delta) is not dict or type(delta.get("content")) is not str:
        return False
    for key, value in delta.items():
        if key == "content":
            continue
        if key == "role":
            if value is not None and type(value) is not str:
                return False
        elif value is not None and value != []:
            return False
    return True


def match_text_delta(data: bytes) -> bytes | None:
    """The escaped text of a chunk that only appends text, else None (see the module docstring)."""
    at = data.find(_CONTENT_KEY)
    if at < 0 or data.find(_CONTENT_KEY, at + len(_CONTENT_KEY)) >= 0:
        return None
    found = _CONTENT_VALUE.match(data, at + len(_CONTENT_KEY))
    if found is None:
        return None
    start, end = found.span(1)
    if data.find(b"\\", 0, start) >= 0 or data.find(b"\\", end) >= 0:
        return None
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not _is_plain_delta(chunk):
        return None
    return found.group(1)


def text_delta_event(index: int, escaped_text: bytes) -> bytes:
    """The ``content_block_delta`` frame appending ``escaped_text`` (already a JSON string body)."""
    return _EVENT_HEAD + str(index).encode() + _EVENT_MID + escaped_text + _EVENT_TAIL


def text_delta_run(events: list[tuple[bytes | None, bytes]], start: int, index: int, out: list[bytes]) -> int:
    """Append to ``out`` the frames of the plain text chunks in ``events`` from ``start`` on, for the text
    block at ``index``, and return the position of the first event that is not one (``len(events)`` when
    all are). An event is ``(name, data)`` as the SSE decoder gives it; a plain text chunk has no event name
    and data that ``match_text_delta`` accepts. Empty text appends nothing but still counts as handled.
    Saves the per-event round trip through Python when a stream is a long run of text deltas."""
    n = len(events)
    i = max(start, 0)
    while i < n:
        event = events[i]
        if type(event) is not tuple or len(event) != 2:
            return i
        name, data = event
        if name is not None or type(data) is not bytes:
            return i
        escaped = match_text_delta(data)
        if escaped is None:
            return i
        if escaped:
            out.append(text_delta_event(index, escaped))
        i += 1
    return n
