"""The mock provider's OpenAI Responses API (``POST /v1/responses``): rendering replies, checking requests.

A reply is rendered the way OpenAI answers: ``output`` items in order (a ``reasoning`` item for the reply's
thinking, a ``message`` for its text, one ``function_call`` per tool call) and, when streamed, the semantic
event sequence (``response.created`` … ``response.output_item.added`` / deltas / ``…done`` …
``response.completed``), each event named in its ``event:`` line and numbered by ``sequence_number``.

Like OpenAI, a reasoning item shows its summary only when the request asked for one (``reasoning.summary``)
and carries ``encrypted_content`` only when the request included ``reasoning.encrypted_content``.  The
encrypted content is a token this mock can read back (``ENCRYPTED_PREFIX`` + base64url JSON of the thought):
a reasoning item sent back in a later request must hold a token it issued, as OpenAI rejects content it
cannot decrypt.

Requests are checked before a reply is spent on them (``request_problem``), with the rules of OpenAI's API
that a translating proxy can get wrong: unknown top-level parameters (``stop``, ``max_tokens``,
``messages``), item and part types, a ``function_call_output`` without its ``function_call`` and a
function call without its output, reasoning items that cannot be used with ``store: false``, tools and
``tool_choice``, and ``max_output_tokens`` below 16.  A request that breaks one gets OpenAI's 400
``invalid_request_error``; the request log keeps it either way, for tests to look at.

Reply fields map as for Chat Completions: ``finish_reason: "length"`` makes the response ``incomplete``
(``max_output_tokens``), ``content_filter`` ``incomplete`` (``content_filter``); ``midstream_error`` ends
the stream with ``response.failed``; the ``args_fragments``, ``interleave_tool_args`` (parallel calls'
events interleaved across items) and ``crlf`` quirks apply.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar

import orjson

from ccr_fast.mock.replies import (
    CHUNK,
    JSON_TYPE,
    META,
    SSE_TYPE,
    TAIL,
    Dialect,
    Frame,
    Outcome,
    Reply,
    ReplyError,
    RequestContext,
    Turn,
    Usage,
    split_even,
    split_words,
)

__all__ = [
    "ENCRYPTED_PREFIX",
    "RESPONSES",
    "ResponsesAPI",
    "encrypted_reasoning",
    "read_encrypted_reasoning",
    "request_problem",
    "responses_route",
]

DEFAULT_MODEL: Final = "mock-model"
#: what OpenAI's encrypted reasoning looks like at the start (a Fernet token)
ENCRYPTED_PREFIX: Final = "gAAAAABmock"
MIN_OUTPUT_TOKENS: Final = 16
ENCRYPTED_INCLUDE: Final = "reasoning.encrypted_content"

_dumps = orjson.dumps

#: the request parameters OpenAI's ``POST /v1/responses`` takes
KNOWN_PARAMETERS: Final = frozenset(
    {
        "background",
        "conversation",
        "include",
        "input",
        "instructions",
        "max_output_tokens",
        "max_tool_calls",
        "metadata",
        "model",
        "parallel_tool_calls",
        "previous_response_id",
        "prompt",
        "prompt_cache_key",
        "prompt_cache_retention",
        "reasoning",
        "safety_identifier",
        "service_tier",
        "store",
        "stream",
        "stream_options",
        "temperature",
        "text",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "truncation",
        "user",
    }
)
KNOWN_INCLUDES: Final = frozenset(
    {
        "code_interpreter_call.outputs",
        "computer_call_output.output.image_url",
        "file_search_call.results",
        "message.input_image.image_url",
        "message.output_text.logprobs",
        ENCRYPTED_INCLUDE,
        "web_search_call.action.sources",
    }
)
EFFORTS: Final = frozenset({"none", "minimal", "low", "medium", "high", "xhigh"})
SUMMARIES: Final = frozenset({"auto", "concise", "detailed"})
MESSAGE_ROLES: Final = frozenset({"user", "assistant", "system", "developer"})
INPUT_PARTS: Final = frozenset({"input_text", "input_image", "input_file"})
ASSISTANT_PARTS: Final = frozenset({"output_text", "refusal"})
ITEM_TYPES: Final = ("message", "function_call", "function_call_output", "reasoning")
_OPENAI_ERROR_TYPES: Final = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_exceeded",
}
_INCOMPLETE: Final = {"length": "max_output_tokens", "content_filter": "content_filter"}


# --- encrypted reasoning ------------------------------------------------------------------------------------


def encrypted_reasoning(thought: str) -> str:
    """The ``encrypted_content`` this mock hands out for a reasoning item holding ``thought``."""
    return ENCRYPTED_PREFIX + base64.urlsafe_b64encode(_dumps({"thought": thought})).decode()


def read_encrypted_reasoning(token: Any) -> str | None:
    """The thought inside a token from ``encrypted_reasoning``; None for anything this mock did not issue."""
    if not isinstance(token, str) or not token.startswith(ENCRYPTED_PREFIX):
        return None
    try:
        value = orjson.loads(base64.urlsafe_b64decode(token[len(ENCRYPTED_PREFIX) :]))
    except (binascii.Error, ValueError):
        return None
    thought = value.get("thought") if isinstance(value, dict) else None
    return thought if isinstance(thought, str) else None


# --- request checks -----------------------------------------------------------------------------------------


def request_problem(body: Mapping[str, Any]) -> str | None:
    """OpenAI's message for the first rule ``body`` breaks, None for a request OpenAI would take."""
    unknown = sorted(set(body) - KNOWN_PARAMETERS)
    if unknown:
        return f"Unknown parameter: '{unknown[0]}'."
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return "Missing required parameter: 'model'."
    limit = body.get("max_output_tokens")
    if limit is not None:
        if not _is_int(limit):
            return "Invalid type for 'max_output_tokens': expected an integer."
        if limit < MIN_OUTPUT_TOKENS:
            return (
                "Invalid 'max_output_tokens': integer below minimum value. "
                f"Expected a value >= {MIN_OUTPUT_TOKENS}, but got {limit} instead."
            )
    for check in (_tools_problem, _reasoning_problem, _include_problem):
        problem = check(body)
        if problem is not None:
            return problem
    items = body.get("input")
    if isinstance(items, str):
        return None
    if not isinstance(items, list):
        return "Invalid type for 'input': expected a string or an array of input items."
    return _items_problem(items, store=body.get("store", True) is not False)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _tools_problem(body: Mapping[str, Any]) -> str | None:
    tools = body.get("tools", [])
    if not isinstance(tools, list):
        return "Invalid type for 'tools': expected an array."
    names: list[str] = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, Mapping) or tool.get("type") != "function":
            return f"Invalid value for 'tools[{i}].type': only function tools are served by this mock."
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            return f"Missing required parameter: 'tools[{i}].name'."
        if name in names:
            return f"Duplicate function name: '{name}'."
        names.append(name)
        if not isinstance(tool.get("parameters"), Mapping):
            return f"Missing required parameter: 'tools[{i}].parameters'."
        if "function" in tool or "input_schema" in tool:
            extra = "function" if "function" in tool else "input_schema"
            return f"Unknown parameter: 'tools[{i}].{extra}'."
    choice = body.get("tool_choice")
    if choice is None or choice in ("auto", "none", "required"):
        return None
    if isinstance(choice, Mapping) and choice.get("type") == "function" and choice.get("name") in names:
        return None
    return "Invalid value for 'tool_choice'."


