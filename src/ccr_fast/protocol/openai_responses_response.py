"""OpenAI Responses API response → Anthropic message (a pure function), plus the tables the stream translator
shares: one output item → one content block, status → stop reason, usage, errors and signatures.

A response's ``output`` is a list of items, in the order the model produced them:

* ``reasoning`` → a thinking block.  Its text is the reasoning summary (parts joined by a blank line), or
  the raw ``reasoning_text`` content some servers (gpt-oss behind vLLM, Ollama) send instead.  Its
  ``signature`` is ``SIGNATURE_PREFIX`` + the item's ``encrypted_content``: the client keeps it with the
  history and the request translator sends it back unchanged as a reasoning input item.  The prefix (``:``
  never occurs in the base64 OpenAI sends) tells these signatures from Anthropic's or Gemini's, so only
  OpenAI's own are ever sent to OpenAI.  A reasoning item with neither text nor encrypted content (a model
  that reasons without being asked for a summary) is left out.
* ``message`` → one text block for its ``output_text`` and ``refusal`` parts; a refusal makes the stop reason
  ``refusal``.
* ``function_call`` → a ``tool_use`` block (the ``call_id`` is the tool id, made Anthropic-safe by
  ``anthropic_ids``; arguments that are not a JSON object are kept, see ``openai_response.tool_input``).
* anything else (built-in tool calls such as ``web_search_call``) is not part of Anthropic's answer.

``status: "incomplete"`` with ``incomplete_details.reason`` ``max_output_tokens`` → ``max_tokens``,
``content_filter`` → ``refusal``; otherwise function calls → ``tool_use``, else ``end_turn``.  A ``failed``
response (or one carrying an ``error``) raises ``GatewayError``.  Usage: ``input_tokens`` counts cached
tokens, Anthropic's does not, so ``input_tokens_details.cached_tokens`` becomes ``cache_read_input_tokens``
and is taken out of the input, as for Chat Completions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ccr_fast.protocol.anthropic_ids import new_message_id, to_anthropic_tool_id
from ccr_fast.protocol.errors import TYPE_TO_STATUS, GatewayError
from ccr_fast.protocol.openai_response import openai_error, tool_input

__all__ = [
    "SIGNATURE_PREFIX",
    "anthropic_usage",
    "from_client_signature",
    "has_refusal",
    "item_block",
    "message_text",
    "reasoning_text",
    "response_error",
    "responses_to_anthropic",
    "stop_reason_for",
    "to_client_signature",
]

JSONDict = dict[str, Any]

SIGNATURE_PREFIX: Final = "openai-responses:"
FAILED_MESSAGE: Final = "the upstream response failed"
#: between the parts of a reasoning summary, as OpenAI shows them
SUMMARY_SEPARATOR: Final = "\n\n"
#: Responses error codes that are not OpenAI error types (``openai_response.openai_error`` knows those)
_RESPONSE_ERROR_CODES: Final[Mapping[str, str]] = {
    "invalid_prompt": "invalid_request_error",
    "bio_policy": "invalid_request_error",
    "misalignment_policy_violation": "invalid_request_error",
    "data_residency_mismatch": "invalid_request_error",
    "vector_store_timeout": "timeout_error",
}


# --- signatures -----------------------------------------------------------------------------------------


def to_client_signature(encrypted_content: str) -> str:
    """A reasoning item's ``encrypted_content`` as a thinking block's ``signature``."""
    return SIGNATURE_PREFIX + encrypted_content


def from_client_signature(signature: Any) -> str | None:
    """The encrypted reasoning inside a client's thinking ``signature``; None for any other signature."""
    if isinstance(signature, str) and signature.startswith(SIGNATURE_PREFIX):
        return signature[len(SIGNATURE_PREFIX) :] or None
    return None


# --- the whole response ---------------------------------------------------------------------------------


def responses_to_anthropic(body: Mapping[str, Any], *, model: str, message_id: str | None = None) -> JSONDict:
    """Translate a complete Responses API body; ``model`` is the name the client asked for.

    Raises ``GatewayError`` for a failed response: there is no message to build.
    """
    error = body.get("error")
    if body.get("status") == "failed" or (isinstance(error, Mapping) and error):
        error_type, message = response_error(error)
        raise GatewayError(TYPE_TO_STATUS.get(error_type, 500), message, error_type)
    content: list[JSONDict] = []
    tool_calls = refused = False
    output = body.get("output")
    for item in output if isinstance(output, list) else ():
        if not isinstance(item, Mapping):
            continue
        block = item_block(item)
        if block is None:
            continue
        content.append(block)
        tool_calls = tool_calls or block["type"] == "tool_use"
        refused = refused or has_refusal(item)
    return {
        "id": message_id or new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason_for(
            body.get("status"), body.get("incomplete_details"), tool_calls=tool_calls, refusal=refused
        ),
        "stop_sequence": None,
        "usage": anthropic_usage(body.get("usage")),
    }


