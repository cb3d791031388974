"""Starting, pinning, measuring and stopping the systems under test (and the tools the benchmark needs).

Every server runs as a child process in its own session with a private ``HOME``, so neither ccr-fast nor
Claude Code Router touches the user's ``~/.claude-code-router`` and a stop never reaches anything the
benchmark did not start. Peers are installed by the benchmark itself: wrk from the distribution's packages,
Claude Code Router from npm into the git-ignored ``.tools/`` directory. A peer whose runtime is missing is
skipped with a message instead of failing the run.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

REPO = Path(__file__).resolve().parent.parent
TOOLS = REPO / ".tools"
CCR_PACKAGE = "@musistudio/claude-code-router"
#: the newest release that installs on Node 20
CCR_VERSION = "2.0.0"
CCR_PREFIX = TOOLS / "ccr"
CCR_CLI = CCR_PREFIX / "node_modules" / CCR_PACKAGE / "dist" / "cli.js"
LOOPBACK = "127.0.0.1"


_T0 = time.monotonic()


def log(message: str) -> None:
    """Progress on stderr, stamped with the seconds since the run started."""
    print(f"[bench {time.monotonic() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- processes, CPUs and memory


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants (Granian's master and its workers, for instance)."""
    children: dict[int, list[int]] = {}
    dead: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command name is in parentheses and may contain spaces: state and parent PID follow the last ")"
        state, parent = stat.rsplit(")", 1)[1].split()[:2]
        if state in ("Z", "X"):  # exited, waiting to be reaped: not live, holds no memory
            dead.add(int(entry.name))
            continue
        children.setdefault(int(parent), []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        if current not in dead and Path(f"/proc/{current}").exists():
            tree.append(current)
            todo.extend(children.get(current, ()))
    return tree


def pin(pids: Iterable[int], cpus: set[int]) -> None:
    """Move every thread of every process in ``pids`` onto ``cpus`` (threads have their own masks)."""
    for pid in pids:
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue
        for tid in tids:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, cpus)


