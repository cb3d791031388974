"""Request bodies and headers for the benchmarks: a 1 KB request and a Claude-Code-sized one.

The large body follows what Claude Code sends on the first turn of a session (see the project's notes on
Claude Code traffic): three system blocks (a short header, a one-line introduction, a long main prompt),
two of them with ``cache_control``; a user turn made of a ``<system-reminder>`` block plus the prompt; a
``role: "system"`` message inside ``messages``; 24 tools whose JSON is most of the body;
``metadata.user_id`` as a JSON string; adaptive thinking, ``output_config``, ``context_management`` and
``stream: true``. Sizes and shapes matter because request translation and routing costs grow with the
body, and a 30-byte "hi" hides them.

Everything is generated from a fixed seed, so every run and every system sends byte-identical bodies.
"""

from __future__ import annotations

import random
from typing import Any

import orjson

SMALL_BODY_BYTES = 1024
CLAUDE_CODE_BODY_BYTES = 100_000
CLAUDE_CODE_TOOLS = 24
MAIN_PROMPT_CHARS = 18_000

#: what Claude Code 2.1.x sends to its base URL, minus the API key
CLAUDE_CODE_HEADERS: tuple[tuple[str, str], ...] = (
    ("content-type", "application/json"),
    ("anthropic-version", "2023-06-01"),
    ("x-api-key", "sk-ant-bench-0000"),
    ("x-app", "cli"),
    ("user-agent", "claude-cli/2.1.197 (external, sdk-cli)"),
    ("anthropic-beta", "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27"),
    ("anthropic-dangerous-direct-browser-access", "true"),
    ("x-stainless-timeout", "600"),
)

#: what an OpenAI-compatible client sends to a chat-completions endpoint
OPENAI_HEADERS: tuple[tuple[str, str], ...] = (
    ("content-type", "application/json"),
    ("authorization", "Bearer sk-bench-0000"),
)

_TOOL_NAMES = (
    "Task", "Bash", "Glob", "Grep", "LS", "ExitPlanMode", "Read", "Edit", "MultiEdit", "Write",
    "NotebookEdit", "WebFetch", "TodoWrite", "WebSearch", "BashOutput", "KillShell", "SlashCommand",
    "Skill", "AskUserQuestion", "ToolSearch", "EnterPlanMode", "ListMcpResourcesTool",
    "mcp__ide__getDiagnostics", "mcp__ide__executeCode",
)  # fmt: skip

_WORDS = (
    "the", "tool", "file", "path", "use", "when", "you", "must", "never", "always", "before", "after",
    "command", "output", "result", "user", "request", "directory", "search", "pattern", "code", "function",
    "project", "changes", "commit", "test", "build", "read", "write", "edit", "line", "number", "absolute",
    "relative", "parameter", "optional", "required", "default", "example", "instead", "prefer", "avoid",
    "quoting", "spaces", "timeout", "milliseconds", "concise", "response", "markdown", "repository",
    "security", "malicious", "context", "session", "background", "parallel", "independent", "calls",
    "—", "→", "e.g.", "`git status`", "`rg`", "<example>", "</example>", "IMPORTANT:", "NOTE:",
)  # fmt: skip


def _prose(rng: random.Random, chars: int) -> str:
    """Sentences of instruction-like prose, exactly ``chars`` characters long."""
    parts: list[str] = []
    size = 0
    while size < chars:
        sentence = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(8, 22)))
        sentence = sentence[0].upper() + sentence[1:] + (".\n" if rng.random() < 0.2 else ". ")
        parts.append(sentence)
        size += len(sentence)
    return "".join(parts)[:chars]


def small_request(*, model: str, stream: bool) -> dict[str, Any]:
    """An Anthropic Messages request of about 1 KB: a system prompt, a short exchange and a question."""
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": 1024,
        "system": "You are a helpful assistant that answers questions about Python code concisely.",
        "messages": [
            {"role": "user", "content": "What does functools.lru_cache do?"},
            {
                "role": "assistant",
                "content": "It memoises a function: results are cached by argument, least recently used out.",
            },
            {"role": "user", "content": [{"type": "text", "text": ""}]},
        ],
        "temperature": 0.7,
        "stream": stream,
    }
    room = SMALL_BODY_BYTES - len(orjson.dumps(body))
    body["messages"][2]["content"][0]["text"] = _prose(random.Random(1), max(room, 16))
    return body


def _tool(rng: random.Random, name: str, description_chars: int) -> dict[str, Any]:
    """A tool definition shaped like Claude Code's: a long description, a JSON Schema with a few fields."""
    properties: dict[str, Any] = {}
    for index in range(rng.randint(2, 6)):
        field = f"{rng.choice(_WORDS[:58])}_{index}"
        kind = rng.choice(("string", "integer", "boolean", "array"))
        spec: dict[str, Any] = {"type": kind, "description": _prose(rng, rng.randint(60, 240))}
        if kind == "array":
            spec["items"] = {"type": "string"}
        properties[field] = spec
    return {
        "name": name,
        "description": _prose(rng, description_chars),
        "input_schema": {
            "type": "object",
            "properties": properties,
            "required": sorted(properties)[:1],
            "additionalProperties": False,
            "$schema": "http://json-schema.org/draft-07/schema#",
        },
    }


def claude_code_request(
    *, model: str, target_bytes: int = CLAUDE_CODE_BODY_BYTES, tools: int = CLAUDE_CODE_TOOLS
) -> dict[str, Any]:
    """A first-turn Claude Code request of about ``target_bytes`` (within 2%), always streaming."""
    rng = random.Random(2025)
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": 32000,
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.197; cc_entrypoint=cli;"},
            {
                "type": "text",
                "text": "You are Claude Code, Anthropic's official CLI for Claude.",
                "cache_control": {"type": "ephemeral"},
            },
            {"type": "text", "text": _prose(rng, MAIN_PROMPT_CHARS), "cache_control": {"type": "ephemeral"}},
        ],
        "messages": [
            {
                "role": "system",
                "content": "The user switched to plan mode; propose changes before making them.",
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": "<system-reminder>\nAs you answer the user's questions, you can use the "
                        "following context:\n# claudeMd\n" + _prose(rng, 1500) + "\n</system-reminder>\n",
                    },
                    {
                        "type": "text",
                        "text": "Find where the retry budget is computed and explain it briefly.",
                        "cache_control": {"type": "ephemeral"},
                    },
                ],
            },
        ],
        "tools": [],
        "metadata": {
            "user_id": orjson.dumps(
                {
                    "device_id": f"{rng.getrandbits(256):064x}",
                    "session_id": "5b1f0e7c-3d4a-4e2b-9c61-0a7d2f4e8b93",
                }
            ).decode()
        },
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "high"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "temperature": 1,
        "stream": True,
    }
    names = [
        _TOOL_NAMES[i % len(_TOOL_NAMES)] + ("" if i < len(_TOOL_NAMES) else f"_{i}") for i in range(tools)
    ]
    body["tools"] = [_tool(rng, name, 200) for name in names]
    room = target_bytes - len(orjson.dumps(body))
    if room > 0:
        per_tool = room // tools
        for tool in body["tools"]:
            tool["description"] += "\n" + _prose(rng, max(per_tool - 2, 0))
    return body


def encode(body: dict[str, Any]) -> bytes:
    """The bytes sent on the wire (compact JSON, as the SDKs send it)."""
    return orjson.dumps(body)
