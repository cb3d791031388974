# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled fast path for the OpenAI → Anthropic stream rewrite (twin: ``ccr_fast.protocol.openai_fast``).

The contract is written down in the twin's module docstring.  The twin checks it with orjson plus a regex;
this module checks it in one pass over the bytes without creating any Python object except the result, which
is what makes a plain text chunk cost well under a microsecond.  Where the contract defers to orjson
(duplicate keys: the last one wins; nesting depth 1024; numbers that overflow a double), the scanner
reproduces orjson's decision, and a differential property test keeps the two in step.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.conversion cimport PyOS_string_to_double
from libc.math cimport isinf
from libc.string cimport memcmp, memcpy, memset

__all__ = ["match_text_delta", "text_delta_event", "text_delta_run"]

cdef enum:
    FAIL = -1
    MAX_DEPTH = 1024
    #: integers this long may overflow a double (orjson rejects those), so they get a real conversion
    LONG_NUMBER = 300

cdef struct Doc:
    const unsigned char* p
    Py_ssize_t n
    int contents  # string tokens whose raw body is ``content``; more than one is a rejection

cdef struct Delta:
    bint is_object
    Py_ssize_t text_start  # -1 unless ``content`` (the last one) is a string
    Py_ssize_t text_end
    bint role_bad

cdef struct Choice:
    bint index_zero
    bint finish_null
    bint has_error
    Delta delta

cdef struct Choices:
    Py_ssize_t count
    bint all_objects
    Choice last


cdef inline bint _key_is(const unsigned char* p, Py_ssize_t start, Py_ssize_t end, const char* name,
                         Py_ssize_t size) noexcept:
    return end - start == size and memcmp(p + start, name, size) == 0


cdef inline Py_ssize_t _ws(Doc* d, Py_ssize_t i) noexcept:
    cdef unsigned char c
    while i < d.n:
        c = d.p[i]
        if c != 32 and c != 10 and c != 13 and c != 9:
            break
        i += 1
    return i


cdef inline int _hex(unsigned char c) noexcept:
    if 48 <= c <= 57:
        return c - 48
    if 97 <= c <= 102:
        return c - 87
    if 65 <= c <= 70:
        return c - 55
    return -1


cdef int _hex4(Doc* d, Py_ssize_t i) noexcept:
    """The code unit of the four hex digits at ``i``, or -1."""
    cdef int value = 0, digit, k
    if i + 4 > d.n:
        return -1
    for k in range(4):
        digit = _hex(d.p[i + k])
        if digit < 0:
            return -1
        value = value * 16 + digit
    return value


cdef Py_ssize_t _string(Doc* d, Py_ssize_t i, bint escapes) noexcept:
    """``i`` is at an opening quote; the index after the closing one, or FAIL.

    Without ``escapes`` a backslash fails (only the content string may hold one); with it every escape must
    be valid JSON and surrogates must pair, so the body can be copied verbatim.
    """
    cdef Py_ssize_t start = i + 1
    cdef unsigned char c
    cdef int unit
    i = start
    while i < d.n:
        c = d.p[i]
        if c == 34:
            if i - start == 7 and memcmp(d.p + start, b"content", 7) == 0:
                d.contents += 1
                if d.contents > 1:
                    return FAIL
            return i + 1
        if c < 32:
            return FAIL
        if c == 92:
            if not escapes or i + 1 >= d.n:
                return FAIL
            c = d.p[i + 1]
            if c == 117:
                unit = _hex4(d, i + 2)
                if unit < 0 or 0xDC00 <= unit <= 0xDFFF:
                    return FAIL
                i += 6
                if 0xD800 <= unit <= 0xDBFF:
                    if i + 1 >= d.n or d.p[i] != 92 or d.p[i + 1] != 117:
                        return FAIL
                    unit = _hex4(d, i + 2)
                    if unit < 0xDC00 or unit > 0xDFFF:
                        return FAIL
                    i += 6
                continue
            if c != 34 and c != 92 and c != 47 and c != 98 and c != 102 and c != 110 and c != 114 and c != 116:
                return FAIL
            i += 2
            continue
        i += 1
    return FAIL


