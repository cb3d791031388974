"""`ccr-fast`: CCR's commands (start, stop, restart, status, code, activate/env, version, help) and `mock`."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from ccr_fast import __version__

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _dir() -> Path:
    from ccr_fast.config import config_dir

    return config_dir()


def pid_file() -> Path:
    return _dir() / ".claude-code-router.pid"


def state_file() -> Path:
    """Host/port of the running instance, for `status`, `code` and `activate`."""
    return _dir() / ".ccr-fast-state.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (exited, not yet reaped by its parent) still answers signal 0
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def running_pid() -> int | None:
    try:
        pid = int(pid_file().read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def _read_state() -> dict[str, object]:
    try:
        data = json.loads(state_file().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _eprint(*parts: object) -> None:
    print(*parts, file=sys.stderr)


# --------------------------------------------------------------------------- config resolution
def _resolve(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """(config, path or None) — or raise SystemExit(2) listing every config problem."""
    from ccr_fast.config import ConfigError, default_config_path, load_config
    from ccr_fast.server.preflight import preflight

    path = Path(args.config).expanduser() if args.config else default_config_path()
    if not path.exists():
        if args.config:
            _eprint(f"ccr-fast: config file not found: {path}")
            raise SystemExit(2)
        return None, None
    try:
        config = load_config(path)
        problems, warnings = preflight(config)
        if problems:
            raise ConfigError(problems, str(path))
    except ConfigError as exc:
        _eprint(f"ccr-fast: {exc}")
        raise SystemExit(2) from None
    for w in (*config.warnings, *warnings):
        _eprint(f"ccr-fast: warning: {w}")
    return config, str(path)


def _effective_host_port(config, args: argparse.Namespace) -> tuple[str, int]:  # type: ignore[no-untyped-def]
    host = args.host or config.host
    port = args.port or config.port
    if not config.client_keys and host not in LOOPBACK:
        _eprint(
            f"ccr-fast: warning: HOST {host} ignored: without APIKEY the server listens on 127.0.0.1 only"
        )
        host = "127.0.0.1"
    return host, port


@contextlib.contextmanager
def _demo_mock() -> Iterator[str]:
    """Start the bundled mock provider for the demo config; stop it afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ccr_fast.mock",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--port-file",
                str(port_file),
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 15
            while not (port_file.exists() and port_file.read_text().strip()):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("ccr-fast: the demo mock provider failed to start")
                time.sleep(0.02)
            yield f"http://127.0.0.1:{int(port_file.read_text().strip())}"
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()


# --------------------------------------------------------------------------- commands
def cmd_start(args: argparse.Namespace) -> int:
    from ccr_fast.config import demo_config
    from ccr_fast.observe.log import setup_logging
    from ccr_fast.server.launch import serve

    pid = running_pid()
    if pid is not None:
        _eprint(f"ccr-fast: already running (PID {pid}); use `ccr-fast stop` or `ccr-fast restart`")
        return 1
    config, path = _resolve(args)
    with contextlib.ExitStack() as stack:
        demo_url: str | None = None
        if config is None:
            demo_url = stack.enter_context(_demo_mock())
            config = demo_config(demo_url, port=args.port or 3456)
            _eprint(
                "ccr-fast: no config file found; running the demo config against the bundled mock "
                f"provider at {demo_url} (create ~/.claude-code-router/config.json to use your own)"
            )
        setup_logging(config.log_level, access=config.log)
        host, port = _effective_host_port(config, args)
        workers = args.workers or config.workers
        _dir().mkdir(parents=True, exist_ok=True)
        pid_file().write_text(str(os.getpid()))
        state_file().write_text(
            json.dumps({"pid": os.getpid(), "host": host, "port": port, "apikey": bool(config.apikey)})
        )
        stack.callback(_cleanup_pid)
        uds = args.uds or config.unix_socket
        where = f"unix:{uds}" if uds else f"http://{host}:{port}"
        print(
            f"ccr-fast {__version__} listening on {where} ({workers} workers, {args.interface.upper()})",
            flush=True,
        )
        serve(
            config,
            uds=uds,
            host=host,
            port=port,
            workers=workers,
            interface=args.interface,
            config_path=path,
            demo_mock_url=demo_url,
        )
    return 0


