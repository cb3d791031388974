"""OpenAI Chat Completions SSE stream → Anthropic Messages SSE stream: a sans-I/O state machine.

Feed it the upstream's raw bytes in whatever pieces the network delivers; it returns the Anthropic event
bytes to forward.  The output keeps the rules the Anthropic SDK's accumulator relies on (protocols.md §2.3):
``message_start`` first; blocks at contiguous indices, one open at a time, each closed before the next
starts; deltas typed by their block; one ``message_delta`` after the last block; ``message_stop`` last.

OpenAI streams do not keep those rules, so the translator holds a queue of *deferred* blocks:

* A tool call's arguments may arrive interleaved with another call's (``0,1,0,1``).  A call is only started
  once the one before it is closed, and a call is only closed once its arguments parse as JSON (or the
  answer ended), so no fragment is ever addressed to a closed block.  Until then later calls, and any text
  or reasoning behind them, wait in the queue in arrival order.  Sequential calls, the usual case, stream
  without waiting: the earlier call's arguments are complete by the time the next call begins.
* Text that arrives after a tool call becomes a new text block at the next index instead of being appended
  to an old one, and reasoning that resumes after text becomes a new thinking block.
* Whitespace-only text with no text block open is held back and only emitted in front of real text, so a
  model's stray ``"\\n\\n"`` before its tool calls does not produce an empty-looking text block.

Web search citations (``delta.annotations``, OpenAI's search models and OpenRouter's web plugin) arrive with
or after the text they support; they are collected and sent as ``server_tool_use`` +
``web_search_tool_result`` blocks after the last content block (``server_tools``), since a block cannot be
inserted in front of text that was already streamed.

Usage and the finish reason are remembered, never emitted on arrival: servers put usage on the finish chunk,
on a separate ``choices: []`` chunk, on every chunk cumulatively or in ``x_groq.usage``, sometimes followed
by an empty chunk.  The single ``message_delta`` goes out at ``[DONE]`` (or end of stream) with the last
usage seen and the stop reason, so usage arriving in the same network read as the finish reason is kept.

Most chunks only append text.  While a text block is open and nothing is queued, those chunks are not parsed
at all: ``openai_fast.match_text_delta`` finds the escaped text and ``text_delta_event`` copies it into the
output frame (the compiled twin does this in well under a microsecond).
"""

from __future__ import annotations

import functools
import importlib
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Final, Literal, Protocol

import orjson

from ccr_fast import _speedups
from ccr_fast.protocol.anthropic_events import message_shell
from ccr_fast.protocol.anthropic_ids import new_message_id, to_anthropic_tool_id
from ccr_fast.protocol.errors import error_event
from ccr_fast.protocol.openai_response import anthropic_usage, content_text, openai_error, stop_reason_for
from ccr_fast.protocol.server_tools import WebSearchFindings, search_events, search_usage

__all__ = ["Implementation", "OpenAIStreamTranslator"]

#: which hot-path modules to use: the default rule of ``ccr_fast._speedups``, or one explicitly (tests, bench)
Implementation = Literal["auto", "compiled", "pure"]
JSONDict = dict[str, Any]


class _Decoder(Protocol):
    def feed(self, data: bytes) -> list[tuple[bytes | None, bytes]]: ...

    def close(self) -> list[tuple[bytes | None, bytes]]: ...


@dataclass(frozen=True, slots=True)
class _HotPaths:
    new_decoder: Callable[[], _Decoder]
    match_text_delta: Callable[[bytes], bytes | None]
    text_delta_event: Callable[[int, bytes], bytes]
    text_delta_run: Callable[[list[tuple[bytes | None, bytes]], int, int, list[bytes]], int]


