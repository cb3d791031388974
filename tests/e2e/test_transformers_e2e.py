"""CCR's transformers and a Python plugin in a real ccr-fast, against the mock provider, seen by the SDK."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from ccr_fast.mock import MockProvider
from ccr_fast.transformers.reasoning import FORCE_REASONING_PROMPT
from ccr_fast.transformers.tooluse import EXIT_TOOL
from tests.servers import RunningServer, run_ccr_fast
from tests.sse_checks import blocks

pytestmark = pytest.mark.e2e

TOOLS: list[Any] = [
    {
        "name": "Read",
        "description": "Read a file",
        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    }
]
USER: list[anthropic.types.MessageParam] = [{"role": "user", "content": "hi"}]
ANSWER = 'Plain answer with "quotes", ünïcode 😀 and\nnew lines.'

PLUGIN = '''
from typing import Any

from ccr_fast.transformers.base import PlanBuilder, Transformer


class Stamp(Transformer):
    """Marks every upstream request, so a test can see that the plugin ran."""

    name = "stamp"

    def configure(self, plan: PlanBuilder) -> None:
        stamp = f"{self.options['prefix']}-{self.options['suffix']}"

        def hook(body: dict[str, Any]) -> None:
            body["user"] = stamp

        plan.upstream_hooks.append(hook)
'''


def provider(mock_url: str, name: str, use: list[Any], *, anthropic_api: bool = False) -> dict[str, Any]:
    path = "/v1/messages" if anthropic_api else "/v1/chat/completions"
    return {
        "name": name,
        "api_base_url": f"{mock_url}{path}",
        "api_key": f"sk-{name}",
        "models": ["up-model"],
        "transformer": {"use": (["Anthropic"] if anthropic_api else []) + use},
    }


@pytest.fixture(scope="module")
def server(mock_provider: MockProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp: Path = tmp_path_factory.mktemp("transformers")
    plugin = tmp / "stamp_plugin.py"
    plugin.write_text(textwrap.dedent(PLUGIN))
    url = mock_provider.url
    config = {
        "LOG_LEVEL": "warn",
        "retry": False,
        "circuitBreaker": False,
        "healthCheck": False,
        "failover": False,
        "transformers": [{"path": str(plugin), "options": {"prefix": "from-entry", "suffix": "x"}}],
        "Providers": [
            provider(url, "tu", ["tooluse", "enhancetool"]),
            provider(url, "atu", ["tooluse", "enhancetool"], anthropic_api=True),
            provider(url, "think", ["extrathinktag"]),
            provider(url, "force", ["forcereasoning"]),
            provider(
                url,
                "knobs",
                [
                    ["reasoning", {"format": "max_tokens"}],
                    ["sampling", {"temperature": 0.3, "repetition_penalty": 1.1}],
                    "maxcompletiontokens",
                ],
            ),
            provider(url, "plug", [["stamp", {"suffix": "from-chain"}]]),
        ],
        "Router": {"default": "tu,up-model"},
    }
    with run_ccr_fast(config, tmp, workers=1) as running:
        yield running


@pytest.fixture
def client(server: RunningServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key="anything", max_retries=0, timeout=20)


def exit_call(response: str) -> dict[str, Any]:
    return {"name": EXIT_TOOL, "arguments": {"response": response}}


def streamed(client: anthropic.Anthropic, model: str, **extra: Any) -> anthropic.types.Message:
    with client.messages.stream(model=model, max_tokens=500, messages=USER, **extra) as stream:
        return stream.get_final_message()


# --- tooluse + enhancetool ------------------------------------------------------------------------------


def test_tooluse_forces_a_tool_and_an_exit_call_streams_back_as_text(
    client: anthropic.Anthropic, mock: MockProvider
) -> None:
    mock.script(
        [
            {
                "tool_calls": [exit_call(ANSWER)],
                "usage": {"prompt_tokens": 90, "completion_tokens": 12},
                "quirks": {"args_fragments": 9},
            }
        ]
    )
    msg = streamed(client, "tu,up-model", tools=TOOLS)
    assert blocks(msg) == [{"type": "text", "text": ANSWER}]
    assert msg.stop_reason == "end_turn"
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (90, 12)
    sent = mock.requests[-1]["body"]
    assert sent["tool_choice"] == "required"
    assert [t["function"]["name"] for t in sent["tools"]] == ["Read", EXIT_TOOL]
    assert "Tool mode is active" in sent["messages"][0]["content"]


def test_tooluse_non_stream_and_a_real_call_next_to_the_exit_call(
    client: anthropic.Anthropic, mock: MockProvider
) -> None:
    mock.script([{"tool_calls": [exit_call("Reading it."), {"name": "Read", "arguments": {"path": "a.py"}}]}])
    msg = client.messages.create(model="tu,up-model", max_tokens=100, tools=TOOLS, messages=USER)
    assert [b["type"] for b in blocks(msg)] == ["text", "tool_use"]
    assert blocks(msg)[0]["text"] == "Reading it."
    assert msg.stop_reason == "tool_use"


def test_enhancetool_repairs_broken_arguments_stream_and_non_stream(
    client: anthropic.Anthropic, mock: MockProvider
) -> None:
    broken = "{'path': 'src/main.py', 'verbose': True,"
    reply = {"tool_calls": [{"name": "Read", "arguments": broken}], "quirks": {"args_fragments": 6}}
    mock.script([reply, reply])
    for msg in (
        streamed(client, "tu,up-model", tools=TOOLS),
        client.messages.create(model="tu,up-model", max_tokens=100, tools=TOOLS, messages=USER),
    ):
        (call,) = [b for b in blocks(msg) if b["type"] == "tool_use"]
        assert call["input"] == {"path": "src/main.py", "verbose": True}
        assert msg.stop_reason == "tool_use"


def test_filters_also_rewrite_an_anthropic_upstream(client: anthropic.Anthropic, mock: MockProvider) -> None:
    mock.script(
        [
            {
                "text": "First.",
                "tool_calls": [exit_call(ANSWER)],
                "quirks": {"args_fragments": 5},
                "usage": {"prompt_tokens": 30, "completion_tokens": 8},
            }
        ]
    )
    msg = streamed(client, "atu,up-model", tools=TOOLS)
    assert blocks(msg) == [{"type": "text", "text": "First."}, {"type": "text", "text": ANSWER}]
    assert msg.stop_reason == "end_turn"
    assert msg.usage.output_tokens == 8
    sent = mock.requests[-1]
    assert sent["path"] == "/v1/messages"
    assert sent["body"]["tool_choice"] == {"type": "any"}
    assert sent["body"]["tools"][-1]["name"] == EXIT_TOOL


# --- reasoning family -----------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
def test_extrathinktag_splits_think_tags_across_chunks(
    client: anthropic.Anthropic, mock: MockProvider, stream: bool
) -> None:
    mock.script([{"text": "<think>\nweigh options</think>\n\nGo with B.", "chunks": 17}])
    if stream:
        msg = streamed(client, "think,up-model")
    else:
        msg = client.messages.create(model="think,up-model", max_tokens=100, messages=USER)
    assert blocks(msg) == [
        {"type": "thinking", "thinking": "\nweigh options", "signature": ""},
        {"type": "text", "text": "Go with B."},
    ]
    assert msg.stop_reason == "end_turn"


def test_forcereasoning_prompts_and_reads_the_tagged_reasoning(
    client: anthropic.Anthropic, mock: MockProvider
) -> None:
    mock.script([{"text": "<reasoning_content>2+2 is 4</reasoning_content>\n4", "chunks": 9}])
    msg = streamed(client, "force,up-model", system="Be exact.")
    assert blocks(msg) == [
        {"type": "thinking", "thinking": "2+2 is 4", "signature": ""},
        {"type": "text", "text": "4"},
    ]
    sent = mock.requests[-1]["body"]["messages"]
    assert sent[0]["content"].endswith(FORCE_REASONING_PROMPT)
    assert sent[-1]["content"][-1] == {"type": "text", "text": FORCE_REASONING_PROMPT}


def test_reasoning_sampling_and_maxcompletiontokens_shape_the_request(
    client: anthropic.Anthropic, mock: MockProvider
) -> None:
    mock.script([{"thinking": "mulling", "text": "done", "quirks": {"reasoning_field": "reasoning"}}])
    msg = streamed(
        client,
        "knobs,up-model",
        thinking={"type": "enabled", "budget_tokens": 2048},
        extra_body={"temperature": 1.0, "top_k": 5},
    )
    assert [(b["type"], b.get("thinking") or b.get("text")) for b in blocks(msg)] == [
        ("thinking", "mulling"),
        ("text", "done"),
    ]
    sent = mock.requests[-1]["body"]
    assert sent["reasoning"] == {"max_tokens": 2048}
    assert sent["enable_thinking"] is True
    assert (sent["temperature"], sent["repetition_penalty"], sent["top_k"]) == (0.3, 1.1, 5)
    assert sent["max_completion_tokens"] == 500 and "max_tokens" not in sent


# --- plugins --------------------------------------------------------------------------------------------


def test_a_python_plugin_runs_with_its_entry_and_chain_options(
    client: anthropic.Anthropic, mock: MockProvider
) -> None:
    mock.script([{"text": "stamped"}])
    msg = client.messages.create(model="plug,up-model", max_tokens=50, messages=USER)
    assert blocks(msg) == [{"type": "text", "text": "stamped"}]
    assert mock.requests[-1]["body"]["user"] == "from-entry-from-chain"


def test_a_javascript_plugin_stops_startup_with_the_python_recipe(
    tmp_path: Path, mock_provider: MockProvider
) -> None:
    config = {
        "transformers": [{"path": "/opt/ccr/plugins/old.js"}],
        "Providers": [provider(mock_provider.url, "p", [])],
        "Router": {"default": "p,up-model"},
    }
    with run_ccr_fast(config, tmp_path, ready_url=None) as running:
        assert running.proc.wait(20) != 0
        log = running.log()
    assert "transformers[0].path" in log
    assert "JavaScript" in log and "class AddUser(Transformer):" in log
