"""``python -m ccr_fast.mock``: flags, the port file, the banner and a clean exit on signals."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from ccr_fast.mock.cli import build_parser, defaults_from, main


def post_json(url: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict[str, object] = json.loads(response.read())
    return result


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_runs_writes_port_file_and_exits_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ccr_fast.mock",
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--text",
            "from cli",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline().strip()
        port = int(port_file.read_text())
        assert banner == f"mock provider listening on http://127.0.0.1:{port}"
        answer = post_json(
            f"http://127.0.0.1:{port}/v1/messages",
            {"model": "cli-model", "messages": [{"role": "user", "content": "x"}]},
        )
        assert answer["model"] == "cli-model"
        assert answer["content"] == [{"type": "text", "text": "from cli"}]
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
        assert proc.stderr is not None and proc.stderr.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_flags_override_the_reply_spec() -> None:
    args = build_parser().parse_args(
        ["--reply", '{"text": "spec", "chunks": 3, "ttft_ms": 7}', "--chunks", "5"]
    )
    assert defaults_from(args) == {"text": "spec", "chunks": 5, "ttft_ms": 7}
    assert defaults_from(build_parser().parse_args([])) == {}


def test_invalid_default_reply_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--reply", '{"chunks": 0}']) == 2
    assert "chunks" in capsys.readouterr().err
    assert main(["--reply", "[1, 2]"]) == 2


def test_busy_port_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["--port", str(taken.getsockname()[1])]) == 1
    assert "cannot listen" in capsys.readouterr().err
