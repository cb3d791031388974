"""The matrix's shared conversations, each with the answer it is meant to produce.

A ``Conversation`` holds the same request twice, as an Anthropic Messages body and as an OpenAI Chat
Completions body (one per client SDK), the answer the client must end up with (thinking, text, tool calls,
stop reason, usage, or the error it must see), and a check of what the provider received.  The mock
provider is scripted from the intended answer itself (``mock_reply``), so the reply and the expectation
cannot drift apart; only how the reply is cut into chunks is added per conversation.

Usage is given to the mock explicitly (``prompt`` counts every input token, cached ones included, as
OpenAI and Gemini count): the mock would otherwise estimate it from the size of the upstream body, which
differs by family.  The intended Anthropic usage is then ``input = prompt - cached``,
``cache_read = cached`` and ``output = completion`` for every family.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

JSONDict = dict[str, Any]
#: (provider family, the API it speaks: "openai", "openai-responses", "anthropic" or "gemini"; the body the
#: provider received)
UpstreamCheck = Callable[[str, str, JSONDict], None]


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    input: JSONDict


@dataclass(frozen=True, slots=True)
class Usage:
    prompt: int
    completion: int
    cached: int = 0


@dataclass(frozen=True, slots=True)
class Failure:
    """The error a client must see: HTTP status before the stream started, an error event after."""

    status: int
    #: Anthropic's error type
    error_type: str
    #: a fragment of the message the upstream gave
    message: str
    #: the failure comes after the stream started (only streaming clients can see it)
    midstream: bool = False
    #: seconds the upstream asks the client to wait (forwarded as ``retry-after``)
    retry_after: int | None = None


@dataclass(frozen=True, slots=True)
class Conversation:
    name: str
    anthropic: JSONDict
    openai: JSONDict
    thinking: str = ""
    text: str = ""
    calls: tuple[Call, ...] = ()
    stop_reason: str = "end_turn"
    usage: Usage = Usage(100, 10)
    failure: Failure | None = None
    #: how the mock cuts the answer (chunks, args_fragments, finish_reason ...); merged into its reply
    delivery: Mapping[str, Any] = field(default_factory=dict)
    upstream: UpstreamCheck | None = None

    def mock_reply(self, quirks: Mapping[str, Any]) -> JSONDict:
        """The scripted reply for the mock: the intended answer, its delivery, the family's quirks."""
        delivery = dict(self.delivery)
        merged_quirks = {**quirks, **delivery.pop("quirks", {})}
        failure = self.failure
        if failure is not None and not failure.midstream:
            error = {"status": failure.status, "message": failure.message, "retry_after": failure.retry_after}
            return {"error": error}
        reply: JSONDict = {
            "text": self.text,
            "thinking": self.thinking,
            "tool_calls": [{"name": call.name, "arguments": call.input} for call in self.calls],
            "usage": {
                "prompt_tokens": self.usage.prompt,
                "completion_tokens": self.usage.completion,
                "cached_tokens": self.usage.cached,
            },
            **delivery,
        }
        if failure is not None:
            reply["midstream_error"] = {"message": failure.message}
        if merged_quirks:
            reply["quirks"] = merged_quirks
        return reply


# --- building blocks ----------------------------------------------------------------------------------------

SYSTEM = "You are a terse assistant inside a coding tool."
READ_SCHEMA: JSONDict = {
    "type": "object",
    "properties": {"file_path": {"type": "string", "description": "Absolute path"}},
    "required": ["file_path"],
    "additionalProperties": False,
}
GREP_SCHEMA: JSONDict = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {"pattern": {"type": "string"}, "path": {"type": ["string", "null"]}},
    "required": ["pattern"],
}
WRITE_SCHEMA: JSONDict = {
    "type": "object",
    "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}},
    "required": ["file_path", "content"],
}
NOTE_SCHEMA: JSONDict = {"type": "object", "properties": {"text": {"type": "string"}}}


def anthropic_tools(*tools: tuple[str, str, JSONDict]) -> list[JSONDict]:
    return [{"name": name, "description": text, "input_schema": schema} for name, text, schema in tools]


def openai_tools(*tools: tuple[str, str, JSONDict]) -> list[JSONDict]:
    return [
        {"type": "function", "function": {"name": name, "description": text, "parameters": schema}}
        for name, text, schema in tools
    ]


READ = ("Read", "Read a file", READ_SCHEMA)
GREP = ("Grep", "Search file contents", GREP_SCHEMA)
WRITE = ("Write", "Write a file", WRITE_SCHEMA)
NOTE = ("Note", "Keep a note", NOTE_SCHEMA)

