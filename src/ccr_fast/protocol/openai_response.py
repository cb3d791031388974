"""OpenAI Chat Completions response → Anthropic message (a pure function), plus the mapping tables the
stream translator shares: finish reason → stop reason, usage, tool arguments and in-band errors.

Web search results (``annotations`` of type ``url_citation``, from OpenAI's search models and OpenRouter's
web plugin) become Anthropic's ``server_tool_use`` + ``web_search_tool_result`` blocks (``server_tools``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

from ccr_fast.protocol.anthropic_ids import new_message_id, to_anthropic_tool_id
from ccr_fast.protocol.errors import TYPE_TO_STATUS, GatewayError, map_upstream_status
from ccr_fast.protocol.server_tools import findings_from_annotations, search_blocks, search_usage

__all__ = [
    "UNPARSED_ARGUMENTS_KEY",
    "anthropic_usage",
    "content_text",
    "openai_error",
    "openai_to_anthropic",
    "stop_reason_for",
    "tool_input",
]

JSONDict = dict[str, Any]

#: tool arguments that are not a JSON object are kept as text under this key instead of failing the answer
UNPARSED_ARGUMENTS_KEY: Final = "_unparsed_arguments"
UPSTREAM_ERROR_MESSAGE: Final = "the upstream reported an error"
NO_CHOICES_MESSAGE: Final = "the upstream response has no choices"

#: OpenAI-style ``error.type`` / ``error.code`` strings → Anthropic error types (Anthropic's own pass through)
_ERROR_TYPES: Final[Mapping[str, str]] = {
    **{name: name for name in TYPE_TO_STATUS},
    "server_error": "api_error",
    "internal_error": "api_error",
    "invalid_api_key": "authentication_error",
    "rate_limit_exceeded": "rate_limit_error",
    "tokens": "rate_limit_error",
    "requests": "rate_limit_error",
    "insufficient_quota": "billing_error",
    "context_length_exceeded": "invalid_request_error",
    "overloaded": "overloaded_error",
    "timeout": "timeout_error",
}


def openai_to_anthropic(body: Mapping[str, Any], *, model: str, message_id: str | None = None) -> JSONDict:
    """Translate a non-streamed Chat Completions body; ``model`` is the name the client asked for.

    Raises ``GatewayError`` when the body is an error (some gateways answer 200 with ``{"error": ...}``) or
    carries no choice at all, because there is no message to build.
    """
    choice = _first_choice(body.get("choices"))
    error = body.get("error")
    if error or choice is None or choice.get("finish_reason") == "error":
        error_type, message = openai_error((error or NO_CHOICES_MESSAGE) if choice is None else error)
        raise GatewayError(TYPE_TO_STATUS.get(error_type, 500), message, error_type)
    message_obj = choice.get("message")
    msg: Mapping[str, Any] = message_obj if isinstance(message_obj, Mapping) else {}
    content = _reasoning_blocks(msg)
    search = findings_from_annotations(msg.get("annotations"))
    content.extend(search_blocks(search))  # where Anthropic puts them: after thinking, before the answer
    text = content_text(msg.get("content"))
    if text:
        content.append({"type": "text", "text": text})
    refusal = msg.get("refusal")
    refused = isinstance(refusal, str) and bool(refusal)
    if refused:
        content.append({"type": "text", "text": refusal})
    calls = _tool_calls(msg)
    content.extend(calls)
    usage = body.get("usage")
    if not isinstance(usage, Mapping):
        groq = body.get("x_groq")
        usage = groq.get("usage") if isinstance(groq, Mapping) else None
    anthropic: JSONDict = anthropic_usage(usage)
    if search:
        anthropic["server_tool_use"] = search_usage(search)
    return {
        "id": message_id or new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason_for(choice.get("finish_reason"), tool_calls=bool(calls), refusal=refused),
        "stop_sequence": None,
        "usage": anthropic,
    }


def _first_choice(choices: Any) -> Mapping[str, Any] | None:
    if not isinstance(choices, list):
        return None
    candidates = [c for c in choices if isinstance(c, Mapping)]
    for choice in candidates:
        if choice.get("index", 0) == 0:
            return choice
    return candidates[0] if candidates else None


def content_text(content: Any) -> str:
    """Message content as text: a string, or the text parts some servers send as a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p["text"] for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str)
        )
    return ""