@functools.cache
def _hot_paths(implementation: Implementation) -> _HotPaths:
    modules: list[ModuleType] = []
    for name in ("sse_framer", "openai_fast"):
        if implementation == "auto":
            module = _speedups.load(name)
        elif implementation == "compiled":
            compiled = _speedups.compiled(name)
            if compiled is None:
                raise RuntimeError(f"ccr_fast._ext.{name} is not built")
            module = compiled
        else:
            module = importlib.import_module(_speedups.TWINS[name])
        modules.append(module)
    sse, fast = modules
    return _HotPaths(sse.SSEDecoder, fast.match_text_delta, fast.text_delta_event, fast.text_delta_run)


_TEXT: Final = 1
_THINKING: Final = 2
_TOOL: Final = 3
_REDACTED: Final = 4
#: key under which a legacy ``delta.function_call`` is tracked (real tool-call indexes are >= 0)
_LEGACY_CALL_INDEX: Final = -1
_DONE: Final = b"[DONE]"
_FINISH_ERROR_MESSAGE: Final = "the upstream ended the answer with an error"


@dataclass(slots=True, eq=False)
class _Block:
    """One Anthropic content block, from the moment it is known until it is closed."""

    kind: int
    #: content not sent yet: text, thinking or argument fragments while deferred; redacted data
    pending: list[str] = field(default_factory=list)
    index: int = -1
    closed: bool = False
    signature: str = ""
    # tool calls only
    tool_id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    checked: int = -1  # len(arguments) when completeness was last decided
    complete: bool = False