#: a 1x1 transparent PNG
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="


# --- upstream checks ----------------------------------------------------------------------------------------


def check_image(family: str, endpoint: str, body: JSONDict) -> None:
    if endpoint == "openai":
        parts = body["messages"][-1]["content"]
        assert {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}} in parts
    elif endpoint == "gemini":
        parts = body["contents"][-1]["parts"]
        assert {"inlineData": {"mimeType": "image/png", "data": PNG}} in parts
    elif endpoint == "openai-responses":
        parts = body["input"][-1]["content"]
        assert {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "auto"} in parts
    else:
        blocks = body["messages"][-1]["content"]
        image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
        assert image in blocks


def check_tool_round_trip(family: str, endpoint: str, body: JSONDict) -> None:
    result = "src/ccr_fast/config/loader.py:12: def load("
    if endpoint == "openai":
        messages = body["messages"]
        assistant = next(m for m in messages if m.get("tool_calls"))
        tool = messages[messages.index(assistant) + 1]
        assert tool == {"role": "tool", "tool_call_id": assistant["tool_calls"][0]["id"], "content": result}
        assert orjson.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"pattern": "def load"}
        assert [t["function"]["name"] for t in body["tools"]] == ["Read", "Grep"]
        # DeepSeek's thinking mode needs reasoning_content on tool-call turns; strict servers reject it
        assert ("reasoning_content" in assistant) is (family == "deepseek")
        if family == "groq":
            assert "$schema" not in orjson.dumps(body["tools"]).decode()
    elif endpoint == "gemini":
        call = body["contents"][1]["parts"][-1]["functionCall"]
        assert call == {"name": "Grep", "args": {"pattern": "def load"}}
        response = body["contents"][2]["parts"][0]["functionResponse"]
        assert response == {"name": "Grep", "response": {"result": result}}
        declared = body["tools"][0]["functionDeclarations"]
        assert [d["name"] for d in declared] == ["Read", "Grep"]
        assert "$schema" not in orjson.dumps(declared).decode()
    elif endpoint == "openai-responses":
        items = body["input"]
        call = next(i for i in items if i["type"] == "function_call")
        output = items[items.index(call) + 1]
        assert output == {"type": "function_call_output", "call_id": call["call_id"], "output": result}
        assert orjson.loads(call["arguments"]) == {"pattern": "def load"}
        assert [t["name"] for t in body["tools"]] == ["Read", "Grep"]
    else:
        blocks = body["messages"][2]["content"]
        assert blocks[0]["type"] == "tool_result"
        assert blocks[0]["content"] in (result, [{"type": "text", "text": result}])
        call = next(b for b in body["messages"][1]["content"] if b["type"] == "tool_use")
        assert blocks[0]["tool_use_id"] == call["id"]


def check_thinking_requested(family: str, endpoint: str, body: JSONDict) -> None:
    if endpoint == "gemini":
        assert body["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 2048, "includeThoughts": True}
    elif endpoint == "anthropic":
        assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    elif endpoint == "openai-responses":
        assert body["reasoning"] == {"effort": "low", "summary": "auto"}
        assert body["include"] == ["reasoning.encrypted_content"] and body["store"] is False
    elif family == "openrouter":
        assert body["reasoning"] == {"max_tokens": 2048}
    else:  # the plain dialects have no reasoning switch; strict servers reject unknown fields
        assert not {"thinking", "reasoning"} & set(body)


def check_thinking_history(family: str, endpoint: str, body: JSONDict) -> None:
    """Earlier thinking goes back the way each upstream wants it (CCR bug 8: DeepSeek's multi-turn tools)."""
    if endpoint == "gemini":
        model_turn = body["contents"][1]["parts"]
        # thought text is not sent back; a call without a Gemini signature gets Google's documented stand-in
        assert model_turn == [
            {
                "functionCall": {"name": "Read", "args": {"file_path": "/repo/README.md"}},
                "thoughtSignature": "skip_thought_signature_validator",
            }
        ]
    elif endpoint == "anthropic":
        thinking = body["messages"][1]["content"][0]
        assert thinking["type"] == "thinking" and thinking["thinking"] == EARLIER_THOUGHT
    elif endpoint == "openai-responses":
        # thinking another provider signed cannot be decrypted by OpenAI: only the call goes back
        assert [i["type"] for i in body["input"]] == ["message", "function_call", "function_call_output"]
    else:
        assistant = next(m for m in body["messages"] if m["role"] == "assistant")
        if family == "deepseek":
            assert assistant["reasoning_content"] == EARLIER_THOUGHT
        elif family == "openrouter":
            (detail,) = assistant["reasoning_details"]
            assert detail["type"] == "reasoning.text" and detail["text"] == EARLIER_THOUGHT
        else:
            assert not {"reasoning_content", "reasoning_details", "reasoning"} & set(assistant)


def check_stop_sequences(family: str, endpoint: str, body: JSONDict) -> None:
    sequences = ["END", "\n\nHuman:"]
    if endpoint == "openai":
        assert body["stop"] == sequences
    elif endpoint == "gemini":
        assert body["generationConfig"]["stopSequences"] == sequences
    elif endpoint == "openai-responses":  # no such parameter: left out, named in x-ccr-warning
        assert not {"stop", "stop_sequences"} & set(body)
    else:
        assert body["stop_sequences"] == sequences


def check_system(family: str, endpoint: str, body: JSONDict) -> None:
    if endpoint == "openai":
        assert body["messages"][0] == {"role": "system", "content": SYSTEM}
    elif endpoint == "gemini":
        assert body["systemInstruction"] == {"parts": [{"text": SYSTEM}]}
    elif endpoint == "openai-responses":
        assert body["instructions"] == SYSTEM
    else:
        system = body["system"]
        assert system == SYSTEM or system == [{"type": "text", "text": SYSTEM}]


def check_non_ascii_request(family: str, endpoint: str, body: JSONDict) -> None:
    assert "Grüße 😀 東京 — answer in kind." in orjson.dumps(body).decode()


# --- the conversations --------------------------------------------------------------------------------------

TEXT = Conversation(
    name="text",
    anthropic={"system": SYSTEM, "messages": [{"role": "user", "content": "Say hello."}]},
    openai={"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Say hello."}]},
    text="Hello! How can I help you with your code today?",
    usage=Usage(prompt=1200, completion=11, cached=1000),
    delivery={"chunks": 8},
    upstream=check_system,
)

