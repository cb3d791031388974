"""Type checks on an incoming Messages body: each problem answered with its field path."""

from __future__ import annotations

from typing import Any

import orjson

from ccr_fast.protocol.errors import GatewayError


def parse_json_body(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise GatewayError(400, "request body is empty; expected a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise GatewayError(400, f"malformed JSON in request body: {exc}") from None
    if not isinstance(body, dict):
        raise GatewayError(400, f"request body must be a JSON object, got {_kind(body)}")
    return body


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    return "an object"


def _bad(path: str, expected: str, got: Any) -> GatewayError:
    return GatewayError(400, f"{path}: expected {expected}, got {_kind(got)}")


_ROLES = ("user", "assistant", "system")


def validate_messages_body(body: dict[str, Any], *, count_tokens: bool = False) -> None:
    """Reject what no upstream could serve; leave everything else to the upstream."""
    model = body.get("model")
    if model is None:
        raise GatewayError(400, "model: field required")
    if not isinstance(model, str) or not model.strip():
        raise _bad("model", "a non-empty string", model)
    messages = body.get("messages")
    if messages is None:
        raise GatewayError(400, "messages: field required")
    if not isinstance(messages, list):
        raise _bad("messages", "an array", messages)
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise _bad(f"messages[{i}]", "an object", msg)
        role = msg.get("role")
        if role not in _ROLES:
            raise GatewayError(
                400, f"messages[{i}].role: expected one of user, assistant, system, got {role!r}"
            )
        content = msg.get("content")
        if not isinstance(content, str | list):
            raise _bad(f"messages[{i}].content", "a string or an array of content blocks", content)
        if isinstance(content, list):
            for j, block in enumerate(content):
                if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                    raise GatewayError(
                        400, f"messages[{i}].content[{j}]: expected a content block object with a type"
                    )
    if not count_tokens:
        mt = body.get("max_tokens")
        if mt is not None and (not isinstance(mt, int) or isinstance(mt, bool) or mt < 0):
            raise _bad("max_tokens", "a non-negative integer", mt)
        stream = body.get("stream")
        if stream is not None and not isinstance(stream, bool):
            raise _bad("stream", "a boolean", stream)
        stops = body.get("stop_sequences")
        if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)):
            raise _bad("stop_sequences", "an array of strings", stops)
        for key in ("temperature", "top_p"):
            v = body.get(key)
            if v is not None and (not isinstance(v, int | float) or isinstance(v, bool)):
                raise _bad(key, "a number", v)
        top_k = body.get("top_k")
        if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool)):
            raise _bad("top_k", "an integer", top_k)
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        raise _bad("system", "a string or an array of text blocks", system)
    if isinstance(system, list):
        for j, block in enumerate(system):
            if not isinstance(block, dict):
                raise _bad(f"system[{j}]", "a text block object", block)
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _bad("tools", "an array", tools)
        for j, tool in enumerate(tools):
            if not isinstance(tool, dict):
                raise _bad(f"tools[{j}]", "an object", tool)
            if not isinstance(tool.get("name"), str):
                raise GatewayError(400, f"tools[{j}].name: field required (a string)")
    for key in ("tool_choice", "thinking", "metadata"):
        v = body.get(key)
        if v is not None and not isinstance(v, dict):
            raise _bad(key, "an object", v)
