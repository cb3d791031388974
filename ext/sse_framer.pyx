# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Incremental Server-Sent Events decoder (WHATWG HTML §9.2.5-9.2.6), compiled.

Same API and behaviour as the pure-Python twin ``ccr_fast.protocol.sse`` (whose module docstring records the
design decisions: byte-level framing, UTF-8 output with U+FFFD replacement, the lenient ``close()`` and the
``retry`` limit).  This version exists for speed: it runs on every upstream chunk, so it fuses the steps the
twin does one after the other into a single pass over each chunk.  ``memchr`` finds the next CR and LF (each
result is cached until the scan passes it, so CR-only or LF-only streams are scanned once), every line is
matched against ``data:`` in place and its value appended straight into the event's data buffer, and the
finished event is validated as UTF-8 in C, so valid data never goes through a decode/encode round trip.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from cpython.unicode cimport PyUnicode_AsUTF8String, PyUnicode_DecodeUTF8
from libc.stdint cimport uint64_t
from libc.string cimport memchr, memcmp, memcpy

__all__ = ["SSEDecoder"]

cdef Py_ssize_t _MAX_RETRY_DIGITS = 18
# A buffer that grew past this (a multi-megabyte line or event) is released once it has been consumed rather
# than kept for the rest of a long-lived stream.
cdef Py_ssize_t _KEEP_CAPACITY = 1 << 20
cdef const unsigned char* _BOM = b"\xef\xbb\xbf"


cdef struct ByteBuf:
    char* ptr
    Py_ssize_t len
    Py_ssize_t cap


cdef int _buf_extend(ByteBuf* buf, const char* src, Py_ssize_t n) except -1:
    cdef Py_ssize_t need = buf.len + n
    cdef Py_ssize_t cap
    cdef char* grown
    if need > buf.cap:
        cap = buf.cap * 2 if buf.cap else 256
        while cap < need:
            cap *= 2
        grown = <char*>PyMem_Realloc(buf.ptr, cap)
        if grown == NULL:
            raise MemoryError()
        buf.ptr = grown
        buf.cap = cap
    if n:
        memcpy(buf.ptr + buf.len, src, n)
    buf.len = need
    return 0


cdef inline void _buf_clear(ByteBuf* buf) noexcept:
    buf.len = 0
    if buf.cap > _KEEP_CAPACITY:
        PyMem_Free(buf.ptr)
        buf.ptr = NULL
        buf.cap = 0


cdef bint _utf8_valid(const unsigned char* s, Py_ssize_t n) noexcept nogil:
    """Strict UTF-8 check (Unicode Table 3-7: no overlongs, surrogates or code points past U+10FFFF)."""
    cdef Py_ssize_t i = 0
    cdef uint64_t word
    cdef unsigned char c, c1
    while i < n:
        if i + 8 <= n:
            memcpy(&word, s + i, 8)
            if (word & 0x8080808080808080ULL) == 0:
                i += 8
                continue
        c = s[i]
        if c < 0x80:
            i += 1
        elif c < 0xC2:
            return False
        elif c < 0xE0:
            if i + 1 >= n or (s[i + 1] & 0xC0) != 0x80:
                return False
            i += 2
        elif c < 0xF0:
            if i + 2 >= n:
                return False
            c1 = s[i + 1]
            if c == 0xE0:
                if c1 < 0xA0 or c1 > 0xBF:
                    return False
            elif c == 0xED:
                if c1 < 0x80 or c1 > 0x9F:
                    return False
            elif (c1 & 0xC0) != 0x80:
                return False
            if (s[i + 2] & 0xC0) != 0x80:
                return False
            i += 3
        elif c < 0xF5:
            if i + 3 >= n:
                return False
            c1 = s[i + 1]
            if c == 0xF0:
                if c1 < 0x90 or c1 > 0xBF:
                    return False
            elif c == 0xF4:
                if c1 < 0x80 or c1 > 0x8F:
                    return False
            elif (c1 & 0xC0) != 0x80:
                return False
            if (s[i + 2] & 0xC0) != 0x80 or (s[i + 3] & 0xC0) != 0x80:
                return False
            i += 4
        else:
            return False
    return True


cdef bytes _valid_bytes(const char* s, Py_ssize_t n):
    """A bytes copy of ``s[:n]``, with each invalid UTF-8 sequence replaced by U+FFFD."""
    if _utf8_valid(<const unsigned char*>s, n):
        return PyBytes_FromStringAndSize(s, n)
    return PyUnicode_AsUTF8String(PyUnicode_DecodeUTF8(s, n, "replace"))


