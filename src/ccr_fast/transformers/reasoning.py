"""CCR's reasoning transformers: ``reasoning``, ``forcereasoning`` and ``extrathinktag``.

* ``reasoning`` asks the upstream to reason when the client asked Claude to think, in the several
  dialects OpenAI-compatible servers use for it: the ``reasoning`` object (OpenRouter-style ``{effort}``,
  or ``{max_tokens}`` with option ``format: "max_tokens"``), ``enable_thinking`` (Qwen on DashScope,
  SiliconFlow) and ``thinking: {type}`` (GLM, Doubao), as CCR's does.  With ``enable: false`` it asks for
  no reasoning at all, on every request.  The reasoning comes back as ``reasoning_content`` or
  ``reasoning``, which the response translators already turn into thinking blocks.
* ``forcereasoning`` makes a model without native reasoning write its thoughts first, between
  ``<reasoning_content>`` tags, by appending CCR's instruction to the system prompt and the newest user
  turn; the tagged text comes back as a thinking block.
* ``extrathinktag`` turns ``<think>…</think>`` at the start of an answer into a thinking block.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Final

from ccr_fast.transformers.base import PlanBuilder, Transformer
from ccr_fast.transformers.thinking_tags import TaggedThinking, split_tagged_thinking

__all__ = [
    "FORCE_REASONING_PROMPT",
    "ExtraThinkTagTransformer",
    "ForceReasoningTransformer",
    "ReasoningTransformer",
    "add_reasoning_prompt",
]

REASONING_FORMATS: Final = ("effort", "max_tokens")
REASONING_OPEN: Final = "<reasoning_content>"
REASONING_CLOSE: Final = "</reasoning_content>"
THINK_OPEN: Final = "<think>"
THINK_CLOSE: Final = "</think>"
FORCE_REASONING_PROMPT: Final = (
    "You are an expert reasoning model.\n"
    "Always think step by step before answering. Even if the problem seems simple, always write down your "
    "reasoning process explicitly.\n"
    "Never skip your chain of thought.\n"
    "Use the following output format:\n"
    f"{REASONING_OPEN}(Write your full detailed thinking here.){REASONING_CLOSE}\n\n"
    "Write your final conclusion here."
)


class ReasoningTransformer(Transformer):
    """reasoning {enable?, format?}: thinking -> the upstream's reasoning switches; reasoning -> thinking."""

    name = "reasoning"

    def configure(self, plan: PlanBuilder) -> None:
        enable = self.options.get("enable", True)
        if not isinstance(enable, bool):
            raise ValueError("option enable must be true or false")
        form = self.options.get("format", "effort")
        if form not in REASONING_FORMATS:
            raise ValueError(f"option format must be one of {', '.join(REASONING_FORMATS)}")
        if (plan.endpoint or "openai") != "openai":
            return  # the switches are OpenAI-compatible request fields; other endpoints have their own
        if not enable:
            plan.tune(thinking_param="none")
            plan.upstream_hooks.append(_reasoning_off)
        elif form == "effort":
            # The translator buckets the budget (or the adaptive effort) into reasoning_effort; the hook
            # moves it into the reasoning object.
            plan.tune(thinking_param="reasoning_effort")
            plan.upstream_hooks.append(_effort_to_reasoning)
        else:
            # The translator writes reasoning: {max_tokens: budget}, or {enabled: true} without a budget.
            plan.tune(thinking_param="openrouter")
            plan.upstream_hooks.append(_reasoning_on)


def _effort_to_reasoning(body: dict[str, Any]) -> None:
    effort = body.pop("reasoning_effort", None)
    if isinstance(effort, str):
        body["reasoning"] = {"effort": effort}
        _reasoning_on(body)


def _reasoning_on(body: dict[str, Any]) -> None:
    if isinstance(body.get("reasoning"), dict):
        body["enable_thinking"] = True
        body["thinking"] = {"type": "enabled"}


def _reasoning_off(body: dict[str, Any]) -> None:
    body.pop("reasoning", None)
    body.pop("reasoning_effort", None)
    body["enable_thinking"] = False
    body["thinking"] = {"type": "disabled"}


class ForceReasoningTransformer(Transformer):
    """forcereasoning: prompts a non-reasoning model to think in <reasoning_content> tags -> thinking."""

    name = "forcereasoning"

    def configure(self, plan: PlanBuilder) -> None:
        plan.anthropic_hooks.append(add_reasoning_prompt)
        plan.response_filters.append(partial(TaggedThinking, REASONING_OPEN, REASONING_CLOSE))
        plan.message_hooks.append(
            partial(split_tagged_thinking, open_tag=REASONING_OPEN, close_tag=REASONING_CLOSE)
        )


def add_reasoning_prompt(body: dict[str, Any]) -> None:
    """Append the instruction to the system prompt and to the newest user turn (both, as CCR does)."""
    system = body.get("system")
    if isinstance(system, list):
        system.append({"type": "text", "text": FORCE_REASONING_PROMPT})
    elif isinstance(system, str) and system:
        body["system"] = f"{system}\n\n{FORCE_REASONING_PROMPT}"
    else:
        body["system"] = FORCE_REASONING_PROMPT
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        return
    content = last.get("content")
    if isinstance(content, str):
        last["content"] = [
            {"type": "text", "text": content},
            {"type": "text", "text": FORCE_REASONING_PROMPT},
        ]
    elif isinstance(content, list):
        # After tool results the text lands in a user message of its own, as CCR adds one.
        content.append({"type": "text", "text": FORCE_REASONING_PROMPT})


class ExtraThinkTagTransformer(Transformer):
    """extrathinktag: <think>...</think> at the start of an answer becomes a thinking block."""

    name = "extrathinktag"

    def configure(self, plan: PlanBuilder) -> None:
        plan.response_filters.append(partial(TaggedThinking, THINK_OPEN, THINK_CLOSE))
        plan.message_hooks.append(partial(split_tagged_thinking, open_tag=THINK_OPEN, close_tag=THINK_CLOSE))
