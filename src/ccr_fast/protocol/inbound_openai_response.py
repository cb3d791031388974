"""Anthropic message / error → OpenAI Chat Completions response, for clients that speak OpenAI's format.

Pure functions, plus the mapping tables the stream translator (``inbound_openai_stream``) shares: stop reason
→ finish reason, usage, tool-call ids and arguments, and the error object.

* Text blocks are joined with nothing between them: Anthropic splits one answer into several text blocks
  around citations, and a stream's ``delta.content`` fragments are joined the same way.  Thinking blocks
  become ``reasoning_content`` (DeepSeek's field, which OpenAI-format clients that show reasoning read),
  separated by a blank line; redacted thinking and server-tool blocks have no OpenAI form and are left out.
* Tool-call ids are shown as the upstream minted them (``from_anthropic_tool_id``); the request translator
  maps them back with ``to_anthropic_tool_id`` when the client returns them, so each pair keeps matching.
* ``prompt_tokens`` counts every input token, cached or not, as OpenAI's does: Anthropic's
  ``input_tokens`` excludes cache reads and writes, so they are added back.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Final

import orjson

from ccr_fast.protocol.anthropic_ids import from_anthropic_tool_id, new_message_id
from ccr_fast.protocol.errors import error_type_for_status, upstream_error_message
from ccr_fast.protocol.inbound_openai_request import RAW_ARGUMENTS_KEY
from ccr_fast.protocol.openai_response import UNPARSED_ARGUMENTS_KEY

__all__ = [
    "anthropic_error_to_openai",
    "anthropic_message_to_openai",
    "completion_id_for",
    "finish_reason_for",
    "openai_error_object",
    "openai_tool_id",
    "openai_usage",
]

JSONDict = dict[str, Any]

FINISH_REASONS: Final[Mapping[str, str]] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
#: Anthropic error types OpenAI names differently; the others keep Anthropic's name, which tells a client
#: more than OpenAI's catch-all ``invalid_request_error`` and is read back by ``openai_response.openai_error``
ERROR_TYPES: Final[Mapping[str, str]] = {"api_error": "server_error"}
#: OpenAI's ``error.code`` for the errors it has a code for
ERROR_CODES: Final[Mapping[str, str]] = {
    "authentication_error": "invalid_api_key",
    "billing_error": "insufficient_quota",
    "rate_limit_error": "rate_limit_exceeded",
}
REASONING_SEPARATOR: Final = "\n\n"
#: input keys under which the translators keep tool arguments that were not a JSON object
_RAW_KEYS: Final = (RAW_ARGUMENTS_KEY, UNPARSED_ARGUMENTS_KEY)


def anthropic_message_to_openai(message: Mapping[str, Any], *, model: str) -> JSONDict:
    """A ``chat.completion`` body for an Anthropic message; ``model`` is the name the client asked for."""
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[JSONDict] = []
    content = message.get("content")
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "thinking" and isinstance(block.get("thinking"), str) and block["thinking"]:
            thoughts.append(block["thinking"])
        elif kind == "tool_use":
            calls.append(_tool_call(block))
    reply: JSONDict = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
        "refusal": None,
    }
    if thoughts:
        reply["reasoning_content"] = REASONING_SEPARATOR.join(thoughts)
    if calls:
        reply["tool_calls"] = calls
    choice = {
        "index": 0,
        "message": reply,
        "logprobs": None,
        "finish_reason": finish_reason_for(message.get("stop_reason"), tool_calls=bool(calls)),
    }
    return {
        "id": completion_id_for(message.get("id")),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": openai_usage(message.get("usage")),
    }


def _tool_call(block: Mapping[str, Any]) -> JSONDict:
    name = block.get("name")
    return {
        "id": openai_tool_id(block.get("id")),
        "type": "function",
        "function": {
            "name": name if isinstance(name, str) else "",
            "arguments": _arguments(block.get("input")),
        },
    }


def _arguments(tool_input: Any) -> str:
    """The ``arguments`` string; arguments kept verbatim because they were not a JSON object are unwrapped.

    That way a model's malformed arguments reach the client as the model wrote them, exactly as they do
    when streamed (the stream forwards argument fragments untouched).
    """
    if not isinstance(tool_input, Mapping):
        return "{}"
    if len(tool_input) == 1:
        for key in _RAW_KEYS:
            raw = tool_input.get(key)
            if isinstance(raw, str):
                return raw
    return orjson.dumps(tool_input).decode()


def openai_tool_id(tool_id: Any) -> str:
    """The tool-call id a client sees for an Anthropic tool_use id (minting one if it is missing)."""
    if isinstance(tool_id, str) and tool_id:
        return from_anthropic_tool_id(tool_id)
    return "call_" + new_message_id().removeprefix("msg_")


def completion_id_for(message_id: Any) -> str:
    """``chatcmpl-`` followed by the Anthropic message id, so logs on both sides can be matched."""
    return "chatcmpl-" + (message_id if isinstance(message_id, str) and message_id else new_message_id())


def finish_reason_for(stop_reason: Any, *, tool_calls: bool) -> str:
    """OpenAI's ``finish_reason`` for an Anthropic ``stop_reason``.

    Whether tool calls were sent decides between ``stop`` and ``tool_calls``: OpenAI clients run the tools
    only on ``tool_calls``, and wait for calls that never come if told ``tool_calls`` without any.
    """
    reason = FINISH_REASONS.get(stop_reason) if isinstance(stop_reason, str) else None
    if reason in (None, "stop", "tool_calls"):
        return "tool_calls" if tool_calls else "stop"
    return str(reason)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def openai_usage(usage: Any) -> JSONDict:
    """OpenAI usage for Anthropic usage (zeros when absent); cache writes as OpenRouter reports them."""
    if not isinstance(usage, Mapping):
        usage = {}
    cache_read = _count(usage.get("cache_read_input_tokens"))
    cache_write = _count(usage.get("cache_creation_input_tokens"))
    prompt = _count(usage.get("input_tokens")) + cache_read + cache_write
    completion = _count(usage.get("output_tokens"))
    details: JSONDict = {"cached_tokens": cache_read}
    if cache_write:
        details["cache_write_tokens"] = cache_write
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": details,
    }


def openai_error_object(error_type: str, message: str) -> JSONDict:
    """``{"error": {message, type, param, code}}`` for an Anthropic error type and message."""
    return {
        "error": {
            "message": message,
            "type": ERROR_TYPES.get(error_type, error_type),
            "param": None,
            "code": ERROR_CODES.get(error_type),
        }
    }


def anthropic_error_to_openai(status: int, body: bytes) -> bytes:
    """The OpenAI error body for an error answered with ``status`` and an Anthropic error ``body``.

    Bodies of another shape (a raw upstream error) still give a usable message, typed by the status.
    """
    error_type = error_type_for_status(status)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, Mapping) and isinstance(error.get("type"), str) and error["type"]:
        error_type = error["type"]
    return orjson.dumps(openai_error_object(error_type, upstream_error_message(body, status)))
