"""vertex-gemini and vertex-claude as a plan: CCR's project/location/credential sources, the URLs, the
start-up warnings, and what the request path reads from the plan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from ccr_fast.config import Config, config_from_dict
from ccr_fast.transformers import build_plan, describe_transformers, validate_transformers
from ccr_fast.transformers.registry import lookup
from ccr_fast.transformers.vertex import (
    VertexClaudeTransformer,
    VertexGeminiTransformer,
    count_tokens_request,
    models_url,
)
from ccr_fast.upstream.google_auth import GoogleAuth, ServiceAccountCredentials
from tests.google_keys import ServiceAccount, new_service_account

BASE = "https://us-central1-aiplatform.googleapis.com"


@pytest.fixture(scope="module")
def account() -> ServiceAccount:
    return new_service_account("https://oauth2.example.test/token", project="key-project")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No Google settings in the environment and no gcloud credentials in HOME."""
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("CLOUDSDK_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return monkeypatch


def config(use: list[Any], *, base: str = BASE, models: tuple[str, ...] = ("gemini-2.5-pro",)) -> Config:
    provider = {"name": "vx", "api_base_url": base, "api_key": "unused", "models": list(models)}
    provider["transformer"] = {"use": use}
    return config_from_dict({"Providers": [provider], "Router": {"default": f"vx,{models[0]}"}}, env={})


# --- URLs ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "location", "expected_root"),
    [
        (BASE, "us-central1", BASE + "/v1"),
        (BASE + "/", "us-central1", BASE + "/v1"),
        (BASE + "/v1beta1/", "us-central1", BASE + "/v1beta1"),
        # a Google host always follows the location
        (BASE, "europe-west4", "https://europe-west4-aiplatform.googleapis.com/v1"),
        (BASE, "global", "https://aiplatform.googleapis.com/v1"),
        ("https://aiplatform.googleapis.com/v1", "us-east5", "https://us-east5-aiplatform.googleapis.com/v1"),
        # any other host (a gateway, the mock) is kept as written
        ("http://127.0.0.1:8080", "global", "http://127.0.0.1:8080/v1"),
        ("https://gw.example.test/vertex/", "us-east5", "https://gw.example.test/vertex/v1"),
    ],
)
def test_models_url(base: str, location: str, expected_root: str) -> None:
    url = models_url(base, "proj", location, "google")
    assert url == f"{expected_root}/projects/proj/locations/{location}/publishers/google/models"


# --- options ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"project": ""}, "project"),
        ({"location": 5}, "location"),
        ({"location": "US Central"}, "location"),
        ({"credentials": 3}, "credentials"),
        ({"private_key": ["x"]}, "private_key"),
    ],
)
def test_bad_options_are_config_problems_with_their_path(options: dict[str, Any], fragment: str) -> None:
    problems, _ = validate_transformers(config([["vertex-gemini", options]]))
    assert [p.path for p in problems] == ["Providers[0].transformer.use[0]"]
    assert fragment in problems[0].reason


# --- plans -----------------------------------------------------------------------------------------------


def test_a_ccr_config_reads_the_environment_like_ccr(
    clean_env: pytest.MonkeyPatch, account: ServiceAccount, tmp_path: Path
) -> None:
    clean_env.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(account.write(tmp_path / "key.json")))
    cfg = config(["vertex-gemini"])
    plan = build_plan(cfg.providers[0], "gemini-2.5-pro")
    # project from the key file, CCR's default location for Gemini
    assert plan.url == f"{BASE}/v1/projects/key-project/locations/us-central1/publishers/google/models"
    assert plan.endpoint == "gemini" and plan.platform == "vertex" and plan.stream_url is None
    assert dict(plan.headers) == {"content-type": "application/json"}  # no api key goes anywhere
    assert isinstance(plan.auth, GoogleAuth) and plan.auth.problem is None
    assert plan.warnings == ()
    clean_env.setenv("GOOGLE_CLOUD_PROJECT", "env-project")
    clean_env.setenv("GOOGLE_CLOUD_LOCATION", "global")
    plan = build_plan(cfg.providers[0], "gemini-2.5-pro")
    assert (
        plan.url
        == "https://aiplatform.googleapis.com/v1/projects/env-project/locations/global/publishers/google/models"
    )
    assert validate_transformers(cfg) == ([], [])