def _reasoning_problem(body: Mapping[str, Any]) -> str | None:
    reasoning = body.get("reasoning")
    if reasoning is None:
        return None
    if not isinstance(reasoning, Mapping):
        return "Invalid type for 'reasoning': expected an object."
    if reasoning.get("effort") is not None and reasoning.get("effort") not in EFFORTS:
        return f"Invalid value for 'reasoning.effort': '{reasoning.get('effort')}'."
    if reasoning.get("summary") is not None and reasoning.get("summary") not in SUMMARIES:
        return f"Invalid value for 'reasoning.summary': '{reasoning.get('summary')}'."
    return None


def _include_problem(body: Mapping[str, Any]) -> str | None:
    include = body.get("include", [])
    if not isinstance(include, list):
        return "Invalid type for 'include': expected an array."
    for value in include:
        if value not in KNOWN_INCLUDES:
            return f"Invalid value for 'include': '{value}'."
    return None


def _items_problem(items: list[Any], *, store: bool) -> str | None:
    calls: dict[str, bool] = {}  # call_id -> answered
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            return f"Invalid type for 'input[{i}]': expected an object."
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            problem = _message_problem(item, i)
        elif kind == "function_call":
            problem = _call_problem(item, i, calls)
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if call_id not in calls:
                problem = f"No tool call found for function call output with call_id {call_id}."
            else:
                calls[call_id] = True
                problem = _output_problem(item.get("output"), i)
        elif kind == "reasoning":
            problem = _reasoning_item_problem(item, i, store=store)
        else:
            supported = ", ".join(repr(t) for t in ITEM_TYPES)
            problem = f"Invalid value: '{kind}'. Supported values are: {supported}."
        if problem is not None:
            return problem
    unanswered = [call_id for call_id, answered in calls.items() if not answered]
    if unanswered:
        return f"No tool output found for function call {unanswered[0]}."
    return None