cdef class SSEDecoder:
    """Feed raw stream bytes in chunks of any size; get back the events each chunk completed."""

    cdef public bytes last_event_id
    cdef public object retry
    cdef ByteBuf _partial   # an unterminated line; never contains CR or LF
    cdef ByteBuf _data      # the pending event's data values joined with LF
    cdef bint _has_data     # a ``data`` line came (the joined buffer may still be empty)
    cdef object _event      # the pending event's type: bytes or None
    cdef object _last_name  # the last event type created, reused while the upstream repeats it
    cdef bint _skip_lf      # the previous chunk ended in CR: an LF starting this one belongs to it
    cdef bint _at_start     # a leading BOM may still be (partly) ahead of us

    def __cinit__(self):
        self.last_event_id = b""
        self.retry = None
        self._event = None
        self._last_name = None
        self._at_start = True

    def __dealloc__(self):
        PyMem_Free(self._partial.ptr)
        PyMem_Free(self._data.ptr)

    def feed(self, bytes data not None):
        """Consume one chunk of the stream; return the events it completed, in order."""
        cdef list out = []
        cdef const char* p = PyBytes_AS_STRING(data)
        cdef const char* end = p + PyBytes_GET_SIZE(data)
        cdef const char* cur = p
        cdef const char* cr
        cdef const char* lf
        cdef const char* term
        if cur == end:
            return out
        if self._skip_lf:
            self._skip_lf = False
            if cur[0] == b'\n':
                cur += 1
        if self._at_start and cur < end:
            cur = self._strip_bom(cur, end)
        if cur == end:
            return out

        cr = <const char*>memchr(cur, b'\r', end - cur)
        lf = <const char*>memchr(cur, b'\n', end - cur)
        while True:
            if cr != NULL and cr < cur:
                cr = <const char*>memchr(cur, b'\r', end - cur)
            if lf != NULL and lf < cur:
                lf = <const char*>memchr(cur, b'\n', end - cur)
            if cr != NULL and (lf == NULL or cr < lf):
                term = cr
            elif lf != NULL:
                term = lf
            else:
                _buf_extend(&self._partial, cur, end - cur)
                return out
            if self._partial.len:
                _buf_extend(&self._partial, cur, term - cur)
                self._line(self._partial.ptr, self._partial.len, out)
                _buf_clear(&self._partial)
            else:
                self._line(cur, term - cur, out)
            cur = term + 1
            if term == cr:
                if cur == end:
                    self._skip_lf = True
                elif cur[0] == b'\n':
                    cur += 1
            if cur == end:
                return out

    def close(self):
        """End of stream: finish a partial line and dispatch the pending event if it has data.

        Lenient on purpose: the spec discards an event whose blank line never came, but upstreams often end
        with ``data: [DONE]\\n`` and nothing after it (see the module docstring).
        """
        cdef list out = []
        self._at_start = False
        self._skip_lf = False
        if self._partial.len:
            self._line(self._partial.ptr, self._partial.len, out)
            _buf_clear(&self._partial)
        self._dispatch(out)
        return out

    cdef const char* _strip_bom(self, const char* cur, const char* end) except NULL:
        """Drop one leading BOM, which may arrive split across chunks; return where processing resumes.

        A still-possible BOM prefix is kept in the partial line, so that it is processed as ordinary bytes if
        the BOM never completes.
        """
        cdef Py_ssize_t held = self._partial.len
        cdef Py_ssize_t taken = 0
        cdef Py_ssize_t n = end - cur
        while held + taken < 3 and taken < n and <unsigned char>cur[taken] == _BOM[held + taken]:
            taken += 1
        if held + taken == 3:
            self._at_start = False
            self._partial.len = 0
            return cur + taken
        if taken == n:
            _buf_extend(&self._partial, cur, n)
            return end
        self._at_start = False
        return cur

    cdef int _line(self, const char* s, Py_ssize_t n, list out) except -1:
        """Apply one complete line (without its terminator)."""
        cdef const char* colon
        cdef const char* value
        cdef Py_ssize_t name_len, value_len
        if n == 0:
            return self._dispatch(out)
        if s[0] == b':':
            return 0
        if n >= 5 and memcmp(s, b"data:", 5) == 0:
            value = s + 5
            value_len = n - 5
            if value_len and value[0] == b' ':
                value += 1
                value_len -= 1
            return self._append_data(value, value_len)
        colon = <const char*>memchr(s, b':', n)
        if colon == NULL:
            name_len = n
            value = s + n
            value_len = 0
        else:
            name_len = colon - s
            value = colon + 1
            value_len = n - name_len - 1
            if value_len and value[0] == b' ':
                value += 1
                value_len -= 1
        if name_len == 4 and memcmp(s, b"data", 4) == 0:
            return self._append_data(value, value_len)
        if name_len == 5 and memcmp(s, b"event", 5) == 0:
            self._event = self._event_name(value, value_len)
        elif name_len == 2 and memcmp(s, b"id", 2) == 0:
            if memchr(value, 0, value_len) == NULL:
                self.last_event_id = _valid_bytes(value, value_len)
        elif name_len == 5 and memcmp(s, b"retry", 5) == 0:
            self._set_retry(value, value_len)
        return 0

    cdef inline int _append_data(self, const char* value, Py_ssize_t n) except -1:
        if self._has_data:
            _buf_extend(&self._data, b"\n", 1)
        else:
            self._has_data = True
        return _buf_extend(&self._data, value, n)

    cdef object _event_name(self, const char* value, Py_ssize_t n):
        """The event type as bytes (None when empty), reusing the previous object when the name repeats."""
        cdef bytes last
        if n == 0:
            return None
        if self._last_name is not None:
            last = <bytes>self._last_name
            if PyBytes_GET_SIZE(last) == n and memcmp(PyBytes_AS_STRING(last), value, n) == 0:
                return last
        # The cache always holds valid UTF-8, so raw bytes equal to it are valid and would map to themselves.
        last = _valid_bytes(value, n)
        self._last_name = last
        return last

    cdef int _set_retry(self, const char* value, Py_ssize_t n) except -1:
        cdef Py_ssize_t i = 0
        cdef long long ms = 0
        if n == 0:
            return 0
        for i in range(n):
            if value[i] < b'0' or value[i] > b'9':
                return 0
        i = 0
        while i < n and value[i] == b'0':
            i += 1
        if n - i > _MAX_RETRY_DIGITS:
            return 0
        while i < n:
            ms = ms * 10 + (value[i] - 48)
            i += 1
        self.retry = ms
        return 0

    cdef int _dispatch(self, list out) except -1:
        """Blank line: emit the pending event if any ``data`` line came, then start a new one."""
        if self._has_data:
            out.append((self._event, _valid_bytes(self._data.ptr, self._data.len)))
            self._has_data = False
            _buf_clear(&self._data)
        self._event = None
        return 0
