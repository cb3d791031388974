"""The non-Messages endpoints, auth, and the query string Claude Code adds."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from ccr_fast.mock import MockProvider
from tests.e2e.conftest import gateway_config
from tests.servers import RunningServer, run_ccr_fast

pytestmark = pytest.mark.e2e


def test_root_get_and_head(gateway: RunningServer) -> None:
    assert httpx.get(gateway.url + "/").status_code == 200
    r = httpx.head(gateway.url + "/")
    assert r.status_code == 200
    assert r.content == b""


def test_health(gateway: RunningServer) -> None:
    assert httpx.get(gateway.url + "/health").json()["status"] == "ok"


def test_config_is_redacted(gateway: RunningServer) -> None:
    r = httpx.get(gateway.url + "/api/config")
    assert r.status_code == 200
    text = r.text
    for secret in ("sk-oai-secret-1234", "sk-ant-secret-5678", "sk-ds-secret"):
        assert secret not in text
    assert r.json()["Router"]["default"] == "oai,gpt-test"


def test_transformers_listed(gateway: RunningServer) -> None:
    names = {t["name"] for t in httpx.get(gateway.url + "/api/transformers").json()["transformers"]}
    assert {
        "Anthropic",
        "OpenAI",
        "deepseek",
        "openrouter",
        "groq",
        "maxtoken",
        "cleancache",
        "streamoptions",
        "customparams",
    } <= names


def test_count_tokens(gateway: RunningServer) -> None:
    body = {"model": "claude-sonnet-5", "messages": [{"role": "user", "content": "hello world " * 100}]}
    r = httpx.post(gateway.url + "/v1/messages/count_tokens?beta=true", json=body)
    assert r.status_code == 200
    n = r.json()["input_tokens"]
    assert 150 <= n <= 260


def test_query_string_ignored_for_routing(gateway: RunningServer, mock: MockProvider) -> None:
    mock.script([{"text": "ok"}])
    r = httpx.post(
        gateway.url + "/v1/messages?beta=true&x=1",
        json={"model": "claude-sonnet-5", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["content"][0]["text"] == "ok"


@pytest.fixture(scope="module")
def secured(mock_provider: MockProvider, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    tmp: Path = tmp_path_factory.mktemp("secured")
    with run_ccr_fast(gateway_config(mock_provider.url, APIKEY="s3cret-key"), tmp) as server:
        yield server


def test_apikey_required(secured: RunningServer, mock: MockProvider) -> None:
    body = {"model": "claude-sonnet-5", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    r = httpx.post(secured.url + "/v1/messages", json=body)
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "authentication_error"
    r = httpx.post(secured.url + "/v1/messages", json=body, headers={"x-api-key": "wrong"})
    assert r.status_code == 401
    mock.script([{"text": "a"}, {"text": "b"}])
    assert (
        httpx.post(secured.url + "/v1/messages", json=body, headers={"x-api-key": "s3cret-key"}).status_code
        == 200
    )
    r = httpx.post(secured.url + "/v1/messages", json=body, headers={"authorization": "Bearer s3cret-key"})
    assert r.status_code == 200
    assert httpx.get(secured.url + "/api/config").status_code == 401
    # public paths stay public
    assert httpx.get(secured.url + "/health").status_code == 200
    assert httpx.get(secured.url + "/").status_code == 200
