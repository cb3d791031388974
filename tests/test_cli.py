"""The `ccr-fast` CLI as a user runs it: real processes, a private HOME."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ccr_fast.mock import MockProvider
from tests.e2e.conftest import gateway_config
from tests.servers import free_port, run_ccr_fast, wait_http


def _run(
    args: list[str], home: Path, extra_env: dict[str, str] | None = None, **kw: object
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home), **(extra_env or {})}
    return subprocess.run(
        [sys.executable, "-m", "ccr_fast", *args], env=env, capture_output=True, text=True, timeout=60, **kw
    )  # type: ignore[call-overload]


def test_version_reports_extensions(tmp_path: Path) -> None:
    out = _run(["version"], tmp_path).stdout
    assert out.startswith("ccr-fast ")
    assert "sse_framer:" in out and "openai_fast:" in out
    pure = subprocess.run(
        [sys.executable, "-m", "ccr_fast", "version"],
        capture_output=True,
        text=True,
        env={**os.environ, "CCR_FAST_PURE": "1"},
    ).stdout
    assert "sse_framer: pure Python" in pure


def test_help_lists_commands(tmp_path: Path) -> None:
    out = _run(["help"], tmp_path).stdout
    for cmd in ("start", "stop", "restart", "status", "code", "activate", "version"):
        assert cmd in out


def test_broken_config_exits_nonzero_with_key_paths(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.json"
    cfg.write_text(
        """{
          // a CCR config with three problems
          "PORT": "abc",
          "Providers": [
            {"name": "a", "api_base_url": "https://x/v1/chat/completions", "api_key": "", "models": ["m"]},
            {"name": "b", "api_base_url": "https://y/v1/chat/completions", "api_key": "k", "models": ["m"],
             "transformer": {"use": ["no-such-transformer"]}},
          ],
          "Router": {"default": "a,m"},
        }"""
    )
    res = _run(["--config", str(cfg), "start"], tmp_path)
    assert res.returncode == 2
    assert "PORT" in res.stderr
    assert "Providers[0].api_key" in res.stderr
    # transformer names are checked once the shape is valid: fix the others and look again
    cfg.write_text(
        '{"Providers": [{"name": "b", "api_base_url": "https://y/v1/chat/completions", "api_key": "k",'
        ' "models": ["m"], "transformer": {"use": ["deepseek", "no-such-transformer"]}}],'
        ' "Router": {"default": "b,m"}}'
    )
    res = _run(["--config", str(cfg), "start"], tmp_path)
    assert res.returncode == 2
    assert "Providers[0].transformer.use[1]" in res.stderr
    assert "no-such-transformer" in res.stderr


def test_missing_explicit_config_is_an_error(tmp_path: Path) -> None:
    res = _run(["--config", str(tmp_path / "nope.json"), "start"], tmp_path)
    assert res.returncode == 2
    assert "not found" in res.stderr


def test_ccr_config_json5_env_and_chains_starts_unchanged(mock: MockProvider, tmp_path: Path) -> None:
    """An existing CCR config (comments, trailing commas, $VAR and ${VAR}, transformer chains) works as is."""
    home = tmp_path / "home"
    (home / ".claude-code-router").mkdir(parents=True)
    port = free_port()
    (home / ".claude-code-router" / "config.json").write_text(
        f"""{{
  // written for Claude Code Router
  "LOG": true,
  "PORT": {port},
  "API_TIMEOUT_MS": 600000,
  "Providers": [
    {{
      "name": "deepseek",
      "api_base_url": "${{MOCK_URL}}/v1/chat/completions",
      "api_key": "$DEEPSEEK_API_KEY",
      "models": ["deepseek-chat", "deepseek-reasoner"],
      "transformer": {{
        "use": ["deepseek", ["maxtoken", {{"max_tokens": 4096}}]],
        "deepseek-chat": {{"use": ["tooluse"]}},
      }},
    }},
    {{
      "name": "openrouter",
      "api_base_url": "${{MOCK_URL}}/v1/chat/completions",
      "api_key": "${{OPENROUTER_API_KEY}}",
      "models": ["anthropic/claude-sonnet-4"],
      "transformer": {{"use": ["openrouter"]}},
    }},
  ],
  "Router": {{
    "default": "deepseek,deepseek-reasoner",
    "background": "deepseek,deepseek-reasoner",
    "think": "deepseek,deepseek-reasoner",
    "longContext": "openrouter,anthropic/claude-sonnet-4",
    "longContextThreshold": 60000,
  }},
}}
"""
    )
    env = {
        **os.environ,
        "HOME": str(home),
        "MOCK_URL": mock.url,
        "DEEPSEEK_API_KEY": "sk-ds-from-env",
        "OPENROUTER_API_KEY": "sk-or-from-env",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "ccr_fast", "--workers", "1", "start"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc=proc)
        mock.script([{"text": "hi from deepseek"}])
        r = httpx.post(
            f"http://127.0.0.1:{port}/v1/messages",
            json={
                "model": "claude-sonnet-5",
                "max_tokens": 9000,
                "messages": [{"role": "user", "content": "x"}],
            },
        )
        assert r.status_code == 200, r.text
        assert r.json()["content"][0]["text"] == "hi from deepseek"
        sent = mock.requests[-1]
        assert sent["headers"]["authorization"] == "Bearer sk-ds-from-env"
        assert sent["body"]["model"] == "deepseek-reasoner"
        assert sent["body"]["max_tokens"] == 4096
        status = _run(["status"], home, env)
        assert status.returncode == 0
        assert "Running" in status.stdout and str(port) in status.stdout
        pid_file = home / ".claude-code-router" / ".claude-code-router.pid"
        assert int(pid_file.read_text()) == proc.pid
        act = _run(["activate"], home, env).stdout
        assert f'export ANTHROPIC_BASE_URL="http://127.0.0.1:{port}"' in act
        assert 'export ANTHROPIC_API_KEY=""' in act
        stop = _run(["stop"], home, env)
        assert stop.returncode == 0
        assert proc.wait(20) == 0
        assert not pid_file.exists()
        assert _run(["status"], home, env).returncode == 1
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_demo_mode_without_config(tmp_path: Path) -> None:
    """No config file: the embedded demo config against the bundled mock, so the README's curl works."""
    with run_ccr_fast(None, tmp_path) as server:
        r = httpx.post(
            server.url + "/v1/messages",
            json={
                "model": "claude-sonnet-5",
                "max_tokens": 100,
                "messages": [{"role": "user", "content": "Hello"}],
            },
            timeout=10,
        )
        assert r.status_code == 200, r.text
        data = r.json()
        assert data["type"] == "message"
        assert data["content"][0]["type"] == "text" and data["content"][0]["text"]
        assert "demo config" in server.log()


