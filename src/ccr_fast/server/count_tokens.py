"""POST /v1/messages/count_tokens: the routed provider's own count where asked for, else the local one.

The body is routed exactly like a Messages request, because the count a client wants is the count of the
model that will answer.  The provider's ``tokenizer`` setting (CCR v2's shape) then picks the counter::

    tokenizer: {
      default: { type: "tiktoken", encoding: "cl100k_base" },   // every model of the provider
      models: { "gemini-2.5-pro": { type: "api" } },             // per model, wins over default
    }

* ``tiktoken`` (also the default without a setting): the local counter, cl100k_base over the texts CCR counts
  (``ccr_fast.tokens``).  Its data ships with the package, nothing is downloaded, and fragment counts are
  cached, so it also serves routing on every request.  It runs on a worker thread when much text is new, so
  the dozen calls Claude Code's ``/context`` fires at once do not stall the streams on the event loop.
* ``api``: the upstream's own counter: Anthropic's ``/v1/messages/count_tokens`` (next to the provider's
  ``/v1/messages`` URL, same key and headers) or Gemini's ``:countTokens`` (the request translated as for
  ``generateContent``, so system prompt and tools count).  Exact, but one upstream call per count.  When it
  fails, or the provider has no counter (OpenAI-compatible APIs), the local count answers and the reason is
  logged.
* ``huggingface``, or a tiktoken ``encoding`` other than ``cl100k_base``: these would need tokenizer files
  downloaded at run time, which ccr-fast never does; the local cl100k count answers instead and a warning
  is logged once.  docs/providers.md says how far cl100k is from each provider's own tokenizer.

A request that cannot be routed (no ``Router.default``, an unknown provider in ``provider,model``) is still
counted locally: a token count needs no upstream, and Claude Code shows a failed count as an error.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import urlsplit, urlunsplit

import orjson

from ccr_fast.protocol.errors import GatewayError
from ccr_fast.protocol.gemini_request import anthropic_to_gemini, gemini_url
from ccr_fast.server.http import Request, Response, json_response
from ccr_fast.server.validate import parse_json_body, validate_messages_body
from ccr_fast.tokens import count_tokens_async
from ccr_fast.upstream.transport import UpstreamError, UpstreamRequest

if TYPE_CHECKING:
    from ccr_fast.config import ProviderConfig
    from ccr_fast.server.gateway import Gateway
    from ccr_fast.transformers import Plan

__all__ = ["TokenizerChoice", "anthropic_count_url", "handle_count_tokens", "tokenizer_choice"]

log = logging.getLogger("ccr_fast.count_tokens")

#: the encoding whose data ships with ccr-fast (src/ccr_fast/tokens/data)
BUNDLED_ENCODING: Final = "cl100k_base"
#: an upstream count that takes longer than this is abandoned for the local count: ``/context`` waits on it
UPSTREAM_COUNT_TIMEOUT_S: Final = 10.0
#: client headers an Anthropic upstream needs to see (auth is replaced by the provider's key)
_FORWARD_TO_ANTHROPIC: Final = ("anthropic-version", "anthropic-beta")
#: notes already logged, so a misconfigured provider warns once, not once per request
_noted: set[str] = set()


@dataclass(frozen=True, slots=True)
class TokenizerChoice:
    """How one provider/model's tokens are counted."""

    #: "api": the upstream's own counter; "local": the bundled cl100k counter
    kind: Literal["api", "local"] = "local"
    #: why a configured tokenizer is answered by the local counter instead (logged once)
    note: str | None = None


def tokenizer_choice(provider: ProviderConfig, model: str) -> TokenizerChoice:
    """The counter the provider's ``tokenizer`` setting asks for ``model`` (per-model entry, else default)."""
    settings = provider.tokenizer
    models = settings.get("models")
    chosen = models.get(model) if isinstance(models, Mapping) else None
    if not isinstance(chosen, Mapping):
        chosen = settings.get("default")
    if not isinstance(chosen, Mapping):
        return TokenizerChoice()
    kind = chosen.get("type", "tiktoken")
    where = f"provider '{provider.name}', model '{model}'"
    if kind == "api":
        return TokenizerChoice("api")
    if kind == "tiktoken":
        encoding = chosen.get("encoding", BUNDLED_ENCODING)
        if encoding == BUNDLED_ENCODING:
            return TokenizerChoice()
        return TokenizerChoice(
            note=f"{where}: tiktoken encoding {encoding!r} is not bundled; counting with {BUNDLED_ENCODING}"
        )
    if kind == "huggingface":
        return TokenizerChoice(
            note=f"{where}: huggingface tokenizers are not bundled (they would be downloaded at run time); "
            f"counting with {BUNDLED_ENCODING}"
        )
    return TokenizerChoice(note=f"{where}: unknown tokenizer type {kind!r}; counting with {BUNDLED_ENCODING}")