def _status_kb(pid: int, key: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def _pss_kb(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def memory(pid: int) -> dict[str, Any]:
    """RSS and PSS of a process tree, in MB, in total and per process.

    RSS counts pages shared between a master and its forked workers once per process; PSS splits them, so
    its sum is what the tree really costs. Both are reported.
    """
    processes = [
        {"pid": p, "rss_mb": _status_kb(p, "VmRSS") / 1024, "pss_mb": _pss_kb(p) / 1024}
        for p in process_tree(pid)
    ]
    return {
        "rss_mb": sum(p["rss_mb"] for p in processes),
        "pss_mb": sum(p["pss_mb"] for p in processes),
        "processes": processes,
    }


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _busy_ticks() -> int:
    """Clock ticks all CPUs spent busy since boot (user, nice, system, irq, softirq, steal)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return user + nice + system + irq + softirq + steal


def _process_ticks(pids: Iterable[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total


class CpuSample(NamedTuple):
    """CPU accounting at one moment: wall clock, busy ticks of all CPUs, ticks of our own processes."""

    at: float
    busy: int
    ours: int


def cpu_sample(roots: Iterable[int]) -> CpuSample:
    """Sample the machine and the process trees under ``roots`` plus this process and its reaped children."""
    pids = [p for root in roots for p in process_tree(root) if p != os.getpid()]
    own = os.times()
    own_ticks = round((own.user + own.system + own.children_user + own.children_system) * CLOCK_TICKS)
    return CpuSample(time.monotonic(), _busy_ticks(), _process_ticks(pids) + own_ticks)


def foreign_share(start: CpuSample, end: CpuSample, cpus: int, hz: int = CLOCK_TICKS) -> float:
    """Other processes' share of all CPU time between two samples (0 to 1)."""
    capacity = (end.at - start.at) * hz * cpus
    if capacity <= 0:
        return 0.0
    return min(1.0, max(0.0, ((end.busy - start.busy) - (end.ours - start.ours)) / capacity))


class ForeignCpu:
    """How much of the machine other processes used while a measurement ran.

    Busy time of all CPUs minus the time of the processes this run started (servers, mocks, wrk and the
    benchmark itself), as a share of all CPU time over the interval. The machines are shared; this says
    how much a given number may have been disturbed.
    """

    def __init__(self, roots: Callable[[], Iterable[int]]) -> None:
        self._roots = roots
        self._start = cpu_sample(roots())

    def share(self) -> float:
        """Other processes' share of the machine's CPU time since this object was created."""
        return foreign_share(self._start, cpu_sample(self._roots()), os.cpu_count() or 1)


@dataclass
class Server:
    """A started server: its process (the session leader), port and log file."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    started_at: float

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid)

    def terminate(self) -> None:
        """Ask the server to stop (SIGTERM: a graceful shutdown for every system here)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop and wait; the whole session is killed if the server is still up after ``timeout``."""
        if self.proc.poll() is not None:
            return
        self.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"{self.name} did not stop within {timeout:g} s of SIGTERM; killing its session")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def stop_all(servers: Iterable[Server]) -> None:
    """Stop servers concurrently: all are signalled before any is waited for."""
    servers = list(servers)
    for server in servers:
        server.terminate()
    for server in servers:
        server.stop()


def spawn(
    name: str,
    args: list[str],
    *,
    port: int,
    workdir: Path,
    cpus: set[int] | None,
    env: Mapping[str, str] | None = None,
) -> Server:
    """Start ``args`` in a new session, output to ``workdir/<name>.log``, optionally pinned to ``cpus``."""
    log_path = workdir / f"{name}.log"
    full_env = {**os.environ, **(env or {})}
    # the benchmark process itself is pinned to the load generator's CPUs; children must not inherit that
    affinity = cpus or set(range(os.cpu_count() or 1))

    def _pin() -> None:
        os.sched_setaffinity(0, affinity)

    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env=full_env, start_new_session=True, preexec_fn=_pin
        )
    return Server(name, proc, port, log_path, time.perf_counter())


def wait_ready(server: Server, path: str = "/health", timeout: float = 30.0) -> None:
    """Poll ``GET path`` until it answers 200; raise with the server's log if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.proc.returncode}:\n{server.tail()}")
        if _get_ok(server.port, path):
            return
        time.sleep(0.02)
    raise TimeoutError(f"{server.name} not ready after {timeout}s:\n{server.tail()}")


def _get_ok(port: int, path: str) -> bool:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def time_to_first_request(
    start: Callable[[], Server], path: str, body: bytes, headers: Mapping[str, str], timeout: float = 30.0
) -> tuple[Server, float]:
    """Start a server and time it from spawn to the first successful ``POST path`` (seconds).

    The request goes all the way to the upstream, so this is the cold start a user sees: process start,
    imports, config load, workers up, and a first request served.
    """
    t0 = time.perf_counter()
    server = start()
    deadline = t0 + timeout
    while time.perf_counter() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.proc.returncode}:\n{server.tail()}")
        conn = http.client.HTTPConnection(LOOPBACK, server.port, timeout=5)
        try:
            conn.request("POST", path, body, dict(headers))
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                return server, time.perf_counter() - t0
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.005)
    server.stop()
    raise TimeoutError(f"{server.name} served no request within {timeout}s:\n{server.tail()}")


# --------------------------------------------------------------------------- the systems


@dataclass(frozen=True)
class MockProfile:
    """How one mock upstream answers: timing and the number of streamed chunks."""

    name: str
    chunks: int
    ttft_ms: float = 0.0
    chunk_delay_ms: float = 0.0


def start_mock(profile: MockProfile, text: str, workdir: Path, cpus: set[int] | None) -> Server:
    """The bundled mock provider (``python -m ccr_fast.mock``) with request logging off."""
    port_file = workdir / f"mock-{profile.name}.port"
    args = [
        sys.executable,
        "-m",
        "ccr_fast.mock",
        "--port",
        "0",
        "--port-file",
        str(port_file),
        "--log-size",
        "0",
        "--text",
        text,
        "--chunks",
        str(profile.chunks),
        "--ttft-ms",
        str(profile.ttft_ms),
        "--chunk-delay-ms",
        str(profile.chunk_delay_ms),
    ]
    server = spawn(f"mock-{profile.name}", args, port=0, workdir=workdir, cpus=cpus)
    deadline = time.monotonic() + 15
    while not (port_file.exists() and port_file.read_text().strip()):
        if server.proc.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"mock {profile.name} did not start:\n{server.tail()}")
        time.sleep(0.01)
    server.port = int(port_file.read_text())
    wait_ready(server)
    return server


