"""OpenAI Responses API SSE stream → Anthropic Messages SSE stream: a sans-I/O state machine.

Feed it the upstream's raw bytes in whatever pieces the network delivers; it returns the Anthropic event
bytes to forward.  The output keeps the rules the Anthropic SDK's accumulator relies on (protocols.md §2.3):
``message_start`` first; blocks at contiguous indices, one open at a time, each closed before the next
starts; deltas typed by their block; a thinking block ends with its ``signature_delta``; one
``message_delta`` after the last block; ``message_stop`` last.

The Responses stream is made of semantic events, each naming the output item it belongs to
(``output_index``).  Each item becomes at most one content block, built by the same rules as the non-stream
translator (``openai_responses_response.item_block``):

* ``response.output_item.added`` opens an item; a ``function_call`` starts its ``tool_use`` block at once
  (name and call id are known), reasoning and messages start theirs with their first text;
* ``response.reasoning_summary_text.delta`` (or ``response.reasoning_text.delta``) → ``thinking_delta``, a
  new summary part (``response.reasoning_summary_part.added``) is separated by a blank line;
  ``response.output_text.delta`` and ``response.refusal.delta`` → ``text_delta``;
  ``response.function_call_arguments.delta`` → ``input_json_delta``;
* ``response.output_item.done`` closes the item.  It carries the complete item, so whatever the deltas
  missed is sent now (a server that streams no deltas still produces the whole block), and a reasoning
  item's ``encrypted_content`` becomes the thinking block's ``signature_delta``.

Items are expected one after the other.  Should events of a later item arrive while an earlier one is still
open, they wait in that item's backlog until the earlier item is done, so no delta is ever addressed to a
closed block.

The terminal event decides the end: ``response.completed`` and ``response.incomplete`` carry the final
response (items the stream did not show are rendered from it, usage and ``incomplete_details`` give the
``message_delta``); ``response.failed`` and ``error`` end the stream with an Anthropic ``error`` event and no
``message_stop``.  A stream that ends without a terminal event was cut short: it ends with an ``error``
event too, since the answer cannot be known to be complete.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import orjson

from ccr_fast import _speedups
from ccr_fast.protocol.anthropic_events import message_shell
from ccr_fast.protocol.anthropic_ids import new_message_id, to_anthropic_tool_id
from ccr_fast.protocol.errors import error_event
from ccr_fast.protocol.openai_responses_response import (
    SUMMARY_SEPARATOR,
    anthropic_usage,
    has_refusal,
    message_text,
    reasoning_text,
    response_error,
    stop_reason_for,
    to_client_signature,
)

__all__ = ["ResponsesStreamTranslator"]

JSONDict = dict[str, Any]

CUT_SHORT_MESSAGE: Final = "the upstream ended the stream before the response was complete"
_TERMINAL: Final = frozenset({"response.completed", "response.incomplete"})
#: the item type an event implies, for servers that skip ``response.output_item.added``
_ITEM_KINDS: Final[Mapping[str, str]] = {
    "response.content_part.added": "message",
    "response.output_text.delta": "message",
    "response.output_text.done": "message",
    "response.refusal.delta": "message",
    "response.refusal.done": "message",
    "response.function_call_arguments.delta": "function_call",
    "response.function_call_arguments.done": "function_call",
    "response.reasoning_summary_part.added": "reasoning",
    "response.reasoning_summary_text.delta": "reasoning",
    "response.reasoning_summary_text.done": "reasoning",
    "response.reasoning_text.delta": "reasoning",
    "response.reasoning_text.done": "reasoning",
}
_SUMMARY: Final = "summary"
_RAW: Final = "raw"


class _Decoder(Protocol):
    def feed(self, data: bytes) -> list[tuple[bytes | None, bytes]]: ...

    def close(self) -> list[tuple[bytes | None, bytes]]: ...


@dataclass(slots=True, eq=False)
class _Item:
    """One output item, from its first event until it is done."""

    output_index: int
    kind: str = ""
    item_id: str = ""
    #: events waiting for the items before this one to finish
    backlog: deque[JSONDict] = field(default_factory=deque)
    #: Anthropic block index once the block is started, else -1
    index: int = -1
    open: bool = False
    done: bool = False
    #: what has been sent as deltas (to complete it from the final item)
    sent: list[str] = field(default_factory=list)
    # function calls
    name: str = ""
    call_id: str = ""
    #: arguments held back while the name is unknown
    held: list[str] = field(default_factory=list)
    # reasoning: where the text comes from (summary or raw), and the summary part being streamed
    source: str = ""
    parts_seen: int = 0
    part: int = -1
    # messages
    refusal: bool = False


def _frame(name: bytes, data: JSONDict) -> bytes:
    return b"event: " + name + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class ResponsesStreamTranslator:
    """Rewrites one upstream Responses API stream into one Anthropic stream.

    ``model`` is echoed as ``message.model`` (the name the client asked for); ``input_tokens`` is the
    estimate sent in ``message_start``, replaced in ``message_delta`` by the upstream's count.  ``finished``
    turns true once the stream is over (``message_stop`` or an ``error`` event was produced); ``errored``
    tells which.  ``usage`` and ``stop_reason`` are readable at any time for accounting.
    """

    def __init__(self, *, model: str, message_id: str | None = None, input_tokens: int = 0) -> None:
        self._decoder: _Decoder = _speedups.load("sse_framer").SSEDecoder()
        self._model = model
        self._message_id = message_id or new_message_id()
        self._input_estimate = input_tokens
        self.usage: dict[str, int] = anthropic_usage(None) | {"input_tokens": input_tokens}
        self.stop_reason: str | None = None
        self.finished = False
        self.errored = False
        self._out: list[bytes] = []
        self._started = False
        self._next_index = 0
        self._items: dict[int, _Item] = {}
        self._by_id: dict[str, _Item] = {}
        self._last: _Item | None = None
        self._tool_calls = 0
        self._refused = False

    # --- public API -------------------------------------------------------------------------------------

    def feed(self, data: bytes) -> bytes:
        """Consume raw upstream bytes (any split); return the Anthropic SSE bytes they complete, maybe b""."""
        if self.finished:
            return b""
        return self._run(self._decoder.feed(data), end=False)

    def close(self) -> bytes:
        """Upstream EOF: whatever is left is handled; without a terminal event the stream ends in an error."""
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
        out = self._out = []
        for name, payload in events:
            self._event(name, payload)
            if self.finished:
                return b"".join(out)
        if end:
            self._error("api_error", CUT_SHORT_MESSAGE)
        return b"".join(out)

    def _event(self, name: bytes | None, payload: bytes) -> None:
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            if name == b"error":
                self._error(*response_error(payload.decode(errors="replace")))
            return  # keep-alives, [DONE] and other non-JSON data carry nothing
        if not isinstance(event, dict):
            return
        kind = event.get("type")
        if not isinstance(kind, str):  # named only by the SSE event line
            kind = event["type"] = name.decode(errors="replace") if name else ""
        if kind == "error":
            nested = event.get("error")
            self._error(*response_error(nested if isinstance(nested, Mapping) else event))
            return
        if kind == "response.failed":
            response = event.get("response")
            error = response.get("error") if isinstance(response, Mapping) else None
            self._error(*response_error(error))
            return
        self._start_message()
        if kind in _TERMINAL:
            response = event.get("response")
            self._finish(kind, response if isinstance(response, Mapping) else {})
        elif kind.startswith("response.") and (
            "output_index" in event or "item_id" in event or kind.startswith("response.output_item.")
        ):
            item = self._item_for(kind, event)
            if item is not None and not item.done:
                item.backlog.append(event)
                self._drain()

    def _item_for(self, kind: str, event: Mapping[str, Any]) -> _Item | None:
        """The item an event belongs to: by ``output_index``, else by ``item_id``, else the latest one."""
        index = _int(event.get("output_index"))
        raw = event.get("item")
        payload: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        item_id = event.get("item_id") or payload.get("id")
        item: _Item | None = None
        if index is not None:
            item = self._items.get(index)
        elif isinstance(item_id, str) and item_id:
            item = self._by_id.get(item_id)
        if item is None and index is None and not kind.startswith("response.output_item."):
            item = self._last
        if item is None:
            if index is None:
                index = max(self._items, default=-1) + 1
            item = self._items[index] = _Item(index)
        if not item.kind:
            item.kind = str(payload.get("type") or _ITEM_KINDS.get(kind, ""))
        if isinstance(item_id, str) and item_id and not item.item_id:
            item.item_id = item_id
            self._by_id[item_id] = item
        if self._last is None or item.output_index >= self._last.output_index:
            self._last = item
        return item

    def _drain(self) -> None:
        """Apply waiting events in item order, for as long as the earliest unfinished item has some."""
        while True:
            active = min((i for i in self._items.values() if not i.done), key=_position, default=None)
            if active is None or not active.backlog:
                return
            self._apply(active, active.backlog.popleft())

    # --- one item's events ------------------------------------------------------------------------------

    def _apply(self, item: _Item, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        if kind == "response.output_item.added":
            self._added(item, event.get("item"))
        elif kind == "response.output_item.done":
            final = event.get("item")
            self._done(item, final if isinstance(final, Mapping) else {})
        elif kind in ("response.output_text.delta", "response.refusal.delta"):
            item.refusal = item.refusal or kind == "response.refusal.delta"
            self._text(item, event.get("delta"))
        elif kind == "response.function_call_arguments.delta":
            self._arguments(item, event.get("delta"))
        elif kind == "response.reasoning_summary_part.added":
            item.parts_seen += 1
        elif kind == "response.reasoning_summary_text.delta":
            self._thinking(item, event, _SUMMARY)
        elif kind == "response.reasoning_text.delta":
            self._thinking(item, event, _RAW)

    def _added(self, item: _Item, payload: Any) -> None:
        if not isinstance(payload, Mapping):
            return
        if item.kind == "function_call":
            name, call_id = payload.get("name"), payload.get("call_id")
            item.name = name if isinstance(name, str) else ""
            item.call_id = call_id if isinstance(call_id, str) else ""
            if item.name:
                self._start_tool(item)
            self._arguments(item, payload.get("arguments"))

    def _text(self, item: _Item, delta: Any) -> None:
        if not isinstance(delta, str) or not delta:
            return
        if not item.open:
            self._start(item, {"type": "text", "text": ""})
        item.sent.append(delta)
        self._delta(item, {"type": "text_delta", "text": delta})

    def _thinking(self, item: _Item, event: Mapping[str, Any], source: str) -> None:
        delta = event.get("delta")
        if not isinstance(delta, str) or not delta:
            return
        if item.source and item.source != source:
            return  # a summary and the raw text of the same reasoning: the first one seen is shown
        item.source = source
        if source == _SUMMARY:
            part = _int(event.get("summary_index"))
            if part is None:
                part = max(item.parts_seen - 1, 0)
            if item.sent and part != item.part:
                delta = SUMMARY_SEPARATOR + delta  # a new part of the summary
            item.part = part
        if not item.open:
            self._start(item, {"type": "thinking", "thinking": "", "signature": ""})
        item.sent.append(delta)
        self._delta(item, {"type": "thinking_delta", "thinking": delta})

    def _arguments(self, item: _Item, delta: Any) -> None:
        if not isinstance(delta, str) or not delta:
            return
        if not item.open:
            item.held.append(delta)  # the name is not known yet: a tool_use block cannot start without it
            return
        item.sent.append(delta)
        self._delta(item, {"type": "input_json_delta", "partial_json": delta})

    def _start_tool(self, item: _Item) -> None:
        block = {"type": "tool_use", "id": to_anthropic_tool_id(item.call_id or None), "name": item.name}
        self._start(item, {**block, "input": {}})
        self._tool_calls += 1
        held = "".join(item.held)
        item.held.clear()
        if held:
            item.sent.append(held)
            self._delta(item, {"type": "input_json_delta", "partial_json": held})

    def _done(self, item: _Item, final: Mapping[str, Any]) -> None:
        """The complete item: send what the deltas did not, close the block."""
        item.done = True
        kind = item.kind or final.get("type")
        if kind == "reasoning":
            self._finish_reasoning(item, final)
        elif kind == "message":
            item.refusal = item.refusal or has_refusal({"type": "message", **final})
            self._complete(item, message_text(final), "text_delta", "text", {"type": "text", "text": ""})
        elif kind == "function_call":
            self._finish_call(item, final)
        if item.refusal:
            self._refused = True
        self._close(item)

    def _finish_reasoning(self, item: _Item, final: Mapping[str, Any]) -> None:
        # the text the deltas showed, complete: raw reasoning if that was streamed, else the summary
        text = reasoning_text({"content": final.get("content")} if item.source == _RAW else final)
        encrypted = final.get("encrypted_content")
        signature = to_client_signature(encrypted) if isinstance(encrypted, str) and encrypted else ""
        if not item.open:
            if not text and not signature:
                return  # reasoning nobody asked to see and that cannot be sent back: no block
            self._start(item, {"type": "thinking", "thinking": "", "signature": ""})
        self._send_rest(item, text, "thinking_delta", "thinking")
        self._delta(item, {"type": "signature_delta", "signature": signature})

    def _finish_call(self, item: _Item, final: Mapping[str, Any]) -> None:
        if not item.open:
            name, call_id = final.get("name"), final.get("call_id")
            item.name = item.name or (name if isinstance(name, str) else "")
            item.call_id = item.call_id or (call_id if isinstance(call_id, str) else "")
            if not item.name:
                return  # a call without a name cannot be answered by the client
            self._start_tool(item)
        arguments = final.get("arguments")
        if isinstance(arguments, str):
            self._send_rest(item, arguments, "input_json_delta", "partial_json")

    def _complete(self, item: _Item, text: str, delta_type: str, key: str, start: JSONDict) -> None:
        if not item.open:
            if not text:
                return
            self._start(item, start)
        self._send_rest(item, text, delta_type, key)

    def _send_rest(self, item: _Item, final: str, delta_type: str, key: str) -> None:
        """Send the part of ``final`` the deltas have not carried (all of it when none came)."""
        sent = "".join(item.sent)
        if len(final) > len(sent) and final.startswith(sent):
            rest = final[len(sent) :]
            item.sent.append(rest)
            self._delta(item, {"type": delta_type, key: rest})

    # --- framing ----------------------------------------------------------------------------------------

    def _start_message(self) -> None:
        if self._started:
            return
        self._started = True
        message = message_shell(self._message_id, self._model, self.usage)
        self._out.append(_frame(b"message_start", {"type": "message_start", "message": message}))

    def _start(self, item: _Item, content_block: JSONDict) -> None:
        item.index = self._next_index
        self._next_index += 1
        item.open = True
        start = {"type": "content_block_start", "index": item.index, "content_block": content_block}
        self._out.append(_frame(b"content_block_start", start))

    def _delta(self, item: _Item, delta: JSONDict) -> None:
        event = {"type": "content_block_delta", "index": item.index, "delta": delta}
        self._out.append(_frame(b"content_block_delta", event))

    def _close(self, item: _Item) -> None:
        if item.open:
            item.open = False
            stop = {"type": "content_block_stop", "index": item.index}
            self._out.append(_frame(b"content_block_stop", stop))

    def _finish(self, kind: str, response: Mapping[str, Any]) -> None:
        """A terminal event: finish every item from the final output, then message_delta and message_stop."""
        output = response.get("output")
        for position, final in enumerate(output if isinstance(output, list) else ()):
            if not isinstance(final, Mapping):
                continue
            item = self._items.get(position)
            if item is None:
                item = self._items[position] = _Item(position, kind=str(final.get("type") or ""))
            if not item.done:
                item.backlog.append({"type": "response.output_item.done", "item": final})
        for item in sorted(self._items.values(), key=_position):
            if not item.done:
                item.backlog.append({"type": "response.output_item.done", "item": {}})
        self._drain()
        status = response.get("status") or ("incomplete" if kind == "response.incomplete" else "completed")
        if isinstance(response.get("usage"), Mapping):
            self.usage = anthropic_usage(response["usage"])
            if not self.usage["input_tokens"] and not self.usage["cache_read_input_tokens"]:
                self.usage["input_tokens"] = self._input_estimate
        self.stop_reason = stop_reason_for(
            status, response.get("incomplete_details"), tool_calls=self._tool_calls > 0, refusal=self._refused
        )
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": self.stop_reason, "stop_sequence": None},
            "usage": self.usage,
        }
        self._out.append(_frame(b"message_delta", delta))
        self._out.append(_frame(b"message_stop", {"type": "message_stop"}))
        self.finished = True

    def _error(self, error_type: str, message: str) -> None:
        self._out.append(self.fail(error_type, message))


def _position(item: _Item) -> int:
    return item.output_index