def _cleanup_pid() -> None:
    try:
        if pid_file().read_text().strip() == str(os.getpid()):
            pid_file().unlink()
            state_file().unlink(missing_ok=True)
    except OSError:
        pass


def cmd_stop(args: argparse.Namespace) -> int:
    pid = running_pid()
    if pid is None:
        print("ccr-fast is not running")
        pid_file().unlink(missing_ok=True)
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        _eprint(f"ccr-fast: PID {pid} did not stop within {args.timeout:g}s; sending SIGKILL")
        os.kill(pid, signal.SIGKILL)
    pid_file().unlink(missing_ok=True)
    state_file().unlink(missing_ok=True)
    print("ccr-fast stopped")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    pid = running_pid()
    if pid is None:
        print("Status: Not Running")
        return 1
    st = _read_state()
    host, port = st.get("host", "127.0.0.1"), st.get("port", 3456)
    print("Status: Running")
    print(f"PID: {pid}")
    print(f"Port: {port}")
    print(f"API Endpoint: http://{host}:{port}")
    print(f"PID File: {pid_file()}")
    return 0


def _health_ok(host: str, port: int) -> bool:
    h = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    try:
        with urllib.request.urlopen(f"http://{h}:{port}/health", timeout=1) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_background(args: argparse.Namespace) -> tuple[str, int]:
    """Start the service detached (logs in ~/.claude-code-router/logs/) and wait until healthy."""
    logs = _dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ccr_fast"]
    if args.config:
        argv += ["--config", args.config]
    for flag, value in (
        ("--host", args.host),
        ("--port", args.port),
        ("--workers", args.workers),
        ("--uds", args.uds),
    ):
        if value:
            argv += [flag, str(value)]
    argv += ["--interface", args.interface, "start"]
    with open(logs / "ccr-fast.log", "ab") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"ccr-fast: the service failed to start; see {logs / 'ccr-fast.log'}")
        st = _read_state()
        if st.get("pid") == proc.pid and _health_ok(str(st["host"]), int(st["port"])):  # type: ignore[call-overload]
            return str(st["host"]), int(st["port"])  # type: ignore[call-overload]
        time.sleep(0.05)
    raise SystemExit(f"ccr-fast: the service did not become healthy within 30s; see {logs / 'ccr-fast.log'}")


def cmd_restart(args: argparse.Namespace) -> int:
    args.timeout = 35.0
    cmd_stop(args)
    host, port = start_background(args)
    print(f"ccr-fast restarted on http://{host}:{port}")
    return 0


def claude_env(host: str, port: int, apikey: str | None, api_timeout_ms: int) -> dict[str, str]:
    h = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return {
        "ANTHROPIC_BASE_URL": f"http://{h}:{port}",
        "ANTHROPIC_AUTH_TOKEN": apikey or "test",
        "ANTHROPIC_API_KEY": "",
        "NO_PROXY": "127.0.0.1",
        "DISABLE_TELEMETRY": "true",
        "DISABLE_COST_WARNINGS": "true",
        "API_TIMEOUT_MS": str(api_timeout_ms),
    }


def _env_for_running(args: argparse.Namespace) -> dict[str, str]:
    from ccr_fast.config import load_config

    config, _ = _resolve(args)
    apikey = config.client_keys[0].key if config and config.client_keys else None
    timeout = config.api_timeout_ms if config else 600000
    st = _read_state()
    if st:
        return claude_env(str(st.get("host")), int(st.get("port", 3456)), apikey, timeout)  # type: ignore[call-overload]
    if config is None:
        config = load_config(None)
    host, port = _effective_host_port(config, args)
    return claude_env(host, port, apikey, timeout)


