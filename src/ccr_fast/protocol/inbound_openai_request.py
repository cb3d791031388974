"""OpenAI Chat Completions request → Anthropic Messages request, for clients that speak OpenAI's format.

The gateway works in Anthropic's format internally, so a ``POST /v1/chat/completions`` body is translated
once on arrival and then routed like any ``/v1/messages`` request.  A pure function, no I/O; the input is
never mutated and tool schemas are referenced, not copied, as the outbound translator does.

Invalid input raises ``GatewayError(400)`` whose message starts with the path of the offending field
(``messages[2].content[0].image_url.url: ...``), because an OpenAI client has no other way to find it.
Fields the gateway cannot honour are rejected rather than silently dropped when ignoring them would change
the answer's shape (``n > 1``, the legacy ``functions`` API, ``file_id`` references to a file store);
fields that only tune sampling or output metadata (``seed``, penalties, ``logprobs``, ``response_format``)
are ignored, as many OpenAI-compatible servers do.

Choices where the two APIs differ:

* ``max_tokens`` is required by Anthropic and optional in OpenAI: ``DEFAULT_MAX_TOKENS`` applies when the
  client sends neither ``max_completion_tokens`` nor ``max_tokens``.
* ``temperature`` is 0 to 2 in OpenAI and 0 to 1 in Anthropic.  Values above 1 are clamped to 1 instead of the
  range being scaled, so the common values (0, 0.2, 0.7, 1) keep their meaning for every upstream,
  including OpenAI-compatible ones, where the outbound translator passes the value through unchanged.
* ``reasoning_effort`` becomes a thinking budget (``EFFORT_BUDGETS``).  The budget is at most half of an
  explicit ``max_tokens`` so the answer keeps room (below Anthropic's minimum of 1024 thinking is left off);
  without an explicit limit the default grows by the budget.  With thinking on, ``temperature`` and
  ``top_p`` are not sent: Anthropic rejects most values then, as OpenAI's reasoning models do.  A forced
  ``tool_choice`` (``required`` or a named function) wins over thinking, which Anthropic cannot combine.
* System and developer messages before the first conversation turn become ``system``; later ones stay in
  place as ``{"role": "system"}`` messages, which the gateway carries through to every upstream.
* Tool messages become ``tool_result`` blocks of a user turn, and consecutive turns of one role are merged
  because Anthropic requires alternation.  Order is kept, so when the client follows OpenAI's rule that tool
  messages directly follow the assistant's tool calls, the results come first in their user turn as
  Anthropic demands, with any user text that followed them after.
* Tool-call ids go through ``to_anthropic_tool_id`` on both the assistant's ``tool_calls`` and the tool
  messages, so each pair keeps matching and ids from other providers become valid Anthropic ids.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, Final

import orjson

from ccr_fast.protocol.anthropic_ids import to_anthropic_tool_id
from ccr_fast.protocol.errors import GatewayError

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "EFFORT_BUDGETS",
    "RAW_ARGUMENTS_KEY",
    "openai_request_to_anthropic",
    "stream_include_usage",
]

JSONDict = dict[str, Any]

#: ``max_tokens`` when the client sets no limit (Anthropic requires one)
DEFAULT_MAX_TOKENS: Final = 4096
#: ``reasoning_effort`` → thinking budget; low, medium and high come back as themselves through the outbound
#: translator's buckets (openai_request.EFFORT_BUCKETS)
EFFORT_BUDGETS: Final[Mapping[str, int]] = {
    "minimal": 1024,
    "low": 2048,
    "medium": 8192,
    "high": 16384,
    "xhigh": 32768,
    "max": 32768,
}
#: Anthropic's smallest thinking budget
MIN_THINKING_BUDGET: Final = 1024
#: tool-call arguments that are not a JSON object are kept as text under this key
RAW_ARGUMENTS_KEY: Final = "_raw"
EMPTY_SCHEMA: Final[Mapping[str, Any]] = {"type": "object", "properties": {}}
PDF: Final = "application/pdf"
PLAIN_TEXT: Final = "text/plain"
TOOL_CHOICE_MODES: Final[Mapping[str, str]] = {"auto": "auto", "none": "none", "required": "any"}


def _invalid(path: str, problem: str) -> GatewayError:
    return GatewayError(400, f"{path}: {problem}", "invalid_request_error")


def openai_request_to_anthropic(body: Mapping[str, Any]) -> JSONDict:
    """Translate a ``/v1/chat/completions`` body into a ``/v1/messages`` body (see the module docstring)."""
    if not isinstance(body, Mapping):
        raise _invalid("body", "expected a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _invalid("model", "required, a non-empty string")
    for legacy in ("functions", "function_call"):
        if body.get(legacy) is not None:
            raise _invalid(legacy, "the legacy functions API is not supported; use tools and tool_choice")
    if body.get("n") not in (None, 1):
        raise _invalid("n", "only one choice per request is supported")
    system, messages = _conversation(body.get("messages"))
    out: JSONDict = {"model": model, "messages": messages}
    if system:
        out["system"] = _compact(system)
    tools = _tools(body.get("tools"))
    choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls")) if tools else None
    if tools:
        out["tools"] = tools
    if choice is not None:
        out["tool_choice"] = choice
    budget = _effort_budget(body.get("reasoning_effort"))
    if choice is not None and choice["type"] in ("any", "tool"):
        budget = None
    sampling = _sampling(body)
    out["max_tokens"], budget = _limits(body, budget)
    if budget is not None:
        out["thinking"] = {"type": "enabled", "budget_tokens": budget}
    else:
        out.update(sampling)
    stop = _stop_sequences(body.get("stop"))
    if stop:
        out["stop_sequences"] = stop
    user = _user_id(body)
    if user is not None:
        out["metadata"] = {"user_id": user}
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _invalid("stream", "expected a boolean")
    if stream:
        out["stream"] = True
    return out


def stream_include_usage(body: Mapping[str, Any]) -> bool:
    """Whether a streaming client asked for the final usage chunk (``stream_options.include_usage``)."""
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, Mapping):
        raise _invalid("stream_options", "expected an object")
    include = options.get("include_usage")
    if include is not None and not isinstance(include, bool):
        raise _invalid("stream_options.include_usage", "expected a boolean")
    return include is True


# --- messages -------------------------------------------------------------------------------------------


def _conversation(raw: Any) -> tuple[list[JSONDict], list[JSONDict]]:
    """(system text blocks, Anthropic messages) for the OpenAI ``messages`` array."""
    if not isinstance(raw, list) or not raw:
        raise _invalid("messages", "required, a non-empty array")
    system: list[JSONDict] = []
    turns: list[JSONDict] = []
    leading = True  # still in the system and developer messages that open the conversation
    for i, message in enumerate(raw):
        path = f"messages[{i}]"
        if not isinstance(message, Mapping):
            raise _invalid(path, "expected an object")
        role = message.get("role")
        if role in ("system", "developer"):
            blocks = _blocks(message.get("content"), f"{path}.content", ("text",))
            if leading:
                system.extend(blocks)
            else:
                _append(turns, "system", blocks)
            continue
        leading = False
        if role == "user":
            kinds = ("text", "image_url", "file")
            _append(turns, "user", _blocks(message.get("content"), f"{path}.content", kinds))
        elif role == "assistant":
            _append(turns, "assistant", _assistant_blocks(message, path))
        elif role == "tool":
            _append(turns, "user", [_tool_result(message, path)])
        else:
            raise _invalid(f"{path}.role", "expected system, developer, user, assistant or tool")
    for turn in turns:
        turn["content"] = _compact(turn["content"])
    return system, turns


def _append(turns: list[JSONDict], role: str, blocks: list[JSONDict]) -> None:
    """Add a turn's blocks, merging into the previous turn of the same role (Anthropic alternates).

    Adjacent mid-conversation system messages merge as well, so no two neighbours ever share a role.
    """
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def _compact(blocks: list[JSONDict]) -> str | list[JSONDict]:
    """A lone plain text block as a string, Anthropic's shorthand; anything else stays a block list."""
    if len(blocks) == 1 and blocks[0].keys() == {"type", "text"}:
        text: str = blocks[0]["text"]
        return text
    return blocks