IMAGES = Conversation(
    name="images",
    anthropic={
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                ],
            }
        ]
    },
    openai={
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            }
        ]
    },
    text="A single transparent pixel.",
    usage=Usage(prompt=1650, completion=6),
    upstream=check_image,
)

PARALLEL_TOOLS = Conversation(
    name="parallel_tools",
    anthropic={
        "tools": anthropic_tools(READ, GREP),
        "messages": [
            {"role": "user", "content": "Find the config loader."},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Searching."},
                    {
                        "type": "tool_use",
                        "id": "toolu_01Search",
                        "name": "Grep",
                        "input": {"pattern": "def load"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_01Search",
                        "content": "src/ccr_fast/config/loader.py:12: def load(",
                    }
                ],
            },
        ],
    },
    openai={
        "tools": openai_tools(READ, GREP),
        "messages": [
            {"role": "user", "content": "Find the config loader."},
            {
                "role": "assistant",
                "content": "Searching.",
                "tool_calls": [
                    {
                        "id": "call_search",
                        "type": "function",
                        "function": {"name": "Grep", "arguments": '{"pattern": "def load"}'},
                    }
                ],
            },
            {
                "role": "tool",
                "tool_call_id": "call_search",
                "content": "src/ccr_fast/config/loader.py:12: def load(",
            },
        ],
    },
    text="Reading the loader and looking for its callers.",
    calls=(
        Call("Read", {"file_path": "/repo/src/ccr_fast/config/loader.py"}),
        Call("Grep", {"pattern": "load\\(", "path": None}),
    ),
    stop_reason="tool_use",
    usage=Usage(prompt=900, completion=40, cached=512),
    delivery={"chunks": 4, "quirks": {"args_fragments": 3}},
    upstream=check_tool_round_trip,
)

THINKING = Conversation(
    name="thinking",
    anthropic={
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "messages": [{"role": "user", "content": "Is 221 prime?"}],
    },
    openai={"reasoning_effort": "low", "messages": [{"role": "user", "content": "Is 221 prime?"}]},
    thinking="221 = 13 x 17, so it has divisors other than 1 and itself.",
    text="No: 221 = 13 × 17.",
    usage=Usage(prompt=300, completion=30),
    delivery={"chunks": 5},
    upstream=check_thinking_requested,
)

EARLIER_THOUGHT = "The user wants the README; read it first."
README_RESULT = "# ccr-fast\nA fast drop-in Claude Code Router. See docs/configuration.md."

