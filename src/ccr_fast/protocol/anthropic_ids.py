"""Ids in Anthropic's style: minting ``msg_…``/``toolu_…`` and carrying foreign tool-call ids across.

Anthropic validates tool ids against ``^[a-zA-Z0-9_-]+$`` and clients keep them, so an id minted by another
provider (Kimi's ``functions.Bash:0``, 80-character ids from some gateways) must be rewritten before a client
sees it, and rewritten back before the next request goes upstream, because some upstreams read meaning into
their own ids.  ``to_anthropic_tool_id`` / ``from_anthropic_tool_id`` are that pair:

* ids that are already valid pass through untouched, so the common case costs one regex match;
* other ids up to 39 bytes are base64url-encoded behind a prefix, which decodes back exactly;
* longer ids are replaced by a digest behind another prefix.  That cannot be reversed, but both the
  assistant's ``tool_calls[].id`` and the tool message's ``tool_call_id`` are produced from the client's copy
  with the same function, so the upstream still sees a consistent pair.

A valid id that happens to start with one of the prefixes is encoded as well, so decoding never misreads it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from typing import Final

__all__ = [
    "from_anthropic_tool_id",
    "new_message_id",
    "new_request_id",
    "new_tool_use_id",
    "to_anthropic_tool_id",
]

_ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_RANDOM_LEN: Final = 24
_VALID_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ENCODED: Final = "toolu_enc_"
_HASHED: Final = "toolu_sha_"
_MAX_ID: Final = 64
#: the longest raw id whose base64url form still fits in 64 characters behind the prefix
_MAX_ENCODABLE: Final = (_MAX_ID - len(_ENCODED)) // 4 * 3


def _base62(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 62)
        out.append(_ALPHABET[r])
    return "".join(out)


#: every two-character base62 string, so a 10-character counter takes five lookups
_PAIRS: Final = tuple(a + b for b in _ALPHABET for a in _ALPHABET)


def _counter62(n: int) -> str:
    """``_base62(n, 10)`` (least significant character first), two characters at a time."""
    pairs = _PAIRS
    n, a = divmod(n, 3844)
    n, b = divmod(n, 3844)
    n, c = divmod(n, 3844)
    n, d = divmod(n, 3844)
    return pairs[a] + pairs[b] + pairs[c] + pairs[d] + pairs[n % 3844]


class _IdSource:
    """Unique ids without a syscall per id: 14 random base62 characters drawn once per process (re-drawn
    in a forked child) followed by a 10-character counter. Unguessable enough for ids that are not secrets,
    unique across processes and restarts; drawing every character with secrets.choice cost ~150 us."""

    __slots__ = ("_next", "_prefix")

    def __init__(self) -> None:
        self._prefix = ""
        self._next = 0
        self.reseed()

    def reseed(self) -> None:
        self._prefix = _base62(int.from_bytes(os.urandom(11), "big"), _RANDOM_LEN - 10)
        self._next = int.from_bytes(os.urandom(4), "big")

    def __call__(self) -> str:
        self._next = n = self._next + 1
        return self._prefix + _counter62(n)


_random_suffix = _IdSource()
# a forked worker must not continue its parent's sequence
os.register_at_fork(after_in_child=_random_suffix.reseed)


def new_request_id() -> str:
    """A fresh ``req_…`` id for the ``request-id`` header and the logs."""
    return "req_" + _random_suffix()


def new_message_id() -> str:
    """A fresh ``msg_…`` id shaped like Anthropic's (``msg_01`` and base62 characters)."""
    return "msg_01" + _random_suffix()


def new_tool_use_id() -> str:
    """A fresh ``toolu_…`` id for a tool call whose upstream sent none."""
    return "toolu_01" + _random_suffix()


def to_anthropic_tool_id(upstream_id: str | None) -> str:
    """The id a client may see for an upstream tool-call id (minting one when it is missing or empty)."""
    if not upstream_id:
        return new_tool_use_id()
    if _VALID_ID.fullmatch(upstream_id) and not upstream_id.startswith((_ENCODED, _HASHED)):
        return upstream_id
    raw = upstream_id.encode()
    if len(raw) <= _MAX_ENCODABLE:
        return _ENCODED + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
    return _HASHED + hashlib.blake2b(raw, digest_size=24).hexdigest()


def from_anthropic_tool_id(tool_id: str) -> str:
    """The id to send upstream for a client's tool id: the inverse of ``to_anthropic_tool_id``."""
    if not tool_id.startswith(_ENCODED):
        return tool_id
    body = tool_id[len(_ENCODED) :]
    try:
        return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return tool_id