def _blocks(content: Any, path: str, kinds: tuple[str, ...]) -> list[JSONDict]:
    """Anthropic blocks for message content: a string or an array of parts of the given types."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if content is None:
        return []
    if not isinstance(content, list):
        raise _invalid(path, "expected a string or an array of content parts")
    out: list[JSONDict] = []
    for j, part in enumerate(content):
        part_path = f"{path}[{j}]"
        if not isinstance(part, Mapping):
            raise _invalid(part_path, "expected an object")
        kind = part.get("type")
        if kind not in kinds:
            raise _invalid(f"{part_path}.type", f"expected one of {', '.join(kinds)}")
        if kind in ("text", "refusal"):
            text = part.get(kind)
            if not isinstance(text, str):
                raise _invalid(f"{part_path}.{kind}", "required, a string")
            block: JSONDict | None = {"type": "text", "text": text} if text else None
        elif kind == "image_url":
            block = _image(part.get("image_url"), f"{part_path}.image_url")
        else:
            block = _document(part.get("file"), f"{part_path}.file")
        if block is not None:
            cache_control = part.get("cache_control")
            if isinstance(cache_control, Mapping):
                block["cache_control"] = dict(
                    cache_control
                )  # honoured by Anthropic upstreams (as OpenRouter)
            out.append(block)
    return out


def _data_url(url: str, path: str) -> tuple[str, str]:
    """(media type, base64 data) of a ``data:`` URL; only the base64 form carries binary content."""
    header, comma, data = url[5:].partition(",")
    params = header.split(";")
    if not comma or "base64" not in params[1:]:
        raise _invalid(path, "data URLs must be base64-encoded (data:<media type>;base64,<data>)")
    return params[0], data


def _image(image_url: Any, path: str) -> JSONDict:
    url = image_url.get("url") if isinstance(image_url, Mapping) else image_url
    if not isinstance(url, str):
        raise _invalid(f"{path}.url", "required, a string")
    if url.startswith("data:"):
        media_type, data = _data_url(url, f"{path}.url")
        source = {"type": "base64", "media_type": media_type or "image/png", "data": data}
        return {"type": "image", "source": source}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise _invalid(f"{path}.url", "expected a data: URL or an http(s) URL")


def _document(file: Any, path: str) -> JSONDict:
    """A PDF (or plain-text) file part as a document block; ``file_id`` needs a file store we do not have."""
    if not isinstance(file, Mapping):
        raise _invalid(path, "required, an object")
    file_data = file.get("file_data")
    if not isinstance(file_data, str) or not file_data:
        if file.get("file_id") is not None:
            raise _invalid(f"{path}.file_id", "file references are not supported; send file_data")
        raise _invalid(f"{path}.file_data", "required, a base64 data URL")
    media_type, data = (
        _data_url(file_data, f"{path}.file_data") if file_data.startswith("data:") else (PDF, file_data)
    )
    block: JSONDict = {"type": "document"}
    if media_type == PDF:
        block["source"] = {"type": "base64", "media_type": PDF, "data": data}
    elif media_type == PLAIN_TEXT:
        try:
            text = base64.b64decode(data, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise _invalid(f"{path}.file_data", "not valid base64-encoded UTF-8 text") from None
        block["source"] = {"type": "text", "media_type": PLAIN_TEXT, "data": text}
    else:
        raise _invalid(f"{path}.file_data", f"unsupported file type {media_type!r}; send a PDF or plain text")
    filename = file.get("filename")
    if isinstance(filename, str) and filename:
        block["title"] = filename
    return block


def _assistant_blocks(message: Mapping[str, Any], path: str) -> list[JSONDict]:
    """Thinking (from ``reasoning_content``) first, then text, then one tool_use block per tool call."""
    blocks: list[JSONDict] = []
    reasoning = message.get("reasoning_content")
    if reasoning is not None and not isinstance(reasoning, str):
        raise _invalid(f"{path}.reasoning_content", "expected a string")
    if reasoning:
        blocks.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    blocks.extend(_blocks(message.get("content"), f"{path}.content", ("text", "refusal")))
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        blocks.append({"type": "text", "text": refusal})
    calls = message.get("tool_calls")
    if calls is None:
        return blocks
    if not isinstance(calls, list):
        raise _invalid(f"{path}.tool_calls", "expected an array")
    for j, call in enumerate(calls):
        blocks.append(_tool_use(call, f"{path}.tool_calls[{j}]"))
    return blocks


def _tool_use(call: Any, path: str) -> JSONDict:
    if not isinstance(call, Mapping):
        raise _invalid(path, "expected an object")
    if call.get("type", "function") != "function":
        raise _invalid(f"{path}.type", "only function tool calls are supported")
    call_id = call.get("id")
    if not isinstance(call_id, str) or not call_id:
        raise _invalid(f"{path}.id", "required, a non-empty string")
    function = call.get("function")
    if not isinstance(function, Mapping):
        raise _invalid(f"{path}.function", "required, an object")
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise _invalid(f"{path}.function.name", "required, a non-empty string")
    return {
        "type": "tool_use",
        "id": to_anthropic_tool_id(call_id),
        "name": name,
        "input": _arguments(function.get("arguments"), f"{path}.function.arguments"),
    }


def _arguments(arguments: Any, path: str) -> JSONDict:
    """Tool-call ``arguments`` as an input object: text that is not a JSON object is kept under ``_raw``.

    History replays a model's earlier output, which may be truncated or malformed JSON; rejecting the whole
    request for it would leave the client stuck, and the raw text still tells the model what it sent.
    """
    if isinstance(arguments, Mapping):
        return dict(arguments)
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}
    if not isinstance(arguments, str):
        raise _invalid(path, "expected a JSON string")
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {RAW_ARGUMENTS_KEY: arguments}
    return value if isinstance(value, dict) else {RAW_ARGUMENTS_KEY: arguments}


def _tool_result(message: Mapping[str, Any], path: str) -> JSONDict:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise _invalid(f"{path}.tool_call_id", "required, a non-empty string")
    content = message.get("content")
    block: JSONDict = {"type": "tool_result", "tool_use_id": to_anthropic_tool_id(call_id)}
    if isinstance(content, str):
        block["content"] = content
    else:
        block["content"] = _blocks(content, f"{path}.content", ("text", "image_url", "file"))
    return block


# --- tools ----------------------------------------------------------------------------------------------


def _tools(raw: Any) -> list[JSONDict]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _invalid("tools", "expected an array")
    out: list[JSONDict] = []
    for j, tool in enumerate(raw):
        path = f"tools[{j}]"
        if not isinstance(tool, Mapping):
            raise _invalid(path, "expected an object")
        if tool.get("type") != "function":
            raise _invalid(f"{path}.type", "only function tools are supported")
        function = tool.get("function")
        if not isinstance(function, Mapping):
            raise _invalid(f"{path}.function", "required, an object")
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise _invalid(f"{path}.function.name", "required, a non-empty string")
        converted: JSONDict = {"name": name}
        description = function.get("description")
        if isinstance(description, str) and description:
            converted["description"] = description
        converted["input_schema"] = _schema(function.get("parameters"), f"{path}.function.parameters")
        if isinstance(function.get("strict"), bool):
            converted["strict"] = function["strict"]
        out.append(converted)
    return out


def _schema(parameters: Any, path: str) -> Mapping[str, Any]:
    """The tool's input schema; Anthropic requires ``type: object``, which OpenAI lets clients leave out."""
    if parameters is None:
        return {**EMPTY_SCHEMA}
    if not isinstance(parameters, Mapping):
        raise _invalid(path, "expected a JSON Schema object")
    return parameters if "type" in parameters else {"type": "object", **parameters}