def _reasoning_blocks(msg: Mapping[str, Any]) -> list[JSONDict]:
    """Thinking blocks, which Anthropic puts before everything else.

    OpenRouter's ``reasoning_details`` keeps each item's signature and the encrypted items, so it is
    preferred; ``reasoning_content`` (DeepSeek) or ``reasoning`` (OpenRouter, others) is the plain fallback.
    """
    blocks: list[JSONDict] = []
    details = msg.get("reasoning_details")
    if isinstance(details, list):
        for item in details:
            if not isinstance(item, Mapping):
                continue
            kind = item.get("type")
            if kind == "reasoning.encrypted" and isinstance(item.get("data"), str):
                blocks.append({"type": "redacted_thinking", "data": item["data"]})
            elif kind in ("reasoning.text", "reasoning.summary"):
                text = item.get("text") if kind == "reasoning.text" else item.get("summary")
                signature = item.get("signature")
                if isinstance(text, str) and (text or signature):
                    blocks.append(
                        {
                            "type": "thinking",
                            "thinking": text,
                            "signature": signature if isinstance(signature, str) else "",
                        }
                    )
    if not any(b["type"] == "thinking" for b in blocks):
        for key in ("reasoning_content", "reasoning"):
            text = msg.get(key)
            if isinstance(text, str) and text:
                blocks.insert(0, {"type": "thinking", "thinking": text, "signature": ""})
                break
    return blocks


def _tool_calls(msg: Mapping[str, Any]) -> list[JSONDict]:
    calls = msg.get("tool_calls")
    found: list[Mapping[str, Any]] = (
        [c for c in calls if isinstance(c, Mapping)] if isinstance(calls, list) else []
    )
    legacy = msg.get("function_call")
    if isinstance(legacy, Mapping):
        found.append({"function": legacy})
    out: list[JSONDict] = []
    for call in found:
        function = call.get("function")
        fn: Mapping[str, Any] = function if isinstance(function, Mapping) else {}
        call_id = call.get("id")
        name = fn.get("name")
        out.append(
            {
                "type": "tool_use",
                "id": to_anthropic_tool_id(call_id if isinstance(call_id, str) else None),
                "name": name if isinstance(name, str) else "",
                "input": tool_input(fn.get("arguments")),
            }
        )
    return out


def tool_input(arguments: Any) -> JSONDict:
    """Tool-call ``arguments`` as Anthropic's ``input`` object; never raises.

    Empty arguments mean ``{}``.  Some models double-encode (a JSON string holding the object), which is
    unwrapped.  Anything else that is not an object is kept verbatim under ``UNPARSED_ARGUMENTS_KEY`` so the
    client can show the model what went wrong instead of the whole answer failing.
    """
    if isinstance(arguments, Mapping):
        return dict(arguments)
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
        if isinstance(value, str):
            value = orjson.loads(value)
    except orjson.JSONDecodeError:
        return {UNPARSED_ARGUMENTS_KEY: arguments}
    return value if isinstance(value, dict) else {UNPARSED_ARGUMENTS_KEY: arguments}


def stop_reason_for(finish_reason: Any, *, tool_calls: bool, refusal: bool = False) -> str:
    """Anthropic's ``stop_reason`` for an OpenAI ``finish_reason`` (None or unknown: inferred).

    Several servers say ``stop`` after emitting tool calls (Gemini's compatibility layer, older vLLM), so
    whether tool calls were seen decides over the reported reason; ``tool_calls`` without any call is a
    plain end of turn, since a client would wait for a tool_use block that never came.
    """
    if finish_reason == "length":
        return "max_tokens"
    if finish_reason == "content_filter" or (refusal and not tool_calls):
        return "refusal"
    return "tool_use" if tool_calls else "end_turn"


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def anthropic_usage(usage: Any) -> dict[str, int]:
    """Anthropic usage from an OpenAI usage object (zeros when absent).

    Anthropic's ``input_tokens`` excludes cached tokens while OpenAI's ``prompt_tokens`` includes them, so
    cache reads (``prompt_tokens_details.cached_tokens``, DeepSeek's ``prompt_cache_hit_tokens``) and cache
    writes (``cache_write_tokens``) are subtracted.
    """
    if not isinstance(usage, Mapping):
        usage = {}
    details = usage.get("prompt_tokens_details")
    details = details if isinstance(details, Mapping) else {}
    prompt = _count(usage.get("prompt_tokens"))
    cache_read = _count(details.get("cached_tokens")) or _count(usage.get("prompt_cache_hit_tokens"))
    cache_write = _count(details.get("cache_write_tokens"))
    return {
        "input_tokens": max(0, prompt - cache_read - cache_write),
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
        "output_tokens": _count(usage.get("completion_tokens")),
    }


def openai_error(error: Any) -> tuple[str, str]:
    """(Anthropic error type, message) for an in-band OpenAI / OpenRouter error object or string."""
    if isinstance(error, str):
        return "api_error", error or UPSTREAM_ERROR_MESSAGE
    if not isinstance(error, Mapping):
        return "api_error", UPSTREAM_ERROR_MESSAGE
    message = error.get("message")
    text = message if isinstance(message, str) and message else UPSTREAM_ERROR_MESSAGE
    code = error.get("code")
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    if isinstance(code, int) and not isinstance(code, bool) and 400 <= code < 600:
        return map_upstream_status(code)[1], text
    for candidate in (error.get("type"), code):
        if isinstance(candidate, str) and candidate in _ERROR_TYPES:
            return _ERROR_TYPES[candidate], text
    return "api_error", text
