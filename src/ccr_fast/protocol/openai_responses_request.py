"""Anthropic Messages request → OpenAI Responses API request (a pure function, no I/O).

The Responses API (``POST /v1/responses``) takes a list of typed ``input`` items instead of chat messages:

* ``system`` becomes ``instructions``; Claude Code's mid-conversation ``role: "system"`` messages stay where
  they are, as ``system`` message items (the dialect's ``system_role``);
* user text, images and documents become a user message item of ``input_text`` / ``input_image`` (a data
  URL or the URL) / ``input_file`` parts; assistant text becomes an assistant message of ``output_text``;
* ``tool_use`` becomes a ``function_call`` item and ``tool_result`` a ``function_call_output`` item right
  after the calls (stepping over a mid-conversation system message, as the chat translator does); a tool
  result with images keeps them, since Responses takes ``input_image`` parts in a function output;
* thinking the Responses API produced comes back in the thinking block's ``signature`` (the reasoning item's
  ``encrypted_content`` behind ``SIGNATURE_PREFIX``, see ``openai_responses_response``) and goes back
  unchanged as a ``reasoning`` input item, so a reasoning model keeps its chain of thought across the turns
  of a tool loop.  Thinking signed by anyone else (Anthropic, Gemini) means nothing to OpenAI and is left
  out, as are redacted thinking blocks.

Every request is sent with ``store: false``: a proxy is stateless and never refers to a stored response, and
nothing of the conversation should be kept upstream on its account.  Without storage, reasoning can only be
carried by its encrypted content, so a request that asks for thinking also asks for
``include: ["reasoning.encrypted_content"]``.

Thinking maps to ``reasoning: {effort, summary: "auto"}``: a budget is bucketed into an effort the way the
chat translator does (``openai_request.EFFORT_BUCKETS``: under 4096 low, under 16384 medium, else high),
adaptive thinking follows ``output_config.effort``.  With ``display: "omitted"`` no summary is asked for (the
thinking block then carries only the signature, as Anthropic's does).

What the Responses API cannot take is left out, and ``unsupported_fields`` names it for the
``x-ccr-warning`` response header: ``stop_sequences`` and ``top_k`` always, ``temperature`` and ``top_p``
when reasoning is asked for (OpenAI's reasoning models reject them).  ``max_tokens`` becomes
``max_output_tokens``, raised to OpenAI's minimum of 16 (Claude Code probes with ``max_tokens: 1``).
Anthropic's server tools are left out (``server_tools`` names them in the same header); the
Anthropic-defined client tools get the schema Anthropic documents for them.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

import orjson

from ccr_fast.protocol._anthropic_request import is_int, is_number, joined_text, merged, source_url, turns
from ccr_fast.protocol.anthropic_ids import from_anthropic_tool_id
from ccr_fast.protocol.openai_dialect import OpenAIDialect
from ccr_fast.protocol.openai_request import ADAPTIVE_EFFORT, EFFORT_BUCKETS
from ccr_fast.protocol.openai_responses_response import from_client_signature
from ccr_fast.protocol.server_tools import client_tool_schema, is_server_tool

__all__ = [
    "INCLUDE_REASONING",
    "MIN_OUTPUT_TOKENS",
    "anthropic_to_responses",
    "reasoning_for",
    "unsupported_fields",
]

JSONDict = dict[str, Any]

#: OpenAI rejects ``max_output_tokens`` below this
MIN_OUTPUT_TOKENS: Final = 16
#: what a stateless client asks for to get reasoning back in a form it can send again
INCLUDE_REASONING: Final = "reasoning.encrypted_content"
#: the schema given to a tool that comes without one and whose type has no known schema
EMPTY_SCHEMA: Final[Mapping[str, Any]] = {"type": "object", "properties": {}}
ERROR_PREFIX: Final = "Error: "
IMAGE_DETAIL: Final = "auto"
_SAMPLING: Final = ("temperature", "top_p")


def anthropic_to_responses(body: Mapping[str, Any], *, model: str, dialect: OpenAIDialect) -> JSONDict:
    """Translate an Anthropic ``/v1/messages`` body for a Responses API upstream serving ``model``."""
    out: JSONDict = {"model": model}
    instructions = joined_text(body.get("system"))
    if instructions:
        out["instructions"] = instructions
    out["input"] = _input(body, dialect)
    tools = _tools(body.get("tools"))
    if tools:
        out["tools"] = tools
        _tool_choice(body.get("tool_choice"), {t["name"] for t in tools}, out)
    reasoning = reasoning_for(body.get("thinking"), body.get("output_config"))
    if reasoning is not None:
        out["reasoning"] = reasoning
        out["include"] = [INCLUDE_REASONING]
    else:
        for key in _SAMPLING:
            if is_number(body.get(key)):
                out[key] = body[key]
    max_tokens = body.get("max_tokens")
    if is_int(max_tokens):
        if dialect.max_tokens_cap is not None:
            max_tokens = min(max_tokens, dialect.max_tokens_cap)
        out["max_output_tokens"] = max(max_tokens, MIN_OUTPUT_TOKENS)
    if body.get("stream") is True:
        out["stream"] = True
    out["store"] = False
    if dialect.extra_body:
        out = merged(out, dialect.extra_body)
    for key in dialect.drop_keys:
        out.pop(key, None)
    return out


def unsupported_fields(body: Mapping[str, Any]) -> list[str]:
    """The request fields ``anthropic_to_responses`` leaves out because the Responses API has no place for
    them (for the ``x-ccr-warning`` header); [] when everything was sent."""
    dropped: list[str] = []
    stop = body.get("stop_sequences")
    if isinstance(stop, list) and any(isinstance(s, str) and s for s in stop):
        dropped.append("stop_sequences")
    if is_int(body.get("top_k")):
        dropped.append("top_k")
    if reasoning_for(body.get("thinking"), body.get("output_config")) is not None:
        dropped += [key for key in _SAMPLING if is_number(body.get(key))]
    return dropped


def reasoning_for(thinking: Any, output_config: Any) -> JSONDict | None:
    """The ``reasoning`` object for an enabled or adaptive ``thinking`` request, None otherwise."""
    if not isinstance(thinking, Mapping) or thinking.get("type") not in ("enabled", "adaptive"):
        return None
    budget = thinking.get("budget_tokens") if thinking.get("type") == "enabled" else None
    if is_int(budget) and budget > 0:
        effort = next((name for limit, name in EFFORT_BUCKETS if budget < limit), "high")
    else:
        asked = output_config.get("effort") if isinstance(output_config, Mapping) else None
        effort = ADAPTIVE_EFFORT.get(asked, "medium") if isinstance(asked, str) else "medium"
    reasoning: JSONDict = {"effort": effort}
    if thinking.get("display") != "omitted":
        reasoning["summary"] = "auto"
    return reasoning


# --- input items ----------------------------------------------------------------------------------------


def _input(body: Mapping[str, Any], dialect: OpenAIDialect) -> list[JSONDict]:
    items: list[JSONDict] = []
    for role, blocks in turns(body.get("messages")):
        if role == "system":
            text = joined_text(blocks)
            if text:
                items.append(_message(dialect.system_role, [_input_text(text)]))
        elif role == "assistant":
            _add_assistant_turn(blocks, items)
        else:
            _add_user_turn(blocks, dialect, items)
    return items


def _message(role: str, content: list[JSONDict]) -> JSONDict:
    return {"type": "message", "role": role, "content": content}


def _input_text(text: str) -> JSONDict:
    return {"type": "input_text", "text": text}


def _add_assistant_turn(blocks: list[Any], items: list[JSONDict]) -> None:
    """Items in block order: reasoning, assistant messages (consecutive text joined) and function calls."""
    texts: list[JSONDict] = []

    def flush() -> None:
        if texts:
            items.append(_message("assistant", list(texts)))
            texts.clear()

    for block in blocks:
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind == "text":
            if isinstance(block.get("text"), str) and block["text"]:
                texts.append({"type": "output_text", "text": block["text"]})
        elif kind == "tool_use":
            flush()
            items.append(_function_call(block))
        elif kind == "thinking":
            encrypted = from_client_signature(block.get("signature"))
            if encrypted is not None:
                flush()
                items.append(_reasoning_item(block.get("thinking"), encrypted))
    flush()


def _reasoning_item(thinking: Any, encrypted: str) -> JSONDict:
    """A reasoning item for the next turn: the opaque content is what counts, the summary is what was shown.

    No ``id``: with ``store: false`` nothing can be looked up by id, and the encrypted content stands alone.
    """
    summary = [{"type": "summary_text", "text": thinking}] if isinstance(thinking, str) and thinking else []
    return {"type": "reasoning", "summary": summary, "encrypted_content": encrypted}


def _function_call(block: Mapping[str, Any]) -> JSONDict:
    arguments = block.get("input")
    tool_id = block.get("id")
    return {
        "type": "function_call",
        "call_id": from_anthropic_tool_id(tool_id) if isinstance(tool_id, str) else "",
        "name": block.get("name") or "",
        "arguments": orjson.dumps(arguments if isinstance(arguments, Mapping) else {}).decode(),
    }


def _add_user_turn(blocks: list[Any], dialect: OpenAIDialect, items: list[JSONDict]) -> None:
    outputs: list[JSONDict] = []
    parts: list[JSONDict] = []
    for block in blocks:
        if not isinstance(block, Mapping):
            continue
        if block.get("type") == "tool_result":
            outputs.append(_function_output(block))
        else:
            parts.extend(_user_parts(block))
    if outputs:
        at = _outputs_position(items, dialect)
        items[at:at] = outputs
    if parts:
        items.append(_message("user", parts))


def _outputs_position(items: list[JSONDict], dialect: OpenAIDialect) -> int:
    """Where function outputs go: right after the function calls (and earlier outputs) they answer.

    A mid-conversation system message between the assistant turn and the results is stepped over, so the
    calls and their outputs stay together as the chat translator keeps them.
    """
    at = len(items)
    while at > 0 and items[at - 1].get("role") == dialect.system_role:
        at -= 1
    if at > 0 and items[at - 1].get("type") in ("function_call", "function_call_output"):
        return at
    return len(items)


def _function_output(block: Mapping[str, Any]) -> JSONDict:
    """A ``function_call_output``: text as a string, or a list of parts when the tool returned media."""
    content = block.get("content")
    parts: list[JSONDict] = []
    if isinstance(content, str):
        if content:
            parts.append(_input_text(content))
    elif isinstance(content, list):
        for item in content:
            if isinstance(item, Mapping):
                parts.extend(_user_parts(item))
    error = block.get("is_error") is True
    output: str | list[JSONDict]
    if all(part["type"] == "input_text" for part in parts):
        text = "\n".join(part["text"] for part in parts)
        output = (ERROR_PREFIX + text if text else "Error") if error else text
    else:
        output = [_input_text("Error"), *parts] if error else parts
    tool_id = block.get("tool_use_id")
    call_id = from_anthropic_tool_id(tool_id) if isinstance(tool_id, str) else ""
    return {"type": "function_call_output", "call_id": call_id, "output": output}


def _user_parts(block: Mapping[str, Any]) -> list[JSONDict]:
    """Input parts for one Anthropic user-side block (empty for blocks with no Responses form)."""
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        return [_input_text(text)] if isinstance(text, str) and text else []
    if kind == "image":
        url = source_url(block.get("source"))
        return [{"type": "input_image", "image_url": url, "detail": IMAGE_DETAIL}] if url else []
    if kind == "document":
        return _document_parts(block)
    if kind == "search_result":
        lines = [block.get("title"), block.get("source"), joined_text(block.get("content"))]
        text = "\n".join(line for line in lines if isinstance(line, str) and line)
        return [_input_text(text)] if text else []
    return []


def _document_parts(block: Mapping[str, Any]) -> list[JSONDict]:
    source = block.get("source")
    if not isinstance(source, Mapping):
        return []
    title = block.get("title") if isinstance(block.get("title"), str) else None
    kind = source.get("type")
    if kind == "base64" and isinstance(source.get("data"), str):
        data_url = f"data:{source.get('media_type') or 'application/pdf'};base64,{source['data']}"
        return [{"type": "input_file", "filename": title or "document.pdf", "file_data": data_url}]
    if kind == "url" and isinstance(source.get("url"), str):
        return [{"type": "input_file", "file_url": source["url"]}]
    if kind == "text" and isinstance(source.get("data"), str):
        text = f"{title}\n\n{source['data']}" if title else source["data"]
        return [_input_text(text)] if text else []
    if kind == "content" and isinstance(source.get("content"), list):
        parts: list[JSONDict] = []
        for item in source["content"]:
            if isinstance(item, Mapping):
                parts.extend(_user_parts(item))
        return parts
    return []


# --- tools ----------------------------------------------------------------------------------------------


def _tools(tools: Any) -> list[JSONDict]:
    """Function tools, flat as the Responses API has them (``name`` at the top, not under ``function``)."""
    if not isinstance(tools, list):
        return []
    out: list[JSONDict] = []
    for tool in tools:
        if not isinstance(tool, Mapping) or not isinstance(tool.get("name"), str):
            continue
        if is_server_tool(tool):
            continue  # Anthropic runs these; the warning header names them
        schema = tool.get("input_schema")
        if not isinstance(schema, Mapping):
            kind = tool.get("type")
            schema = (isinstance(kind, str) and client_tool_schema(kind)) or copy.deepcopy(EMPTY_SCHEMA)
        function: JSONDict = {"type": "function", "name": tool["name"]}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        function["parameters"] = schema
        # Responses defaults to strict schemas, which need every property required and no extra keys:
        # Claude Code's schemas are not written for that.
        function["strict"] = tool.get("strict") is True
        out.append(function)
    return out


def _tool_choice(choice: Any, names: set[str], out: JSONDict) -> None:
    if not isinstance(choice, Mapping):
        return
    kind = choice.get("type")
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool" and choice.get("name") in names:
        out["tool_choice"] = {"type": "function", "name": choice["name"]}
    if choice.get("disable_parallel_tool_use") is True:
        out["parallel_tool_calls"] = False
