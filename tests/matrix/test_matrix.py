"""The conversion matrix: every conversation, through every provider family and quirk set, per client SDK.

One ccr-fast server (a real Granian process) and one mock provider serve the whole module.  The config has
one provider per family, all pointing at the mock, which answers in that family's dialect: OpenAI-compatible
(with each quirk set real servers show), DeepSeek, OpenRouter and Groq through their transformers, Anthropic
pass-through, Gemini's native API and OpenAI's Responses API.  Each cell scripts the mock with the
conversation's intended answer, sends the conversation through the official ``anthropic`` SDK
(``/v1/messages``) or ``openai`` SDK (``/v1/chat/completions``), streamed or not, and asserts that what the
SDK assembles is the intended answer (content, stop reason, usage) or the intended error, and that the
provider received the conversation in its own shape.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import openai
import orjson
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState

from ccr_fast.mock import MockProvider
from ccr_fast.mock.dialects import THINKING_SIGNATURE
from ccr_fast.mock.responses_api import encrypted_reasoning
from ccr_fast.protocol.openai_responses_response import SIGNATURE_PREFIX
from tests.matrix.fixtures import CONVERSATIONS, Conversation
from tests.servers import RunningServer, run_ccr_fast

pytestmark = pytest.mark.e2e

JSONDict = dict[str, Any]
#: large enough for OpenAI's reasoning_effort to become a thinking budget (at most half of max_tokens)
MAX_TOKENS = 8192
TOOL_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
FINISH_REASONS = {"end_turn": "stop", "tool_use": "tool_calls"}


@dataclass(frozen=True, slots=True)
class Family:
    """A provider family as configured, and the quirks its (mock) upstream shows."""

    name: str
    provider: str
    model: str
    #: the API the provider speaks: "openai", "openai-responses", "anthropic" or "gemini"
    endpoint: str
    quirks: Mapping[str, Any] = field(default_factory=dict)

    @property
    def route(self) -> str:
        return f"{self.provider},{self.model}"


#: quirk sets of OpenAI-compatible servers (protocols.md §3.5), each a combination some real server shows
FAMILIES = (
    Family("openai", "oai", "gpt-matrix", "openai"),
    Family(
        "openai-ollama",
        "oai",
        "gpt-matrix",
        "openai",
        {"tool_index_zero": True, "usage_on_finish_chunk": True},
    ),
    Family(
        "openai-gemini-compat",
        "oai",
        "gpt-matrix",
        "openai",
        {"no_tool_index": True, "finish_stop_with_tools": True, "usage_on_finish_chunk": True},
    ),
    Family(
        "openai-interleaved",
        "oai",
        "gpt-matrix",
        "openai",
        {"interleave_tool_args": True, "args_fragments": 5, "usage_every_chunk": True, "crlf": True},
    ),
    Family(
        "openai-abrupt",
        "oai",
        "gpt-matrix",
        "openai",
        {"no_finish_reason": True, "no_done": True, "reasoning_field": "reasoning"},
    ),
    Family("deepseek", "ds", "deepseek-chat", "openai"),
    Family("openrouter", "or", "anthropic/claude-sonnet-4", "openai", {"reasoning_field": "reasoning"}),
    Family("groq", "groq", "llama-3.3-70b-versatile", "openai", {"groq_usage": True}),
    Family("anthropic", "anth", "claude-sonnet-4-5", "anthropic"),
    Family("anthropic-crlf", "anth", "claude-sonnet-4-5", "anthropic", {"crlf": True}),
    Family("gemini", "gem", "gemini-2.5-flash", "gemini"),
    Family("openai-responses", "resp", "gpt-5-matrix", "openai-responses"),
    Family(
        "openai-responses-interleaved",
        "resp",
        "gpt-5-matrix",
        "openai-responses",
        {"interleave_tool_args": True, "args_fragments": 5, "crlf": True},
    ),
)
CLIENTS = ("anthropic-stream", "anthropic", "openai-stream", "openai")


def _cells() -> Iterator[Any]:
    for conversation, family, client in itertools.product(CONVERSATIONS, FAMILIES, CLIENTS):
        streamed = client.endswith("-stream")
        if conversation.failure is not None and conversation.failure.midstream and not streamed:
            continue  # a failure after the first byte needs a stream to happen in
        yield pytest.param(conversation, family, client, id=f"{conversation.name}-{family.name}-{client}")


def config(mock_url: str) -> JSONDict:
    openai_url = f"{mock_url}/v1/chat/completions"
    return {
        "LOG_LEVEL": "warning",
        "Providers": [
            {"name": "oai", "api_base_url": openai_url, "api_key": "sk-oai", "models": ["gpt-matrix"]},
            {
                "name": "ds",
                "api_base_url": openai_url,
                "api_key": "sk-ds",
                "models": ["deepseek-chat"],
                "transformer": {"use": ["deepseek"]},
            },
            {
                "name": "or",
                "api_base_url": openai_url,
                "api_key": "sk-or",
                "models": ["anthropic/claude-sonnet-4"],
                "transformer": {"use": ["openrouter"]},
            },
            {
                "name": "groq",
                "api_base_url": openai_url,
                "api_key": "gsk-groq",
                "models": ["llama-3.3-70b-versatile"],
                "transformer": {"use": ["groq"]},
            },
            {
                "name": "anth",
                "api_base_url": f"{mock_url}/v1/messages",
                "api_key": "sk-ant",
                "models": ["claude-sonnet-4-5"],
                "transformer": {"use": ["Anthropic"]},
            },
            {
                "name": "gem",
                "api_base_url": f"{mock_url}/v1beta/models/",
                "api_key": "gm-key",
                "models": ["gemini-2.5-flash"],
                "transformer": {"use": ["gemini"]},
            },
            {
                "name": "resp",
                "api_base_url": f"{mock_url}/v1/responses",
                "api_key": "sk-resp",
                "models": ["gpt-5-matrix"],
                "transformer": {"use": ["openai-responses"]},
            },
        ],
        "Router": {"default": "oai,gpt-matrix"},
        # every upstream answer must reach the client exactly once, as it was scripted
        "retry": False,
        "circuitBreaker": False,
        "healthCheck": False,
        "failover": False,
    }


@pytest.fixture(scope="module")
def server(mock_provider: MockProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp: Path = tmp_path_factory.mktemp("matrix")
    with run_ccr_fast(config(mock_provider.url), tmp, workers=1) as running:
        yield running


@pytest.fixture(scope="module")
def anthropic_client(server: RunningServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key="matrix", max_retries=0, timeout=20)


@pytest.fixture(scope="module")
def openai_client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="matrix", max_retries=0, timeout=20)


# --- the intended answer, as each SDK shows it --------------------------------------------------------------


def intended_anthropic(conversation: Conversation, family: Family) -> JSONDict:
    content: list[JSONDict] = []
    if conversation.thinking:
        # Anthropic signs thinking, the Responses API encrypts it; other translated thinking is unsigned
        signature = ""
        if family.endpoint == "anthropic":
            signature = THINKING_SIGNATURE
        elif family.endpoint == "openai-responses":
            signature = SIGNATURE_PREFIX + encrypted_reasoning(conversation.thinking)
        content.append({"type": "thinking", "thinking": conversation.thinking, "signature": signature})
    if conversation.text:
        content.append({"type": "text", "text": conversation.text})
    content += [{"type": "tool_use", "name": call.name, "input": call.input} for call in conversation.calls]
    usage = conversation.usage
    return {
        "content": content,
        "stop_reason": conversation.stop_reason,
        "usage": {
            "input_tokens": usage.prompt - usage.cached,
            "output_tokens": usage.completion,
            "cache_read_input_tokens": usage.cached,
        },
    }


def anthropic_view(message: anthropic.types.Message) -> JSONDict:
    content: list[JSONDict] = []
    ids: list[str] = []
    for block in message.content:
        if block.type == "thinking":
            content.append({"type": "thinking", "thinking": block.thinking, "signature": block.signature})
        elif block.type == "text":
            content.append({"type": "text", "text": block.text})
        elif block.type == "tool_use":
            content.append({"type": "tool_use", "name": block.name, "input": block.input})
            ids.append(block.id)
        else:
            content.append({"type": block.type})
    assert all(TOOL_ID.fullmatch(tool_id) for tool_id in ids) and len(set(ids)) == len(ids), ids
    usage = message.usage
    return {
        "content": content,
        "stop_reason": message.stop_reason,
        "usage": {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_read_input_tokens": usage.cache_read_input_tokens or 0,
        },
    }


def intended_openai(conversation: Conversation) -> JSONDict:
    return {
        "reasoning": conversation.thinking,
        "content": conversation.text,
        "tool_calls": [(call.name, call.input) for call in conversation.calls],
        "finish_reason": FINISH_REASONS[conversation.stop_reason],
        "usage": (conversation.usage.prompt, conversation.usage.completion),
    }


def openai_view(completion: openai.types.chat.ChatCompletion) -> JSONDict:
    (choice,) = completion.choices
    message = choice.message
    extra = message.model_extra or {}
    calls = message.tool_calls or []
    assert len({call.id for call in calls}) == len(calls)
    usage = completion.usage
    assert usage is not None
    return {
        "reasoning": extra.get("reasoning_content") or "",
        "content": message.content or "",
        "tool_calls": [
            (call.function.name, orjson.loads(call.function.arguments))
            for call in calls
            if call.type == "function"
        ],
        "finish_reason": choice.finish_reason,
        "usage": (usage.prompt_tokens, usage.completion_tokens),
    }


# --- the clients --------------------------------------------------------------------------------------------


def ask_anthropic(client: anthropic.Anthropic, request: JSONDict, streamed: bool) -> anthropic.types.Message:
    if not streamed:
        return client.messages.create(**request)
    with client.messages.stream(**request) as stream:
        return stream.get_final_message()


def ask_openai(client: openai.OpenAI, request: JSONDict, streamed: bool) -> openai.types.chat.ChatCompletion:
    if not streamed:
        return client.chat.completions.create(**request)
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    for chunk in client.chat.completions.create(
        **request, stream=True, stream_options={"include_usage": True}
    ):
        state.handle_chunk(chunk)
    return state.get_final_completion()


def check_anthropic(
    client: anthropic.Anthropic, conversation: Conversation, family: Family, streamed: bool
) -> None:
    request = {"model": family.route, "max_tokens": MAX_TOKENS, **conversation.anthropic}
    failure = conversation.failure
    if failure is None:
        assert anthropic_view(ask_anthropic(client, request, streamed)) == intended_anthropic(
            conversation, family
        )
        return
    with pytest.raises(anthropic.APIStatusError) as raised:
        ask_anthropic(client, request, streamed)
    error = raised.value
    assert isinstance(error.body, dict)
    assert error.body["error"]["type"] == failure.error_type
    assert failure.message in error.body["error"]["message"]
    if not failure.midstream:
        assert error.status_code == failure.status
        assert isinstance(error, anthropic.RateLimitError)
        assert error.response.headers.get("retry-after") == str(failure.retry_after)


def check_openai(client: openai.OpenAI, conversation: Conversation, family: Family, streamed: bool) -> None:
    request = {"model": family.route, "max_tokens": MAX_TOKENS, **conversation.openai}
    failure = conversation.failure
    if failure is None:
        assert openai_view(ask_openai(client, request, streamed)) == intended_openai(conversation)
        return
    with pytest.raises(openai.APIError) as raised:
        ask_openai(client, request, streamed)
    assert failure.message in raised.value.message
    if not failure.midstream:
        assert isinstance(raised.value, openai.RateLimitError)
        assert raised.value.status_code == failure.status
        assert raised.value.response.headers.get("retry-after") == str(failure.retry_after)


def check_upstream(mock: MockProvider, conversation: Conversation, family: Family, streamed: bool) -> None:
    (sent,) = mock.requests
    body = sent["body"]
    if family.endpoint == "gemini":
        method = "streamGenerateContent" if streamed else "generateContent"
        assert sent["path"] == f"/v1beta/models/{family.model}:{method}"
    else:
        assert body["model"] == family.model
        assert body.get("stream", False) is streamed
    if conversation.upstream is not None:
        conversation.upstream(family.name, family.endpoint, body)


@pytest.mark.parametrize(("conversation", "family", "client"), list(_cells()))
def test_matrix(
    conversation: Conversation,
    family: Family,
    client: str,
    mock: MockProvider,
    anthropic_client: anthropic.Anthropic,
    openai_client: openai.OpenAI,
) -> None:
    mock.script([conversation.mock_reply(family.quirks)])
    streamed = client.endswith("-stream")
    if client.startswith("anthropic"):
        check_anthropic(anthropic_client, conversation, family, streamed)
    else:
        check_openai(openai_client, conversation, family, streamed)
    check_upstream(mock, conversation, family, streamed)