cdef Py_ssize_t _number(Doc* d, Py_ssize_t i, bint* is_zero) noexcept:
    """A JSON number at ``i``; the index after it, or FAIL.  ``is_zero``: it is the integer 0 (or -0)."""
    cdef Py_ssize_t start = i
    cdef bint exact = True
    cdef char* end_ptr
    cdef double value
    if d.p[i] == 45:
        i += 1
    if i >= d.n:
        return FAIL
    if d.p[i] == 48:
        i += 1
        is_zero[0] = True
    elif 49 <= d.p[i] <= 57:
        is_zero[0] = False
        while i < d.n and 48 <= d.p[i] <= 57:
            i += 1
    else:
        return FAIL
    if i < d.n and d.p[i] == 46:
        exact = False
        i += 1
        if i >= d.n or not 48 <= d.p[i] <= 57:
            return FAIL
        while i < d.n and 48 <= d.p[i] <= 57:
            i += 1
    if i < d.n and (d.p[i] == 101 or d.p[i] == 69):
        exact = False
        i += 1
        if i < d.n and (d.p[i] == 43 or d.p[i] == 45):
            i += 1
        if i >= d.n or not 48 <= d.p[i] <= 57:
            return FAIL
        while i < d.n and 48 <= d.p[i] <= 57:
            i += 1
    if not exact:
        is_zero[0] = False
    if not exact or i - start > LONG_NUMBER:
        try:
            value = PyOS_string_to_double(<const char*>(d.p + start), &end_ptr, NULL)
        except Exception:
            return FAIL
        if isinf(value):
            return FAIL
    return i


cdef inline bint _literal(Doc* d, Py_ssize_t i, const char* word, Py_ssize_t size) noexcept:
    return i + size <= d.n and memcmp(d.p + i, word, size) == 0


cdef inline Py_ssize_t _null(Doc* d, Py_ssize_t i) noexcept:
    """The index after a ``null`` at ``i``, or FAIL when there is none."""
    if _literal(d, i, b"null", 4):
        return i + 4
    return FAIL


cdef Py_ssize_t _value(Doc* d, Py_ssize_t i, int depth) noexcept:
    """Validate and skip any JSON value at ``i`` (already past whitespace) inside ``depth`` containers."""
    cdef unsigned char c
    cdef bint ignored
    if i >= d.n:
        return FAIL
    c = d.p[i]
    if c == 34:
        return _string(d, i, False)
    if c == 123:
        return _object(d, i, depth + 1)
    if c == 91:
        return _array(d, i, depth + 1)
    if c == 116:
        return i + 4 if _literal(d, i, b"true", 4) else FAIL
    if c == 102:
        return i + 5 if _literal(d, i, b"false", 5) else FAIL
    if c == 110:
        return _null(d, i)
    return _number(d, i, &ignored)


cdef Py_ssize_t _object(Doc* d, Py_ssize_t i, int depth) noexcept:
    """Skip an object at ``i`` whose keys mean nothing to us."""
    if depth > MAX_DEPTH:
        return FAIL
    i = _ws(d, i + 1)
    if i < d.n and d.p[i] == 125:
        return i + 1
    while True:
        if i >= d.n or d.p[i] != 34:
            return FAIL
        i = _string(d, i, False)
        if i == FAIL:
            return FAIL
        i = _ws(d, i)
        if i >= d.n or d.p[i] != 58:
            return FAIL
        i = _value(d, _ws(d, i + 1), depth)
        if i == FAIL:
            return FAIL
        i = _ws(d, i)
        if i >= d.n:
            return FAIL
        if d.p[i] == 125:
            return i + 1
        if d.p[i] != 44:
            return FAIL
        i = _ws(d, i + 1)


cdef Py_ssize_t _array(Doc* d, Py_ssize_t i, int depth) noexcept:
    if depth > MAX_DEPTH:
        return FAIL
    i = _ws(d, i + 1)
    if i < d.n and d.p[i] == 93:
        return i + 1
    while True:
        i = _value(d, i, depth)
        if i == FAIL:
            return FAIL
        i = _ws(d, i)
        if i >= d.n:
            return FAIL
        if d.p[i] == 93:
            return i + 1
        if d.p[i] != 44:
            return FAIL
        i = _ws(d, i + 1)