# --- one output item ------------------------------------------------------------------------------------


def item_block(item: Mapping[str, Any]) -> JSONDict | None:
    """The Anthropic content block for one complete output item, None for items that have none."""
    kind = item.get("type")
    if kind == "reasoning":
        text = reasoning_text(item)
        encrypted = item.get("encrypted_content")
        signature = to_client_signature(encrypted) if isinstance(encrypted, str) and encrypted else ""
        if not text and not signature:
            return None
        return {"type": "thinking", "thinking": text, "signature": signature}
    if kind == "message":
        text = message_text(item)
        return {"type": "text", "text": text} if text else None
    if kind == "function_call":
        call_id = item.get("call_id")
        name = item.get("name")
        return {
            "type": "tool_use",
            "id": to_anthropic_tool_id(call_id if isinstance(call_id, str) else None),
            "name": name if isinstance(name, str) else "",
            "input": tool_input(item.get("arguments")),
        }
    return None


def reasoning_text(item: Mapping[str, Any]) -> str:
    """A reasoning item's summary texts joined, or its raw reasoning text when it has no summary."""
    summary = _texts(item.get("summary"), "summary_text")
    if summary:
        return SUMMARY_SEPARATOR.join(summary)
    return "".join(_texts(item.get("content"), "reasoning_text"))


def message_text(item: Mapping[str, Any]) -> str:
    """An output message's text: its ``output_text`` and ``refusal`` parts in order."""
    parts = item.get("content")
    if isinstance(parts, str):
        return parts
    out: list[str] = []
    for part in parts if isinstance(parts, list) else ():
        if not isinstance(part, Mapping):
            continue
        if part.get("type") == "refusal" and isinstance(part.get("refusal"), str):
            out.append(part["refusal"])
        elif isinstance(part.get("text"), str):
            out.append(part["text"])
    return "".join(out)


def _texts(parts: Any, kind: str) -> list[str]:
    if not isinstance(parts, list):
        return []
    return [
        p["text"]
        for p in parts
        if isinstance(p, Mapping) and p.get("type", kind) == kind and isinstance(p.get("text"), str)
    ]


def has_refusal(item: Mapping[str, Any]) -> bool:
    """Whether an output message holds a refusal part."""
    parts = item.get("content")
    if item.get("type") != "message" or not isinstance(parts, list):
        return False
    return any(isinstance(p, Mapping) and p.get("type") == "refusal" for p in parts)


# --- tables ---------------------------------------------------------------------------------------------


def stop_reason_for(status: Any, incomplete_details: Any, *, tool_calls: bool, refusal: bool = False) -> str:
    """Anthropic's ``stop_reason`` for a finished response's ``status`` and ``incomplete_details``."""
    if status == "incomplete":
        reason = incomplete_details.get("reason") if isinstance(incomplete_details, Mapping) else None
        if reason == "max_output_tokens":
            return "max_tokens"
        if reason == "content_filter":
            return "refusal"
    if refusal and not tool_calls:
        return "refusal"
    return "tool_use" if tool_calls else "end_turn"


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def anthropic_usage(usage: Any) -> dict[str, int]:
    """Anthropic usage from a Responses ``usage`` object (zeros when absent).

    Cached tokens (``input_tokens_details.cached_tokens``) and cache writes (``cache_write_tokens``) are part
    of OpenAI's ``input_tokens`` and not of Anthropic's, so they are taken out.
    """
    if not isinstance(usage, Mapping):
        usage = {}
    details = usage.get("input_tokens_details")
    details = details if isinstance(details, Mapping) else {}
    cache_read = _count(details.get("cached_tokens"))
    cache_write = _count(details.get("cache_write_tokens"))
    return {
        "input_tokens": max(0, _count(usage.get("input_tokens")) - cache_read - cache_write),
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
        "output_tokens": _count(usage.get("output_tokens")),
    }


def response_error(error: Any) -> tuple[str, str]:
    """(Anthropic error type, message) for a failed response's ``error`` or a stream's ``error`` event."""
    if isinstance(error, Mapping):
        code = error.get("code")
        if isinstance(code, str):
            mapped = _RESPONSE_ERROR_CODES.get(code) or ("invalid_request_error" if "image" in code else None)
            if mapped is not None:
                message = error.get("message")
                return mapped, message if isinstance(message, str) and message else FAILED_MESSAGE
    if error is None:
        return "api_error", FAILED_MESSAGE
    return openai_error(error)