def ccr_fast_command() -> list[str]:
    script = Path(sys.executable).parent / "ccr-fast"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ccr_fast"]


def start_ccr_fast(
    name: str, config: dict[str, Any], workdir: Path, *, workers: int, interface: str, cpus: set[int] | None
) -> Server:
    """``ccr-fast start`` in the foreground with its own HOME and config file."""
    home = workdir / f"home-{name}"
    (home / ".claude-code-router").mkdir(parents=True, exist_ok=True)
    config_path = workdir / f"{name}.json"
    config_path.write_text(json.dumps(config, indent=2))
    port = free_port()
    args = [
        *ccr_fast_command(),
        "--config",
        str(config_path),
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--interface",
        interface,
        "start",
    ]
    return spawn(name, args, port=port, workdir=workdir, cpus=cpus, env={"HOME": str(home)})


def start_ccr(name: str, config: dict[str, Any], workdir: Path, *, cpus: set[int] | None) -> Server:
    """Claude Code Router's ``ccr start``, which serves in the foreground and exits on SIGTERM.

    CCR reads ``~/.claude-code-router/config.json`` only, so each instance gets its own HOME; its PID file
    lives there too, which keeps CCR's "already running" check from seeing another instance.
    """
    home = workdir / f"home-{name}"
    (home / ".claude-code-router").mkdir(parents=True, exist_ok=True)
    port = free_port()
    full = {**config, "PORT": port, "HOST": LOOPBACK}
    (home / ".claude-code-router" / "config.json").write_text(json.dumps(full, indent=2))
    node = shutil.which("node") or "node"
    return spawn(
        name, [node, str(CCR_CLI), "start"], port=port, workdir=workdir, cpus=cpus, env={"HOME": str(home)}
    )


# --------------------------------------------------------------------------- installing tools and peers


def _as_root(args: list[str]) -> list[str] | None:
    if os.geteuid() == 0:
        return args
    if shutil.which("sudo"):
        return ["sudo", "-n", *args]
    return None


def ensure_wrk() -> str | None:
    """The path of wrk, installing Debian's package first if needed; None (with a message) if impossible."""
    found = shutil.which("wrk")
    if found:
        return found
    install = _as_root(["apt-get", "install", "-y", "--no-install-recommends", "wrk"])
    update = _as_root(["apt-get", "update"])
    if install is None or update is None or not shutil.which("apt-get"):
        log("wrk is missing and cannot be installed (needs apt-get and root or sudo); throughput is skipped")
        return None
    log("installing wrk from the distribution's packages")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(update, env=env, capture_output=True)
        subprocess.run(install, env=env, capture_output=True)
    found = shutil.which("wrk")
    if not found:
        log("installing wrk failed; throughput is skipped")
    return found


