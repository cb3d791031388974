"""Render a complete Anthropic message as the SSE event sequence a stream would have carried.

Used when a stream was asked for but the upstream answered with one JSON body.
"""

from __future__ import annotations

from typing import Any

import orjson


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def message_shell(message_id: Any, model: Any, usage: dict[str, Any]) -> dict[str, Any]:
    """The ``message`` of a ``message_start`` event: no content and no stop reason yet."""
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": model,
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }


def message_to_events(message: dict[str, Any]) -> bytes:
    usage = dict(message.get("usage") or {})
    start_usage = {
        "input_tokens": usage.get("input_tokens", 0),
        "cache_creation_input_tokens": usage.get("cache_creation_input_tokens", 0),
        "cache_read_input_tokens": usage.get("cache_read_input_tokens", 0),
        "output_tokens": 0,
    }
    shell = message_shell(message.get("id"), message.get("model"), start_usage)
    out = [_event("message_start", {"type": "message_start", "message": shell})]
    for index, block in enumerate(message.get("content") or []):
        btype = block.get("type")
        if btype == "text":
            start: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": block.get("text", "")}]
        elif btype == "thinking":
            start = {"type": "thinking", "thinking": ""}
            deltas = [{"type": "thinking_delta", "thinking": block.get("thinking", "")}]
            if block.get("signature"):
                deltas.append({"type": "signature_delta", "signature": block["signature"]})
        elif btype in ("tool_use", "server_tool_use"):
            start = {"type": btype, "id": block.get("id"), "name": block.get("name"), "input": {}}
            deltas = [
                {"type": "input_json_delta", "partial_json": orjson.dumps(block.get("input", {})).decode()}
            ]
        else:  # redacted_thinking, web_search_tool_result, ...: whole block in the start event
            start, deltas = block, []
        out.append(
            _event(
                "content_block_start", {"type": "content_block_start", "index": index, "content_block": start}
            )
        )
        for delta in deltas:
            out.append(
                _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
            )
        out.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
    out.append(
        _event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": message.get("stop_reason"),
                    "stop_sequence": message.get("stop_sequence"),
                },
                "usage": usage or {"output_tokens": 0},
            },
        )
    )
    out.append(_event("message_stop", {"type": "message_stop"}))
    return b"".join(out)
