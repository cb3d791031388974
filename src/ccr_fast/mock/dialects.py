"""Rendering a reply as OpenAI Chat Completions, Anthropic Messages or Gemini generateContent.

The mock deliberately keeps its own small status/type tables instead of importing the proxy's: it is the
reference the proxy is tested against, so it must not share the proxy's mistakes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from ccr_fast.mock.replies import (
    CHUNK,
    JSON_TYPE,
    META,
    SSE_TYPE,
    TAIL,
    Frame,
    Reply,
    ReplyError,
    RequestContext,
    Turn,
    Usage,
    split_even,
    split_words,
)

DEFAULT_MODEL = "mock-model"
THINKING_SIGNATURE = "bW9jay10aGlua2luZy1zaWduYXR1cmU="

_dumps = orjson.dumps

_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_exceeded",
}
_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_ANTHROPIC_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
_GEMINI_FINISH = {
    "stop": "STOP",
    "tool_calls": "STOP",
    "function_call": "STOP",
    "length": "MAX_TOKENS",
    "content_filter": "SAFETY",
}


def _model(value: Any) -> str:
    return value if isinstance(value, str) and value else DEFAULT_MODEL


def _blocks_text(content: Any) -> str:
    """Text of a string content or of the text blocks/parts of a list content."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts = [
        block["text"]
        for block in content
        if isinstance(block, Mapping) and block.get("type") == "text" and isinstance(block.get("text"), str)
    ]
    return "\n".join(texts)