cdef Py_ssize_t _delta(Doc* d, Py_ssize_t i, Delta* out, set bad) except -2:
    """Parse ``choices[0].delta`` (depth 4).  ``bad`` collects keys whose last value is not null/[]."""
    cdef Py_ssize_t key_start, key_end, after
    out.is_object = True
    out.text_start = -1
    out.role_bad = False
    i = _ws(d, i + 1)
    if i < d.n and d.p[i] == 125:
        return i + 1
    while True:
        if i >= d.n or d.p[i] != 34:
            return FAIL
        key_start = i + 1
        i = _string(d, i, False)
        if i == FAIL:
            return FAIL
        key_end = i - 1
        i = _ws(d, i)
        if i >= d.n or d.p[i] != 58:
            return FAIL
        i = _ws(d, i + 1)
        if i >= d.n:
            return FAIL
        if _key_is(d.p, key_start, key_end, b"content", 7):
            if d.p[i] == 34:
                out.text_start = i + 1
                i = _string(d, i, True)
                out.text_end = i - 1
            else:
                out.text_start = -1
                i = _value(d, i, 4)
        elif _key_is(d.p, key_start, key_end, b"role", 4):
            after = _null(d, i)
            if after != FAIL:
                out.role_bad = False
                i = after
            elif d.p[i] == 34:
                out.role_bad = False
                i = _string(d, i, False)
            else:
                out.role_bad = True
                i = _value(d, i, 4)
        else:
            after = _null(d, i)
            if after == FAIL and d.p[i] == 91:
                after = _ws(d, i + 1)
                after = after + 1 if after < d.n and d.p[after] == 93 else FAIL
            if after != FAIL:
                if bad:
                    bad.discard(PyBytes_FromStringAndSize(<const char*>d.p + key_start, key_end - key_start))
                i = after
            else:
                bad.add(PyBytes_FromStringAndSize(<const char*>d.p + key_start, key_end - key_start))
                i = _value(d, i, 4)
        if i == FAIL:
            return FAIL
        i = _ws(d, i)
        if i >= d.n:
            return FAIL
        if d.p[i] == 125:
            return i + 1
        if d.p[i] != 44:
            return FAIL
        i = _ws(d, i + 1)


cdef Py_ssize_t _choice(Doc* d, Py_ssize_t i, Choice* out, set bad) except -2:
    """Parse one element of ``choices`` (an object at depth 3)."""
    cdef Py_ssize_t key_start, key_end, after
    cdef bint is_zero
    out.index_zero = False
    out.finish_null = True
    out.has_error = False
    out.delta.is_object = False
    out.delta.text_start = -1
    out.delta.role_bad = False
    i = _ws(d, i + 1)
    if i < d.n and d.p[i] == 125:
        return i + 1
    while True:
        if i >= d.n or d.p[i] != 34:
            return FAIL
        key_start = i + 1
        i = _string(d, i, False)
        if i == FAIL:
            return FAIL
        key_end = i - 1
        i = _ws(d, i)
        if i >= d.n or d.p[i] != 58:
            return FAIL
        i = _ws(d, i + 1)
        if i >= d.n:
            return FAIL
        if _key_is(d.p, key_start, key_end, b"delta", 5):
            bad.clear()
            if d.p[i] == 123:
                i = _delta(d, i, &out.delta, bad)
            else:
                out.delta.is_object = False
                out.delta.text_start = -1
                i = _value(d, i, 3)
        elif _key_is(d.p, key_start, key_end, b"index", 5):
            is_zero = False
            if d.p[i] == 45 or 48 <= d.p[i] <= 57:
                i = _number(d, i, &is_zero)
            else:
                i = _value(d, i, 3)
            out.index_zero = is_zero
        elif _key_is(d.p, key_start, key_end, b"finish_reason", 13):
            after = _null(d, i)
            out.finish_null = after != FAIL
            i = after if after != FAIL else _value(d, i, 3)
        else:
            if _key_is(d.p, key_start, key_end, b"error", 5):
                out.has_error = True
            i = _value(d, i, 3)
        if i == FAIL:
            return FAIL
        i = _ws(d, i)
        if i >= d.n:
            return FAIL
        if d.p[i] == 125:
            return i + 1
        if d.p[i] != 44:
            return FAIL
        i = _ws(d, i + 1)


cdef Py_ssize_t _choices(Doc* d, Py_ssize_t i, Choices* out, set bad) except -2:
    """Parse the ``choices`` array (depth 2); ``out.last`` describes its last element."""
    out.count = 0
    out.all_objects = True
    i = _ws(d, i + 1)
    if i < d.n and d.p[i] == 93:
        return i + 1
    while True:
        if i >= d.n:
            return FAIL
        out.count += 1
        if d.p[i] == 123:
            i = _choice(d, i, &out.last, bad)
        else:
            out.all_objects = False
            i = _value(d, i, 2)
        if i == FAIL:
            return FAIL
        i = _ws(d, i)
        if i >= d.n:
            return FAIL
        if d.p[i] == 93:
            return i + 1
        if d.p[i] != 44:
            return FAIL
        i = _ws(d, i + 1)


def match_text_delta(bytes data not None):
    """The escaped text of a chunk that only appends text, else None (contract: see the pure twin)."""
    return _match(data)


