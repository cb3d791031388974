"""Claude Code session ids and the per-session usage the longContext rule looks back on.

Claude Code has carried its session id in three places over its versions, so all three are read:

* ``metadata.user_id`` = ``user_<hash>_account__session_<uuid>`` (older versions);
* ``metadata.user_id`` = a JSON string such as
  ``{"device_id": "...", "account_uuid": "", "session_id": "<uuid>"}`` (newer versions);
* the ``x-claude-code-session-id`` header (newer versions, alongside the JSON form).

Request bodies arrive from the network before validation, so nothing here trusts their shape.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import orjson

SESSION_HEADER = "x-claude-code-session-id"
_SESSION_MARKER = "_session_"


def session_id(body: Mapping[str, Any], headers: Mapping[str, str]) -> str | None:
    """The Claude Code session id of a request, or None when it carries none.

    ``headers`` is expected to have lower-case names (as ASGI delivers them). Never raises.
    """
    metadata = body.get("metadata")
    if isinstance(metadata, dict):
        user_id = metadata.get("user_id")
        if isinstance(user_id, str) and user_id:
            found = _from_user_id(user_id)
            if found:
                return found
    header = headers.get(SESSION_HEADER)
    if isinstance(header, str):
        header = header.strip()
        if header:
            return header
    return None


def _from_user_id(user_id: str) -> str | None:
    if user_id.startswith(("{", "[")):
        try:
            parsed = orjson.loads(user_id)
        except orjson.JSONDecodeError:
            return None
        if isinstance(parsed, dict):
            value = parsed.get("session_id")
            if isinstance(value, str) and value:
                return value
        return None
    _head, marker, tail = user_id.partition(_SESSION_MARKER)
    return tail if marker and tail else None


def usage_input_tokens(usage: Mapping[str, Any]) -> int:
    """Input tokens of an Anthropic ``usage`` object, cached ones included.

    With prompt caching most of a long conversation shows up as ``cache_read_input_tokens``; only
    the sum says how big the context really was.
    """
    total = 0
    for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
        value = usage.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            total += value
    return total


class SessionUsage:
    """Bounded LRU: session id -> input tokens of that session's last answered turn.

    Fed by the response path, read by the router: a session whose last turn was already past the
    long-context threshold keeps the long-context model for its next sizeable request, even when
    the new request alone counts below the threshold (the provider's count includes what ours
    cannot see, such as images and cached prefixes).
    """

    def __init__(self, max_sessions: int = 4096) -> None:
        self._max_sessions = max_sessions
        self._tokens: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def record(self, sid: str, input_tokens: int) -> None:
        with self._lock:
            self._tokens[sid] = input_tokens
            self._tokens.move_to_end(sid)
            while len(self._tokens) > self._max_sessions:
                self._tokens.popitem(last=False)

    def record_usage(self, sid: str, usage: Mapping[str, Any]) -> None:
        """Record an Anthropic ``usage`` object (input plus cache creation and cache read tokens)."""
        self.record(sid, usage_input_tokens(usage))

    def get(self, sid: str) -> int | None:
        with self._lock:
            tokens = self._tokens.get(sid)
            if tokens is not None:
                self._tokens.move_to_end(sid)
            return tokens

    def __len__(self) -> int:
        return len(self._tokens)
