"""The benchmark bodies have the size and shape the scenarios claim (Claude Code's first turn, 1 KB)."""

from __future__ import annotations

import orjson
from bench.bodies import (
    CLAUDE_CODE_BODY_BYTES,
    CLAUDE_CODE_TOOLS,
    SMALL_BODY_BYTES,
    claude_code_request,
    encode,
    small_request,
)


def test_small_request_is_about_one_kilobyte() -> None:
    body = small_request(model="m", stream=False)
    size = len(encode(body))
    assert SMALL_BODY_BYTES <= size <= SMALL_BODY_BYTES * 1.05
    assert body["stream"] is False
    assert small_request(model="m", stream=True)["stream"] is True
    assert body["messages"][-1]["role"] == "user"


def test_claude_code_request_size_and_tools() -> None:
    body = claude_code_request(model="claude-sonnet-5")
    size = len(encode(body))
    assert abs(size - CLAUDE_CODE_BODY_BYTES) <= CLAUDE_CODE_BODY_BYTES * 0.02
    tools = body["tools"]
    assert len(tools) == CLAUDE_CODE_TOOLS
    assert len({tool["name"] for tool in tools}) == CLAUDE_CODE_TOOLS
    assert 60_000 <= len(orjson.dumps(tools)) <= 85_000
    assert all(tool["input_schema"]["type"] == "object" for tool in tools)


def test_claude_code_request_shape() -> None:
    body = claude_code_request(model="claude-sonnet-5")
    assert body["stream"] is True
    system = body["system"]
    assert len(system) == 3
    assert sum("cache_control" in block for block in system) == 2
    roles = [message["role"] for message in body["messages"]]
    assert "system" in roles and roles[-1] == "user"
    reminder = body["messages"][-1]["content"][0]["text"]
    assert reminder.startswith("<system-reminder>")
    user_id = orjson.loads(body["metadata"]["user_id"])
    assert set(user_id) == {"device_id", "session_id"}
    assert body["thinking"] == {"type": "adaptive"}


def test_bodies_are_deterministic() -> None:
    assert encode(claude_code_request(model="x")) == encode(claude_code_request(model="x"))
    assert encode(small_request(model="x", stream=True)) == encode(small_request(model="x", stream=True))


def test_smaller_target_gives_smaller_body() -> None:
    small = encode(claude_code_request(model="x", target_bytes=60_000, tools=12))
    assert len(small) < 62_000
    assert len(orjson.loads(small)["tools"]) == 12