cdef object _match(bytes data):
    cdef Doc d
    cdef Choices choices
    cdef bint have_choices = False, usage_null = True
    cdef Py_ssize_t i, key_start, key_end, after
    cdef set bad = set()
    d.p = <const unsigned char*>PyBytes_AS_STRING(data)
    d.n = PyBytes_GET_SIZE(data)
    d.contents = 0
    memset(&choices, 0, sizeof(Choices))
    choices.last.delta.text_start = -1
    i = _ws(&d, 0)
    if i >= d.n or d.p[i] != 123:
        return None
    i = _ws(&d, i + 1)
    if i < d.n and d.p[i] == 125:
        return None
    while True:
        if i >= d.n or d.p[i] != 34:
            return None
        key_start = i + 1
        i = _string(&d, i, False)
        if i == FAIL:
            return None
        key_end = i - 1
        i = _ws(&d, i)
        if i >= d.n or d.p[i] != 58:
            return None
        i = _ws(&d, i + 1)
        if i >= d.n:
            return None
        if _key_is(d.p, key_start, key_end, b"choices", 7):
            if d.p[i] == 91:
                have_choices = True
                bad.clear()
                i = _choices(&d, i, &choices, bad)
            else:
                have_choices = False
                i = _value(&d, i, 1)
        elif _key_is(d.p, key_start, key_end, b"usage", 5):
            after = _null(&d, i)
            usage_null = after != FAIL
            i = after if usage_null else _value(&d, i, 1)
        elif _key_is(d.p, key_start, key_end, b"error", 5) or _key_is(d.p, key_start, key_end, b"x_groq", 6):
            return None
        else:
            i = _value(&d, i, 1)
        if i == FAIL:
            return None
        i = _ws(&d, i)
        if i >= d.n:
            return None
        if d.p[i] == 125:
            break
        if d.p[i] != 44:
            return None
        i = _ws(&d, i + 1)
    if _ws(&d, i + 1) != d.n:
        return None
    if not have_choices or not usage_null or choices.count != 1 or not choices.all_objects:
        return None
    if not choices.last.index_zero or not choices.last.finish_null or choices.last.has_error:
        return None
    if not choices.last.delta.is_object or choices.last.delta.text_start < 0 or choices.last.delta.role_bad:
        return None
    if bad:
        return None
    return PyBytes_FromStringAndSize(<const char*>d.p + choices.last.delta.text_start,
                                     choices.last.delta.text_end - choices.last.delta.text_start)


cdef bytes _HEAD = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
cdef bytes _MID = b',"delta":{"type":"text_delta","text":"'
cdef bytes _TAIL = b'"}}\n\n'


def text_delta_event(Py_ssize_t index, bytes escaped_text not None):
    """The ``content_block_delta`` frame appending ``escaped_text`` (already a JSON string body)."""
    return _delta_event(index, escaped_text)


def text_delta_run(list events not None, Py_ssize_t start, Py_ssize_t index, list out not None):
    """Frames for the run of plain text chunks in ``events`` from ``start`` (contract: see the pure twin)."""
    cdef Py_ssize_t i = start, n = len(events)
    cdef object event, escaped
    cdef tuple pair
    if i < 0:
        i = 0
    while i < n:
        event = events[i]
        if type(event) is not tuple or len(<tuple>event) != 2:
            return i
        pair = <tuple>event
        if pair[0] is not None or type(pair[1]) is not bytes:
            return i
        escaped = _match(<bytes>pair[1])
        if escaped is None:
            return i
        if PyBytes_GET_SIZE(escaped):
            out.append(_delta_event(index, <bytes>escaped))
        i += 1
    return n


cdef bytes _delta_event(Py_ssize_t index, bytes escaped_text):
    cdef char digits[24]
    cdef Py_ssize_t ndigits = 0, pos, size
    cdef size_t value
    cdef bytes out
    cdef char* buf
    if index < 0:
        return _HEAD + str(index).encode() + _MID + escaped_text + _TAIL
    value = <size_t>index
    while True:
        digits[ndigits] = <char>(48 + value % 10)
        ndigits += 1
        value //= 10
        if value == 0:
            break
    size = len(_HEAD) + ndigits + len(_MID) + len(escaped_text) + len(_TAIL)
    out = PyBytes_FromStringAndSize(NULL, size)
    buf = PyBytes_AS_STRING(out)
    memcpy(buf, PyBytes_AS_STRING(_HEAD), len(_HEAD))
    pos = len(_HEAD)
    while ndigits > 0:
        ndigits -= 1
        buf[pos] = digits[ndigits]
        pos += 1
    memcpy(buf + pos, PyBytes_AS_STRING(_MID), len(_MID))
    pos += len(_MID)
    memcpy(buf + pos, PyBytes_AS_STRING(escaped_text), len(escaped_text))
    pos += len(escaped_text)
    memcpy(buf + pos, PyBytes_AS_STRING(_TAIL), len(_TAIL))
    return out