class OpenAIChat:
    """``POST /v1/chat/completions``, including the deviations of OpenAI-compatible servers (quirks)."""

    def context(
        self, body: Mapping[str, Any], *, path: str, query: str, body_len: int, serial: int
    ) -> RequestContext:
        options = body.get("stream_options")
        return RequestContext(
            model=_model(body.get("model")),
            stream=body.get("stream") is True,
            include_usage=isinstance(options, Mapping) and options.get("include_usage") is True,
            sse=True,
            body_len=body_len,
            serial=serial,
            created=int(time.time()),
        )

    def latest_turn(self, body: Mapping[str, Any]) -> Turn:
        """Messages after the last assistant message form the newest user turn (tool results included)."""
        messages = body.get("messages")
        newest_first: list[Mapping[str, Any]] = []
        for message in reversed(messages if isinstance(messages, list) else []):
            if not isinstance(message, Mapping):
                continue
            if message.get("role") == "assistant":
                break
            newest_first.append(message)
        tool = next((m for m in reversed(newest_first) if m.get("role") == "tool"), None)
        user = next((m for m in newest_first if m.get("role") == "user"), None)
        return Turn(
            tool_result=None if tool is None else _blocks_text(tool.get("content")),
            text="" if user is None else _blocks_text(user.get("content")),
        )

    def headers(self, ctx: RequestContext) -> tuple[tuple[str, str], ...]:
        return ()

    def error(self, error: ReplyError, ctx: RequestContext) -> bytes:
        error_type = (
            error.type
            or _OPENAI_ERROR_TYPES.get(error.status)
            or ("server_error" if error.status >= 500 else "invalid_request_error")
        )
        return _dumps({"error": {"message": error.message, "type": error_type, "param": None, "code": None}})

    def stream_content_type(self, ctx: RequestContext) -> str:
        return SSE_TYPE

    def _finish_reason(self, reply: Reply) -> str | None:
        if reply.quirks.no_finish_reason:
            return None
        if reply.finish_reason is not None:
            return reply.finish_reason
        if reply.tool_calls and not reply.quirks.finish_stop_with_tools:
            return "tool_calls"
        return "stop"

    def _call_id(self, reply: Reply, index: int, ctx: RequestContext) -> str:
        return reply.tool_calls[index].id or f"call_mock{ctx.serial}_{index}"

    @staticmethod
    def _usage(usage: Usage, completion: int | None = None) -> dict[str, Any]:
        done = usage.completion_tokens if completion is None else completion
        return {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": done,
            "total_tokens": usage.prompt_tokens + done,
            "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": min(usage.reasoning_tokens, done)},
        }

    def message(self, reply: Reply, usage: Usage, ctx: RequestContext) -> bytes:
        quirks = reply.quirks
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.text if reply.text or not reply.tool_calls else None,
            "refusal": None,
        }
        if reply.thinking:
            message[quirks.reasoning_field] = reply.thinking
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": self._call_id(reply, i, ctx),
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for i, call in enumerate(reply.tool_calls)
            ]
        return _dumps(
            {
                "id": f"chatcmpl-mock{ctx.serial}",
                "object": "chat.completion",
                "created": ctx.created,
                "model": ctx.model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": self._finish_reason(reply),
                    }
                ],
                "usage": self._usage(usage),
                "system_fingerprint": None,
            }
        )

    def _tool_deltas(self, reply: Reply, ctx: RequestContext) -> list[dict[str, Any]]:
        quirks = reply.quirks
        per_call: list[list[dict[str, Any]]] = []
        for i, call in enumerate(reply.tool_calls):
            where: dict[str, Any] = (
                {} if quirks.no_tool_index else {"index": 0 if quirks.tool_index_zero else i}
            )
            head = {
                **where,
                "id": self._call_id(reply, i, ctx),
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            fragments = split_even(call.arguments, quirks.args_fragments)
            per_call.append([head, *({**where, "function": {"arguments": f}} for f in fragments)])
        if not quirks.interleave_tool_args:
            return [delta for deltas in per_call for delta in deltas]
        longest = max((len(deltas) for deltas in per_call), default=0)
        return [deltas[step] for step in range(longest) for deltas in per_call if step < len(deltas)]

    def stream(self, reply: Reply, usage: Usage, ctx: RequestContext) -> list[Frame]:
        quirks = reply.quirks
        sep = b"\r\n\r\n" if quirks.crlf else b"\n\n"
        standard_usage = ctx.include_usage and not (
            quirks.usage_on_finish_chunk or quirks.usage_every_chunk or quirks.groq_usage
        )
        head = {
            "id": f"chatcmpl-mock{ctx.serial}",
            "object": "chat.completion.chunk",
            "created": ctx.created,
            "model": ctx.model,
        }

        def frame(kind: int, obj: Mapping[str, Any]) -> Frame:
            return Frame(kind, b"data: " + _dumps(obj) + sep)

        deltas: list[tuple[int, dict[str, Any]]] = [(META, {"role": "assistant", "content": ""})]
        deltas += [(CHUNK, {quirks.reasoning_field: p}) for p in split_words(reply.thinking, reply.chunks)]
        deltas += [(CHUNK, {"content": p}) for p in split_words(reply.text, reply.chunks)]
        deltas += [(CHUNK, {"tool_calls": [d]}) for d in self._tool_deltas(reply, ctx)]

        frames: list[Frame] = []
        for step, (kind, delta) in enumerate(deltas):
            obj: dict[str, Any] = {
                **head,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}],
            }
            if quirks.usage_every_chunk:
                obj["usage"] = self._usage(usage, usage.completion_tokens * step // len(deltas))
            elif standard_usage:
                obj["usage"] = None
            frames.append(frame(kind, obj))

        if reply.midstream_error is not None:
            error = reply.midstream_error
            body = {
                "message": error.message,
                "type": error.type or "server_error",
                "param": None,
                "code": None,
            }
            frames.append(frame(TAIL, {"error": body}))
            return frames

        finish = self._finish_reason(reply)
        full_usage = self._usage(usage)
        last: dict[str, Any] = {
            **head,
            "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish}],
        }
        if quirks.usage_on_finish_chunk or quirks.usage_every_chunk:
            last["usage"] = full_usage
        elif standard_usage:
            last["usage"] = None
        if quirks.groq_usage:
            last["x_groq"] = {"id": f"req_mock{ctx.serial}", "usage": full_usage}
        if finish is not None or "x_groq" in last or last.get("usage"):
            frames.append(frame(TAIL, last))
        if standard_usage:
            frames.append(frame(TAIL, {**head, "choices": [], "usage": full_usage}))
        if not quirks.no_done:
            frames.append(Frame(TAIL, b"data: [DONE]" + sep))
        return frames


class AnthropicMessages:
    """``POST /v1/messages``: the Messages body and its SSE event sequence."""

    def context(
        self, body: Mapping[str, Any], *, path: str, query: str, body_len: int, serial: int
    ) -> RequestContext:
        return RequestContext(
            model=_model(body.get("model")),
            stream=body.get("stream") is True,
            include_usage=True,
            sse=True,
            body_len=body_len,
            serial=serial,
            created=int(time.time()),
        )

    def latest_turn(self, body: Mapping[str, Any]) -> Turn:
        messages = body.get("messages")
        user = next(
            (
                m
                for m in reversed(messages if isinstance(messages, list) else [])
                if isinstance(m, Mapping) and m.get("role") == "user"
            ),
            None,
        )
        if user is None:
            return Turn(None, "")
        content = user.get("content")
        blocks = content if isinstance(content, list) else []
        result = next((b for b in blocks if isinstance(b, Mapping) and b.get("type") == "tool_result"), None)
        return Turn(
            tool_result=None if result is None else _blocks_text(result.get("content")),
            text=_blocks_text(content),
        )

    def headers(self, ctx: RequestContext) -> tuple[tuple[str, str], ...]:
        return (("request-id", f"req_mock{ctx.serial}"),)

    def error(self, error: ReplyError, ctx: RequestContext) -> bytes:
        error_type = (
            error.type
            or _ANTHROPIC_ERROR_TYPES.get(error.status)
            or ("api_error" if error.status >= 500 else "invalid_request_error")
        )
        return _dumps(
            {
                "type": "error",
                "error": {"type": error_type, "message": error.message},
                "request_id": f"req_mock{ctx.serial}",
            }
        )

    def stream_content_type(self, ctx: RequestContext) -> str:
        return SSE_TYPE

    @staticmethod
    def _stop_reason(reply: Reply) -> str:
        if reply.finish_reason is not None:
            return _ANTHROPIC_STOP.get(reply.finish_reason, reply.finish_reason)
        return "tool_use" if reply.tool_calls else "end_turn"

    @staticmethod
    def _usage(usage: Usage, output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": usage.prompt_tokens - usage.cached_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": usage.cached_tokens,
            "output_tokens": output_tokens,
        }

    @staticmethod
    def _tool_id(reply: Reply, index: int, ctx: RequestContext) -> str:
        return reply.tool_calls[index].id or f"toolu_mock{ctx.serial}_{index}"

    def message(self, reply: Reply, usage: Usage, ctx: RequestContext) -> bytes:
        content: list[dict[str, Any]] = []
        if reply.thinking:
            content.append({"type": "thinking", "thinking": reply.thinking, "signature": THINKING_SIGNATURE})
        if reply.text:
            content.append({"type": "text", "text": reply.text})
        content += [
            {
                "type": "tool_use",
                "id": self._tool_id(reply, i, ctx),
                "name": call.name,
                "input": call.input_object(),
            }
            for i, call in enumerate(reply.tool_calls)
        ]
        return _dumps(
            {
                "id": f"msg_mock{ctx.serial}",
                "type": "message",
                "role": "assistant",
                "model": ctx.model,
                "content": content,
                "stop_reason": self._stop_reason(reply),
                "stop_sequence": None,
                "usage": self._usage(usage, usage.completion_tokens),
            }
        )

    def stream(self, reply: Reply, usage: Usage, ctx: RequestContext) -> list[Frame]:
        nl = b"\r\n" if reply.quirks.crlf else b"\n"

        def event(kind: int, obj: Mapping[str, Any]) -> Frame:
            return Frame(kind, b"event: " + obj["type"].encode() + nl + b"data: " + _dumps(obj) + nl + nl)

        start: dict[str, Any] = {
            "id": f"msg_mock{ctx.serial}",
            "type": "message",
            "role": "assistant",
            "model": ctx.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": self._usage(usage, 1),
        }
        frames = [event(META, {"type": "message_start", "message": start}), event(META, {"type": "ping"})]
        blocks: list[tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]] = []
        if reply.thinking:
            pieces = split_words(reply.thinking, reply.chunks)
            blocks.append(
                (
                    {"type": "thinking", "thinking": "", "signature": ""},
                    [{"type": "thinking_delta", "thinking": p} for p in pieces],
                    [{"type": "signature_delta", "signature": THINKING_SIGNATURE}],
                )
            )
        if reply.text:
            pieces = split_words(reply.text, reply.chunks)
            blocks.append(
                ({"type": "text", "text": ""}, [{"type": "text_delta", "text": p} for p in pieces], [])
            )
        for i, call in enumerate(reply.tool_calls):
            fragments = split_even(call.arguments, reply.quirks.args_fragments)
            blocks.append(
                (
                    {"type": "tool_use", "id": self._tool_id(reply, i, ctx), "name": call.name, "input": {}},
                    [{"type": "input_json_delta", "partial_json": f} for f in fragments],
                    [],
                )
            )
        for index, (block, deltas, closing) in enumerate(blocks):
            frames.append(
                event(META, {"type": "content_block_start", "index": index, "content_block": block})
            )
            if block["type"] == "tool_use":
                empty = {"type": "input_json_delta", "partial_json": ""}
                frames.append(event(META, {"type": "content_block_delta", "index": index, "delta": empty}))
            frames += [
                event(CHUNK, {"type": "content_block_delta", "index": index, "delta": d}) for d in deltas
            ]
            frames += [
                event(META, {"type": "content_block_delta", "index": index, "delta": d}) for d in closing
            ]
            frames.append(event(META, {"type": "content_block_stop", "index": index}))

        if reply.midstream_error is not None:
            error = reply.midstream_error
            body = {"type": error.type or "api_error", "message": error.message}
            frames.append(event(TAIL, {"type": "error", "error": body}))
            return frames
        delta = {"stop_reason": self._stop_reason(reply), "stop_sequence": None}
        frames.append(
            event(
                TAIL,
                {
                    "type": "message_delta",
                    "delta": delta,
                    "usage": self._usage(usage, usage.completion_tokens),
                },
            )
        )
        frames.append(event(TAIL, {"type": "message_stop"}))
        return frames


