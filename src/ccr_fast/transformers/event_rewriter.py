"""A base for response filters that rewrite an Anthropic SSE stream event by event.

A filter that drops, splits or inserts content blocks would otherwise have to re-derive the stream rules
the Anthropic SDK relies on (protocols.md §2.3) each time: contiguous indices, one block open at a time,
``message_delta`` after the last block.  :class:`EventRewriter` keeps them once.  It parses each event,
calls the ``on_*`` handler for its type, and gives output indices to blocks in the order they are
*opened*, so a subclass only decides what to open, what to write into it and when to close it; an index
it never opens is never used, and the blocks after it move down.

Events the handlers do not rewrite (``ping``, ``error``, unknown types, anything that is not JSON) are
re-emitted as they came, and an unchanged event is re-emitted from its original bytes, not re-encoded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import orjson

from ccr_fast import _speedups

if TYPE_CHECKING:
    from ccr_fast.protocol.sse import SSEDecoder

__all__ = ["EventRewriter", "frame"]

JSONDict = dict[str, Any]

_BLOCK_EVENTS: Final = frozenset({"content_block_start", "content_block_delta", "content_block_stop"})


def frame(name: str, data: JSONDict) -> bytes:
    """One SSE event in Anthropic's form: ``event: <name>`` and one JSON ``data`` line."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _raw_frame(name: bytes | None, payload: bytes) -> bytes:
    head = b"event: " + name + b"\n" if name is not None else b""
    if b"\n" in payload:
        payload = payload.replace(b"\n", b"\ndata: ")
    return head + b"data: " + payload + b"\n\n"


class EventRewriter:
    """A :class:`~ccr_fast.transformers.base.ResponseFilter` that dispatches parsed events to handlers.

    The default handlers forward everything with renumbered indices, so a subclass overrides only the
    events it cares about.  Inside a handler:

    * ``open_block`` / ``write`` / ``close_block`` produce blocks at output indices;
    * ``forward_block`` opens one that stands for an upstream block, after which ``pass_delta`` and
      ``pass_stop`` follow it, and ``redirect_delta`` sends the delta being handled to another block;
    * ``pass_event`` re-emits the event being handled as it came, ``emit`` writes any other event.
    """

    def __init__(self) -> None:
        self._decoder: SSEDecoder = _speedups.load("sse_framer").SSEDecoder()
        self._out: list[bytes] = []
        self._next_index = 0
        #: upstream block index -> output index, for blocks passed through
        self._forwarded: dict[int, int] = {}
        #: the event being handled: as received, and parsed
        self._raw = b""
        self._event: JSONDict = {}

    # --- ResponseFilter ---------------------------------------------------------------------------------

    def feed(self, events: bytes) -> bytes:
        if not events:
            return b""
        self._out = []
        for name, payload in self._decoder.feed(events):
            self._dispatch(name, payload)
        return b"".join(self._out)

    def close(self) -> bytes:
        self._out = []
        for name, payload in self._decoder.close():
            self._dispatch(name, payload)
        self.on_close()
        return b"".join(self._out)

    # --- handlers (override what you need) --------------------------------------------------------------

    def on_block_start(self, index: int, block: JSONDict) -> None:
        self.forward_block(index, block)

    def on_block_delta(self, index: int, delta: JSONDict) -> None:
        self.pass_delta(index)

    def on_block_stop(self, index: int) -> None:
        self.pass_stop(index)

    def on_message_delta(self, event: JSONDict) -> None:
        self.pass_event()

    def on_message_stop(self) -> None:
        """Called before ``message_stop`` is forwarded: the last chance to add anything."""

    def on_close(self) -> None:
        """End of the response, after the last event (also when the stream broke off)."""

    # --- output -----------------------------------------------------------------------------------------

    def emit(self, name: str, data: JSONDict) -> None:
        self._out.append(frame(name, data))

    def pass_event(self) -> None:
        """Re-emit the event being handled, unchanged."""
        self._out.append(self._raw)

    def open_block(self, block: JSONDict) -> int:
        """Start ``block`` at the next output index, which is returned."""
        index = self._next_index
        self._next_index += 1
        self.emit(
            "content_block_start", {"type": "content_block_start", "index": index, "content_block": block}
        )
        return index

    def forward_block(self, upstream_index: int, block: JSONDict) -> int:
        """Open ``block`` for an upstream block; ``pass_delta`` and ``pass_stop`` then follow it."""
        index = self.open_block(block)
        self._forwarded[upstream_index] = index
        return index

    def forwarded(self, upstream_index: int) -> int | None:
        """The output index of a forwarded upstream block (None: not forwarded, or already stopped)."""
        return self._forwarded.get(upstream_index)

    def pass_delta(self, upstream_index: int) -> None:
        """Forward the delta being handled, unchanged, to its forwarded block (dropped if there is none)."""
        out = self._forwarded.get(upstream_index)
        if out is None:
            return
        if out == upstream_index:
            self._out.append(self._raw)  # nothing to renumber: keep the bytes
        else:
            self.redirect_delta(out)

    def redirect_delta(self, index: int) -> None:
        """Emit the delta being handled, unchanged but for its index, into output block ``index``."""
        event = dict(self._event)
        event["index"] = index
        self.emit("content_block_delta", event)

    def pass_stop(self, upstream_index: int) -> None:
        """Close the block forwarded for ``upstream_index`` (nothing if there is none)."""
        out = self._forwarded.pop(upstream_index, None)
        if out is not None:
            self.close_block(out)

    def write(self, index: int, delta: JSONDict) -> None:
        self.emit("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})

    def close_block(self, index: int) -> None:
        self.emit("content_block_stop", {"type": "content_block_stop", "index": index})

    # --- dispatch ---------------------------------------------------------------------------------------

    def _dispatch(self, name: bytes | None, payload: bytes) -> None:
        self._raw = _raw_frame(name, payload)
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            event = None
        kind = event.get("type") if isinstance(event, dict) else None
        if not isinstance(event, dict) or not isinstance(kind, str):
            self.pass_event()
            return
        self._event = event
        if kind in _BLOCK_EVENTS:
            self._block_event(kind, event)
        elif kind == "message_delta":
            self.on_message_delta(event)
        elif kind == "message_stop":
            self.on_message_stop()
            self.pass_event()
        else:
            self.pass_event()

    def _block_event(self, kind: str, event: JSONDict) -> None:
        index = event.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            self.pass_event()
        elif kind == "content_block_start":
            block = event.get("content_block")
            self.on_block_start(index, block if isinstance(block, dict) else {})
        elif kind == "content_block_stop":
            self.on_block_stop(index)
        else:
            delta = event.get("delta")
            self.on_block_delta(index, delta if isinstance(delta, dict) else {})