def test_no_apikey_forces_loopback(mock: MockProvider, tmp_path: Path) -> None:
    with run_ccr_fast(gateway_config(mock.url, HOST="0.0.0.0"), tmp_path) as server:
        assert "APIKEY is not set; using 127.0.0.1" in server.log()
        assert "listening on http://127.0.0.1:" in server.log()


def test_cli_host_without_apikey_forced_to_loopback(mock: MockProvider, tmp_path: Path) -> None:
    with run_ccr_fast(gateway_config(mock.url), tmp_path, extra_args=["--host", "0.0.0.0"]) as server:
        assert "without APIKEY the server listens on 127.0.0.1 only" in server.log()
        assert "listening on http://127.0.0.1:" in server.log()


def test_second_start_refused_while_running(mock: MockProvider, tmp_path: Path) -> None:
    with run_ccr_fast(gateway_config(mock.url), tmp_path) as server:
        time.sleep(0.2)
        res = _run(["--port", str(free_port()), "start"], server.home)
        assert res.returncode == 1
        assert "already running" in res.stderr


@pytest.mark.parametrize("cmd", ["restart"])
def test_restart_runs_in_background(mock: MockProvider, tmp_path: Path, cmd: str) -> None:
    home = tmp_path / "home"
    (home / ".claude-code-router").mkdir(parents=True)
    port = free_port()
    (home / ".claude-code-router" / "config.json").write_text(json.dumps(gateway_config(mock.url, PORT=port)))
    try:
        res = _run(["--workers", "1", cmd], home)
        assert res.returncode == 0, res.stderr
        wait_http(f"http://127.0.0.1:{port}/health")
        assert (home / ".claude-code-router" / "logs" / "ccr-fast.log").exists()
    finally:
        _run(["stop"], home)


def test_code_starts_service_and_runs_claude_with_ccr_env(mock: MockProvider, tmp_path: Path) -> None:
    """`ccr-fast code` starts the service in the background if needed and runs CLAUDE_PATH with CCR's env."""
    home = tmp_path / "home"
    (home / ".claude-code-router").mkdir(parents=True)
    fake_claude = tmp_path / "fake-claude"
    fake_claude.write_text(
        "#!/bin/sh\n"
        'echo "ARGS=$*"\n'
        "env | grep -E '^(ANTHROPIC_|NO_PROXY|DISABLE_|API_TIMEOUT_MS)' | sort\n"
        'curl -s -o /dev/null -w "HEALTH=%{http_code}\\n" "$ANTHROPIC_BASE_URL/health"\n'
        "exit 7\n"
    )
    fake_claude.chmod(0o755)
    port = free_port()
    cfg = gateway_config(
        mock.url, PORT=port, APIKEY="key-123", CLAUDE_PATH=str(fake_claude), API_TIMEOUT_MS=123456
    )
    (home / ".claude-code-router" / "config.json").write_text(json.dumps(cfg))
    try:
        res = _run(["--workers", "1", "code", "-p", "hello world"], home)
        assert res.returncode == 7, res.stderr
        out = res.stdout
        assert "ARGS=-p hello world" in out
        assert f"ANTHROPIC_BASE_URL=http://127.0.0.1:{port}" in out
        assert "ANTHROPIC_AUTH_TOKEN=key-123" in out
        assert "ANTHROPIC_API_KEY=\n" in out
        assert "NO_PROXY=127.0.0.1" in out
        assert "DISABLE_TELEMETRY=true" in out
        assert "DISABLE_COST_WARNINGS=true" in out
        assert "API_TIMEOUT_MS=123456" in out
        assert "HEALTH=200" in out
    finally:
        _run(["stop"], home)
