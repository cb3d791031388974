"""Gemini ``streamGenerateContent?alt=sse`` stream → Anthropic Messages SSE stream: a sans-I/O state machine.

Feed it the upstream's raw bytes in whatever pieces the network delivers; it returns the Anthropic event
bytes to forward.  Each Gemini SSE event holds a complete ``GenerateContentResponse`` whose parts continue
the answer; Gemini frames them with CRLF, which the shared SSE decoder handles at any split.

The output keeps the rules the Anthropic SDK's accumulator relies on (protocols.md §2.3): ``message_start``
first; blocks at contiguous indices, one open at a time, each closed before the next starts; deltas typed by
their block; a thinking block ends with its ``signature_delta``; one ``message_delta`` after the last block;
``message_stop`` last.  Which parts open, extend or close which block is decided by ``BlockAssembler``, the
same rules the non-stream translator uses (thought signatures included, see ``gemini_response``).  Gemini
sends each function call whole, so a tool_use block is started, given its whole input in one
``input_json_delta`` and closed at once.

Gemini has no end marker: the final chunk carries ``finishReason`` and the complete ``usageMetadata`` and
the connection ends.  Usage and the finish reason are therefore remembered, and the single ``message_delta``
goes out from ``close()`` at end of stream.  An ``{"error": ...}`` chunk ends the stream with an Anthropic
``error`` event and no ``message_stop``.  A prompt Gemini blocked (``promptFeedback.blockReason`` and no
candidates) ends normally with stop reason ``refusal`` and no content.  Google Search grounding
(``groundingMetadata``, usually on the last chunks) is collected and sent as ``server_tool_use`` +
``web_search_tool_result`` blocks after the last content block (``server_tools``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Protocol

import orjson

from ccr_fast import _speedups
from ccr_fast.protocol.anthropic_events import message_shell
from ccr_fast.protocol.anthropic_ids import new_message_id
from ccr_fast.protocol.errors import error_event
from ccr_fast.protocol.gemini_response import (
    BlockAssembler,
    anthropic_usage,
    block_reason,
    candidate_parts,
    first_candidate,
    gemini_error,
    stop_reason_for,
)
from ccr_fast.protocol.server_tools import WebSearchFindings, search_events, search_usage

__all__ = ["GeminiStreamTranslator"]

JSONDict = dict[str, Any]

_DELTA_TYPES: Final[Mapping[str, tuple[str, str]]] = {
    "text": ("text_delta", "text"),
    "thinking": ("thinking_delta", "thinking"),
}


class _Decoder(Protocol):
    def feed(self, data: bytes) -> list[tuple[bytes | None, bytes]]: ...

    def close(self) -> list[tuple[bytes | None, bytes]]: ...


def _frame(name: bytes, data: JSONDict) -> bytes:
    return b"event: " + name + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class _EventAssembler(BlockAssembler):
    """Blocks as Anthropic SSE frames, appended to ``out`` as they are decided."""

    def __init__(self) -> None:
        super().__init__()
        self.out: list[bytes] = []
        self._index = -1
        self._signature = ""

    def open_block(self, kind: str) -> None:
        self._index += 1
        self._signature = ""
        content_block: JSONDict = (
            {"type": "thinking", "thinking": "", "signature": ""}
            if kind == "thinking"
            else {"type": "text", "text": ""}
        )
        self._start(content_block)

    def append(self, text: str) -> None:
        kind = self.open_kind
        assert kind is not None, "append needs an open block"
        delta_type, field = _DELTA_TYPES[kind]
        self._delta({"type": delta_type, field: text})

    def set_signature(self, signature: str) -> None:
        """Kept until the block closes: the signature is the last delta of a thinking block."""
        self._signature = signature

    def close_block(self) -> None:
        if self.open_kind == "thinking":
            self._delta({"type": "signature_delta", "signature": self._signature})
        self.out.append(_frame(b"content_block_stop", {"type": "content_block_stop", "index": self._index}))

    def tool_use(self, tool_id: str, name: str, arguments: JSONDict) -> None:
        self._index += 1
        self._start({"type": "tool_use", "id": tool_id, "name": name, "input": {}})
        self._delta({"type": "input_json_delta", "partial_json": orjson.dumps(arguments).decode()})
        self.out.append(_frame(b"content_block_stop", {"type": "content_block_stop", "index": self._index}))

    def web_search(self, findings: WebSearchFindings) -> None:
        """Complete search blocks after the last one (no block is open)."""
        self.out.append(search_events(self._index + 1, findings))
        self._index += 2

    def _start(self, content_block: JSONDict) -> None:
        start = {"type": "content_block_start", "index": self._index, "content_block": content_block}
        self.out.append(_frame(b"content_block_start", start))

    def _delta(self, delta: JSONDict) -> None:
        event = {"type": "content_block_delta", "index": self._index, "delta": delta}
        self.out.append(_frame(b"content_block_delta", event))


class GeminiStreamTranslator:
    """Rewrites one upstream Gemini SSE stream into one Anthropic stream.

    ``model`` is echoed as ``message.model`` (the name the client asked for); ``input_tokens`` is the
    estimate sent in ``message_start``, replaced in ``message_delta`` by Gemini's count when it gives one.
    ``finished`` turns true once the stream is over (``message_stop`` or an ``error`` event was produced);
    ``errored`` tells which.  ``usage`` and ``stop_reason`` are readable at any time for accounting.
    """

    def __init__(self, *, model: str, message_id: str | None = None, input_tokens: int = 0) -> None:
        self._decoder: _Decoder = _speedups.load("sse_framer").SSEDecoder()
        self._model = model
        self._message_id = message_id or new_message_id()
        self._input_estimate = input_tokens
        self.usage: dict[str, int] = anthropic_usage(None, input_tokens)
        self.stop_reason: str | None = None
        self.finished = False
        self.errored = False
        self._blocks = _EventAssembler()
        self._started = False
        self._finish_reason: str | None = None
        self._blocked = False
        self._search = WebSearchFindings()

    # --- public API -------------------------------------------------------------------------------------

    def feed(self, data: bytes) -> bytes:
        """Consume raw upstream bytes (any split); return the Anthropic SSE bytes they complete, maybe b""."""
        if self.finished:
            return b""
        return self._run(self._decoder.feed(data), end=False)

    def close(self) -> bytes:
        """Upstream EOF: flush, close the open block, emit message_delta and message_stop."""
        if self.finished:
            return b""
        return self._run(self._decoder.close(), end=True)

    def fail(self, error_type: str, message: str) -> bytes:
        """The upstream broke mid-stream: an ``event: error`` frame; the stream ends without message_stop."""
        if self.finished:
            return b""
        self.finished = self.errored = True
        return error_event(error_type, message)

    # --- events -----------------------------------------------------------------------------------------

    def _run(self, events: list[tuple[bytes | None, bytes]], *, end: bool) -> bytes:
        out = self._blocks.out = []
        for _name, payload in events:
            self._event(payload)
            if self.finished:
                return b"".join(out)
        if end:
            self._finish()
        return b"".join(out)

    def _event(self, payload: bytes) -> None:
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return  # keep-alives and other non-JSON data carry nothing
        if not isinstance(chunk, dict):
            return
        if chunk.get("error"):
            error = gemini_error(chunk["error"])
            self._blocks.out.append(self.fail(error.error_type, error.message))
            return
        self._start_message()
        metadata = chunk.get("usageMetadata")
        if isinstance(metadata, Mapping) and metadata:
            self.usage = anthropic_usage(metadata, self._input_estimate)
        candidate = first_candidate(chunk.get("candidates"))
        if candidate is None:
            self._blocked = self._blocked or block_reason(chunk) is not None
            return
        for part in candidate_parts(candidate):
            self._blocks.add_part(part)
        self._search.add_grounding(candidate.get("groundingMetadata"))
        finish_reason = candidate.get("finishReason")
        if isinstance(finish_reason, str) and finish_reason:
            self._finish_reason = finish_reason

    def _start_message(self) -> None:
        if self._started:
            return
        self._started = True
        message = message_shell(self._message_id, self._model, anthropic_usage(None, self._input_estimate))
        self._blocks.out.append(_frame(b"message_start", {"type": "message_start", "message": message}))

    def _finish(self) -> None:
        """End of stream: close the open block, then one message_delta and message_stop."""
        self._start_message()
        self._blocks.finish()
        usage: JSONDict = self.usage
        if self._search:
            self._blocks.web_search(self._search)
            usage = {**usage, "server_tool_use": search_usage(self._search)}
        self.stop_reason = stop_reason_for(
            self._finish_reason, tool_calls=self._blocks.tool_calls > 0, blocked=self._blocked
        )
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": self.stop_reason, "stop_sequence": None},
            "usage": usage,
        }
        self._blocks.out.append(_frame(b"message_delta", delta))
        self._blocks.out.append(_frame(b"message_stop", {"type": "message_stop"}))
        self.finished = True