def ensure_ccr() -> Path | None:
    """Claude Code Router's CLI script, installed from npm into .tools/ccr if needed; None if impossible."""
    if CCR_CLI.exists():
        return CCR_CLI
    if not shutil.which("node") or not shutil.which("npm"):
        log("Node.js/npm not found; Claude Code Router is skipped")
        return None
    log(f"installing {CCR_PACKAGE}@{CCR_VERSION} into {CCR_PREFIX.relative_to(REPO)}")
    CCR_PREFIX.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [
            "npm",
            "install",
            "--prefix",
            str(CCR_PREFIX),
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            f"{CCR_PACKAGE}@{CCR_VERSION}",
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0 or not CCR_CLI.exists():
        log(f"npm could not install Claude Code Router; it is skipped:\n{result.stderr.strip()[-2000:]}")
        return None
    return CCR_CLI


def ensure_py_spy() -> str | None:
    """py-spy for the optional profile (installed with pip into this virtualenv on demand)."""
    local = Path(sys.executable).parent / "py-spy"
    if local.exists():
        return str(local)
    found = shutil.which("py-spy")
    if found:
        return found
    log("installing py-spy into the virtualenv for profiling")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-spy"], capture_output=True)
    return str(local) if local.exists() else None


def bench_extra() -> list[str]:
    """The requirements of the ``bench`` extra in pyproject.toml (the plotting library)."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return list(project.get("optional-dependencies", {}).get("bench", []))


def ensure_plotting() -> bool:
    """Whether matplotlib can be imported, installing the ``bench`` extra into this virtualenv if not."""
    import importlib

    try:
        importlib.import_module("matplotlib")
        return True
    except ImportError:
        pass
    requirements = bench_extra()
    if not requirements:
        return False
    log(f"installing the bench extra ({', '.join(requirements)}) for the plots")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", *requirements],
        capture_output=True,
        text=True,
    )
    importlib.invalidate_caches()
    try:
        importlib.import_module("matplotlib")
        return True
    except ImportError:
        log(f"could not install the bench extra; the plots are skipped:\n{result.stderr.strip()[-1000:]}")
        return False


# --------------------------------------------------------------------------- what the run happened on


def _run_text(args: list[str]) -> str:
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (result.stdout or result.stderr).strip()


def machine_info() -> dict[str, Any]:
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kb = int(Path("/proc/meminfo").read_text().splitlines()[0].split()[1])
    os_name = ""
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    return {
        "cpu_model": cpu_model,
        "cpus": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": os_name,
        "hostname": platform.node(),
    }


def versions(ccr_cli: Path | None) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    from ccr_fast import __version__, _speedups

    out: dict[str, Any] = {"python": platform.python_version(), "ccr_fast": __version__}
    for package in ("granian", "uvloop", "aiohttp", "orjson", "Cython"):
        try:
            out[package.lower()] = version(package)
        except PackageNotFoundError:
            out[package.lower()] = None
    out["extensions"] = _speedups.status()
    out["node"] = _run_text(["node", "--version"]) if shutil.which("node") else None
    if ccr_cli is not None:
        package_json = ccr_cli.parent.parent / "package.json"
        with contextlib.suppress(OSError, ValueError):
            out["claude_code_router"] = json.loads(package_json.read_text())["version"]
    wrk = shutil.which("wrk")
    out["wrk"] = _run_text([wrk, "--version"]).splitlines()[0] if wrk else None
    return out


def git_info() -> dict[str, Any]:
    commit = _run_text(["git", "-C", str(REPO), "rev-parse", "HEAD"])
    # untracked files count: a run of code that is not committed yet cannot be reproduced from the commit
    dirty = bool(_run_text(["git", "-C", str(REPO), "status", "--porcelain"]))
    return {"commit": commit or None, "dirty": dirty}


# --------------------------------------------------------------------------- profiling


def _frame_name(frame: str) -> str:
    """``func (path/file.py:12)`` -> ``func (path/file.py)``: samples of one function, whatever the line."""
    name, _, location = frame.rpartition(" (")
    return f"{name} ({location.rsplit(':', 1)[0]})" if name else frame


def _package(frame: str) -> str:
    """The package a frame's file belongs to: ``ccr_fast.server``, ``aiohttp``, ``asyncio``, ``random``..."""
    location = frame.rpartition(" (")[2].rsplit(":", 1)[0]
    if not location.endswith(".py"):  # generated code (dataclasses, attrs) or a frame py-spy misread
        return "(no source file)"
    parts = location.split("/")
    if parts[0] == "ccr_fast" and len(parts) > 2:
        return f"ccr_fast.{parts[1]}"
    return parts[0].removesuffix(".py")


def _parse_collapsed(collapsed: str) -> dict[str, list[tuple[list[str], int]]]:
    """py-spy's ``--threads --format raw`` output: ``thread (tid)[: name];frame;... count`` per line."""
    threads: dict[str, list[tuple[list[str], int]]] = {}
    for line in collapsed.splitlines():
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not count_text.isdigit():
            continue
        thread, *frames = stack.split(";")
        threads.setdefault(thread, []).append(([f for f in frames if f.strip()], int(count_text)))
    return threads


#: Granian's worker entry (``MPServer._spawn_rsgi_worker``, ``_spawn_asgi_worker``...): the Rust server runs
#: the event loop, and so every request handler, from inside this call
_ENTRY = re.compile(r"\._spawn_\w*worker \(granian/")


def _above_entry(frames: list[str]) -> tuple[list[str], str | None]:
    """The frames above Granian's worker entry (all of them when it is absent), and the entry's name."""
    for index in range(len(frames) - 1, -1, -1):
        if _ENTRY.search(frames[index]):
            return frames[index + 1 :], _frame_name(frames[index])
    return frames, None


def summarize_stacks(collapsed: str, top: int = 15) -> dict[str, Any]:
    """Self and inclusive sample shares of the thread that runs Python, from py-spy's collapsed stacks.

    In a Granian worker the main thread enters Granian's Rust server, which runs the asyncio loop and so
    every request handler above that entry call; Granian's own I/O threads carry (almost) no Python frame
    and are left out (py-spy cannot tell when they are idle). Frames up to the entry are cut off; a sample
    with nothing above it is time in native code under the loop: uvloop, socket calls and Granian's side
    of the protocol. Leaf frames include the native calls they make (a socket write shows up as the Python
    function that called it), since non-blocking sampling does not resolve native frames.
    """
    threads = _parse_collapsed(collapsed)
    in_python = {name: sum(count for frames, count in rows if frames) for name, rows in threads.items()}
    if not any(in_python.values()):
        return {"samples": 0}
    thread = max(in_python, key=in_python.__getitem__)
    rows = threads[thread]
    total = sum(count for _, count in rows)
    entry: str | None = None
    native = 0
    by_self: dict[str, int] = {}
    by_inclusive: dict[str, int] = {}
    by_package: dict[str, int] = {}
    for frames, count in rows:
        above, found = _above_entry(frames)
        entry = entry or found
        if not above:
            native += count
            continue
        leaf = _frame_name(above[-1])
        by_self[leaf] = by_self.get(leaf, 0) + count
        package = _package(above[-1])
        by_package[package] = by_package.get(package, 0) + count
        for name in {_frame_name(f) for f in above}:
            by_inclusive[name] = by_inclusive.get(name, 0) + count

    def ranked(counts: dict[str, int]) -> list[dict[str, Any]]:
        best = sorted(counts.items(), key=lambda item: item[1], reverse=True)[:top]
        return [{"name": name, "share": count / total} for name, count in best]

    return {
        "samples": total,
        "thread": thread,
        "entry": entry,
        "native_share": native / total,
        "self": ranked(by_self),
        "inclusive": ranked(by_inclusive),
        "self_by_package": ranked(by_package),
    }


def profile_worker(server: Server, load: Callable[[], Any], duration: float, workdir: Path) -> dict[str, Any]:
    """Sample the first worker of ``server`` with py-spy while ``load()`` runs in a thread.

    py-spy runs in non-blocking mode (it reads the worker's memory without stopping it), so the load is
    barely disturbed; the price is that native frames are not resolved and show up as "no Python frame".
    """
    py_spy = ensure_py_spy()
    if py_spy is None:
        return {"skipped": "py-spy is not available"}
    pids = server.pids()
    worker = pids[1] if len(pids) > 1 else pids[0]
    out = workdir / f"profile-{server.name}-{worker}.txt"
    outcome: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: outcome.update(load=load()), daemon=True)
    thread.start()
    time.sleep(0.5)
    result = subprocess.run(
        [
            py_spy,
            "record",
            "--pid",
            str(worker),
            "--duration",
            str(max(1, int(duration) - 1)),
            "--rate",
            "250",
            "--nonblocking",
            "--threads",
            "--format",
            "raw",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    thread.join(duration + 60)
    if result.returncode != 0 or not out.exists():
        return {"skipped": f"py-spy failed: {result.stderr.strip()[-500:]}"}
    return {"worker_pid": worker, **summarize_stacks(out.read_text()), "load": outcome.get("load")}
