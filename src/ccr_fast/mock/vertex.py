"""Google's routes in the mock provider: Vertex AI, its OAuth token endpoint, and Gemini's ``:countTokens``.

Vertex AI (``/v1/projects/{p}/locations/{l}/publishers/{publisher}/models/{model}:{method}``, also under
``/v1beta1``) accepts only a bearer token the mock's token endpoint issued (:mod:`.google_oauth`); a
missing, unknown or expired token gets Google's 401 ``UNAUTHENTICATED``.

* ``publishers/google``: ``:generateContent`` and ``:streamGenerateContent`` answer as the Gemini API
  does, ``:countTokens`` counts (Vertex's body: ``contents``, ``systemInstruction``, ``tools``).
* ``publishers/anthropic``: ``:rawPredict`` and ``:streamRawPredict`` answer as the Messages API does,
  after checking what Vertex wants: no ``model`` in the body (it is in the URL), ``anthropic_version``
  ``vertex-2023-10-16``, and ``stream`` true exactly for ``:streamRawPredict``. ``count-tokens:rawPredict``
  counts.

The Gemini API's own ``/v1beta/models/{model}:countTokens`` (body ``contents`` or
``generateContentRequest``) counts too. A count is deterministic and independent of any tokenizer: the
number of whitespace-separated words in every text of the request (:func:`word_count`), so a test can
tell an upstream count from a local one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

import orjson

from ccr_fast.mock.dialects import GEMINI, AnthropicMessages
from ccr_fast.mock.google_oauth import PATH as TOKEN_PATH
from ccr_fast.mock.google_oauth import OAuthServer
from ccr_fast.mock.replies import JSON_TYPE, Dialect, Outcome, RequestContext

VERTEX_ANTHROPIC_VERSION: Final = "vertex-2023-10-16"
_VERTEX = re.compile(
    r"^/v1(?:beta1)?/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/publishers/(?P<publisher>google|anthropic)/models/(?P<model>[^/:]+):(?P<method>[A-Za-z]+)$"
)
_GEMINI_COUNT = re.compile(r"^/v1(?:beta)?/models/[^/:]+:countTokens$")
_GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND"}

Route = Callable[[Any], Outcome]
#: answers a provider request in a dialect (the mock server's script and auto replies)
Provider = Callable[[Dialect, Any], Outcome]


def word_count(value: Any, *, skip: frozenset[str] = frozenset({"role", "type", "model"})) -> int:
    """Words in every string of a request body, keys and the values of ``skip`` keys left out."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, Mapping):
        return sum(word_count(v, skip=skip) for k, v in value.items() if k not in skip)
    if isinstance(value, list):
        return sum(word_count(v, skip=skip) for v in value)
    return 0


def _google_error(status: int, message: str) -> Outcome:
    body = {"error": {"code": status, "message": message, "status": _GOOGLE_STATUS.get(status, "UNKNOWN")}}
    return Outcome(status, JSON_TYPE, orjson.dumps(body))


def _json(value: Any) -> Outcome:
    return Outcome(200, JSON_TYPE, orjson.dumps(value))


def _body(request: Any) -> Any:
    try:
        return orjson.loads(request.body)
    except orjson.JSONDecodeError:
        return None


class _VertexMessages(AnthropicMessages):
    """The Messages dialect with the model taken from the URL, where Vertex puts it."""

    def context(
        self, body: Mapping[str, Any], *, path: str, query: str, body_len: int, serial: int
    ) -> RequestContext:
        ctx = super().context(body, path=path, query=query, body_len=body_len, serial=serial)
        model = path.rpartition("/")[2].partition(":")[0]
        return RequestContext(
            model=model,
            stream=ctx.stream,
            include_usage=ctx.include_usage,
            sse=ctx.sse,
            body_len=ctx.body_len,
            serial=ctx.serial,
            created=ctx.created,
        )


_VERTEX_MESSAGES = _VertexMessages()


class GoogleRoutes:
    """The mock's Google routes; ``oauth`` is the token endpoint's state, for tests to drive."""

    def __init__(self, provider: Provider) -> None:
        self._provider = provider
        self.oauth = OAuthServer()

    def reset(self) -> None:
        self.oauth.reset()

    def route(self, path: str) -> Route | None:
        """The handler for ``path``, or None when it is not one of Google's."""
        if path == TOKEN_PATH:
            return self._token
        found = _VERTEX.match(path)
        if found is not None:
            publisher, model, method = found["publisher"], found["model"], found["method"]
            return lambda request: self._vertex(request, publisher, model, method)
        if _GEMINI_COUNT.match(path):
            return self._gemini_count
        return None

    def _token(self, request: Any) -> Outcome:
        return self.oauth.grant(request.body, request.headers.get("host", ""))

    def _vertex(self, request: Any, publisher: str, model: str, method: str) -> Outcome:
        problem = self.oauth.problem(request.headers.get("authorization"))
        if problem is not None:
            return _google_error(401, problem)
        if publisher == "google":
            if method in ("generateContent", "streamGenerateContent"):
                return self._provider(GEMINI, request)
            if method == "countTokens":
                return self._vertex_gemini_count(request)
        elif method == "rawPredict" and model == "count-tokens":
            return self._vertex_claude_count(request)
        elif method in ("rawPredict", "streamRawPredict"):
            body = _body(request)
            problem = _claude_problem(body, method)
            if problem is not None:
                return _google_error(400, problem)
            return self._provider(_VERTEX_MESSAGES, request)
        return _google_error(404, f"method {method} is not served for publisher {publisher}")

    def _vertex_gemini_count(self, request: Any) -> Outcome:
        body = _body(request)
        if not isinstance(body, dict) or not isinstance(body.get("contents"), list):
            return _google_error(400, "countTokens needs 'contents'")
        if "generateContentRequest" in body:
            return _google_error(400, 'Invalid JSON payload received. Unknown name "generateContentRequest"')
        return _json({"totalTokens": word_count(body), "totalBillableCharacters": len(request.body)})

    def _vertex_claude_count(self, request: Any) -> Outcome:
        body = _body(request)
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            return _google_error(400, "count-tokens needs the model in the body")
        return _json({"input_tokens": word_count(body)})

    def _gemini_count(self, request: Any) -> Outcome:
        """The Gemini API's ``:countTokens`` (key checked as for generateContent: present)."""
        if not (request.headers.get("x-goog-api-key") or "key=" in request.query):
            return _google_error(401, "Method doesn't allow unregistered callers. Please use an API key.")
        body = _body(request)
        if isinstance(body, dict) and isinstance(body.get("generateContentRequest"), dict):
            body = body["generateContentRequest"]
        if not isinstance(body, dict) or not isinstance(body.get("contents"), list):
            return _google_error(400, "countTokens needs 'contents' or 'generateContentRequest'")
        return _json({"totalTokens": word_count(body)})


def _claude_problem(body: Any, method: str) -> str | None:
    """What Vertex AI would refuse in a Claude request body."""
    if not isinstance(body, dict):
        return "the request body must be a JSON object"
    if "model" in body:
        return "model: Extra inputs are not permitted (Vertex AI takes the model from the URL)"
    if body.get("anthropic_version") != VERTEX_ANTHROPIC_VERSION:
        return (
            f"anthropic_version must be {VERTEX_ANTHROPIC_VERSION!r}, got {body.get('anthropic_version')!r}"
        )
    if (body.get("stream") is True) != (method == "streamRawPredict"):
        return f"{method} does not match stream={body.get('stream')!r}"
    return None
