"""The per-request access record follows `LOG` in every worker, whatever the server's logging setup does."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import anthropic
import pytest

from ccr_fast.mock import MockProvider
from tests.e2e.conftest import gateway_config
from tests.servers import run_ccr_fast

pytestmark = pytest.mark.e2e


def _ask(url: str) -> str:
    client = anthropic.Anthropic(base_url=url, api_key="x", max_retries=0, timeout=20)
    raw = client.messages.with_raw_response.create(
        model="oai,gpt-test", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
    )
    return raw.headers["request-id"]


def _log_after(server_log: Callable[[], str], request_id: str) -> str:
    deadline = time.monotonic() + 2
    text = server_log()
    while request_id not in text and time.monotonic() < deadline:
        time.sleep(0.05)
        text = server_log()
    return text


@pytest.mark.parametrize("workers", [1, 2])
def test_log_false_keeps_workers_quiet(mock: MockProvider, tmp_path: Path, workers: int) -> None:
    cfg = gateway_config(mock.url, LOG=False)
    with run_ccr_fast(cfg, tmp_path, workers=workers) as server:
        ids = [_ask(server.url) for _ in range(4)]
        time.sleep(0.3)  # stderr is unbuffered per record; give a late line the chance to show up
        text = server.log()
    assert all(request_id not in text for request_id in ids), text[-2000:]


def test_log_true_writes_one_access_line_per_request(mock: MockProvider, tmp_path: Path) -> None:
    cfg = gateway_config(mock.url, LOG=True)
    with run_ccr_fast(cfg, tmp_path, workers=1) as server:
        request_id = _ask(server.url)
        text = _log_after(server.log, request_id)
    lines = [line for line in text.splitlines() if request_id in line]
    assert len(lines) == 1, text[-2000:]
    assert "ccr_fast.access" in lines[0] and " 200 " in lines[0]
