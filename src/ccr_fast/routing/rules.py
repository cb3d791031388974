"""CCR's routing rules: which provider and model answer a request.

A configured custom router is asked first; when it declines (returns None) or fails (logged, never
raised), the built-in rules run and the first match wins:

1. ``explicit``: the requested model is ``provider,model`` (Claude Code's ``/model provider,model``);
2. ``longContext``: the body counts more tokens than ``Router.longContextThreshold`` (60000 by
   default), or the session's previous turn used more than the threshold and this request counts
   more than 20000 tokens;
3. ``subagent``: a ``<CCR-SUBAGENT-MODEL>provider,model</CCR-SUBAGENT-MODEL>`` tag in any system
   text block (CCR reads only ``system[1]``; newer Claude Code puts the agent prompt elsewhere);
4. ``background``: the model name contains ``claude`` and ``haiku`` (every Claude Code haiku name);
5. ``webSearch``: a tool whose ``type`` starts with ``web_search``;
6. ``image``: the last user message carries an image, directly or inside a ``tool_result``;
7. ``think``: ``thinking`` is ``enabled`` or ``adaptive``;
8. ``default``.

Image comes before think on purpose (CCR checks it after think): Claude Code asks for adaptive
thinking on nearly every main-model request, so after think the image route would almost never
fire, and a think model is often text-only (e.g. ``deepseek-reasoner``) and cannot read the image.

The subagent tag is always removed from the system prompt once the custom router has seen it, even
when an earlier rule picks the route: it is an instruction to the proxy, never meant for a model.

Counting tokens is the only costly step, so it happens at most once per request and only when an
answer depends on it. A cl100k token is at least one byte of the text it encodes, so a body of
``body_size`` bytes counts at most ``body_size`` tokens; small bodies skip counting altogether.
(Image blocks count a fixed estimate and are the one exception: a body of tiny image URLs could
count more tokens than bytes. Such a body never approaches a real long-context threshold.)
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ccr_fast.protocol.errors import GatewayError
from ccr_fast.routing.custom import CustomRouter, RouterRequest
from ccr_fast.routing.session import SessionUsage, session_id
from ccr_fast.tokens.counter import TokenCounter, default_counter

log = logging.getLogger("ccr_fast.routing")

DEFAULT_LONG_CONTEXT_THRESHOLD = 60_000
#: A session past the threshold keeps the long-context model for requests above this many tokens.
SESSION_CONTINUATION_TOKENS = 20_000
_SUBAGENT_OPEN = "<CCR-SUBAGENT-MODEL>"
_SUBAGENT_TAG = re.compile(r"<CCR-SUBAGENT-MODEL>(.*?)</CCR-SUBAGENT-MODEL>", re.DOTALL)
_THINKING_ON = frozenset({"enabled", "adaptive"})

#: Where each scenario's route comes from, for error messages.
_ORIGIN = {
    "custom": "the custom router",
    "explicit": "the requested model",
    "longContext": "Router.longContext",
    "subagent": "the <CCR-SUBAGENT-MODEL> tag",
    "background": "Router.background",
    "webSearch": "Router.webSearch",
    "image": "Router.image",
    "think": "Router.think",
    "default": "Router.default",
}


class RouterSlots(Protocol):
    """The ``Router`` section of the config, as routing reads it."""

    @property
    def default(self) -> str | None: ...
    @property
    def background(self) -> str | None: ...
    @property
    def think(self) -> str | None: ...
    @property
    def long_context(self) -> str | None: ...
    @property
    def long_context_threshold(self) -> int: ...
    @property
    def web_search(self) -> str | None: ...
    @property
    def image(self) -> str | None: ...


class ProviderEntry(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def models(self) -> tuple[str, ...]: ...


class RoutingConfig(Protocol):
    """The parts of ``ccr_fast.config.Config`` routing depends on."""

    @property
    def router(self) -> RouterSlots: ...
    @property
    def raw(self) -> dict[str, Any]: ...
    def provider(self, name: str) -> ProviderEntry | None: ...


@dataclass(frozen=True, slots=True)
class RouteDecision:
    provider: str
    model: str
    #: "custom", "explicit", "longContext", "subagent", "background", "webSearch", "image", "think"
    #: or "default"
    scenario: str
    #: the request's token count, or None when no rule needed it
    token_count: int | None
    #: Claude Code's session id, for recording this turn's usage in ``Router.sessions``
    session_id: str | None = None


class _LazyTokenCount:
    """Counts one body at most once, whether a custom router or the built-in rules ask first."""

    __slots__ = ("_body", "_counter", "value")

    def __init__(self, counter: TokenCounter, body: dict[str, Any]) -> None:
        self._counter = counter
        self._body = body
        self.value: int | None = None

    def sync(self) -> int:
        if self.value is None:
            self.value = self._counter.count(self._body)
        return self.value

    async def get(self) -> int:
        if self.value is None:
            self.value = await self._counter.count_async(self._body)
        return self.value


class Router:
    """Routes requests per one config; build a new Router when the config changes.

    ``custom`` is loaded by the caller with ``load_custom_router(config.custom_router_path)`` at
    startup, so a broken router file is a startup error rather than a per-request one.
    """

    def __init__(
        self,
        config: RoutingConfig,
        *,
        sessions: SessionUsage | None = None,
        custom: CustomRouter | None = None,
        counter: TokenCounter | None = None,
    ) -> None:
        self._config = config
        self.sessions = sessions if sessions is not None else SessionUsage()
        self._custom = custom
        self._counter = counter if counter is not None else default_counter()

    async def route(
        self, body: dict[str, Any], headers: Mapping[str, str], *, body_size: int
    ) -> RouteDecision:
        """Pick the route for ``body`` (``body_size``: length in bytes of the raw request body).

        May rewrite ``body``: the subagent tag is stripped, and a custom router may edit it.
        Raises ``GatewayError`` 404 for a route naming an unknown provider and 400 when nothing
        routes the request (no ``Router.default``) or a route is not ``provider,model``.
        """
        sid = session_id(body, headers)
        tokens = _LazyTokenCount(self._counter, body)
        custom_route = await self._ask_custom(body, headers, sid, tokens)
        subagent_route = _take_subagent_tag(body)
        if custom_route is not None:
            scenario, route = "custom", custom_route
        else:
            scenario, route = await self._builtin(body, body_size, sid, subagent_route, tokens)
        return self._decide(route, scenario, tokens.value, sid)

    async def _ask_custom(
        self,
        body: dict[str, Any],
        headers: Mapping[str, str],
        sid: str | None,
        tokens: _LazyTokenCount,
    ) -> str | None:
        if self._custom is None:
            return None
        request = RouterRequest(body, headers, sid, tokens.sync)
        try:
            return await self._custom(request, self._config.raw)
        except Exception:
            log.exception("custom router %s failed; using the built-in rules", self._custom.source)
            return None

    async def _builtin(
        self,
        body: dict[str, Any],
        body_size: int,
        sid: str | None,
        subagent_route: str | None,
        tokens: _LazyTokenCount,
    ) -> tuple[str, str]:
        model = body.get("model")
        model = model if isinstance(model, str) else ""
        slots = self._config.router
        if "," in model:
            return "explicit", model
        if slots.long_context and await self._is_long_context(body_size, sid, tokens):
            return "longContext", slots.long_context
        if subagent_route is not None:
            return "subagent", subagent_route
        lowered = model.lower()
        if slots.background and "claude" in lowered and "haiku" in lowered:
            return "background", slots.background
        if slots.web_search and _has_web_search_tool(body):
            return "webSearch", slots.web_search
        if slots.image and _last_user_message_has_image(body):
            return "image", slots.image
        if slots.think and _thinking_enabled(body):
            return "think", slots.think
        if slots.default:
            return "default", slots.default
        raise GatewayError(
            400,
            f"no route for model {model!r}: Router.default is not set in the config and no other "
            "Router rule matched this request",
            "invalid_request_error",
        )

    async def _is_long_context(self, body_size: int, sid: str | None, tokens: _LazyTokenCount) -> bool:
        threshold = self._config.router.long_context_threshold or DEFAULT_LONG_CONTEXT_THRESHOLD
        previous = self.sessions.get(sid) if sid is not None else None
        by_session = previous is not None and previous > threshold and body_size > SESSION_CONTINUATION_TOKENS
        if body_size <= threshold and not by_session:
            return False
        count = await tokens.get()
        return count > threshold or (by_session and count > SESSION_CONTINUATION_TOKENS)

    def _decide(self, route: str, scenario: str, token_count: int | None, sid: str | None) -> RouteDecision:
        provider_name, comma, model = route.partition(",")
        provider_name, model = provider_name.strip(), model.strip()
        if not comma or not provider_name or not model:
            raise GatewayError(
                400,
                f"route {route!r} from {_ORIGIN[scenario]} is not of the form 'provider,model'",
                "invalid_request_error",
            )
        provider = self._find_provider(provider_name)
        if provider is None:
            known = ", ".join(self._provider_names()) or "none"
            raise GatewayError(
                404,
                f"unknown provider {provider_name!r} in route {route!r} from {_ORIGIN[scenario]} "
                f"(configured providers: {known})",
                "not_found_error",
            )
        return RouteDecision(provider.name, _canonical_model(provider, model), scenario, token_count, sid)

    def _find_provider(self, name: str) -> ProviderEntry | None:
        """Exact name first, then the one configured name that differs only in case."""
        provider = self._config.provider(name)
        if provider is not None:
            return provider
        lowered = name.lower()
        for candidate in self._provider_names():
            if candidate.lower() == lowered:
                return self._config.provider(candidate)
        return None

    def _provider_names(self) -> list[str]:
        raw = self._config.raw
        entries = raw.get("Providers", raw.get("providers"))
        if not isinstance(entries, list):
            return []
        return [
            entry["name"]
            for entry in entries
            if isinstance(entry, dict) and isinstance(entry.get("name"), str)
        ]


def _canonical_model(provider: ProviderEntry, model: str) -> str:
    """The configured spelling of ``model`` when it differs only in case; otherwise as given.

    Unlisted models pass through: providers accept models their config entry does not list.
    """
    if model in provider.models:
        return model
    lowered = model.lower()
    for candidate in provider.models:
        if candidate.lower() == lowered:
            return candidate
    return model


def _take_subagent_tag(body: dict[str, Any]) -> str | None:
    """The route in the first subagent tag of the system prompt, removing that tag from it."""
    system = body.get("system")
    if isinstance(system, str):
        found = _split_tag(system)
        if found is not None:
            body["system"], route = found
            return route
    elif isinstance(system, list):
        for block in system:
            if isinstance(block, dict) and block.get("type") == "text":
                text = block.get("text")
                if isinstance(text, str):
                    found = _split_tag(text)
                    if found is not None:
                        block["text"], route = found
                        return route
    return None


def _split_tag(text: str) -> tuple[str, str] | None:
    """``(text without the tag, route)``, or None when ``text`` has no non-empty tag."""
    if _SUBAGENT_OPEN not in text:
        return None
    match = _SUBAGENT_TAG.search(text)
    if match is None or not match.group(1).strip():
        return None
    return text[: match.start()] + text[match.end() :], match.group(1).strip()


def _has_web_search_tool(body: dict[str, Any]) -> bool:
    tools = body.get("tools")
    if not isinstance(tools, list):
        return False
    for tool in tools:
        if isinstance(tool, dict):
            kind = tool.get("type")
            if isinstance(kind, str) and kind.startswith("web_search"):
                return True
    return False


def _thinking_enabled(body: dict[str, Any]) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in _THINKING_ON


def _last_user_message_has_image(body: dict[str, Any]) -> bool:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return False
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            return isinstance(content, list) and _has_image(content)
    return False


def _has_image(blocks: list[Any]) -> bool:
    for block in blocks:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "image":
            return True
        if kind == "tool_result":
            inner = block.get("content")
            if isinstance(inner, list) and _has_image(inner):
                return True
    return False
