"""Claude Code itself (npm @anthropic-ai/claude-code) completes a tool round trip through ccr-fast."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ccr_fast.mock import MockProvider
from tests.servers import RunningServer

pytestmark = [pytest.mark.e2e, pytest.mark.claude]

ROOT = Path(__file__).resolve().parents[2]


def _claude_binary() -> str | None:
    local = ROOT / ".tools" / "node_modules" / ".bin" / "claude"
    if local.exists():
        return str(local)
    return shutil.which("claude")


CLAUDE = _claude_binary()


@pytest.mark.skipif(
    CLAUDE is None, reason="Claude Code CLI not installed (make test installs it into .tools/)"
)
def test_claude_code_tool_round_trip(gateway: RunningServer, mock: MockProvider, tmp_path: Path) -> None:
    home = tmp_path / "claude-home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    (home / ".claude.json").write_text(
        json.dumps(
            {"hasCompletedOnboarding": True, "projects": {str(work): {"hasTrustDialogAccepted": True}}}
        )
    )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": gateway.url,
        "ANTHROPIC_AUTH_TOKEN": "test",
        "ANTHROPIC_API_KEY": "",
        "NO_PROXY": "127.0.0.1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "API_TIMEOUT_MS": "60000",
    }
    # auto mode of the mock: a MOCK_TOOL line makes it call that tool; a tool_result makes it answer with it
    prompt = (
        "Run the command please.\n"
        'MOCK_TOOL:Bash:{"command": "echo ccr-fast-round-trip", "description": "echo"}'
    )
    proc = subprocess.run(
        [CLAUDE, "-p", prompt, "--output-format", "json", "--allowedTools", "Bash"],  # type: ignore[list-item]
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout + gateway.log()[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result.get("is_error") is False, result
    assert "Tool result received" in result["result"]
    assert "ccr-fast-round-trip" in result["result"]
    # Claude Code really went through ccr-fast to the mock: a tool_result came back upstream
    main_calls = [r for r in mock.requests if r["path"] == "/v1/chat/completions"]
    assert any(
        m.get("role") == "tool" and "ccr-fast-round-trip" in str(m.get("content"))
        for r in main_calls
        for m in (r["body"] or {}).get("messages", [])
    ), [r["body"]["messages"][-1] for r in main_calls]
