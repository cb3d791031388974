"""Recover the JSON object a model meant when the tool arguments it wrote are not valid JSON.

Models that were not trained on a provider's tool-calling format write arguments the way they write
code: in a markdown fence, with single quotes, Python's ``True``/``None``, trailing commas, raw newlines
inside strings, or cut short by ``max_tokens``.  Claude Code cannot run a tool whose input does not parse,
so the turn is lost.  :func:`repair_object` tries, cheapest first:

1. the text as it is (orjson), unwrapping a double-encoded object;
2. JSON5 (single quotes, unquoted keys, comments, trailing commas) after removing a markdown fence and
   any prose before the object;
3. a one-pass scanner that rewrites what JSON5 does not accept (raw control characters in strings, Python
   literals, text after the object) and closes what was left open: the string, a key without a value,
   every bracket.

It never raises and never executes anything; the result is an object or None.
"""

from __future__ import annotations

import re
from typing import Any, Final

import json5
import orjson

__all__ = ["repair_object"]

JSONDict = dict[str, Any]

_FENCE: Final = re.compile(r"^```[\w+-]*[ \t]*\n?(.*?)(?:\n?```\s*)?$", re.DOTALL)
_LITERALS: Final = {"true": "true", "false": "false", "null": "null", "True": "true", "False": "false"}
_LITERALS_NONE: Final = {"None": "null", "undefined": "null"}
_ESCAPES: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
_WORD_START: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_$")
_WORD: Final = _WORD_START | frozenset("0123456789")
_NUMBER_START: Final = frozenset("-0123456789.")
_NUMBER: Final = _NUMBER_START | frozenset("eE+")
_NUMBER_TAIL: Final = ".eE+-"

# phases of an open object: expecting a key, the colon after it, its value, or a comma / the end
_KEY, _COLON, _VALUE, _AFTER = range(4)


def repair_object(text: str) -> JSONDict | None:
    """The object ``text`` stands for, or None when no object can be recovered (empty text: ``{}``)."""
    value = _strict(text)
    if isinstance(value, dict):
        return value
    body = _unwrap(text)
    if not body:
        return {} if not text.strip() else None
    for candidate in (body, _close(body)):
        value = _strict(candidate)
        if value is None:
            value = _relaxed(candidate)
        if isinstance(value, dict):
            return value
    return None


def _strict(text: str) -> Any:
    try:
        value = orjson.loads(text)
        if isinstance(value, str) and value.lstrip().startswith("{"):
            value = orjson.loads(value)  # double-encoded: a JSON string holding the object
    except orjson.JSONDecodeError:
        return None
    return value


def _relaxed(text: str) -> Any:
    try:
        return json5.loads(text)
    except (ValueError, RecursionError):
        return None


def _unwrap(text: str) -> str:
    """The text from the first ``{`` on, with a surrounding markdown fence removed."""
    fenced = _FENCE.match(text.strip())
    if fenced:
        text = fenced.group(1)
    start = text.find("{")
    return text[start:] if start >= 0 else ""


def _close(text: str) -> str:
    """Rewrite ``text`` (which starts with ``{``) into something a JSON parser accepts; see the module doc."""
    out: list[str] = []
    stack: list[list[Any]] = []  # [closer, phase] per open container
    quote = ""  # the open string's quote character, "" outside strings
    escaped = False
    escape_at = 0  # where in ``out`` the latest escape sequence starts
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        i += 1
        if quote:
            if escaped:
                escaped = False
                out.append(c)
            elif c == "\\":
                escaped = True
                escape_at = len(out)
                out.append(c)
            elif c == quote:
                quote = ""
                out.append('"')
                _value_done(stack)
            elif c == '"':
                out.append('\\"')  # inside a single-quoted string
            else:
                out.append(_ESCAPES.get(c, c))
        elif c in "\"'":
            quote = c
            out.append('"')
        elif c in "{[":
            stack.append(["}" if c == "{" else "]", _KEY if c == "{" else _VALUE])
            out.append(c)
        elif c in "}]":
            if stack and stack[-1][0] == c:
                _end_container(out, stack)
                if not stack:
                    break  # the object is complete: anything after it is not part of it
        elif c == ":":
            if stack and stack[-1][0] == "}":
                stack[-1][1] = _VALUE
            out.append(c)
        elif c == ",":
            if stack and stack[-1][0] == "}":
                stack[-1][1] = _KEY
            out.append(c)
        elif c in _WORD_START:
            start = i - 1
            while i < n and text[i] in _WORD:
                i += 1
            out.append(_word(text[start:i], stack, at_end=i >= n))
        elif c in _NUMBER_START:
            start = i - 1
            while i < n and text[i] in _NUMBER:
                i += 1
            number = text[start:i].rstrip(_NUMBER_TAIL)  # a number cut short: "1.", "2e", "-"
            out.append(number or "null")
            _value_done(stack)
        else:
            out.append(c)
    if quote:
        if len(out) - escape_at < 6 and out[escape_at : escape_at + 2] in (["\\"], ["\\", "u"]):
            del out[escape_at:]  # an escape cut short: a dangling backslash or "\u" with too few digits
        out.append('"')
        _value_done(stack)
    while stack:
        _end_container(out, stack)
    return "".join(out)


def _word(word: str, stack: list[list[Any]], *, at_end: bool) -> str:
    """A bare word: a literal, an unquoted key, or an unquoted string value."""
    phase = stack[-1][1] if stack else _VALUE
    if phase == _KEY:
        stack[-1][1] = _COLON
        return orjson.dumps(word).decode()
    _value_done(stack)
    literal = _LITERALS.get(word) or _LITERALS_NONE.get(word)
    if literal is not None:
        return literal
    if at_end:
        for full in ("true", "false", "null"):
            if full.startswith(word):
                return full  # cut off mid-literal
    return orjson.dumps(word).decode()


def _value_done(stack: list[list[Any]]) -> None:
    if stack:
        top = stack[-1]
        if top[0] == "}":
            top[1] = _COLON if top[1] == _KEY else _AFTER


def _end_container(out: list[str], stack: list[list[Any]]) -> None:
    """Close the innermost container: drop a trailing comma, complete a dangling key, add the closer."""
    closer, phase = stack.pop()
    while out and (out[-1].isspace() or out[-1] == ","):
        out.pop()
    if closer == "}":
        if phase == _COLON:
            out.append(":null")
        elif phase == _VALUE and out and out[-1] == ":":
            out.append("null")
    out.append(closer)
    _value_done(stack)