class GeminiGenerate:
    """``:generateContent`` and ``:streamGenerateContent`` (SSE with ``alt=sse``, else a JSON array)."""

    def context(
        self, body: Mapping[str, Any], *, path: str, query: str, body_len: int, serial: int
    ) -> RequestContext:
        model, _, method = path.rpartition("/")[2].partition(":")
        return RequestContext(
            model=model or DEFAULT_MODEL,
            stream=method == "streamGenerateContent",
            include_usage=True,
            sse="alt=sse" in query.split("&"),
            body_len=body_len,
            serial=serial,
            created=int(time.time()),
        )

    def latest_turn(self, body: Mapping[str, Any]) -> Turn:
        contents = body.get("contents")
        user = next(
            (
                c
                for c in reversed(contents if isinstance(contents, list) else [])
                if isinstance(c, Mapping) and c.get("role", "user") == "user"
            ),
            None,
        )
        parts = user.get("parts") if user is not None else None
        parts = [p for p in parts if isinstance(p, Mapping)] if isinstance(parts, list) else []
        response = next(
            (p["functionResponse"] for p in parts if isinstance(p.get("functionResponse"), Mapping)), None
        )
        texts = [p["text"] for p in parts if isinstance(p.get("text"), str)]
        return Turn(
            tool_result=None if response is None else _function_result(response), text="\n".join(texts)
        )

    def headers(self, ctx: RequestContext) -> tuple[tuple[str, str], ...]:
        return ()

    def error(self, error: ReplyError, ctx: RequestContext) -> bytes:
        status = (
            error.type
            or _GOOGLE_STATUS.get(error.status)
            or ("INTERNAL" if error.status >= 500 else "INVALID_ARGUMENT")
        )
        return _dumps({"error": {"code": error.status, "message": error.message, "status": status}})

    def stream_content_type(self, ctx: RequestContext) -> str:
        return SSE_TYPE if ctx.sse else JSON_TYPE

    @staticmethod
    def _finish(reply: Reply) -> str:
        reason = reply.finish_reason or "stop"
        return _GEMINI_FINISH.get(reason, reason.upper())

    @staticmethod
    def _usage(usage: Usage) -> dict[str, Any]:
        meta = {
            "promptTokenCount": usage.prompt_tokens,
            "candidatesTokenCount": usage.completion_tokens - usage.reasoning_tokens,
            "totalTokenCount": usage.prompt_tokens + usage.completion_tokens,
        }
        if usage.reasoning_tokens:
            meta["thoughtsTokenCount"] = usage.reasoning_tokens
        if usage.cached_tokens:
            meta["cachedContentTokenCount"] = usage.cached_tokens
        return meta

    @staticmethod
    def _calls(reply: Reply) -> list[dict[str, Any]]:
        parts = []
        for call in reply.tool_calls:
            function: dict[str, Any] = {"name": call.name, "args": call.input_object()}
            if call.id is not None:
                function["id"] = call.id
            parts.append({"functionCall": function})
        return parts

    @staticmethod
    def _response(ctx: RequestContext, parts: list[dict[str, Any]]) -> dict[str, Any]:
        candidate = {"content": {"role": "model", "parts": parts}, "index": 0}
        return {"candidates": [candidate], "modelVersion": ctx.model, "responseId": f"mock{ctx.serial}"}

    def _final(
        self, reply: Reply, usage: Usage, ctx: RequestContext, parts: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """The last (or only) response: it alone carries finishReason and the complete usageMetadata."""
        response = self._response(ctx, parts)
        response["candidates"][0]["finishReason"] = self._finish(reply)
        response["usageMetadata"] = self._usage(usage)
        return response

    def message(self, reply: Reply, usage: Usage, ctx: RequestContext) -> bytes:
        parts: list[dict[str, Any]] = []
        if reply.thinking:
            parts.append({"text": reply.thinking, "thought": True})
        if reply.text:
            parts.append({"text": reply.text})
        parts += self._calls(reply)
        return _dumps(self._final(reply, usage, ctx, parts or [{"text": ""}]))

    def stream(self, reply: Reply, usage: Usage, ctx: RequestContext) -> list[Frame]:
        objects: list[tuple[int, Mapping[str, Any]]] = []
        objects += [
            (CHUNK, self._response(ctx, [{"text": p, "thought": True}]))
            for p in split_words(reply.thinking, reply.chunks)
        ]
        objects += [
            (CHUNK, self._response(ctx, [{"text": p}])) for p in split_words(reply.text, reply.chunks)
        ]
        if reply.tool_calls:
            objects.append((CHUNK, self._response(ctx, self._calls(reply))))
        if reply.midstream_error is not None:
            error = reply.midstream_error
            status = error.type or "INTERNAL"
            objects.append((TAIL, {"error": {"code": 500, "message": error.message, "status": status}}))
        else:
            objects.append((TAIL, self._final(reply, usage, ctx, [{"text": ""}])))
        if ctx.sse:
            return [Frame(kind, b"data: " + _dumps(obj) + b"\r\n\r\n") for kind, obj in objects]
        frames = [
            Frame(kind, (b"," if i else b"[") + _dumps(obj) + b"\r\n")
            for i, (kind, obj) in enumerate(objects)
        ]
        if reply.midstream_error is None:
            frames.append(Frame(TAIL, b"]"))
        return frames


def _function_result(function_response: Mapping[str, Any]) -> str:
    """A functionResponse's payload as text: its lone string field (``{"result": "..."}``) or its JSON."""
    payload = function_response.get("response")
    if isinstance(payload, Mapping) and len(payload) == 1:
        (value,) = payload.values()
        if isinstance(value, str):
            return value
    return orjson.dumps(payload).decode()


OPENAI = OpenAIChat()
ANTHROPIC = AnthropicMessages()
GEMINI = GeminiGenerate()