def _tool_choice(raw: Any, parallel: Any) -> JSONDict | None:
    if parallel is not None and not isinstance(parallel, bool):
        raise _invalid("parallel_tool_calls", "expected a boolean")
    if raw is None:
        choice: JSONDict | None = {"type": "auto"} if parallel is False else None
    elif isinstance(raw, str) and raw in TOOL_CHOICE_MODES:
        choice = {"type": TOOL_CHOICE_MODES[raw]}
    elif isinstance(raw, Mapping) and raw.get("type") == "function":
        function = raw.get("function")
        name = function.get("name") if isinstance(function, Mapping) else None
        if not isinstance(name, str) or not name:
            raise _invalid("tool_choice.function.name", "required, a non-empty string")
        choice = {"type": "tool", "name": name}
    else:
        raise _invalid("tool_choice", 'expected "auto", "none", "required" or {"type": "function", ...}')
    if choice is not None and parallel is False and choice["type"] != "none":
        choice["disable_parallel_tool_use"] = True
    return choice


# --- parameters -----------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _effort_budget(effort: Any) -> int | None:
    if effort is None or effort == "none":
        return None
    if not isinstance(effort, str) or effort not in EFFORT_BUDGETS:
        raise _invalid("reasoning_effort", f"expected none or one of {', '.join(EFFORT_BUDGETS)}")
    return EFFORT_BUDGETS[effort]