def anthropic_count_url(messages_url: str) -> str:
    """Anthropic's count endpoint for a provider whose ``api_base_url`` is its Messages endpoint.

    CCR users write the full ``…/v1/messages`` URL; a base that stops at ``/v1`` or at the host names the
    same API.  A query string is kept.
    """
    parts = urlsplit(messages_url)
    path = parts.path.rstrip("/")
    if not path.endswith("/messages"):
        path += "/messages" if path.endswith("/v1") else "/v1/messages"
    return urlunsplit(parts._replace(path=path + "/count_tokens"))


async def handle_count_tokens(gw: Gateway, req: Request) -> Response:
    body = parse_json_body(req.body)
    validate_messages_body(body, count_tokens=True)
    try:
        decision = await gw.router.route(body, req.headers, body_size=len(req.body))
    except GatewayError as err:
        log.info("%s count_tokens not routable (%s); counting locally", req.request_id, err.message)
        return json_response({"input_tokens": await count_tokens_async(body)})
    provider = gw.config.provider(decision.provider)
    choice = tokenizer_choice(provider, decision.model) if provider is not None else TokenizerChoice()
    if choice.note is not None and choice.note not in _noted:
        _noted.add(choice.note)
        log.warning("tokenizer setting: %s", choice.note)
    if choice.kind == "api" and provider is not None:
        counted = await _upstream_count(gw, req, body, provider, decision.model)
        if counted is not None:
            return json_response({"input_tokens": counted})
    if decision.token_count is not None:  # routing already counted this body locally
        return json_response({"input_tokens": decision.token_count})
    return json_response({"input_tokens": await count_tokens_async(body)})


async def _upstream_count(
    gw: Gateway, req: Request, body: dict[str, Any], provider: ProviderConfig, model: str
) -> int | None:
    """The upstream's own count, or None (logged) when it has none or the call fails."""
    plan = gw.plans.get(provider, model)
    if plan.unavailable or plan.endpoint not in ("anthropic", "gemini"):
        log.info(
            "%s provider '%s' has no token counting endpoint; counting locally", req.request_id, provider.name
        )
        return None
    if plan.endpoint == "anthropic":
        url, payload, field = _anthropic_request(body, plan, model)
        headers = dict(plan.headers)
        for name in _FORWARD_TO_ANTHROPIC:
            value = req.headers.get(name)
            if value:
                headers[name] = value
        headers.setdefault("anthropic-version", "2023-06-01")
    else:
        url, payload, field = _gemini_request(body, plan, model)
        headers = dict(plan.headers)
    upstream = UpstreamRequest(
        "POST",
        url,
        headers,
        payload,
        timeout=min(gw.upstream_timeout, UPSTREAM_COUNT_TIMEOUT_S),
        provider=plan.provider,
        proxy=gw.config.proxy_url,
    )
    try:
        resp = await gw.transport.send(upstream)
        try:
            raw = await resp.read()
        finally:
            resp.close()
    except UpstreamError as exc:
        log.warning(
            "%s token count from '%s' failed (%s); counting locally", req.request_id, plan.provider, exc
        )
        return None
    count = _read_count(raw, field) if resp.status == 200 else None
    if count is None:
        log.warning(
            "%s token count from '%s' answered %d without a count; counting locally",
            req.request_id,
            plan.provider,
            resp.status,
        )
    return count


def _anthropic_request(body: dict[str, Any], plan: Plan, model: str) -> tuple[str, bytes, str]:
    return anthropic_count_url(plan.url), orjson.dumps({**body, "model": model}), "input_tokens"


def _gemini_request(body: dict[str, Any], plan: Plan, model: str) -> tuple[str, bytes, str]:
    """``:countTokens`` with a whole ``generateContentRequest``: a bare ``contents`` would leave out the
    system instruction and the tools, which are most of a Claude Code request."""
    url = gemini_url(plan.url, model, stream=False).removesuffix(":generateContent") + ":countTokens"
    request = {"model": "models/" + model.removeprefix("models/"), **anthropic_to_gemini(body, model=model)}
    return url, orjson.dumps({"generateContentRequest": request}), "totalTokens"


def _read_count(raw: bytes, field: str) -> int | None:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    value = data.get(field) if isinstance(data, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None