def test_vertex_claude(clean_env: pytest.MonkeyPatch, account: ServiceAccount) -> None:
    cfg = config([["vertex-claude", {"credentials": account.info}]], models=("claude-sonnet-4@20250514",))
    plan = build_plan(cfg.providers[0], "claude-sonnet-4@20250514")
    models = "https://us-east5-aiplatform.googleapis.com/v1/projects/key-project/locations/us-east5/publishers/anthropic/models"
    assert plan.url == f"{models}/claude-sonnet-4@20250514:rawPredict"
    assert plan.stream_url == f"{models}/claude-sonnet-4@20250514:streamRawPredict"
    assert plan.endpoint == "anthropic" and plan.passthrough
    assert "x-api-key" not in plan.headers and "authorization" not in plan.headers
    body: dict[str, Any] = {"model": "vx,claude", "max_tokens": 5, "messages": []}
    for hook in plan.anthropic_hooks:
        hook(body)
    assert body == {"anthropic_version": "vertex-2023-10-16", "max_tokens": 5, "messages": []}


def test_options_win_over_the_environment(clean_env: pytest.MonkeyPatch, account: ServiceAccount) -> None:
    clean_env.setenv("GOOGLE_CLOUD_PROJECT", "env-project")
    clean_env.setenv("GOOGLE_CLOUD_LOCATION", "asia-east1")
    options = {"project": "opt-project", "location": "europe-west1", "credentials": json.dumps(account.info)}
    plan = build_plan(config([["vertex-gemini", options]]).providers[0], "gemini-2.5-pro")
    assert "/projects/opt-project/locations/europe-west1/" in plan.url
    assert plan.url.startswith("https://europe-west1-aiplatform.googleapis.com/")
    assert isinstance(plan.auth, GoogleAuth)
    assert isinstance(plan.auth.credentials, ServiceAccountCredentials)


def test_no_credentials_and_no_project_warn_at_start_up(clean_env: pytest.MonkeyPatch) -> None:
    cfg = config(["vertex-gemini"], models=("gemini-2.5-pro", "gemini-2.5-flash"))
    problems, warnings = validate_transformers(cfg)
    assert problems == []
    assert len(warnings) == 2  # said once, not once per model
    assert all(w.startswith("provider 'vx' (vertex-gemini): ") for w in warnings)
    assert (
        "GOOGLE_APPLICATION_CREDENTIALS" in warnings[0]
        and "gcloud auth application-default login" in warnings[0]
    )
    assert "GOOGLE_CLOUD_PROJECT" in warnings[1]
    plan = build_plan(cfg.providers[0], "gemini-2.5-pro")
    assert isinstance(plan.auth, GoogleAuth) and plan.auth.problem is not None  # requests fail clearly
    assert plan.unavailable is None  # the provider still loads (failover can route around it)


def test_an_unreadable_key_file_warns_with_its_path(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    clean_env.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(missing))
    clean_env.setenv("GOOGLE_CLOUD_PROJECT", "p")
    _, warnings = validate_transformers(config(["vertex-gemini"]))
    assert len(warnings) == 1 and str(missing) in warnings[0] and "cannot read" in warnings[0]


def test_registry_and_listing() -> None:
    assert lookup("vertex-gemini") is VertexGeminiTransformer
    assert lookup("Vertex-Claude") is VertexClaudeTransformer
    by_name = {entry["name"]: entry for entry in describe_transformers()}
    assert by_name["vertex-gemini"]["available"] is True
    assert by_name["vertex-claude"]["available"] is True
    assert by_name["vertex-claude"]["endpoint"].endswith("/publishers/anthropic/models/:modelAndAction")
    assert by_name["vertex-gemini"]["endpoint"].startswith("/v1/projects/:projectId/locations/:location/")
    assert "Vertex AI" in by_name["vertex-claude"]["description"]


# --- token counting --------------------------------------------------------------------------------------


def test_count_tokens_requests(clean_env: pytest.MonkeyPatch, account: ServiceAccount) -> None:
    body = {
        "model": "vx,m",
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "hello"}],
        "tools": [{"name": "t", "description": "d", "input_schema": {"type": "object"}}],
    }
    gemini = build_plan(config([["vertex-gemini", {"credentials": account.info}]]).providers[0], "gemini-x")
    url, payload, field = count_tokens_request(body, gemini, "gemini-x")
    assert url == gemini.url + "/gemini-x:countTokens" and field == "totalTokens"
    sent = orjson.loads(payload)
    assert set(sent) == {"contents", "systemInstruction", "tools"}
    claude = build_plan(config([["vertex-claude", {"credentials": account.info}]]).providers[0], "claude-x")
    url, payload, field = count_tokens_request(body, claude, "claude-x")
    assert url.endswith("/publishers/anthropic/models/count-tokens:rawPredict") and field == "input_tokens"
    assert orjson.loads(payload)["model"] == "claude-x"
