"""A real ``redis-server`` for tests: loopback only, an ephemeral port, no persistence, files in a temp dir.

Tests that exercise outages kill it the hard way (``kill``: SIGKILL, as the OOM killer would), freeze it
(``pause``: SIGSTOP, a Redis that accepts connections and never answers) and start it again on the same
port (``restart``), so clients that cached the address see the same Redis come back, empty.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

#: the server binary (Debian's ``redis-server`` package), or None when it is not installed
REDIS_SERVER: str | None = shutil.which("redis-server") or (
    "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None
)
NOT_INSTALLED = "redis-server is not installed (Debian/Ubuntu: apt-get install redis-server)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process; ``start`` it, or use it as a context manager (stops on exit)."""

    def __init__(self, workdir: Path, binary: str | None = REDIS_SERVER) -> None:
        if binary is None:
            raise RuntimeError(NOT_INSTALLED)
        self.binary = binary
        self.workdir = workdir
        self.port = 0
        self.log_path = workdir / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("redis-server is not running")
        return self._proc.pid

    def start(self, timeout: float = 10.0) -> None:
        """Start on a fresh ephemeral port (retried if another process took it first) and wait for PING."""
        for _ in range(5):
            self.port = _free_port()
            if self._launch(timeout):
                return
        raise RuntimeError(f"redis-server did not start; log:\n{self.log()}")

    def restart(self, timeout: float = 10.0) -> None:
        """Start again on the same port (after ``kill`` or ``stop``), with an empty dataset."""
        if not self._launch(timeout):
            raise RuntimeError(f"redis-server did not restart on port {self.port}; log:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL and reap: no shutdown, no goodbye to the clients."""
        proc = self._require()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self._proc = None

    def pause(self) -> None:
        """SIGSTOP: connections are still accepted by the kernel, but nothing is answered."""
        self._require().send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._require().send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Terminate (resuming a paused server first) and reap; safe to call when not running."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _require(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise RuntimeError("redis-server is not running")
        return self._proc

    def _launch(self, timeout: float) -> bool:
        """Run the server on ``self.port``; False when it exited (port taken) before answering."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.workdir),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            if _answers_ping(self.port):
                self._proc = proc
                return True
            time.sleep(0.01)
        proc.kill()
        proc.wait()
        raise RuntimeError(f"redis-server on port {self.port} did not answer within {timeout} s")
