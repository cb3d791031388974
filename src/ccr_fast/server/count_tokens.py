"""POST /v1/messages/count_tokens: the routed provider's own count where asked for, else the local one.

The body is routed exactly like a Messages request, because the count a client wants is the count of the
model that will answer.  The provider's ``tokenizer`` setting (CCR v2's shape) then picks the counter::

    tokenizer: {
      default: { type: "tiktoken", encoding: "cl100k_base" },   // every model of the provider
      models: { "gemini-2.5-pro": { type: "api" } },             // per model, wins over default
    }

* no setting, or ``tiktoken``: the local counter over the texts CCR counts (``ccr_fast.tokens``), with the
  model's own encoding when it is bundled: o200k_base for OpenAI's current models (gpt-4o, gpt-4.1, gpt-5,
  o-series), cl100k_base (CCR's) for everything else; ``encoding`` picks one.  The data ships with the
  package, nothing is downloaded, each encoding is loaded the first time a model needs it, and fragment
  counts are cached.  Large new text is counted on a worker thread, so the dozen calls Claude Code's
  ``/context`` fires at once do not stall the streams on the event loop.
* ``huggingface``: Qwen's and DeepSeek-V3's tokenizers are bundled (``model``: the Hugging Face id); any
  other model's ``tokenizer.json`` is read from ``path`` (with the optional ``tokenizers`` package).
* ``api``: the upstream's own counter: Anthropic's ``/v1/messages/count_tokens`` (next to the provider's
  ``/v1/messages`` URL, same key and headers) or Gemini's ``:countTokens`` (the request translated as for
  ``generateContent``, so system prompt and tools count).  Exact, but one upstream call per count.  When it
  fails, or the provider has no counter (OpenAI-compatible APIs), the local count answers and the reason is
  logged.
* A setting that cannot be followed (an encoding or model whose tokenizer is not bundled, a missing file)
  counts with the model's default encoding, and a warning is logged once.  ``ccr_fast.tokens.choice`` reads
  the setting; docs/providers.md says how close each local count is to the provider's own tokenizer.

A request that cannot be routed (no ``Router.default``, an unknown provider in ``provider,model``) is still
counted locally: a token count needs no upstream, and Claude Code shows a failed count as an error.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit, urlunsplit

import orjson

from ccr_fast.protocol.errors import GatewayError
from ccr_fast.protocol.gemini_request import anthropic_to_gemini, gemini_url
from ccr_fast.server.http import Request, Response, json_response
from ccr_fast.server.validate import parse_json_body, validate_messages_body
from ccr_fast.tokens import count_tokens_async, counter_for
from ccr_fast.tokens.choice import TokenizerChoice, local_counter, tokenizer_choice
from ccr_fast.transformers.vertex import count_tokens_request as vertex_count_request
from ccr_fast.upstream.transport import UpstreamError, UpstreamRequest

if TYPE_CHECKING:
    from ccr_fast.config import ProviderConfig
    from ccr_fast.server.gateway import Gateway
    from ccr_fast.transformers import Plan

__all__ = ["TokenizerChoice", "anthropic_count_url", "handle_count_tokens", "tokenizer_choice"]

log = logging.getLogger("ccr_fast.count_tokens")

#: an upstream count that takes longer than this is abandoned for the local count: ``/context`` waits on it
UPSTREAM_COUNT_TIMEOUT_S: Final = 10.0
#: client headers an Anthropic upstream needs to see (auth is replaced by the provider's key)
_FORWARD_TO_ANTHROPIC: Final = ("anthropic-version", "anthropic-beta")
#: notes already logged, so a misconfigured provider warns once, not once per request
_noted: set[str] = set()


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
    if decision.token_count is not None and choice.counts_like_routing:  # routing already counted it
        return json_response({"input_tokens": decision.token_count})
    return json_response({"input_tokens": await _local_count(req, body, choice)})


async def _local_count(req: Request, body: dict[str, Any], choice: TokenizerChoice) -> int:
    """``choice``'s local count; a ``tokenizer.json`` that cannot be read falls back to the encoding."""
    try:
        return await local_counter(choice).count_async(body)
    except ValueError as exc:
        if choice.path is None:
            raise
        note = f"{exc}; counting with {choice.encoding}"
        if note not in _noted:
            _noted.add(note)
            log.warning("%s tokenizer setting: %s", req.request_id, note)
        return await counter_for(choice.encoding).count_async(body)


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
        if plan.auth is not None:  # Vertex AI's access token (an UpstreamError when there is none)
            await plan.auth.authorize(upstream, gw.transport)
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
    if plan.platform is not None:
        return vertex_count_request(body, plan, model)
    return anthropic_count_url(plan.url), orjson.dumps({**body, "model": model}), "input_tokens"


def _gemini_request(body: dict[str, Any], plan: Plan, model: str) -> tuple[str, bytes, str]:
    """``:countTokens`` with a whole ``generateContentRequest``: a bare ``contents`` would leave out the
    system instruction and the tools, which are most of a Claude Code request."""
    if plan.platform is not None:
        return vertex_count_request(body, plan, model)
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
