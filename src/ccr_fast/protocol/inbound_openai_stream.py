"""Anthropic Messages SSE stream → OpenAI ``chat.completion.chunk`` stream: a sans-I/O state machine.

Feed it the Anthropic event bytes the pipeline produces, in whatever pieces they come; it returns the
OpenAI ``data:`` frames to send to an OpenAI-format client.  The output follows what OpenAI's own streams do
and what the ``openai`` SDK's accumulator (``ChatCompletionStreamState``) relies on:

* every chunk carries the same ``id``, ``object``, ``created`` and ``model``, and one choice (index 0) with
  ``delta``, ``logprobs: null`` and ``finish_reason``; with ``include_usage`` every chunk also carries
  ``usage: null`` except the final usage chunk, whose ``choices`` is empty;
* ``message_start`` gives the first chunk, ``delta: {"role": "assistant", "content": ""}``;
* text becomes ``delta.content`` and thinking ``delta.reasoning_content`` (a blank line separates thinking
  blocks, as in the non-streamed answer); signatures, citations, redacted thinking and server-tool blocks
  have no OpenAI form and are dropped;
* a tool_use block opens a tool call (``id``, ``type``, ``function.name`` and empty ``arguments``) at an
  OpenAI index that counts tool calls only (0, 1, ...), whatever the Anthropic block index; its
  ``input_json_delta`` fragments follow as ``arguments`` fragments at that index.  A call that got no
  fragment at all is given ``"{}"`` (or the input of its start event), since clients parse ``arguments``;
* ``message_delta`` is remembered and the finish chunk sent at ``message_stop``, followed by the usage chunk
  when asked for and ``data: [DONE]``.  ``close()`` then returns nothing; it only finishes the stream when
  the input ended after ``message_delta`` but before ``message_stop``.

Errors: an ``event: error`` becomes ``data: {"error": {...}}``, which makes the ``openai`` SDK raise, and
the stream ends there **without** ``[DONE]``: clients that do not look at the error object treat ``[DONE]``
as a complete answer, and a failed one must not look like that (Anthropic likewise ends a failed stream
without ``message_stop``).  Input that ends before the answer's stop reason is known is reported the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from ccr_fast import _speedups
from ccr_fast.protocol.inbound_openai_response import (
    REASONING_SEPARATOR,
    completion_id_for,
    finish_reason_for,
    openai_error_object,
    openai_tool_id,
    openai_usage,
)

__all__ = ["AnthropicToOpenAIStream"]

JSONDict = dict[str, Any]

DONE_FRAME: Final = b"data: [DONE]\n\n"
TRUNCATED_MESSAGE: Final = "the upstream stream ended before the answer was complete"
ERROR_MESSAGE: Final = "the upstream reported an error"
#: Anthropic usage fields, all cumulative; ``message_delta`` may update any of them
USAGE_FIELDS: Final = (
    "input_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "output_tokens",
)


@dataclass(slots=True)
class _Block:
    """What the translator needs to remember about one open Anthropic content block."""

    kind: str
    #: the OpenAI tool-call index (tool_use blocks only)
    tool_index: int = -1
    #: the start event's ``input``, sent as the arguments if no fragment follows
    start_input: Any = None
    arguments_sent: bool = False
    #: a thinking block's content still needs the separator from the previous thinking block
    separate: bool = False


class AnthropicToOpenAIStream:
    """Rewrites one Anthropic event stream into one OpenAI chunk stream.

    ``model`` is echoed in every chunk (the name the client asked for).  ``completion_id`` defaults to
    ``chatcmpl-`` and the Anthropic message id, as in the non-streamed answer.  ``finished`` turns true once
    the stream is over (``[DONE]`` or an error object was produced); ``errored`` tells which.
    """

    def __init__(self, *, model: str, completion_id: str | None = None, include_usage: bool = False) -> None:
        self._decoder = _speedups.load("sse_framer").SSEDecoder()
        self._model = model
        self._completion_id = completion_id
        self._include_usage = include_usage
        self._created = int(time.time())
        self.finished = False
        self.errored = False
        self._out: list[bytes] = []
        self._head = b""  # the chunk's fields before ``delta``, fixed at the first chunk
        self._tail = b""  # after ``finish_reason``
        self._blocks: dict[int, _Block] = {}
        self._tool_calls = 0
        self._reasoned = False
        self._usage: dict[str, int] = dict.fromkeys(USAGE_FIELDS, 0)
        self._stop_reason: str | None = None
        self._stopped = False  # a message_delta arrived
        self._handlers: Mapping[str, Callable[[JSONDict], None]] = {
            "message_start": self._message_start,
            "content_block_start": self._block_start,
            "content_block_delta": self._block_delta,
            "content_block_stop": self._block_stop,
            "message_delta": self._message_delta,
            "message_stop": self._message_stop,
            "error": self._error_event,
        }

    # --- public API -------------------------------------------------------------------------------------

    def feed(self, data: bytes) -> bytes:
        """Consume Anthropic SSE bytes (any split); return the OpenAI frames they complete, maybe b""."""
        if self.finished:
            return b""
        self._out = []
        for name, payload in self._decoder.feed(data):
            self._event(name, payload)
            if self.finished:
                break
        return b"".join(self._out)

    def close(self) -> bytes:
        """End of input: flush a final event; end the stream if ``message_stop`` never came."""
        if self.finished:
            return b""
        self._out = []
        for name, payload in self._decoder.close():
            self._event(name, payload)
            if self.finished:
                break
        if not self.finished:
            if self._stopped:
                self._finish()
            else:
                self._fail("api_error", TRUNCATED_MESSAGE)
        return b"".join(self._out)

    # --- one Anthropic event ----------------------------------------------------------------------------

    def _event(self, name: bytes | None, payload: bytes) -> None:
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            if name == b"error":
                self._fail("api_error", payload.decode(errors="replace").strip() or ERROR_MESSAGE)
            return
        if not isinstance(data, dict):
            return
        kind = data.get("type")
        if not isinstance(kind, str):
            kind = name.decode(errors="replace") if name else ""
        handler = self._handlers.get(kind)
        if handler is not None:  # ping and unknown events carry nothing for the client
            handler(data)

    def _message_start(self, data: JSONDict) -> None:
        message = data.get("message")
        message = message if isinstance(message, Mapping) else {}
        if self._completion_id is None:
            self._completion_id = completion_id_for(message.get("id"))
        self._add_usage(message.get("usage"))
        self._start()

    def _start(self) -> None:
        """The first chunk; content arriving without a ``message_start`` starts the stream as well."""
        if self._head:
            return
        if self._completion_id is None:
            self._completion_id = completion_id_for(None)
        self._head = (
            b'{"id":'
            + orjson.dumps(self._completion_id)
            + b',"object":"chat.completion.chunk","created":'
            + str(self._created).encode()
            + b',"model":'
            + orjson.dumps(self._model)
            + b',"choices":[{"index":0,"delta":'
        )
        self._tail = b"}]" + (b',"usage":null}' if self._include_usage else b"}")
        self._chunk({"role": "assistant", "content": ""})

    def _block_start(self, data: JSONDict) -> None:
        self._start()
        index = data.get("index")
        block = data.get("content_block")
        if not isinstance(index, int) or not isinstance(block, Mapping):
            return
        kind = block.get("type")
        if kind == "text":
            self._blocks[index] = _Block("text")
            self._text(block.get("text"))
        elif kind == "thinking":
            state = self._blocks[index] = _Block("thinking", separate=self._reasoned)
            self._thinking(state, block.get("thinking"))
        elif kind == "tool_use":
            state = self._blocks[index] = _Block("tool_use", self._tool_calls, block.get("input"))
            self._tool_calls += 1
            name = block.get("name")
            call = {
                "index": state.tool_index,
                "id": openai_tool_id(block.get("id")),
                "type": "function",
                "function": {"name": name if isinstance(name, str) else "", "arguments": ""},
            }
            self._chunk({"tool_calls": [call]})

    def _block_delta(self, data: JSONDict) -> None:
        state = self._blocks.get(data["index"]) if isinstance(data.get("index"), int) else None
        delta = data.get("delta")
        if state is None or not isinstance(delta, Mapping):
            return
        kind = delta.get("type")
        if kind == "text_delta" and state.kind == "text":
            self._text(delta.get("text"))
        elif kind == "thinking_delta" and state.kind == "thinking":
            self._thinking(state, delta.get("thinking"))
        elif kind == "input_json_delta" and state.kind == "tool_use":
            self._arguments(state, delta.get("partial_json"))

    def _block_stop(self, data: JSONDict) -> None:
        state = self._blocks.pop(data["index"], None) if isinstance(data.get("index"), int) else None
        if state is None or state.kind != "tool_use" or state.arguments_sent:
            return
        start_input = state.start_input
        self._arguments(state, orjson.dumps(start_input).decode() if isinstance(start_input, dict) else "{}")

    def _message_delta(self, data: JSONDict) -> None:
        delta = data.get("delta")
        if isinstance(delta, Mapping) and isinstance(delta.get("stop_reason"), str):
            self._stop_reason = delta["stop_reason"]
        self._add_usage(data.get("usage"))
        self._stopped = True

    def _message_stop(self, data: JSONDict) -> None:
        self._finish()

    def _error_event(self, data: JSONDict) -> None:
        error = data.get("error")
        error = error if isinstance(error, Mapping) else {}
        error_type, message = error.get("type"), error.get("message")
        self._fail(
            error_type if isinstance(error_type, str) and error_type else "api_error",
            message if isinstance(message, str) and message else ERROR_MESSAGE,
        )

    # --- output -----------------------------------------------------------------------------------------

    def _chunk(self, delta: JSONDict, finish_reason: str | None = None) -> None:
        finish = b"null" if finish_reason is None else orjson.dumps(finish_reason)
        self._out.append(
            b"data: "
            + self._head
            + orjson.dumps(delta)
            + b',"logprobs":null,"finish_reason":'
            + finish
            + self._tail
            + b"\n\n"
        )

    def _text(self, text: Any) -> None:
        if isinstance(text, str) and text:
            self._chunk({"content": text})

    def _thinking(self, state: _Block, thought: Any) -> None:
        if not isinstance(thought, str) or not thought:
            return
        if state.separate:
            state.separate = False
            thought = REASONING_SEPARATOR + thought
        self._reasoned = True
        self._chunk({"reasoning_content": thought})

    def _arguments(self, state: _Block, fragment: Any) -> None:
        if isinstance(fragment, str) and fragment:
            state.arguments_sent = True
            self._chunk({"tool_calls": [{"index": state.tool_index, "function": {"arguments": fragment}}]})

    def _add_usage(self, usage: Any) -> None:
        if not isinstance(usage, Mapping):
            return
        for key in USAGE_FIELDS:
            value = usage.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                self._usage[key] = value

    def _finish(self) -> None:
        """The finish chunk, the usage chunk when asked for, and ``[DONE]``."""
        self._start()
        self._chunk({}, finish_reason_for(self._stop_reason, tool_calls=self._tool_calls > 0))
        if self._include_usage:
            usage_chunk: JSONDict = {
                "id": self._completion_id,
                "object": "chat.completion.chunk",
                "created": self._created,
                "model": self._model,
                "choices": [],
                "usage": openai_usage(self._usage),
            }
            self._out.append(b"data: " + orjson.dumps(usage_chunk) + b"\n\n")
        self._out.append(DONE_FRAME)
        self.finished = True

    def _fail(self, error_type: str, message: str) -> None:
        self._out.append(b"data: " + orjson.dumps(openai_error_object(error_type, message)) + b"\n\n")
        self.finished = self.errored = True