def _frame(name: bytes, data: JSONDict) -> bytes:
    return b"event: " + name + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class OpenAIStreamTranslator:
    """Rewrites one upstream OpenAI stream into one Anthropic stream.

    ``model`` is echoed as ``message.model`` (the name the client asked for); ``input_tokens`` is the
    estimate sent in ``message_start``, replaced in ``message_delta`` by the upstream's count when it gives
    one.  ``finished`` turns true once the stream is over (``message_stop`` or an ``error`` event was
    produced); ``errored`` tells which.  ``usage`` and ``stop_reason`` are readable at any time for
    accounting.
    """

    def __init__(
        self,
        *,
        model: str,
        message_id: str | None = None,
        input_tokens: int = 0,
        implementation: Implementation = "auto",
    ) -> None:
        hot = _hot_paths(implementation)
        self._decoder = hot.new_decoder()
        self._text_delta_event = hot.text_delta_event
        self._text_delta_run = hot.text_delta_run
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
        self._open: _Block | None = None
        self._queue: deque[_Block] = deque()
        #: index of the open text block while the fast path applies (nothing queued), else -1
        self._fast_index = -1
        self._blank = ""  # whitespace-only text held back (see the module docstring)
        self._calls_by_id: dict[str, _Block] = {}
        self._calls_by_index: dict[int, _Block] = {}
        self._last_call: _Block | None = None
        self._tool_calls = 0
        self._finish_reason: str | None = None
        self._refused = False
        self._upstream_usage: Mapping[str, Any] | None = None
        self._search = WebSearchFindings()

    # --- public API -------------------------------------------------------------------------------------

    def feed(self, data: bytes) -> bytes:
        """Consume raw upstream bytes (any split); return the Anthropic SSE bytes they complete, maybe b""."""
        if self.finished:
            return b""
        events = self._decoder.feed(data)
        if not events:
            return b""
        out = self._out = []
        run = self._text_delta_run
        fast_index = self._fast_index
        i, n = 0, len(events)
        while i < n:
            if fast_index >= 0:  # a text block is open: plain text chunks become frames in one call
                i = run(events, i, fast_index, out)
                if i == n:
                    break
            name, payload = events[i]
            i += 1
            self._event(name, payload)
            if self.finished:
                break
            fast_index = self._fast_index
        return b"".join(out)

    def close(self) -> bytes:
        """Upstream EOF: flush, infer the stop reason if none came, emit message_delta and message_stop."""
        if self.finished:
            return b""
        self._out = []
        for name, payload in self._decoder.close():
            self._event(name, payload)
            if self.finished:
                break
        if not self.finished:
            self._finish()
        return b"".join(self._out)

    def fail(self, error_type: str, message: str) -> bytes:
        """The upstream broke mid-stream: an ``event: error`` frame; the stream ends without message_stop."""
        if self.finished:
            return b""
        self.finished = self.errored = True
        return error_event(error_type, message)

    # --- one upstream event -----------------------------------------------------------------------------

    def _event(self, name: bytes | None, payload: bytes) -> None:
        if payload.strip() == _DONE:
            self._finish()
            return
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            if name == b"error":
                self._error(payload.decode(errors="replace"))
            return  # keep-alives and other non-JSON data carry nothing
        if not isinstance(chunk, dict):
            return
        error = chunk.get("error")
        if error or name == b"error":
            self._error(error or chunk)
            return
        self._start_message()
        self._remember_usage(chunk.get("usage"))
        groq = chunk.get("x_groq")
        if isinstance(groq, Mapping):
            self._remember_usage(groq.get("usage"))
        choices = chunk.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                if isinstance(choice, Mapping) and choice.get("index", 0) in (0, None):
                    self._choice(choice)
                    if self.finished:
                        return
        self._update_fast_index()

    def _choice(self, choice: Mapping[str, Any]) -> None:
        delta = choice.get("delta")
        if isinstance(delta, Mapping):
            self._delta(delta)
        finish = choice.get("finish_reason")
        if finish == "error":
            self._error(choice.get("error") or _FINISH_ERROR_MESSAGE)
        elif isinstance(finish, str) and finish:
            self._finish_reason = finish

    def _delta(self, delta: Mapping[str, Any]) -> None:
        reasoning = delta.get("reasoning_content")
        if not isinstance(reasoning, str):
            reasoning = delta.get("reasoning")
        details = delta.get("reasoning_details")
        signatures: list[str] = []
        encrypted: list[str] = []
        if isinstance(details, list) and details:
            texts = _read_details(details, signatures, encrypted)
            if not isinstance(reasoning, str):
                reasoning = texts
        if isinstance(reasoning, str) and reasoning:
            self._reasoning(reasoning)
        for signature in signatures:
            self._signature(signature)
        for data in encrypted:
            self._redacted(data)
        content = content_text(delta.get("content"))
        if content:
            self._text(content)
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            self._refused = True
            self._text(refusal)
        self._search.add_annotations(delta.get("annotations"))
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                if isinstance(call, Mapping):
                    self._tool_fragment(call)
        legacy = delta.get("function_call")
        if isinstance(legacy, Mapping):
            self._tool_fragment({"index": _LEGACY_CALL_INDEX, "function": legacy})

    # --- content routing --------------------------------------------------------------------------------

    def _text(self, text: str) -> None:
        open_block = self._open
        if not self._queue:
            if open_block is not None and open_block.kind == _TEXT:
                self._out.append(self._text_delta_event(open_block.index, orjson.dumps(text)[1:-1]))
                return
            if open_block is None or self._closable(open_block):
                if text.isspace():
                    self._blank += text
                    return
                text, self._blank = self._blank + text, ""
                self._close_open()
                self._begin(_Block(_TEXT, [text]))
                return
        self._defer(_TEXT, text)

    def _reasoning(self, text: str) -> None:
        open_block = self._open
        if not self._queue:
            if open_block is not None and open_block.kind == _THINKING:
                self._emit_delta(open_block.index, {"type": "thinking_delta", "thinking": text})
                return
            if open_block is None or self._closable(open_block):
                self._close_open()
                self._begin(_Block(_THINKING, [text]))
                return
        self._defer(_THINKING, text)

    def _signature(self, signature: str) -> None:
        """A reasoning signature belongs to the newest thinking block, open or deferred."""
        if self._queue and self._queue[-1].kind == _THINKING:
            self._queue[-1].signature = signature
        elif self._open is not None and self._open.kind == _THINKING:
            self._open.signature = signature

    def _redacted(self, data: str) -> None:
        if not self._queue and (self._open is None or self._closable(self._open)):
            self._close_open()
            self._begin(_Block(_REDACTED, [data]))
        else:
            self._queue.append(_Block(_REDACTED, [data]))

    def _defer(self, kind: int, text: str) -> None:
        if self._queue and self._queue[-1].kind == kind:
            self._queue[-1].pending.append(text)
        else:
            self._queue.append(_Block(kind, [text]))
        self._advance()

    def _tool_fragment(self, fragment: Mapping[str, Any]) -> None:
        function = fragment.get("function")
        fn: Mapping[str, Any] = function if isinstance(function, Mapping) else {}
        call = self._call_for(fragment, fn)
        name = fn.get("name")
        if isinstance(name, str) and name and not call.name:
            call.name = name
        arguments = fn.get("arguments")
        if isinstance(arguments, str) and arguments and not call.closed:
            call.arguments.append(arguments)
            if call is self._open:
                self._emit_delta(call.index, {"type": "input_json_delta", "partial_json": arguments})
            else:
                call.pending.append(arguments)
        if self._queue:
            self._advance()

    def _call_for(self, fragment: Mapping[str, Any], fn: Mapping[str, Any]) -> _Block:
        """The call a fragment belongs to, created (and queued) when it starts a new one.

        A new ``id`` always means a new call (Ollama numbers every call 0); without an id the ``index``
        decides; with neither, a fragment naming a function starts a call and anything else continues the
        latest one (Gemini's compatibility layer omits ``index``).
        """
        raw_id = fragment.get("id")
        upstream_id = raw_id if isinstance(raw_id, str) and raw_id else None
        raw_index = fragment.get("index")
        index = raw_index if isinstance(raw_index, int) and not isinstance(raw_index, bool) else None
        if upstream_id is not None:
            known = self._calls_by_id.get(upstream_id)
            if known is not None:
                return known
        elif index is not None and index in self._calls_by_index:
            return self._calls_by_index[index]
        elif self._last_call is not None and not fn.get("name"):
            return self._last_call
        call = _Block(_TOOL, tool_id=to_anthropic_tool_id(upstream_id))
        if upstream_id is not None:
            self._calls_by_id[upstream_id] = call
        if index is not None:
            self._calls_by_index[index] = call
        self._last_call = call
        self._tool_calls += 1
        self._queue.append(call)
        return call

    # --- blocks -----------------------------------------------------------------------------------------

    def _closable(self, block: _Block) -> bool:
        """Whether the open block may be closed now: always, unless it is a tool call still being written."""
        if block.kind != _TOOL:
            return True
        arguments = block.arguments
        if block.checked != len(arguments):
            block.checked = len(arguments)
            # Arguments are an object, so a complete one ends in "}"; only then is a parse worth it.
            if arguments and arguments[-1].rstrip().endswith("}"):
                try:
                    orjson.loads("".join(arguments))
                    block.complete = True
                except orjson.JSONDecodeError:
                    block.complete = False
        return block.complete

    def _advance(self) -> None:
        """Start deferred blocks, in order, for as long as the open block can be closed."""
        queue = self._queue
        while queue:
            if self._open is not None and not self._closable(self._open):
                return
            head = queue[0]
            if head.kind == _TOOL and not head.name:
                return  # cannot start a tool_use block before its name is known
            queue.popleft()
            self._close_open()
            self._begin(head)

    def _begin(self, block: _Block) -> None:
        """Open ``block`` (after the previous one was closed) and send what it has buffered."""
        pending = "".join(block.pending)
        block.pending.clear()
        if block.kind == _TEXT:
            if pending.isspace():
                return  # deferred whitespace with nothing after it: no block
            self._emit_start(block, {"type": "text", "text": ""})
            self._emit_delta(block.index, {"type": "text_delta", "text": pending})
        elif block.kind == _THINKING:
            self._emit_start(block, {"type": "thinking", "thinking": "", "signature": ""})
            self._emit_delta(block.index, {"type": "thinking_delta", "thinking": pending})
        elif block.kind == _TOOL:
            content_block = {"type": "tool_use", "id": block.tool_id, "name": block.name, "input": {}}
            self._emit_start(block, content_block)
            if pending:
                self._emit_delta(block.index, {"type": "input_json_delta", "partial_json": pending})
        else:
            self._emit_start(block, {"type": "redacted_thinking", "data": pending})
            self._close_open()

    def _close_open(self) -> None:
        block = self._open
        if block is None:
            return
        if block.kind == _THINKING:
            self._emit_delta(block.index, {"type": "signature_delta", "signature": block.signature})
        self._out.append(_frame(b"content_block_stop", {"type": "content_block_stop", "index": block.index}))
        block.closed = True
        self._open = None

    def _update_fast_index(self) -> None:
        block = self._open
        ready = block is not None and block.kind == _TEXT and not self._queue
        self._fast_index = block.index if ready and block is not None else -1

    # --- framing ----------------------------------------------------------------------------------------

    def _start_message(self) -> None:
        if self._started:
            return
        self._started = True
        start_usage: JSONDict = {
            "input_tokens": self._input_estimate,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 0,
        }
        message = message_shell(self._message_id, self._model, start_usage)
        self._out.append(_frame(b"message_start", {"type": "message_start", "message": message}))

    def _emit_start(self, block: _Block, content_block: JSONDict) -> None:
        self._blank = ""  # whitespace held back before this block never gets a block of its own
        block.index = self._next_index
        self._next_index += 1
        self._open = block
        start = {"type": "content_block_start", "index": block.index, "content_block": content_block}
        self._out.append(_frame(b"content_block_start", start))

    def _emit_delta(self, index: int, delta: JSONDict) -> None:
        self._out.append(
            _frame(b"content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
        )

    def _remember_usage(self, usage: Any) -> None:
        """Keep the last usage that says something; an empty or all-zero one after a real one is noise."""
        if not isinstance(usage, Mapping) or not usage:
            return
        says_something = usage.get("prompt_tokens") or usage.get("completion_tokens")
        if self._upstream_usage is not None and not says_something:
            return
        self._upstream_usage = usage
        self.usage = anthropic_usage(usage)
        if not usage.get("prompt_tokens"):
            self.usage["input_tokens"] = self._input_estimate  # a count of 0 would be worse than the estimate

    def _finish(self) -> None:
        """``[DONE]`` or end of stream: close every block, then one message_delta and message_stop."""
        if self.finished:
            return
        self._start_message()
        self._close_open()
        while self._queue:
            block = self._queue.popleft()
            self._begin(block)
            self._close_open()
        usage: JSONDict = self.usage
        if self._search:
            self._out.append(search_events(self._next_index, self._search))
            self._next_index += 2
            usage = {**usage, "server_tool_use": search_usage(self._search)}
        self.stop_reason = stop_reason_for(
            self._finish_reason, tool_calls=self._tool_calls > 0, refusal=self._refused
        )
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": self.stop_reason, "stop_sequence": None},
            "usage": usage,
        }
        self._out.append(_frame(b"message_delta", delta))
        self._out.append(_frame(b"message_stop", {"type": "message_stop"}))
        self.finished = True
        self._fast_index = -1

    def _error(self, error: Any) -> None:
        error_type, message = openai_error(error.get("error", error) if isinstance(error, Mapping) else error)
        self._out.append(self.fail(error_type, message))
        self._fast_index = -1


def _read_details(details: list[Any], signatures: list[str], encrypted: list[str]) -> str:
    """OpenRouter ``reasoning_details``: returns their text; collects signatures and encrypted items."""
    texts: list[str] = []
    for item in details:
        if not isinstance(item, Mapping):
            continue
        kind = item.get("type")
        if kind == "reasoning.encrypted":
            if isinstance(item.get("data"), str) and item["data"]:
                encrypted.append(item["data"])
            continue
        text = item.get("text") if kind == "reasoning.text" else item.get("summary")
        if isinstance(text, str):
            texts.append(text)
        signature = item.get("signature")
        if isinstance(signature, str) and signature:
            signatures.append(signature)
    return "".join(texts)