def _limits(body: Mapping[str, Any], budget: int | None) -> tuple[int, int | None]:
    """(max_tokens, thinking budget or None), keeping Anthropic's rule that the budget is below the limit."""
    field = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    asked = body.get(field)
    if asked is None:
        return DEFAULT_MAX_TOKENS + (budget or 0), budget
    if not isinstance(asked, int) or isinstance(asked, bool) or asked < 1:
        raise _invalid(field, "expected a positive integer")
    if budget is not None:
        budget = min(budget, asked // 2)
        if budget < MIN_THINKING_BUDGET:
            budget = None
    return asked, budget


def _sampling(body: Mapping[str, Any]) -> JSONDict:
    out: JSONDict = {}
    temperature = body.get("temperature")
    if temperature is not None:
        if not _is_number(temperature) or not 0 <= temperature <= 2:
            raise _invalid("temperature", "expected a number from 0 to 2")
        out["temperature"] = min(temperature, 1)
    top_p = body.get("top_p")
    if top_p is not None:
        if not _is_number(top_p) or not 0 <= top_p <= 1:
            raise _invalid("top_p", "expected a number from 0 to 1")
        out["top_p"] = top_p
    return out


def _stop_sequences(stop: Any) -> list[str]:
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop] if stop else []
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise _invalid("stop", "expected a string or an array of strings")
    return [s for s in stop if s]


def _user_id(body: Mapping[str, Any]) -> str | None:
    for key in ("user", "safety_identifier"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return value
    return None