def _message_problem(item: Mapping[str, Any], i: int) -> str | None:
    role = item.get("role")
    if role not in MESSAGE_ROLES:
        return f"Invalid value for 'input[{i}].role': '{role}'."
    content = item.get("content")
    if isinstance(content, str):
        return None
    if not isinstance(content, list) or not content:
        return f"Invalid 'input[{i}].content': expected a string or a non-empty array."
    allowed = ASSISTANT_PARTS if role == "assistant" else INPUT_PARTS
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind not in allowed:
            return f"Invalid value for 'input[{i}].content[{j}].type' with role {role}: '{kind}'."
        problem = _part_problem(part, f"input[{i}].content[{j}]")
        if problem is not None:
            return problem
    return None


def _part_problem(part: Mapping[str, Any], where: str) -> str | None:
    kind = part.get("type")
    if kind in ("input_text", "output_text") and not isinstance(part.get("text"), str):
        return f"Missing required parameter: '{where}.text'."
    if kind == "input_image" and not isinstance(part.get("image_url") or part.get("file_id"), str):
        return f"Missing required parameter: '{where}.image_url'."
    if kind == "input_file" and not any(
        isinstance(part.get(key), str) for key in ("file_data", "file_url", "file_id")
    ):
        return f"Missing required parameter: '{where}.file_data'."
    return None


def _call_problem(item: Mapping[str, Any], i: int, calls: dict[str, bool]) -> str | None:
    call_id = item.get("call_id")
    if not isinstance(call_id, str) or not call_id:
        return f"Missing required parameter: 'input[{i}].call_id'."
    if not isinstance(item.get("name"), str) or not item["name"]:
        return f"Missing required parameter: 'input[{i}].name'."
    if not isinstance(item.get("arguments"), str):
        return f"Invalid type for 'input[{i}].arguments': expected a string."
    if call_id in calls:
        return f"Duplicate function call id: '{call_id}'."
    calls[call_id] = False
    return None


def _output_problem(output: Any, i: int) -> str | None:
    if isinstance(output, str):
        return None
    if not isinstance(output, list):
        return f"Invalid type for 'input[{i}].output': expected a string or an array."
    for j, part in enumerate(output):
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind not in INPUT_PARTS:
            return f"Invalid value for 'input[{i}].output[{j}].type': '{kind}'."
        problem = _part_problem(part, f"input[{i}].output[{j}]")
        if problem is not None:
            return problem
    return None