def cmd_activate(args: argparse.Namespace) -> int:
    for k, v in _env_for_running(args).items():
        print(f"export {k}={json.dumps(v)}")
    print('# eval "$(ccr-fast activate)" to point Claude Code at ccr-fast in this shell')
    return 0


def cmd_code(args: argparse.Namespace) -> int:
    if running_pid() is None:
        start_background(args)
    config, _ = _resolve(args)
    env = {**os.environ, **_env_for_running(args)}
    claude = (config.claude_path if config and config.claude_path else None) or shutil.which("claude")
    if not claude:
        _eprint("ccr-fast: `claude` not found on PATH (install @anthropic-ai/claude-code or set CLAUDE_PATH)")
        return 127
    return subprocess.call([claude, *args.rest], env=env)


def cmd_version(args: argparse.Namespace) -> int:
    from ccr_fast._speedups import status

    print(f"ccr-fast {__version__} (Python {sys.version.split()[0]})")
    for name, impl in status().items():
        print(f"  {name}: {impl}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ccr-fast",
        description="A fast drop-in replacement for Claude Code Router.",
    )
    p.add_argument("--config", help="config file (default ~/.claude-code-router/config.json)")
    p.add_argument("--host", help="listen address (default: HOST from the config)")
    p.add_argument("--port", type=int, help="listen port (default: PORT from the config, 3456)")
    p.add_argument("--workers", type=int, help="worker processes (default: CPU count)")
    p.add_argument("--uds", help="listen on this unix socket instead of HOST:PORT (e.g. behind nginx)")
    p.add_argument(
        "--interface",
        choices=("rsgi", "asgi"),
        default=os.environ.get("CCR_FAST_INTERFACE", "rsgi"),
        help="server interface (default rsgi; asgi is the reference)",
    )
    sub = p.add_subparsers(dest="command")
    sub.add_parser("start", help="run the service in the foreground")
    st = sub.add_parser("stop", help="stop the running service")
    st.add_argument("--timeout", type=float, default=35.0)
    sub.add_parser("restart", help="restart the service in the background")
    sub.add_parser("status", help="show whether the service runs, its PID and endpoint")
    code = sub.add_parser("code", help="run Claude Code through ccr-fast (starts it if needed)")
    code.add_argument("rest", nargs=argparse.REMAINDER)
    sub.add_parser("activate", help='print export lines: eval "$(ccr-fast activate)"')
    sub.add_parser("env", help="same as activate")
    sub.add_parser("version", help="version and whether the compiled extensions are in use")
    sub.add_parser("help", help="this help")
    mock = sub.add_parser("mock", help="run the bundled mock LLM provider", add_help=False)
    mock.add_argument("rest", nargs=argparse.REMAINDER)
    return p


_VALUE_OPTIONS = frozenset({"--config", "--host", "--port", "--workers", "--interface", "--uds"})


def _command_index(argv: list[str]) -> int | None:
    """Position of the subcommand: the first token that is neither an option nor an option's value."""
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok in _VALUE_OPTIONS:
            i += 2
        elif tok.startswith("-"):
            i += 1
        else:
            return i
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "mock":
        from ccr_fast.mock.cli import main as mock_main

        return mock_main(argv[1:])
    parser = build_parser()
    # everything after `code` belongs to claude, options included (argparse would try to parse them)
    claude_args: list[str] = []
    at = _command_index(argv)
    if at is not None and argv[at] == "code":
        argv, claude_args = argv[: at + 1], argv[at + 1 :]
    args = parser.parse_args(argv)
    if args.command == "code":
        args.rest = claude_args
    commands = {
        "start": cmd_start,
        "stop": cmd_stop,
        "restart": cmd_restart,
        "status": cmd_status,
        "code": cmd_code,
        "activate": cmd_activate,
        "env": cmd_activate,
        "version": cmd_version,
    }
    if args.command in (None, "help"):
        parser.print_help()
        return 0
    if args.command == "stop" and not hasattr(args, "timeout"):
        args.timeout = 35.0
    return commands[args.command](args)
