"""tooluse: CCR's ExitTool trick, for models that drift into plain text while tools are on offer.

Some models (DeepSeek among the first) pick tools far more reliably when they are *required* to call one.
CCR's ``tooluse`` therefore forces a tool call (``tool_choice`` any, OpenAI's ``required``) and adds one
more tool, ``ExitTool``, whose only argument ``response`` is the answer to show the user; a system
reminder tells the model that calling it is the way to answer without a tool.  On the way back a call to
ExitTool becomes a plain text block holding its ``response``, and when it was the only call the turn ends
with ``end_turn`` instead of ``tool_use``, so the client shows the answer instead of waiting to run a tool.

Differences from CCR, each on purpose:

* the reminder is appended to the system prompt, not sent as a trailing ``system`` message, because many
  chat templates (Qwen's, under vLLM) reject a system message anywhere but first;
* when streaming, the answer streams: the ``response`` string is decoded from the arguments as they
  arrive instead of appearing only once the call is complete;
* an explicit ``tool_choice`` from the client is kept (as in CCR), and on the Anthropic endpoint a request
  with thinking enabled is not forced, because Anthropic rejects forced tool use with thinking.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from ccr_fast.protocol.openai_response import UNPARSED_ARGUMENTS_KEY
from ccr_fast.transformers.base import Endpoint, PlanBuilder, Transformer
from ccr_fast.transformers.event_rewriter import EventRewriter, JSONDict
from ccr_fast.transformers.json_repair import repair_object

__all__ = [
    "EXIT_TOOL",
    "ExitToolFilter",
    "ResponseReader",
    "TooluseTransformer",
    "add_exit_tool",
    "exit_tool_to_text",
]

EXIT_TOOL: Final = "ExitTool"
REMINDER: Final = (
    "<system-reminder>Tool mode is active: answer by calling the most suitable tool. Check each tool "
    "against the task first. When no tool fits, call `ExitTool` with your complete answer; it is the only "
    "way to leave tool mode.</system-reminder>"
)
EXIT_TOOL_SPEC: Final[JSONDict] = {
    "name": EXIT_TOOL,
    "description": (
        "Leave tool mode and answer the user directly. Use it only after checking that none of the other "
        "tools can help with the current task; if one can, call that tool instead."
    ),
    "input_schema": {
        "type": "object",
        "properties": {
            "response": {
                "type": "string",
                "description": "Your answer, shown to the user exactly as written.",
            }
        },
        "required": ["response"],
    },
}


class TooluseTransformer(Transformer):
    """tooluse: forces a tool call and adds ExitTool, whose `response` comes back as plain text."""

    name = "tooluse"

    def configure(self, plan: PlanBuilder) -> None:
        endpoint: Endpoint = plan.endpoint or "openai"

        def add(body: dict[str, Any]) -> None:
            add_exit_tool(body, endpoint=endpoint)

        plan.anthropic_hooks.append(add)
        plan.response_filters.append(ExitToolFilter)
        plan.message_hooks.append(exit_tool_to_text)


# --- request --------------------------------------------------------------------------------------------


def add_exit_tool(body: dict[str, Any], *, endpoint: Endpoint) -> None:
    """Add ExitTool, the reminder and a forced ``tool_choice`` to a request that offers tools."""
    tools = body.get("tools")
    if not isinstance(tools, list) or not tools:
        return
    if any(isinstance(tool, dict) and tool.get("name") == EXIT_TOOL for tool in tools):
        return  # already added: running the hook twice over one body must not add a second one
    tools.append(orjson.loads(orjson.dumps(EXIT_TOOL_SPEC)))
    thinking = body.get("thinking")
    thinks = isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")
    if body.get("tool_choice") is None and not (endpoint == "anthropic" and thinks):
        body["tool_choice"] = {"type": "any"}
    system = body.get("system")
    if isinstance(system, list):
        system.append({"type": "text", "text": REMINDER})
    elif isinstance(system, str) and system:
        body["system"] = f"{system}\n\n{REMINDER}"
    else:
        body["system"] = REMINDER


# --- non-stream response --------------------------------------------------------------------------------


def exit_tool_to_text(message: dict[str, Any]) -> None:
    """Message hook: each ExitTool call becomes a text block; ``end_turn`` if no other call is left."""
    content = message.get("content")
    if not isinstance(content, list):
        return
    kept: list[Any] = []
    exits = calls = 0
    for block in content:
        is_call = isinstance(block, dict) and block.get("type") == "tool_use"
        if is_call and block.get("name") == EXIT_TOOL:
            exits += 1
            text = _response_text(block.get("input"))
            if text:
                kept.append({"type": "text", "text": text})
            continue
        calls += is_call
        kept.append(block)
    if not exits:
        return
    message["content"] = kept
    if not calls and message.get("stop_reason") == "tool_use":
        message["stop_reason"] = "end_turn"


def _response_text(tool_input: Any) -> str:
    if isinstance(tool_input, dict) and set(tool_input) == {UNPARSED_ARGUMENTS_KEY}:
        raw = tool_input[UNPARSED_ARGUMENTS_KEY]
        tool_input = repair_object(raw) if isinstance(raw, str) else None
    if not isinstance(tool_input, dict):
        return ""
    response = tool_input.get("response")
    if response is None:
        return ""
    return response if isinstance(response, str) else orjson.dumps(response).decode()


# --- stream ---------------------------------------------------------------------------------------------


class ExitToolFilter(EventRewriter):
    """Stream filter: an ExitTool ``tool_use`` block becomes a text block streaming its ``response``."""

    def __init__(self) -> None:
        super().__init__()
        #: upstream index of an ExitTool block -> what it has become so far
        self._exits: dict[int, _ExitCall] = {}
        self._saw_exit = False
        self._calls = 0

    def on_block_start(self, index: int, block: JSONDict) -> None:
        if block.get("type") == "tool_use":
            if block.get("name") == EXIT_TOOL:
                self._exits[index] = _ExitCall()
                self._saw_exit = True
                return
            self._calls += 1
        self.forward_block(index, block)

    def on_block_delta(self, index: int, delta: JSONDict) -> None:
        exit_call = self._exits.get(index)
        if exit_call is None:
            self.pass_delta(index)
            return
        partial = delta.get("partial_json")
        if isinstance(partial, str):
            self._say(exit_call, exit_call.reader.feed(partial))

    def on_block_stop(self, index: int) -> None:
        exit_call = self._exits.pop(index, None)
        if exit_call is None:
            self.pass_stop(index)
            return
        self._say(exit_call, exit_call.reader.finish())
        if exit_call.text_index is not None:
            self.close_block(exit_call.text_index)

    def on_message_delta(self, event: JSONDict) -> None:
        delta = event.get("delta")
        if (
            self._saw_exit
            and not self._calls
            and isinstance(delta, dict)
            and delta.get("stop_reason") == "tool_use"
        ):
            self.emit("message_delta", {**event, "delta": {**delta, "stop_reason": "end_turn"}})
        else:
            self.pass_event()

    def _say(self, exit_call: _ExitCall, text: str) -> None:
        """Write answer text, opening the text block on the first non-empty piece (none: no block)."""
        if not text:
            return
        if exit_call.text_index is None:
            exit_call.text_index = self.open_block({"type": "text", "text": ""})
        self.write(exit_call.text_index, {"type": "text_delta", "text": text})


_SEEK, _VALUE, _DONE, _GAVE_UP = range(4)
#: ExitTool's arguments as models write them: the object opens with the response string
_OPENING: Final = re.compile(r'\s*\{\s*"response"\s*:\s*"')
_OPENING_TEXT: Final = '{"response":"'
_SPECIAL: Final = re.compile(r'["\\]')
_SIMPLE_ESCAPES: Final = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "b": "\b",
    "f": "\f",
    "/": "/",
    "\\": "\\",
    '"': '"',
}


class ResponseReader:
    """Decodes the ``response`` string out of ExitTool's arguments while they are still arriving.

    ``feed`` returns the newly decoded text (maybe ""); ``finish`` returns what is left.  When the
    arguments do not open with ``{"response": "`` (another key first, a non-string value), nothing is
    streamed and ``finish`` reads ``response`` from the whole, repaired, arguments instead.
    """

    def __init__(self) -> None:
        self._fragments: list[str] = []
        self._tail = ""  # text not decoded yet
        self._state = _SEEK

    def feed(self, fragment: str) -> str:
        self._fragments.append(fragment)
        if self._state == _SEEK:
            self._tail += fragment
            opening = _OPENING.match(self._tail)
            if opening is None:
                seen = "".join(self._tail.split())
                if len(seen) >= len(_OPENING_TEXT) or not _OPENING_TEXT.startswith(seen):
                    self._state = _GAVE_UP
                return ""
            self._state = _VALUE
            self._tail = self._tail[opening.end() :]
            return self._decode()
        if self._state == _VALUE:
            self._tail += fragment
            return self._decode()
        return ""

    def finish(self) -> str:
        if self._state == _VALUE:
            text = self._decode()
            self._state = _DONE
            return text  # the string was cut short: what arrived is the answer
        if self._state in (_SEEK, _GAVE_UP):
            self._state = _DONE
            return _response_text(repair_object("".join(self._fragments)))
        return ""

    def _decode(self) -> str:
        """Decode ``_tail`` up to the closing quote; an escape cut in half waits for the next fragment."""
        tail = self._tail
        out: list[str] = []
        pos = 0
        while True:
            special = _SPECIAL.search(tail, pos)
            if special is None:
                out.append(tail[pos:])
                pos = len(tail)
                break
            at = special.start()
            out.append(tail[pos:at])
            if tail[at] == '"':
                self._state = _DONE
                pos = len(tail)
                break
            decoded, used = _escape(tail, at)
            if not used:
                pos = at
                break
            out.append(decoded)
            pos = at + used
        self._tail = tail[pos:]
        return "".join(out)


@dataclass(slots=True)
class _ExitCall:
    reader: ResponseReader = field(default_factory=ResponseReader)
    #: output index of the text block it became, once opened
    text_index: int | None = None


def _escape(text: str, at: int) -> tuple[str, int]:
    """The character of the escape at ``text[at]`` and its length; (``""``, 0) when it is incomplete."""
    if at + 1 >= len(text):
        return "", 0
    kind = text[at + 1]
    if kind != "u":
        return _SIMPLE_ESCAPES.get(kind, kind), 2
    code = _hex(text, at + 2)
    if code is None:
        return ("", 0) if at + 6 > len(text) else (text[at + 1], 2)
    if 0xD800 <= code < 0xDC00:
        pair = text[at + 6 : at + 12]
        if len(pair) < 6 and "\\u".startswith(pair[:2]):
            return "", 0  # the low half may still be on its way
        low = _hex(text, at + 8) if pair.startswith("\\u") else None
        if low is not None and 0xDC00 <= low < 0xE000:
            return chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)), 12
        return "\ufffd", 6  # a high surrogate without its pair
    if 0xDC00 <= code < 0xE000:
        return "\ufffd", 6  # a lone low surrogate cannot be encoded
    return chr(code), 6


def _hex(text: str, start: int) -> int | None:
    digits = text[start : start + 4]
    if len(digits) != 4 or not all(c in string.hexdigits for c in digits):
        return None
    return int(digits, 16)
