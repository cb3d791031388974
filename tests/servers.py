"""Start real servers for tests: ccr-fast under Granian (a subprocess) on an ephemeral loopback port."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before becoming ready")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"{url} not ready after {timeout}s: {last}")


@dataclass
class RunningServer:
    url: str
    port: int
    proc: subprocess.Popen[bytes]
    home: Path
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def run_ccr_fast(
    config: dict[str, Any] | None,
    tmp: Path,
    *,
    workers: int = 1,
    interface: str = "rsgi",
    env: dict[str, str] | None = None,
    extra_args: list[str] | None = None,
    ready_url: str | None = "/health",
) -> Iterator[RunningServer]:
    """Start `ccr-fast start` with ``config`` (None: no config file -> demo mode) and a private HOME."""
    tmp.mkdir(parents=True, exist_ok=True)
    home = tmp / "home"
    (home / ".claude-code-router").mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "ccr_fast",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--interface",
        interface,
    ]
    if config is not None:
        cfg_path = tmp / "config.json"
        cfg_path.write_text(json.dumps(config))
        args += ["--config", str(cfg_path)]
    args += [*(extra_args or []), "start"]
    log_path = tmp / f"ccr-fast-{port}.log"
    full_env = {**os.environ, "HOME": str(home), **(env or {})}
    full_env.pop("CCR_FAST_CONFIG", None)
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env=full_env, start_new_session=True
        )
    server = RunningServer(f"http://127.0.0.1:{port}", port, proc, home, log_path)
    try:
        if ready_url is not None:
            wait_http(server.url + ready_url, proc=proc)
        yield server
    except Exception:
        print(server.log())
        raise
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
