"""``vertex-gemini`` and ``vertex-claude``: Gemini and Claude on Google Vertex AI, configured as CCR does.

CCR reads the project from ``GOOGLE_CLOUD_PROJECT`` (else the ``project_id`` of the key file that
``GOOGLE_APPLICATION_CREDENTIALS`` names), the location from ``GOOGLE_CLOUD_LOCATION`` (default
``us-central1`` for Gemini, ``us-east5`` for Claude) and the credentials through Google's
application-default lookup; a CCR config therefore works unchanged. ccr-fast also takes transformer
options, which win over the environment::

    ["vertex-gemini", {"project": "my-project", "location": "europe-west4",
                       "credentials": "/path/to/key.json"}]

``credentials`` may also be the key itself (an object, or its JSON text); ``client_email`` and
``private_key`` (the fields of a key, as CCR's ``vertex-openai`` takes them) work too.

The request goes to ``{root}/projects/{project}/locations/{location}/publishers/{google|anthropic}/models/
{model}:{method}``. ``root`` is the provider's ``api_base_url`` with ``/v1`` appended unless it already
ends at an API version (``/v1``, ``/v1beta1``); a Google ``*aiplatform.googleapis.com`` host is replaced
by the location's own (``{location}-aiplatform.googleapis.com``, or ``aiplatform.googleapis.com`` for
``global``), so the host always matches the location.

* vertex-gemini speaks the Gemini dialect (``:generateContent``, ``:streamGenerateContent?alt=sse``).
* vertex-claude sends the Anthropic Messages body without ``model`` and with ``anthropic_version:
  "vertex-2023-10-16"`` to ``:rawPredict`` / ``:streamRawPredict``; the answer is Anthropic's own and
  passes through untouched.

Both authenticate with ``Authorization: Bearer <OAuth access token>`` (:mod:`ccr_fast.upstream.google_auth`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final
from urllib.parse import urlsplit, urlunsplit

import orjson

from ccr_fast.protocol.gemini_request import anthropic_to_gemini
from ccr_fast.transformers.base import PlanBuilder, Transformer

if TYPE_CHECKING:
    from ccr_fast.config import ProviderConfig
    from ccr_fast.transformers.plan import Plan
    from ccr_fast.upstream.google_auth import GoogleAuth

#: the ``anthropic_version`` Vertex AI wants in the body of a Claude request
VERTEX_ANTHROPIC_VERSION: Final = "vertex-2023-10-16"
ENV_PROJECT: Final = "GOOGLE_CLOUD_PROJECT"
ENV_LOCATION: Final = "GOOGLE_CLOUD_LOCATION"
#: ``Plan.platform`` of a Vertex AI plan
PLATFORM: Final = "vertex"

_STRING_OPTIONS = ("project", "location", "client_email", "private_key", "private_key_id", "token_uri")
_VERSION_PATH = re.compile(r"/v1(?:beta1)?$")
_LOCATION = re.compile(r"^[a-z0-9-]+$")


@dataclass(frozen=True, slots=True)
class VertexTarget:
    """Where a Vertex AI plan sends its requests, and how it signs them."""

    url: str
    #: the URL of streamed requests when it differs (Claude's :streamRawPredict)
    stream_url: str | None
    auth: GoogleAuth
    #: said once at start-up (no credentials, no project): requests fail until it is fixed
    warnings: tuple[str, ...]


class VertexTransformer(Transformer):
    """A Vertex AI endpoint: the URL and the credentials come from options, the environment and the key."""

    publisher: ClassVar[str]
    default_location: ClassVar[str]
    #: the upstream path, as GET /api/transformers shows it
    api_path: ClassVar[str]

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        for name in _STRING_OPTIONS:
            value = self.options.get(name)
            if value is not None and not (isinstance(value, str) and value):
                raise ValueError(f"option {name} must be a non-empty string")
        credentials = self.options.get("credentials")
        if credentials is not None and not isinstance(credentials, str | Mapping):
            raise ValueError(
                "option credentials must be a key file path, or the key as an object or JSON text"
            )
        location = self.options.get("location")
        if location is not None and not _LOCATION.match(location):
            raise ValueError(
                f"option location must be a Google Cloud location such as us-central1, got {location!r}"
            )

    def target(
        self, provider: ProviderConfig, model: str, env: Mapping[str, str] | None = None
    ) -> VertexTarget:
        # imported here: configs without a Vertex provider never load the Google auth code
        from ccr_fast.upstream.google_auth import GoogleAuth, resolve_credentials

        env = os.environ if env is None else env
        credentials = resolve_credentials(self.options, env)
        project = self.options.get("project") or env.get(ENV_PROJECT) or credentials.project_id
        location = self.options.get("location") or env.get(ENV_LOCATION) or self.default_location
        warnings: list[str] = []
        where = f"provider '{provider.name}' ({self.name})"
        if credentials.problem is not None:
            warnings.append(f"{where}: {credentials.problem}")
        problem = None
        if not project:
            problem = (
                f"no Google Cloud project for Vertex AI: set {ENV_PROJECT}, the transformer's 'project' "
                "option, or use a service-account key file that has a project_id"
            )
            warnings.append(f"{where}: {problem}")
        models = models_url(provider.api_base_url, project or "-", location, self.publisher)
        url, stream_url = self.urls(models, model)
        return VertexTarget(url, stream_url, GoogleAuth(credentials, problem), tuple(warnings))

    def urls(self, models: str, model: str) -> tuple[str, str | None]:
        raise NotImplementedError


class VertexGeminiTransformer(VertexTransformer):
    """Gemini on Google Vertex AI (generateContent, OAuth access token from a service account or ADC)."""

    name = "vertex-gemini"
    endpoint = "gemini"
    publisher = "google"
    default_location = "us-central1"
    api_path = "/v1/projects/:projectId/locations/:location/publishers/google/models/:modelAndAction"

    def urls(self, models: str, model: str) -> tuple[str, str | None]:
        # the Gemini dialect appends /{model}:generateContent or :streamGenerateContent?alt=sse
        return models, None


class VertexClaudeTransformer(VertexTransformer):
    """Claude on Google Vertex AI (rawPredict, OAuth access token from a service account or ADC)."""

    name = "vertex-claude"
    endpoint = "anthropic"
    publisher = "anthropic"
    default_location = "us-east5"
    api_path = "/v1/projects/:projectId/locations/:location/publishers/anthropic/models/:modelAndAction"

    def configure(self, plan: PlanBuilder) -> None:
        super().configure(plan)
        plan.anthropic_hooks.append(_vertex_claude_body)

    def urls(self, models: str, model: str) -> tuple[str, str | None]:
        return f"{models}/{model}:rawPredict", f"{models}/{model}:streamRawPredict"


def _vertex_claude_body(body: dict[str, Any]) -> None:
    """Vertex names the model in the URL and the API version in the body."""
    body.pop("model", None)
    body["anthropic_version"] = VERTEX_ANTHROPIC_VERSION


def models_url(api_base_url: str, project: str, location: str, publisher: str) -> str:
    """``…/projects/{p}/locations/{l}/publishers/{publisher}/models`` under the provider's URL."""
    parts = urlsplit(api_base_url)
    netloc = parts.netloc
    host = (parts.hostname or "").lower()
    if host == "aiplatform.googleapis.com" or host.endswith("-aiplatform.googleapis.com"):
        netloc = (
            "aiplatform.googleapis.com" if location == "global" else f"{location}-aiplatform.googleapis.com"
        )
    path = parts.path.rstrip("/")
    if not _VERSION_PATH.search(path):
        path += "/v1"
    path += f"/projects/{project}/locations/{location}/publishers/{publisher}/models"
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def count_tokens_request(body: Mapping[str, Any], plan: Plan, model: str) -> tuple[str, bytes, str]:
    """(url, payload, count field) of Vertex AI's token counter for ``model``.

    Gemini: ``:countTokens`` takes the contents, system instruction and tools themselves (the Gemini API's
    ``generateContentRequest`` wrapper is not Vertex's). Claude: ``count-tokens:rawPredict`` takes the
    Messages body with the model in it.
    """
    if plan.endpoint == "gemini":
        request = anthropic_to_gemini(body, model=model)
        fields = {k: request[k] for k in ("contents", "systemInstruction", "tools") if k in request}
        url = f"{plan.url}/{model.removeprefix('models/')}:countTokens"
        return url, orjson.dumps(fields), "totalTokens"
    models = plan.url.rpartition("/")[0]
    payload = {**body, "model": model, "anthropic_version": VERTEX_ANTHROPIC_VERSION}
    return f"{models}/count-tokens:rawPredict", orjson.dumps(payload), "input_tokens"
