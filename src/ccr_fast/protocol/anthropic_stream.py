"""Learn usage, stop reason and errors from an Anthropic Messages response without touching it.

For Anthropic-to-Anthropic traffic the proxy forwards upstream bytes to the client unchanged; accounting still
needs the token counts.  ``AnthropicUsagePeek`` is fed the same chunks that are forwarded and only reads them.
It decodes the SSE framing (compiled decoder when built) and parses JSON only for the few events that carry
what accounting needs (``message_start``, ``message_delta``, ``error``); the ``content_block_delta`` events,
almost all of a stream, are recognised by event name and skipped unparsed.

The peek never raises on odd input: a malformed or unexpected payload is skipped, because a bookkeeping
failure must not break a response that is already streaming to the client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import orjson

from ccr_fast import _speedups

if TYPE_CHECKING:
    from ccr_fast.protocol.sse import SSEDecoder

__all__ = ["USAGE_KEYS", "AnthropicUsagePeek", "usage_from_message"]

#: The usage counters accounting keeps; all default to 0.
USAGE_KEYS: Final = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)


def _empty_usage() -> dict[str, int]:
    return dict.fromkeys(USAGE_KEYS, 0)


def _merge_usage(target: dict[str, int], usage: object) -> None:
    """Overwrite ``target`` with the integer counters present in ``usage``.

    Anthropic's ``message_delta.usage`` is cumulative, so a value there replaces the one from
    ``message_start`` rather than adding to it (the SDK's accumulator does the same).  Missing keys, nulls
    and non-integers (including booleans) leave the current value alone.
    """
    if not isinstance(usage, dict):
        return
    for key in USAGE_KEYS:
        value = usage.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            target[key] = value


def _json_object(payload: bytes) -> dict[str, Any] | None:
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def usage_from_message(body: bytes) -> dict[str, int]:
    """The usage counters of a non-streaming Messages response body (zeros for whatever is missing)."""
    usage = _empty_usage()
    message = _json_object(body)
    if message is not None:
        _merge_usage(usage, message.get("usage"))
    return usage


class AnthropicUsagePeek:
    """Reads a forwarded Anthropic SSE stream chunk by chunk and records what accounting needs."""

    __slots__ = ("_decoder", "error", "saw_message_stop", "stop_reason", "usage")

    def __init__(self) -> None:
        self._decoder: SSEDecoder = _speedups.load("sse_framer").SSEDecoder()
        #: input, output and cache token counts; the latest reported values win
        self.usage: dict[str, int] = _empty_usage()
        #: ``delta.stop_reason`` of the last ``message_delta`` that carried one
        self.stop_reason: str | None = None
        #: the stream completed normally (an upstream error or a cut connection leaves this False)
        self.saw_message_stop: bool = False
        #: the ``error`` object of an ``event: error`` (e.g. ``{"type": "overloaded_error", ...}``)
        self.error: dict[str, Any] | None = None

    def feed(self, data: bytes) -> None:
        """Look at one upstream chunk (any split); the caller forwards the same object unchanged."""
        self._apply(self._decoder.feed(data))

    def close(self) -> None:
        """End of stream: account for a final event that arrived without its blank line."""
        self._apply(self._decoder.close())

    def _apply(self, events: list[tuple[bytes | None, bytes]]) -> None:
        for name, payload in events:
            if name == b"content_block_delta":
                continue
            if name == b"message_delta":
                self._on_message_delta(payload)
            elif name == b"message_stop":
                self.saw_message_stop = True
            elif name == b"message_start":
                self._on_message_start(payload)
            elif name == b"error":
                self._on_error(payload)

    def _on_message_start(self, payload: bytes) -> None:
        event = _json_object(payload)
        if event is None:
            return
        message = event.get("message")
        if isinstance(message, dict):
            _merge_usage(self.usage, message.get("usage"))

    def _on_message_delta(self, payload: bytes) -> None:
        event = _json_object(payload)
        if event is None:
            return
        _merge_usage(self.usage, event.get("usage"))
        delta = event.get("delta")
        if isinstance(delta, dict):
            stop_reason = delta.get("stop_reason")
            if isinstance(stop_reason, str):
                self.stop_reason = stop_reason

    def _on_error(self, payload: bytes) -> None:
        event = _json_object(payload)
        if event is None:
            return
        error = event.get("error")
        if isinstance(error, dict):
            self.error = error
