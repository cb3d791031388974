"""enhancetool: repair tool-call arguments that are not valid JSON (CCR's ``enhancetool``).

CCR parses each call's arguments with JSON5 and then ``jsonrepair``; ccr-fast uses
:func:`~ccr_fast.transformers.json_repair.repair_object`.  Both forms of a response are covered:

* non-stream: the translator keeps arguments it could not parse as ``{"_unparsed_arguments": text}``;
  the message hook replaces that with the repaired object;
* stream: a ``tool_use`` block's ``input_json_delta`` fragments are held back until its
  ``content_block_stop``, then sent as one delta holding the repaired JSON.  The client's accumulator only
  parses the input after the stop anyway, so nothing it shows arrives later than before; arguments that
  were valid all along are sent as the model wrote them.  ``tooluse``'s ExitTool calls are left to
  ``tooluse``, which reads (and repairs) them itself: holding them back would stop the answer from
  streaming, whichever of the two comes first in the chain.
"""

from __future__ import annotations

from typing import Any

import orjson

from ccr_fast.protocol.openai_response import UNPARSED_ARGUMENTS_KEY
from ccr_fast.transformers.base import PlanBuilder, Transformer
from ccr_fast.transformers.event_rewriter import EventRewriter, JSONDict
from ccr_fast.transformers.json_repair import repair_object
from ccr_fast.transformers.tooluse import EXIT_TOOL

__all__ = ["EnhanceToolTransformer", "ToolArgumentsRepair", "repair_tool_inputs", "repaired_arguments"]


class EnhanceToolTransformer(Transformer):
    """enhancetool: repairs broken tool-argument JSON (fences, quotes, trailing commas, cut-off text)."""

    name = "enhancetool"

    def configure(self, plan: PlanBuilder) -> None:
        plan.response_filters.append(ToolArgumentsRepair)
        plan.message_hooks.append(repair_tool_inputs)


def repaired_arguments(text: str) -> str:
    """The JSON text to send for streamed arguments ``text``: unchanged when valid, else repaired.

    Blank arguments give "" (no delta: the input stays ``{}``).  Arguments nothing can be made of are
    passed on as they are, so the client reports the model's own text rather than an invented input.
    """
    if not text.strip():
        return ""
    try:
        if isinstance(orjson.loads(text), dict):
            return text
    except orjson.JSONDecodeError:
        pass
    repaired = repair_object(text)
    return text if repaired is None else orjson.dumps(repaired).decode()


def repair_tool_inputs(message: dict[str, Any]) -> None:
    """Message hook: replace each input the translator could not parse with its repaired object."""
    for block in message.get("content") or ():
        if not isinstance(block, dict) or block.get("type") != "tool_use":
            continue
        tool_input = block.get("input")
        if isinstance(tool_input, dict) and set(tool_input) == {UNPARSED_ARGUMENTS_KEY}:
            raw = tool_input[UNPARSED_ARGUMENTS_KEY]
            repaired = repair_object(raw) if isinstance(raw, str) else None
            if repaired is not None:
                block["input"] = repaired


class ToolArgumentsRepair(EventRewriter):
    """Stream filter: buffers each ``tool_use`` block's arguments and sends them repaired at its stop."""

    def __init__(self) -> None:
        super().__init__()
        #: upstream index of a tool_use block being buffered -> its argument fragments
        self._buffers: dict[int, list[str]] = {}

    def on_block_start(self, index: int, block: JSONDict) -> None:
        self.forward_block(index, block)
        if block.get("type") == "tool_use" and block.get("name") != EXIT_TOOL:
            self._buffers[index] = []

    def on_block_delta(self, index: int, delta: JSONDict) -> None:
        fragments = self._buffers.get(index)
        if fragments is not None and delta.get("type") == "input_json_delta":
            partial = delta.get("partial_json")
            if isinstance(partial, str):
                fragments.append(partial)
            return
        self.pass_delta(index)

    def on_block_stop(self, index: int) -> None:
        fragments = self._buffers.pop(index, None)
        out = self.forwarded(index)
        if fragments and out is not None:
            text = repaired_arguments("".join(fragments))
            if text:
                self.write(out, {"type": "input_json_delta", "partial_json": text})
        self.pass_stop(index)