def _reasoning_item_problem(item: Mapping[str, Any], i: int, *, store: bool) -> str | None:
    if not isinstance(item.get("summary"), list):
        return f"Missing required parameter: 'input[{i}].summary'."
    encrypted = item.get("encrypted_content")
    if encrypted is None:
        if store and isinstance(item.get("id"), str):
            return None  # a stored item, referred to by id
        return (
            f"Item with id '{item.get('id')}' not found. Items are not persisted when `store` is set to "
            "false. Try again with `store` set to true, or remove this item from your input."
        )
    if read_encrypted_reasoning(encrypted) is None:
        return f"The encrypted content for item input[{i}] could not be verified."
    return None


# --- rendering ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResponsesContext(RequestContext):
    """A request's context, plus what it asked to see of the reasoning."""

    summary: bool = False
    encrypted: bool = False


def _model(value: Any) -> str:
    return value if isinstance(value, str) and value else DEFAULT_MODEL


def _text_of(content: Any) -> str:
    """Text of a string content or of the text parts of a list content."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    return "\n".join(p["text"] for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str))


class ResponsesAPI:
    """``POST /v1/responses``: the Response object and its semantic event stream."""

    def context(
        self, body: Mapping[str, Any], *, path: str, query: str, body_len: int, serial: int
    ) -> RequestContext:
        reasoning = body.get("reasoning")
        include = body.get("include")
        return ResponsesContext(
            model=_model(body.get("model")),
            stream=body.get("stream") is True,
            include_usage=True,
            sse=True,
            body_len=body_len,
            serial=serial,
            created=int(time.time()),
            summary=isinstance(reasoning, Mapping) and reasoning.get("summary") is not None,
            encrypted=isinstance(include, list) and ENCRYPTED_INCLUDE in include,
        )

    def latest_turn(self, body: Mapping[str, Any]) -> Turn:
        """Items after the model's last output (assistant message, call, reasoning) form the newest turn."""
        items = body.get("input")
        if isinstance(items, str):
            return Turn(None, items)
        newest_first: list[Mapping[str, Any]] = []
        for item in reversed(items if isinstance(items, list) else []):
            if not isinstance(item, Mapping):
                continue
            kind = item.get("type", "message")
            if kind in ("function_call", "reasoning") or (
                kind == "message" and item.get("role") == "assistant"
            ):
                break
            newest_first.append(item)
        output = next((i for i in newest_first if i.get("type") == "function_call_output"), None)
        user = next((i for i in newest_first if i.get("role") == "user"), None)
        return Turn(
            tool_result=None if output is None else _text_of(output.get("output")),
            text="" if user is None else _text_of(user.get("content")),
        )

    def headers(self, ctx: RequestContext) -> tuple[tuple[str, str], ...]:
        return (("x-request-id", f"req_mock{ctx.serial}"),)

    def error(self, error: ReplyError, ctx: RequestContext) -> bytes:
        return error_body(error)

    def stream_content_type(self, ctx: RequestContext) -> str:
        return SSE_TYPE

    # --- the response object ----------------------------------------------------------------------------

    @staticmethod
    def _usage(usage: Usage) -> dict[str, Any]:
        return {
            "input_tokens": usage.prompt_tokens,
            "input_tokens_details": {"cached_tokens": usage.cached_tokens},
            "output_tokens": usage.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
            "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        }

    @staticmethod
    def _status(reply: Reply) -> tuple[str, dict[str, Any] | None]:
        reason = _INCOMPLETE.get(reply.finish_reason or "")
        return ("incomplete", {"reason": reason}) if reason else ("completed", None)

    def _response(
        self, ctx: RequestContext, status: str, output: list[dict[str, Any]], **extra: Any
    ) -> dict[str, Any]:
        return {
            "id": f"resp_mock{ctx.serial}",
            "object": "response",
            "created_at": ctx.created,
            "status": status,
            "error": None,
            "incomplete_details": None,
            "instructions": None,
            "max_output_tokens": None,
            "model": ctx.model,
            "output": output,
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None},
            "store": False,
            "temperature": 1.0,
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": [],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": None,
            "metadata": {},
            **extra,
        }

    def _items(self, reply: Reply, ctx: RequestContext, status: str) -> list[dict[str, Any]]:
        """The complete output items, as ``output`` and ``response.output_item.done`` show them."""
        items: list[dict[str, Any]] = []
        if reply.thinking:
            items.append(self._reasoning(reply, ctx))
        if reply.text:
            items.append(
                {
                    "id": f"msg_mock{ctx.serial}",
                    "type": "message",
                    "role": "assistant",
                    "status": "incomplete" if status == "incomplete" else "completed",
                    "content": [
                        {"type": "output_text", "text": reply.text, "annotations": [], "logprobs": []}
                    ],
                }
            )
        for i, call in enumerate(reply.tool_calls):
            items.append(
                {
                    "id": f"fc_mock{ctx.serial}_{i}",
                    "type": "function_call",
                    "status": "completed",
                    "call_id": call.id or f"call_mock{ctx.serial}_{i}",
                    "name": call.name,
                    "arguments": call.arguments,
                }
            )
        return items

    @staticmethod
    def _reasoning(reply: Reply, ctx: RequestContext) -> dict[str, Any]:
        shown = isinstance(ctx, ResponsesContext) and ctx.summary
        item: dict[str, Any] = {
            "id": f"rs_mock{ctx.serial}",
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": reply.thinking}] if shown else [],
        }
        if isinstance(ctx, ResponsesContext) and ctx.encrypted:
            item["encrypted_content"] = encrypted_reasoning(reply.thinking)
        return item

    def message(self, reply: Reply, usage: Usage, ctx: RequestContext) -> bytes:
        status, details = self._status(reply)
        return _dumps(
            self._response(
                ctx,
                status,
                self._items(reply, ctx, status),
                incomplete_details=details,
                usage=self._usage(usage),
            )
        )

    # --- the event stream -------------------------------------------------------------------------------

    def stream(self, reply: Reply, usage: Usage, ctx: RequestContext) -> list[Frame]:
        nl = b"\r\n" if reply.quirks.crlf else b"\n"
        frames: list[Frame] = []

        def event(kind: int, obj: dict[str, Any]) -> None:
            obj["sequence_number"] = len(frames)
            name = obj["type"].encode()
            frames.append(Frame(kind, b"event: " + name + nl + b"data: " + _dumps(obj) + nl + nl))

        status, details = self._status(reply)
        final = self._items(reply, ctx, status)
        started = self._response(ctx, "in_progress", [])
        event(META, {"type": "response.created", "response": started})
        event(META, {"type": "response.in_progress", "response": started})
        position = 0
        if reply.thinking:
            self._reasoning_events(reply, ctx, final[position], position, event)
            position += 1
        if reply.text:
            self._message_events(reply, final[position], position, event)
            position += 1
        self._call_events(reply, final[position:], position, event)

        if reply.midstream_error is not None:
            error = {
                "code": reply.midstream_error.type or "server_error",
                "message": reply.midstream_error.message,
            }
            failed = self._response(ctx, "failed", final, error=error)
            event(TAIL, {"type": "response.failed", "response": failed})
            return frames
        done = self._response(ctx, status, final, incomplete_details=details, usage=self._usage(usage))
        event(TAIL, {"type": f"response.{status}", "response": done})
        return frames

    @staticmethod
    def _reasoning_events(
        reply: Reply, ctx: RequestContext, item: dict[str, Any], position: int, event: _Emit
    ) -> None:
        where = {"item_id": item["id"], "output_index": position}
        event(
            META,
            {"type": "response.output_item.added", "output_index": position, "item": {**item, "summary": []}},
        )
        if item["summary"]:
            part = {"type": "summary_text", "text": ""}
            event(
                META,
                {"type": "response.reasoning_summary_part.added", **where, "summary_index": 0, "part": part},
            )
            for piece in split_words(reply.thinking, reply.chunks):
                delta = {
                    "type": "response.reasoning_summary_text.delta",
                    **where,
                    "summary_index": 0,
                    "delta": piece,
                }
                event(CHUNK, delta)
            text = {
                "type": "response.reasoning_summary_text.done",
                **where,
                "summary_index": 0,
                "text": reply.thinking,
            }
            event(META, text)
            done_part = {**part, "text": reply.thinking}
            event(
                META,
                {
                    "type": "response.reasoning_summary_part.done",
                    **where,
                    "summary_index": 0,
                    "part": done_part,
                },
            )
        event(META, {"type": "response.output_item.done", "output_index": position, "item": item})

    @staticmethod
    def _message_events(reply: Reply, item: dict[str, Any], position: int, event: _Emit) -> None:
        where = {"item_id": item["id"], "output_index": position, "content_index": 0}
        shell = {**item, "status": "in_progress", "content": []}
        event(META, {"type": "response.output_item.added", "output_index": position, "item": shell})
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        event(META, {"type": "response.content_part.added", **where, "part": part})
        for piece in split_words(reply.text, reply.chunks):
            event(CHUNK, {"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []})
        event(META, {"type": "response.output_text.done", **where, "text": reply.text, "logprobs": []})
        event(META, {"type": "response.content_part.done", **where, "part": item["content"][0]})
        event(META, {"type": "response.output_item.done", "output_index": position, "item": item})

    @staticmethod
    def _call_events(reply: Reply, items: list[dict[str, Any]], first: int, event: _Emit) -> None:
        """Each call's events, one call after the other, or interleaved across calls with the quirk."""
        per_call: list[list[tuple[int, dict[str, Any]]]] = []
        for offset, item in enumerate(items):
            position = first + offset
            where = {"item_id": item["id"], "output_index": position}
            shell = {**item, "status": "in_progress", "arguments": ""}
            steps: list[tuple[int, dict[str, Any]]] = [
                (META, {"type": "response.output_item.added", "output_index": position, "item": shell})
            ]
            steps += [
                (CHUNK, {"type": "response.function_call_arguments.delta", **where, "delta": fragment})
                for fragment in split_even(item["arguments"], reply.quirks.args_fragments)
            ]
            steps.append(
                (
                    META,
                    {
                        "type": "response.function_call_arguments.done",
                        **where,
                        "arguments": item["arguments"],
                    },
                )
            )
            steps.append(
                (META, {"type": "response.output_item.done", "output_index": position, "item": item})
            )
            per_call.append(steps)
        if reply.quirks.interleave_tool_args:
            longest = max((len(steps) for steps in per_call), default=0)
            ordered = [steps[i] for i in range(longest) for steps in per_call if i < len(steps)]
        else:
            ordered = [step for steps in per_call for step in steps]
        for kind, obj in ordered:
            event(kind, obj)


class _Emit(Protocol):
    def __call__(self, kind: int, obj: dict[str, Any], /) -> None: ...


def error_body(error: ReplyError) -> bytes:
    """OpenAI's error body: ``{"error": {"message", "type", "param", "code"}}``."""
    error_type = (
        error.type
        or _OPENAI_ERROR_TYPES.get(error.status)
        or ("server_error" if error.status >= 500 else "invalid_request_error")
    )
    return _dumps({"error": {"message": error.message, "type": error_type, "param": None, "code": None}})


RESPONSES = ResponsesAPI()


class _HasBody(Protocol):
    body: bytes


RequestT = TypeVar("RequestT", bound=_HasBody)


def responses_route(
    provider: Callable[[Dialect, RequestT], Outcome],
) -> Callable[[RequestT], Outcome]:
    """The ``/v1/responses`` route: a request OpenAI would reject gets its 400 here, the rest the reply.

    ``provider`` is the server's dialect dispatcher (scripted or auto reply, request counting); a rejected
    request does not consume a scripted reply.
    """

    def route(request: RequestT) -> Outcome:
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict):
            problem = request_problem(body)
            if problem is not None:
                return Outcome(400, JSON_TYPE, error_body(ReplyError(400, problem)))
        return provider(RESPONSES, request)

    return route
