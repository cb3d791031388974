"""Upstream wire dialects other than Anthropic: how a request is encoded and a response decoded.

Anthropic upstreams are handled in ``messages.py`` directly (bytes pass through); every other dialect
is an object with the same three duties, so adding one is adding a class here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import orjson

from ccr_fast.protocol.anthropic_ids import new_message_id
from ccr_fast.protocol.gemini_request import anthropic_to_gemini, gemini_url
from ccr_fast.protocol.gemini_response import gemini_to_anthropic
from ccr_fast.protocol.gemini_stream import GeminiStreamTranslator
from ccr_fast.protocol.openai_request import anthropic_to_openai
from ccr_fast.protocol.openai_response import openai_to_anthropic
from ccr_fast.protocol.openai_stream import OpenAIStreamTranslator
from ccr_fast.protocol.server_tools import server_tool_warning
from ccr_fast.transformers import Plan


class StreamTranslator(Protocol):
    usage: dict[str, int]
    #: set once the upstream said why it stopped
    stop_reason: str | None
    #: the stream ended with an `event: error`
    errored: bool

    def feed(self, data: bytes) -> bytes: ...

    def close(self) -> bytes: ...

    def fail(self, error_type: str, message: str) -> bytes: ...


class Dialect(Protocol):
    def encode(
        self, body: dict[str, Any], plan: Plan, model: str, stream: bool
    ) -> tuple[str, dict[str, str], bytes]:
        """(url, extra headers, payload) for the upstream request."""
        ...

    def decode(self, data: Mapping[str, Any], model: str) -> dict[str, Any]:
        """A complete upstream response body → an Anthropic message."""
        ...

    def translator(self, model: str, input_tokens: int) -> StreamTranslator: ...


class OpenAIChat:
    """OpenAI Chat Completions and every compatible server."""

    def encode(
        self, body: dict[str, Any], plan: Plan, model: str, stream: bool
    ) -> tuple[str, dict[str, str], bytes]:
        out = anthropic_to_openai(body, model=model, dialect=plan.dialect)
        for hook in plan.upstream_hooks:
            hook(out)
        return plan.url, {}, orjson.dumps(out)

    def decode(self, data: Mapping[str, Any], model: str) -> dict[str, Any]:
        return openai_to_anthropic(data, model=model)

    def translator(self, model: str, input_tokens: int) -> StreamTranslator:
        return OpenAIStreamTranslator(model=model, message_id=new_message_id(), input_tokens=input_tokens)


class GeminiNative:
    """Google's generateContent / streamGenerateContent?alt=sse."""

    def encode(
        self, body: dict[str, Any], plan: Plan, model: str, stream: bool
    ) -> tuple[str, dict[str, str], bytes]:
        out = anthropic_to_gemini(body, model=model)
        for hook in plan.upstream_hooks:
            hook(out)
        return gemini_url(plan.url, model, stream=stream), {}, orjson.dumps(out)

    def decode(self, data: Mapping[str, Any], model: str) -> dict[str, Any]:
        return gemini_to_anthropic(data, model=model)

    def translator(self, model: str, input_tokens: int) -> StreamTranslator:
        return GeminiStreamTranslator(model=model, message_id=new_message_id(), input_tokens=input_tokens)


class OpenAIResponses:
    """OpenAI's Responses API (``POST /v1/responses``), streamed or not. Its protocol modules are imported on
    first use, so configs without such a provider do not pay for them at start-up."""

    def encode(
        self, body: dict[str, Any], plan: Plan, model: str, stream: bool
    ) -> tuple[str, dict[str, str], bytes]:
        from ccr_fast.protocol.openai_responses_request import anthropic_to_responses

        out = anthropic_to_responses(body, model=model, dialect=plan.dialect)
        for hook in plan.upstream_hooks:
            hook(out)
        return plan.url, {}, orjson.dumps(out)

    def decode(self, data: Mapping[str, Any], model: str) -> dict[str, Any]:
        from ccr_fast.protocol.openai_responses_response import responses_to_anthropic

        return responses_to_anthropic(data, model=model)

    def translator(self, model: str, input_tokens: int) -> StreamTranslator:
        from ccr_fast.protocol.openai_responses_stream import ResponsesStreamTranslator

        return ResponsesStreamTranslator(model=model, message_id=new_message_id(), input_tokens=input_tokens)


DIALECTS: dict[str, Dialect] = {
    "openai": OpenAIChat(),
    "gemini": GeminiNative(),
    "openai-responses": OpenAIResponses(),
}


def request_warning(body: Mapping[str, Any], plan: Plan, model: str) -> str | None:
    """The ``x-ccr-warning`` value for what of ``body`` the upstream did not get (None: it got everything)."""
    notes: list[str] = []
    if body.get("tools"):
        tools = server_tool_warning(body, endpoint=plan.endpoint, dialect=plan.dialect, model=model)
        if tools:
            notes.append(tools)
    if plan.endpoint == "openai-responses":
        from ccr_fast.protocol.openai_responses_request import unsupported_fields

        fields = unsupported_fields(body)
        if fields:
            note = f"parameters not supported by model {model!r} and left out: {', '.join(fields)}"
            # header values must be ASCII; model names almost always are
            notes.append(note.encode("ascii", "backslashreplace").decode())
    return "; ".join(notes) or None