THINKING_TOOLS = Conversation(
    name="thinking_tools",
    anthropic={
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "tools": anthropic_tools(READ),
        "messages": [
            {"role": "user", "content": "Open the README, then the docs it points to."},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": EARLIER_THOUGHT, "signature": "RXJsaWVyU2lnbmF0dXJl"},
                    {
                        "type": "tool_use",
                        "id": "toolu_01Readme",
                        "name": "Read",
                        "input": {"file_path": "/repo/README.md"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01Readme", "content": README_RESULT}
                ],
            },
        ],
    },
    openai={
        "reasoning_effort": "low",
        "tools": openai_tools(READ),
        "messages": [
            {"role": "user", "content": "Open the README, then the docs it points to."},
            {
                "role": "assistant",
                "content": None,
                "reasoning_content": EARLIER_THOUGHT,
                "tool_calls": [
                    {
                        "id": "call_readme",
                        "type": "function",
                        "function": {"name": "Read", "arguments": '{"file_path": "/repo/README.md"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_readme", "content": README_RESULT},
        ],
    },
    thinking="The README points to docs/configuration.md; read that next.",
    calls=(Call("Read", {"file_path": "/repo/docs/configuration.md"}),),
    stop_reason="tool_use",
    usage=Usage(prompt=2400, completion=45, cached=2048),
    delivery={"chunks": 3},
    upstream=check_thinking_history,
)

RATE_LIMITED = Conversation(
    name="error_rate_limited",
    anthropic={"messages": [{"role": "user", "content": "Hello?"}]},
    openai={"messages": [{"role": "user", "content": "Hello?"}]},
    failure=Failure(status=429, error_type="rate_limit_error", message="slow down, please", retry_after=3),
)

FAILS_MIDSTREAM = Conversation(
    name="error_midstream",
    anthropic={"messages": [{"role": "user", "content": "Tell me a long story."}]},
    openai={"messages": [{"role": "user", "content": "Tell me a long story."}]},
    text="Once upon a time there was a proxy that",
    failure=Failure(status=200, error_type="api_error", message="upstream fell over", midstream=True),
    delivery={"chunks": 4},
)

STOP_SEQUENCES = Conversation(
    name="stop_sequences",
    anthropic={
        "stop_sequences": ["END", "\n\nHuman:"],
        "messages": [{"role": "user", "content": "Count to three, then say END."}],
    },
    openai={
        "stop": ["END", "\n\nHuman:"],
        "messages": [{"role": "user", "content": "Count to three, then say END."}],
    },
    text="One, two, three.",
    usage=Usage(prompt=50, completion=5),
    delivery={"finish_reason": "stop"},
    upstream=check_stop_sequences,
)

_LONG_CONTENT = "".join(
    f'def handler_{i}(event):\n\t"""Handle event #{i} — naïve \\ café "quoted" 🚀."""\n'
    f'\treturn {{"id": {i}, "path": "C:\\\\temp\\\\{i}", "ok": True}}\n\n'
    for i in range(150)
)

LONG_TOOL_ARGUMENTS = Conversation(
    name="long_tool_arguments",
    anthropic={
        "tools": anthropic_tools(WRITE),
        "messages": [{"role": "user", "content": "Write the handlers file."}],
    },
    openai={
        "tools": openai_tools(WRITE),
        "messages": [{"role": "user", "content": "Write the handlers file."}],
    },
    calls=(Call("Write", {"file_path": "/repo/handlers.py", "content": _LONG_CONTENT}),),
    stop_reason="tool_use",
    usage=Usage(prompt=120, completion=4000),
    delivery={"quirks": {"args_fragments": 64}},
)

NON_ASCII = Conversation(
    name="non_ascii",
    anthropic={
        "tools": anthropic_tools(NOTE),
        "messages": [{"role": "user", "content": "Grüße 😀 東京 — answer in kind."}],
    },
    openai={
        "tools": openai_tools(NOTE),
        "messages": [{"role": "user", "content": "Grüße 😀 東京 — answer in kind."}],
    },
    text="Grüße aus Köln — 東京の天気は晴れ ☀️ 😀 naïve café\u2028next line\u2029 ünïcödé ok",
    calls=(Call("Note", {"text": "Привет, мир! 你好 😀 \u2028 «quotes» \\ end"}),),
    stop_reason="tool_use",
    usage=Usage(prompt=70, completion=33),
    # a pause between chunks, so each reaches the proxy in its own network read
    delivery={"chunks": 14, "chunk_delay_ms": 1, "quirks": {"args_fragments": 11}},
    upstream=check_non_ascii_request,
)

CONVERSATIONS: tuple[Conversation, ...] = (
    TEXT,
    IMAGES,
    PARALLEL_TOOLS,
    THINKING,
    THINKING_TOOLS,
    RATE_LIMITED,
    FAILS_MIDSTREAM,
    STOP_SEQUENCES,
    LONG_TOOL_ARGUMENTS,
    NON_ASCII,
)
