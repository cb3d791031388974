"""Anthropic Messages request → OpenAI Chat Completions request (a pure function, no I/O).

Only fields with a meaning upstream are written, each built fresh, so Anthropic-only fields
(``cache_control``, ``citations``, ``context_management``, ``output_config``, ``defer_loading`` ...) cannot
leak to strict OpenAI-compatible servers, which reject unknown keys.  Sub-objects the two APIs share
verbatim (tool schemas) are referenced, not copied; neither the input nor the dialect is ever mutated.

Message layout rules that OpenAI enforces and Anthropic does not:

* tool results are separate ``role:"tool"`` messages and must follow the assistant message holding the
  matching ``tool_calls`` directly, so they go before any user text of the same turn (and before a
  mid-conversation system message that sits between the two turns);
* tool messages carry text only, so images and PDFs returned by a tool move to the user message after them;
* consecutive same-role turns are merged first, as Anthropic does server-side; otherwise an assistant turn
  split in two would separate ``tool_calls`` from their results.

Anthropic's server tools never become functions: web search turns into the upstream's native search where
it has one (OpenRouter's web plugin, OpenAI's ``web_search_options``), the rest are left out; the
Anthropic-defined client tools (bash, text editor) get the schema Anthropic documents for them
(``server_tools``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

import orjson

from ccr_fast.protocol._anthropic_request import is_int, is_number, joined_text, merged, source_url, turns
from ccr_fast.protocol.anthropic_ids import from_anthropic_tool_id
from ccr_fast.protocol.openai_dialect import OpenAIDialect
from ccr_fast.protocol.server_tools import (
    client_tool_schema,
    find_web_search,
    is_server_tool,
    openai_search_fields,
    openai_search_mode,
)

__all__ = ["anthropic_to_openai"]

JSONDict = dict[str, Any]

#: the schema given to a tool that comes without one and whose type has no known schema
#: (``server_tools.client_tool_schema`` knows bash and the text editor)
EMPTY_SCHEMA: Final[Mapping[str, Any]] = {"type": "object", "properties": {}}
#: thinking budget → reasoning_effort buckets (upper bounds, exclusive); Claude Code's think / think hard /
#: ultrathink budgets (4k, 10k, 32k) land in low / medium / high
EFFORT_BUCKETS: Final = ((4096, "low"), (16384, "medium"))
ADAPTIVE_EFFORT: Final = {"low": "low", "medium": "medium", "high": "high", "max": "high"}
ERROR_PREFIX: Final = "Error: "
MOVED_IMAGES_NOTE: Final = "(the tool returned images; they follow in the next user message)"


def anthropic_to_openai(body: Mapping[str, Any], *, model: str, dialect: OpenAIDialect) -> JSONDict:
    """Translate an Anthropic ``/v1/messages`` body for an OpenAI-compatible upstream serving ``model``."""
    out: JSONDict = {"model": model, "messages": _messages(body, dialect)}
    tools = _tools(body.get("tools"))
    if tools:
        out["tools"] = tools
        _tool_choice(body.get("tool_choice"), {t["function"]["name"] for t in tools}, out)
    search = find_web_search(body.get("tools"))
    if search is not None:
        out.update(openai_search_fields(search, openai_search_mode(dialect, model), model))
    _sampling(body, dialect, out)
    max_tokens = body.get("max_tokens")
    if is_int(max_tokens):
        if dialect.max_tokens_cap is not None:
            max_tokens = min(max_tokens, dialect.max_tokens_cap)
        out[dialect.max_tokens_field] = max_tokens
    if body.get("stream") is True:
        out["stream"] = True
        if dialect.include_usage:
            out["stream_options"] = {"include_usage": True}
    out.update(_thinking(body.get("thinking"), body.get("output_config"), dialect))
    if dialect.extra_body:
        out = merged(out, dialect.extra_body)
    for key in dialect.drop_keys:
        out.pop(key, None)
    return out


# --- messages -------------------------------------------------------------------------------------------


def _messages(body: Mapping[str, Any], dialect: OpenAIDialect) -> list[JSONDict]:
    out: list[JSONDict] = []
    system = joined_text(body.get("system"))
    if system:
        out.append({"role": dialect.system_role, "content": system})
    for role, blocks in turns(body.get("messages")):
        if role == "system":
            text = joined_text(blocks)
            if text:
                out.append({"role": dialect.system_role, "content": text})
        elif role == "assistant":
            message = _assistant_message(blocks, dialect)
            if message is not None:
                out.append(message)
        else:
            _add_user_turn(blocks, dialect, out)
    return out


def _assistant_message(blocks: list[Any], dialect: OpenAIDialect) -> JSONDict | None:
    texts: list[str] = []
    calls: list[JSONDict] = []
    thoughts: list[str] = []
    details: list[JSONDict] = []
    for block in blocks:
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind == "text":
            if isinstance(block.get("text"), str) and block["text"]:
                texts.append(block["text"])
        elif kind == "tool_use":
            calls.append(_tool_call(block))
        elif kind == "thinking":
            thought = block.get("thinking")
            thought = thought if isinstance(thought, str) else ""
            thoughts.append(thought)
            item: JSONDict = {"type": "reasoning.text", "text": thought}
            if isinstance(block.get("signature"), str):
                item["signature"] = block["signature"]
            details.append(item)
        elif kind == "redacted_thinking":
            details.append({"type": "reasoning.encrypted", "data": block.get("data")})
    message: JSONDict = {"role": "assistant", "content": "\n\n".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    field = dialect.reasoning_out
    if field == "reasoning_details":
        if details:
            message["reasoning_details"] = details
    elif field is not None and (thoughts or calls):
        # DeepSeek's thinking mode rejects a tool-call turn without the field ("Missing reasoning_content"),
        # even when the history came from a model that did not think: send it, empty if need be.
        message[field] = "\n\n".join(t for t in thoughts if t)
    if message["content"] is None and not calls:
        if field is None or field not in message:
            return None  # nothing upstream could use: an empty assistant turn is rejected by some servers
        message["content"] = ""
    return message


def _tool_call(block: Mapping[str, Any]) -> JSONDict:
    arguments = block.get("input")
    tool_id = block.get("id")
    return {
        "id": from_anthropic_tool_id(tool_id) if isinstance(tool_id, str) else "",
        "type": "function",
        "function": {
            "name": block.get("name") or "",
            "arguments": orjson.dumps(arguments if isinstance(arguments, Mapping) else {}).decode(),
        },
    }


def _add_user_turn(blocks: list[Any], dialect: OpenAIDialect, out: list[JSONDict]) -> None:
    tool_messages: list[JSONDict] = []
    moved: list[JSONDict] = []
    parts: list[JSONDict] = []
    for block in blocks:
        if not isinstance(block, Mapping):
            continue
        if block.get("type") == "tool_result":
            tool_messages.append(_tool_message(block, moved))
        else:
            parts.extend(_user_parts(block))
    if tool_messages:
        at = _tool_results_position(out, dialect)
        out[at:at] = tool_messages
    parts = moved + parts
    if not parts:
        return
    if len(parts) == 1 and parts[0]["type"] == "text":
        out.append({"role": "user", "content": parts[0]["text"]})
    else:
        out.append({"role": "user", "content": parts})


def _tool_results_position(out: list[JSONDict], dialect: OpenAIDialect) -> int:
    """Where tool messages go: right after the assistant ``tool_calls`` (and earlier tool messages).

    A mid-conversation system message between the assistant turn and the results is stepped over, because
    OpenAI rejects anything between ``tool_calls`` and their tool messages.
    """
    at = len(out)
    while at > 0 and out[at - 1]["role"] == dialect.system_role:
        at -= 1
    if at > 0 and (out[at - 1]["role"] == "tool" or "tool_calls" in out[at - 1]):
        return at
    return len(out)


def _tool_message(block: Mapping[str, Any], moved: list[JSONDict]) -> JSONDict:
    content = block.get("content")
    texts: list[str] = []
    media: list[JSONDict] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for item in content:
            if not isinstance(item, Mapping):
                continue
            for part in _user_parts(item):
                if part["type"] == "text":
                    texts.append(part["text"])
                else:
                    media.append(part)
    tool_id = block.get("tool_use_id")
    call_id = from_anthropic_tool_id(tool_id) if isinstance(tool_id, str) else ""
    text = "\n".join(t for t in texts if t)
    if media:
        moved.append({"type": "text", "text": f"[images from tool result {call_id}]"})
        moved.extend(media)
        text = text or MOVED_IMAGES_NOTE
    if block.get("is_error") is True:
        text = ERROR_PREFIX + text if text else "Error"
    return {"role": "tool", "tool_call_id": call_id, "content": text}


def _user_parts(block: Mapping[str, Any]) -> list[JSONDict]:
    """OpenAI content parts for one Anthropic user-side block (empty for blocks with no OpenAI form)."""
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        return [{"type": "text", "text": text}] if isinstance(text, str) and text else []
    if kind == "image":
        url = source_url(block.get("source"))
        return [{"type": "image_url", "image_url": {"url": url}}] if url else []
    if kind == "document":
        return _document_parts(block)
    if kind == "search_result":
        lines = [block.get("title"), block.get("source"), joined_text(block.get("content"))]
        text = "\n".join(line for line in lines if isinstance(line, str) and line)
        return [{"type": "text", "text": text}] if text else []
    return []


def _document_parts(block: Mapping[str, Any]) -> list[JSONDict]:
    source = block.get("source")
    if not isinstance(source, Mapping):
        return []
    title = block.get("title") if isinstance(block.get("title"), str) else None
    kind = source.get("type")
    if kind == "base64" and isinstance(source.get("data"), str):
        data_url = f"data:{source.get('media_type') or 'application/pdf'};base64,{source['data']}"
        return [{"type": "file", "file": {"filename": title or "document.pdf", "file_data": data_url}}]
    if kind == "text" and isinstance(source.get("data"), str):
        text = f"{title}\n\n{source['data']}" if title else source["data"]
        return [{"type": "text", "text": text}] if text else []
    if kind == "content" and isinstance(source.get("content"), list):
        parts: list[JSONDict] = []
        for item in source["content"]:
            if isinstance(item, Mapping):
                parts.extend(_user_parts(item))
        return parts
    if kind == "url" and isinstance(source.get("url"), str):
        # Chat Completions has no URL form for files; the model can at least see the reference.
        return [{"type": "text", "text": f"Document{' ' + title if title else ''}: {source['url']}"}]
    return []


# --- tools ----------------------------------------------------------------------------------------------


def _tools(tools: Any) -> list[JSONDict]:
    if not isinstance(tools, list):
        return []
    out: list[JSONDict] = []
    for tool in tools:
        if not isinstance(tool, Mapping) or not isinstance(tool.get("name"), str):
            continue
        if is_server_tool(tool):
            continue  # runs upstream as native search (see anthropic_to_openai) or not at all
        schema = tool.get("input_schema")
        if not isinstance(schema, Mapping):
            kind = tool.get("type")
            # fresh objects: later stages may edit schemas in place
            schema = (isinstance(kind, str) and client_tool_schema(kind)) or copy.deepcopy(EMPTY_SCHEMA)
        function: JSONDict = {"name": tool["name"]}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        function["parameters"] = schema
        if isinstance(tool.get("strict"), bool):
            function["strict"] = tool["strict"]
        out.append({"type": "function", "function": function})
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
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    if choice.get("disable_parallel_tool_use") is True:
        out["parallel_tool_calls"] = False


# --- parameters -----------------------------------------------------------------------------------------


def _sampling(body: Mapping[str, Any], dialect: OpenAIDialect, out: JSONDict) -> None:
    stop = body.get("stop_sequences")
    if isinstance(stop, list):
        stop = [s for s in stop if isinstance(s, str) and s]
        if stop:
            out["stop"] = stop
    for key in ("temperature", "top_p"):
        if is_number(body.get(key)):
            out[key] = body[key]
    if dialect.send_top_k and is_int(body.get("top_k")):
        out["top_k"] = body["top_k"]
    metadata = body.get("metadata")
    if dialect.send_user and isinstance(metadata, Mapping) and isinstance(metadata.get("user_id"), str):
        out["user"] = metadata["user_id"]


def _thinking(thinking: Any, output_config: Any, dialect: OpenAIDialect) -> JSONDict:
    """The upstream's way of asking for reasoning, for an enabled or adaptive ``thinking`` request."""
    if not isinstance(thinking, Mapping) or thinking.get("type") not in ("enabled", "adaptive"):
        return {}
    asked_budget = thinking.get("budget_tokens") if thinking.get("type") == "enabled" else None
    budget = asked_budget if is_int(asked_budget) and asked_budget > 0 else None
    if dialect.thinking_param == "reasoning_effort":
        if budget is not None:
            effort = next((name for limit, name in EFFORT_BUCKETS if budget < limit), "high")
        else:
            asked = output_config.get("effort") if isinstance(output_config, Mapping) else None
            effort = ADAPTIVE_EFFORT.get(asked, "medium") if isinstance(asked, str) else "medium"
        return {"reasoning_effort": effort}
    if dialect.thinking_param == "openrouter":
        return {"reasoning": {"max_tokens": budget} if budget is not None else {"enabled": True}}
    if dialect.thinking_param == "deepseek":
        return {"thinking": {"type": "enabled"}}
    return {}
