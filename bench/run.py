"""``python -m bench.run``: ccr-fast against direct-to-mock, Claude Code Router and LiteLLM, in one run.

The run installs what it needs (wrk, Claude Code Router, with ``--litellm`` LiteLLM, matplotlib for the
plots), starts the mock upstreams, ccr-fast (RSGI and ASGI on their own CPU, and RSGI with ``--workers`` on
the whole machine), CCR and LiteLLM, then measures, interleaved per scenario and repeated for ``--rounds``
rounds: closed-loop throughput (wrk), open-loop latency at a light load (plus the same request back to
back, and ccr-fast's own overhead histogram), TTFT and per-chunk delay, memory idle and after load, memory
per open stream, memory over a soak, the cost of each ccr-fast feature, and cold start. It finishes with
the micro benchmarks, writes ``bench/results/<timestamp>.json`` and regenerates ``docs/benchmarks.md``
(with its figures in ``docs/img/``).

Interleaving (direct, ccr-fast, ..., CCR, then again) spreads the noise of a shared machine over every
system instead of handing one system a quiet minute and another a busy one; medians over rounds are
reported. Each timed run also waits briefly for a quiet moment and records how much of the machine other
processes took while it ran.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import uvloop

from bench import litellm_peer, peers, phases, report
from bench.loadgen import back_to_back, fetch_once, open_loop, summarize_run
from bench.peers import REPO, Server, log
from bench.scenarios import (
    DEFAULT_POOL_SIZE,
    LATENCY_SCENARIO,
    MOCK_PROFILES,
    MOCK_TEXT,
    SCENARIOS,
    SHARED_THROUGHPUT_SCENARIOS,
    STREAM_SCENARIO,
    THROUGHPUT_SCENARIOS,
    Layout,
    Scenario,
    Target,
    WrkOptions,
    check_response,
    direct_request,
    gateway_config,
    layouts,
    proxy_routes,
    run_wrk,
    wrk_script,
)
from ccr_fast.mock import run_in_thread

RESULTS_DIR = REPO / "bench" / "results"
DOCS_PATH = REPO / "docs" / "benchmarks.md"
SYSTEMS = ("direct", "ccr-fast", "ccr", "litellm")
#: LiteLLM is measured only when asked for: installing it takes minutes, and it is slow to measure
DEFAULT_SYSTEMS = ("direct", "ccr-fast", "ccr")
#: a run starts once other processes used at most this share of the machine over one window
QUIET_SHARE = 0.10
QUIET_WINDOW_S = 0.5
COLD_START_SETTLE_S = 1.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="short runs, one round, no micro benchmarks (~2 min)"
    )
    parser.add_argument(
        "--systems",
        default=",".join(DEFAULT_SYSTEMS),
        help=f"comma-separated subset of: {', '.join(SYSTEMS)} (default {','.join(DEFAULT_SYSTEMS)})",
    )
    parser.add_argument(
        "--litellm",
        action="store_true",
        help="also measure LiteLLM (installed into .tools/litellm from PyPI on first use)",
    )
    parser.add_argument(
        "--litellm-rate", type=float, default=5.0, help="LiteLLM's open-loop rate for latency (default 5)"
    )
    parser.add_argument(
        "--litellm-stream-rate", type=float, default=2.0, help="LiteLLM's rate for TTFT/chunks (default 2)"
    )
    parser.add_argument(
        "--open-streams",
        type=int,
        help=f"streams held open at once per system for memory (default 1000; quick 200; at most "
        f"{phases.MAX_OPEN_STREAMS}; 0 skips)",
    )
    parser.add_argument(
        "--open-stream-steps", type=int, help="memory samples while opening them (default 5; quick 2)"
    )
    parser.add_argument(
        "--litellm-open-streams",
        type=int,
        default=200,
        help="at most this many open streams through LiteLLM (default 200)",
    )
    parser.add_argument(
        "--soak-seconds",
        type=float,
        help="steady mixed load for memory growth, seconds (default 180; quick 0: skipped; 1800: 30 min)",
    )
    parser.add_argument("--soak-rate", type=float, default=50.0, help="soak rate per system (default 50)")
    parser.add_argument(
        "--soak-interval", type=float, default=5.0, help="seconds between soak memory samples (default 5)"
    )
    parser.add_argument(
        "--feature-rounds", type=int, help="rounds of the per-feature cost runs (default 5; quick 1; 0 skips)"
    )
    parser.add_argument("--feature-duration", type=float, help="seconds per feature run (default 2; quick 1)")
    parser.add_argument("--duration", type=float, help="seconds per throughput run (default 4; quick 2)")
    parser.add_argument(
        "--rounds", type=int, help="interleaved rounds of throughput runs (default 3; quick 1)"
    )
    parser.add_argument(
        "--latency-duration",
        type=float,
        help="seconds per open-loop run, latency and streams (default 6; quick 3)",
    )
    parser.add_argument("--latency-rounds", type=int, help="rounds of open-loop runs (default 2; quick 1)")
    parser.add_argument(
        "--rate", type=float, default=50.0, help="open-loop rate for latency, req/s (default 50)"
    )
    parser.add_argument(
        "--stream-rate", type=float, default=10.0, help="open-loop rate for TTFT/chunks (default 10)"
    )
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument(
        "--workers", type=int, default=2, help="ccr-fast workers on the whole machine (default 2)"
    )
    parser.add_argument("--cold-starts", type=int, help="cold starts timed per system (default 3; quick 1)")
    parser.add_argument(
        "--profile", action="store_true", help="sample a ccr-fast worker with py-spy under load"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        help="seconds a run may wait for other processes to quieten down (default 2; quick 1)",
    )
    parser.add_argument("--no-micro", action="store_true", help="skip the micro benchmarks")
    parser.add_argument(
        "--no-docs", action="store_true", help="write the JSON only, leave docs/benchmarks.md alone"
    )
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "duration": (4.0, 2.0),
        "rounds": (3, 1),
        "latency_duration": (6.0, 3.0),
        "latency_rounds": (2, 1),
        "cold_starts": (3, 1),
        "quiet_wait": (2.0, 1.0),
        "open_streams": (1000, 200),
        "open_stream_steps": (5, 2),
        "soak_seconds": (180.0, 0.0),
        "feature_rounds": (5, 1),
        "feature_duration": (2.0, 1.0),
    }
    for name, (full, short) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, short if quick else full)
    args.micro = not (args.no_micro or quick)
    chosen = [s.strip() for s in args.systems.split(",") if s.strip()]
    if args.litellm and "litellm" not in chosen:
        chosen.append("litellm")
    unknown = sorted(set(chosen) - set(SYSTEMS))
    if unknown:
        parser.error(f"unknown systems {unknown}; choose from {', '.join(SYSTEMS)}")
    args.systems = chosen
    if not 0 <= args.open_streams <= phases.MAX_OPEN_STREAMS:
        parser.error(f"--open-streams must be between 0 and {phases.MAX_OPEN_STREAMS}")
    if args.soak_seconds > 0 and (args.soak_rate <= 0 or args.soak_interval <= 0):
        parser.error("--soak-rate and --soak-interval must be positive")
    return args


class Bench:
    """One benchmark run: its servers, targets and the results document being filled in."""

    def __init__(self, args: argparse.Namespace, workdir: Path, stack: contextlib.ExitStack) -> None:
        self.args = args
        self.workdir = workdir
        self.stack = stack
        self.layouts = layouts()
        self.main_layout = self.layouts.get("split", self.layouts["shared"])
        self.mocks: dict[str, Server] = {}
        self.servers: dict[str, Server] = {}
        self.targets: list[Target] = []
        self.shared_targets: list[Target] = []
        self.wrk: WrkOptions | None = None
        self.ccr_cli: Path | None = None
        self.litellm_bin: Path | None = None
        self.config: dict[str, Any] = {}
        self.litellm_config: dict[str, Any] = {}
        #: servers outside ``servers`` (feature variants, Redis): metered as ours, stopped with the stack
        self.others: list[Server] = []
        #: ccr-fast's UPSTREAM_POOL_SIZE: room for the streams the memory phase holds open
        self.pool_size = max(DEFAULT_POOL_SIZE, args.open_streams + 64)
        self.nofile = 0
        self.results: dict[str, Any] = {
            "schema": 1,
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": "python -m bench.run " + shlex.join(sys.argv[1:]),
            "options": {k: v for k, v in vars(args).items() if k not in ("no_micro", "no_docs")},
            "machine": peers.machine_info(),
            "git": peers.git_info(),
            "layouts": {
                name: {
                    "loadgen": sorted(lay.loadgen),
                    "mock": sorted(lay.mock),
                    "sut": sorted(lay.sut),
                    "description": lay.describe(),
                }
                for name, lay in self.layouts.items()
            },
            "scenarios": {
                key: {"title": s.title, "mock": s.mock, "stream": s.stream} for key, s in SCENARIOS.items()
            },
            "mock_profiles": {name: vars(p) for name, p in MOCK_PROFILES.items()},
            "systems": {},
            "skipped": {},
            "smoke": {},
            "throughput": {},
            "latency": {},
            "latency_back_to_back": {},
            "stream": {},
            "memory": {},
            "cold_start": {},
            "inside_overhead": {},
        }

    # ------------------------------------------------------------------ set-up

    def install(self) -> None:
        binary = peers.ensure_wrk()
        self.wrk = WrkOptions(binary, connections=self.args.connections) if binary else None
        if "ccr" in self.args.systems:
            self.ccr_cli = peers.ensure_ccr()
            if self.ccr_cli is None:
                self.results["skipped"]["ccr"] = "Node.js/npm missing or the npm install failed"
        if "litellm" in self.args.systems:
            self.litellm_bin = litellm_peer.ensure_litellm()
            if self.litellm_bin is None:
                self.results["skipped"]["litellm"] = (
                    f"litellm[proxy]=={litellm_peer.LITELLM_VERSION} could not be installed from PyPI"
                )
        if not self.args.no_docs:
            peers.ensure_plotting()
        self.results["versions"] = peers.versions(self.ccr_cli)
        if self.litellm_bin is not None:
            self.results["versions"]["litellm"] = litellm_peer.installed_version()
        if any("pure" in mode for mode in self.results["versions"]["extensions"].values()):
            log(
                "warning: some hot paths run as pure Python (build them: python setup.py build_ext --inplace)"
            )

    def start_mocks(self) -> None:
        for name, profile in MOCK_PROFILES.items():
            server = peers.start_mock(profile, MOCK_TEXT, self.workdir, set(self.main_layout.mock))
            self.stack.callback(server.stop)
            self.mocks[name] = server

    def _start(
        self, key: str, start: Callable[[], Server], *, path: str = "/health", timeout: float = 30.0
    ) -> Server | None:
        try:
            server = start()
            self.stack.callback(server.stop)
            peers.wait_ready(server, path, timeout)
        except (RuntimeError, TimeoutError, OSError) as exc:
            log(f"{key} did not start; it is skipped: {exc}")
            self.results["skipped"][key] = f"did not start: {exc}"
            return None
        self.servers[key] = server
        return server

    def start_extra(self, key: str, start: Callable[[], Server]) -> Server | None:
        """A server for one phase only (not in the memory table, not stopped with the systems)."""
        server = self._start(key, start)
        if server is not None:
            del self.servers[key]
            self.others.append(server)
        return server

    def start_systems(self, capture_port: int) -> None:
        mock_ports = {name: m.port for name, m in self.mocks.items()}
        self.config = gateway_config(mock_ports, capture_port, pool_size=self.pool_size)
        self.litellm_config = litellm_peer.litellm_config(proxy_routes(mock_ports))
        sut = set(self.main_layout.sut)
        one_core_workers = len(sut)
        main = self.main_layout
        # ccr-fast on its own CPU always starts: "direct" replays what it sends upstream
        fast = self._start(
            "ccr-fast",
            lambda: peers.start_ccr_fast(
                "ccr-fast", self.config, self.workdir, workers=one_core_workers, interface="rsgi", cpus=sut
            ),
        )
        if fast is None:
            raise SystemExit("ccr-fast did not start; nothing to measure")
        targets: list[tuple[str, str, str, Server | None]] = [("direct", "direct to mock", "direct", None)]
        if "ccr-fast" in self.args.systems:
            targets.append(("ccr-fast", f"ccr-fast (RSGI, {one_core_workers} worker)", "ccr-fast", fast))
            asgi = self._start(
                "ccr-fast-asgi",
                lambda: peers.start_ccr_fast(
                    "ccr-fast-asgi",
                    self.config,
                    self.workdir,
                    workers=one_core_workers,
                    interface="asgi",
                    cpus=sut,
                ),
            )
            if asgi is not None:
                targets.append(
                    ("ccr-fast-asgi", f"ccr-fast (ASGI, {one_core_workers} worker)", "ccr-fast", asgi)
                )
        ccr = None
        if self.ccr_cli is not None:
            ccr = self._start("ccr", lambda: peers.start_ccr("ccr", self.config, self.workdir, cpus=sut))
            if ccr is not None:
                version = self.results["versions"].get("claude_code_router", "")
                targets.append(("ccr", f"Claude Code Router {version}", "ccr", ccr))
        litellm = None
        if self.litellm_bin is not None:
            log("starting LiteLLM (it takes about ten seconds)")
            litellm = self._start(
                "litellm",
                lambda: litellm_peer.start_litellm("litellm", self.litellm_config, self.workdir, cpus=sut),
                path=litellm_peer.READY_PATH,
                timeout=litellm_peer.START_TIMEOUT_S,
            )
            if litellm is not None:
                version = self.results["versions"].get("litellm", "")
                targets.append(("litellm", f"LiteLLM {version}", "litellm", litellm))
        self.targets = [Target(k, t, kind, main, s) for k, t, kind, s in targets if kind in self.args.systems]
        if "shared" in self.layouts and main.name != "shared" and not self.args.quick:
            self._start_shared(ccr, litellm)
        for target in [*self.targets, *self.shared_targets]:
            self.results["systems"][target.key] = {
                "title": target.title,
                "kind": target.kind,
                "layout": target.layout.name,
                "server": target.server.name if target.server else None,
            }

    def _start_shared(self, ccr: Server | None, litellm: Server | None) -> None:
        shared = self.layouts["shared"]
        workers = self.args.workers
        found: list[Target] = []
        if "direct" in self.args.systems:
            found.append(Target("direct@shared", "direct to mock, unpinned", "direct", shared, None))
        if "ccr-fast" in self.args.systems:
            fast = self._start(
                "ccr-fast-shared",
                lambda: peers.start_ccr_fast(
                    "ccr-fast-shared", self.config, self.workdir, workers=workers, interface="rsgi", cpus=None
                ),
            )
            if fast is not None:
                found.append(
                    Target(
                        "ccr-fast@shared",
                        f"ccr-fast (RSGI, {workers} workers, unpinned)",
                        "ccr-fast",
                        shared,
                        fast,
                    )
                )
        if ccr is not None:
            version = self.results["versions"].get("claude_code_router", "")
            found.append(Target("ccr@shared", f"Claude Code Router {version}, unpinned", "ccr", shared, ccr))
        if litellm is not None:
            version = self.results["versions"].get("litellm", "")
            found.append(Target("litellm@shared", f"LiteLLM {version}, unpinned", "litellm", shared, litellm))
        self.shared_targets = found

    def capture_upstream_requests(self, capture: Any) -> dict[str, dict[str, Any]]:
        """Send each scenario through ccr-fast to the capturing mock and keep what arrived upstream."""
        fast = self.servers["ccr-fast"]
        captured: dict[str, dict[str, Any]] = {}
        for key, scenario in SCENARIOS.items():
            capture.reset()
            request = scenario.proxy_request(fast.port, model=scenario.capture_model)
            record, body = uvloop.run(fetch_once(request, stream=scenario.stream))
            seen = capture.requests
            if record.status != 200 or not seen:
                raise SystemExit(
                    f"capturing the upstream request of {key} failed: HTTP {record.status} {body[:300]!r}"
                )
            captured[key] = seen[-1]
        return captured

    def build_requests(self, captured: dict[str, dict[str, Any]]) -> None:
        for target in [*self.targets, *self.shared_targets]:
            for key, scenario in SCENARIOS.items():
                if target.server is None:
                    target.requests[key] = direct_request(captured[key], self.mocks[scenario.mock].port)
                else:
                    target.requests[key] = scenario.proxy_request(target.server.port)

    def smoke(self) -> None:
        """One request per target and scenario, checked; a failing pair is reported and not timed."""
        for target in [*self.targets, *self.shared_targets]:
            outcome: dict[str, Any] = {}
            for key in list(target.requests):
                scenario = SCENARIOS[key]
                request = target.requests[key]
                try:
                    record, body = uvloop.run(fetch_once(request, stream=scenario.stream))
                    problems = check_response(scenario, record.status, body, len(record.content))
                except (OSError, TimeoutError, ValueError) as exc:
                    problems = [f"{type(exc).__name__}: {exc}"]
                outcome[key] = problems or "ok"
                if problems:
                    log(f"{target.key} / {key}: {'; '.join(problems)} — not timed")
                    del target.requests[key]
            self.results["smoke"][target.key] = outcome

    def record_memory(self, moment: str) -> None:
        for name, server in self.servers.items():
            self.results["memory"].setdefault(name, {})[moment] = peers.memory(server.proc.pid)

    # ------------------------------------------------------------------ phases

    def all_mocks(self) -> list[Server]:
        return list(self.mocks.values())

    def _meter(self) -> peers.ForeignCpu:
        servers = [*self.servers.values(), *self.mocks.values(), *self.others]
        return peers.ForeignCpu(lambda: [s.proc.pid for s in servers])

    def quiet_start(self) -> tuple[peers.ForeignCpu, float]:
        """Wait (at most ``--quiet-wait`` seconds) for a moment when other processes leave the machine
        nearly idle, then start metering; every system gets the same gate. Returns the meter and the wait.

        The machines are shared and other work arrives in bursts; starting a run in a burst would hand
        that system a noisy number. Waiting dodges short bursts, not sustained load, and the share of the
        machine other processes took during each run is recorded either way.
        """
        started = time.monotonic()
        deadline = started + self.args.quiet_wait
        while time.monotonic() < deadline:
            window = self._meter()
            time.sleep(QUIET_WINDOW_S)
            if window.share() <= QUIET_SHARE:
                break
        return self._meter(), time.monotonic() - started

    def throughput(self, targets: list[Target], scenario_keys: tuple[str, ...], layout_name: str) -> None:
        if self.wrk is None:
            self.results["skipped"]["throughput"] = "wrk is not available"
            return
        args = self.args
        for key in scenario_keys:
            active = [t for t in targets if key in t.requests]
            scripts = {
                t.key: wrk_script(t.requests[key], self.workdir, f"{t.key}-{key}".replace("@", "-"))
                for t in active
            }
            for target in active:  # warm-up: connection pools, caches, V8's JIT
                target.apply_layout(self.all_mocks())
                run_wrk(self.wrk, scripts[target.key], target.requests[key], 1, target.layout.loadgen)
            for round_index in range(args.rounds):
                for target in active:
                    target.apply_layout(self.all_mocks())
                    log(f"throughput [{layout_name}] {key} {round_index + 1}/{args.rounds}: {target.key}")
                    meter, waited = self.quiet_start()
                    try:
                        result = run_wrk(
                            self.wrk,
                            scripts[target.key],
                            target.requests[key],
                            args.duration,
                            target.layout.loadgen,
                        )
                    except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
                        result = {"failed": str(exc)}
                    result.update(foreign_cpu=meter.share(), waited_s=waited)
                    self.results["throughput"].setdefault(key, {}).setdefault(target.key, []).append(result)

    def open_loop_phase(
        self,
        section: str,
        scenario: Scenario,
        rate: float,
        back_to_back_s: float = 0,
        *,
        litellm_rate: float | None = None,
    ) -> None:
        """Open-loop runs at ``rate`` (LiteLLM: ``litellm_rate``), interleaved across systems, nothing pinned.

        At a light load nothing competes for a CPU, so there is nothing to isolate; pinning would only add
        a cross-CPU wake-up to every hop of a proxied request. With ``back_to_back_s``, each open-loop run
        is followed by one of requests sent back to back on one connection (see ``loadgen.back_to_back``),
        and ccr-fast's own overhead histogram is scraped around both (``inside_overhead``).
        """
        args = self.args
        layout = self.layouts["shared"]
        for round_index in range(args.latency_rounds):
            for target in self.targets:
                request = target.requests.get(scenario.key)
                if request is None:
                    continue
                target_rate = min(rate, litellm_rate) if target.kind == "litellm" and litellm_rate else rate
                inside = back_to_back_s and target.kind == "ccr-fast" and target.server is not None
                target.apply_layout(self.all_mocks(), layout)
                log(f"{section} {scenario.key} {round_index + 1}/{args.latency_rounds}: {target.key}")
                port = target.server.port if target.server is not None else 0
                scrapes = [phases.overhead(port)] if inside else []
                meter, waited = self.quiet_start()
                run = uvloop.run(
                    open_loop(
                        request, rate=target_rate, duration=args.latency_duration, stream=scenario.stream
                    )
                )
                result = {**summarize_run(run), "foreign_cpu": meter.share(), "waited_s": waited}
                self.results[section].setdefault(scenario.key, {}).setdefault(target.key, []).append(result)
                if back_to_back_s:
                    if inside:
                        scrapes.append(phases.overhead(port))
                    meter, waited = self.quiet_start()
                    run = uvloop.run(back_to_back(request, duration=back_to_back_s, stream=scenario.stream))
                    result = {**summarize_run(run), "foreign_cpu": meter.share(), "waited_s": waited}
                    section_b2b = self.results[f"{section}_back_to_back"]
                    section_b2b.setdefault(scenario.key, {}).setdefault(target.key, []).append(result)
                if inside:
                    scrapes.append(phases.overhead(port))
                    by_target = self.results["inside_overhead"].setdefault(scenario.key, {})
                    by_target.setdefault(target.key, []).append(
                        {
                            "open_loop": phases.difference(scrapes[1], scrapes[0]),
                            "back_to_back": phases.difference(scrapes[2], scrapes[1]),
                        }
                    )

    def profile(self) -> None:
        """py-spy on the one-core ccr-fast worker under the 1 KB and the streaming load (not timed)."""
        fast = self.servers.get("ccr-fast")
        target = next((t for t in self.targets if t.key == "ccr-fast"), None)
        if fast is None or target is None or self.wrk is None:
            return
        profiles = {}
        for key in ("nonstream-1k", "stream-50"):
            request = target.requests.get(key)
            if request is None:
                continue
            target.apply_layout(self.all_mocks())
            script = wrk_script(request, self.workdir, f"profile-{key}")
            load = functools.partial(
                run_wrk, self.wrk, script, request, self.args.duration, target.layout.loadgen
            )
            log(f"profiling ccr-fast under {key}")
            profiles[key] = peers.profile_worker(fast, load, self.args.duration, self.workdir)
        self.results["profile"] = profiles

    def stop_systems(self) -> None:
        peers.stop_all(self.servers.values())

    def stop_peers(self) -> None:
        """Stop CCR and LiteLLM (every system that is not ccr-fast)."""
        peers.stop_all(s for key, s in self.servers.items() if not key.startswith("ccr-fast"))

    def cold_starts(self) -> None:
        """Fresh instances, nothing pinned, timed from spawn to the first request served end to end."""
        scenario = SCENARIOS["nonstream-1k"]
        body = scenario.proxy_request(0).body
        headers = dict(scenario.proxy_request(0).headers)
        starters: dict[str, Callable[[str], Server]] = {}
        if "ccr-fast" in self.args.systems:
            starters["ccr-fast"] = lambda name: peers.start_ccr_fast(
                name, self.config, self.workdir, workers=self.args.workers, interface="rsgi", cpus=None
            )
        if self.ccr_cli is not None and "ccr" in self.args.systems:
            starters["ccr"] = lambda name: peers.start_ccr(name, self.config, self.workdir, cpus=None)
        if self.litellm_bin is not None and "litellm" in self.args.systems:
            starters["litellm"] = lambda name: litellm_peer.start_litellm(
                name, self.litellm_config, self.workdir, cpus=None
            )
        os.sched_setaffinity(0, self.layouts["shared"].loadgen)
        for mock in self.mocks.values():
            peers.pin(mock.pids(), set(self.layouts["shared"].mock))
        for attempt in range(self.args.cold_starts):
            for system, start in starters.items():
                if system == "litellm" and attempt > 0:
                    continue  # about ten seconds each: once is enough to place it
                name = f"cold-{system}-{attempt}"
                timeout = litellm_peer.START_TIMEOUT_S if system == "litellm" else 30.0
                try:
                    server, seconds = peers.time_to_first_request(
                        functools.partial(start, name), "/v1/messages", body, headers, timeout
                    )
                except (RuntimeError, TimeoutError) as exc:
                    log(f"cold start of {system} failed: {exc}")
                    continue
                entry = self.results["cold_start"].setdefault(system, {"seconds": []})
                entry["seconds"].append(seconds)
                entry.setdefault("workers", self.args.workers if system == "ccr-fast" else 1)
                # the first request can be served while later workers are still starting; a SIGTERM then
                # is not passed to them and the stop waits out the kill timeout
                time.sleep(COLD_START_SETTLE_S)
                server.stop()

    def micro(self) -> None:
        out = self.workdir / "micro.json"
        log("micro benchmarks: pytest bench/micro --benchmark-enable")
        cpus = self.main_layout.sut
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "bench/micro",
                "--benchmark-enable",
                "-q",
                "-p",
                "no:cacheprovider",
                f"--benchmark-json={out}",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            preexec_fn=lambda: os.sched_setaffinity(0, cpus),
        )
        if not out.exists():
            self.results["micro"] = {"failed": (result.stdout + result.stderr)[-2000:]}
            return
        data = orjson.loads(out.read_bytes())
        self.results["micro"] = {
            "exit_code": result.returncode,
            "benchmarks": [
                {
                    "group": b["group"],
                    "name": b["name"],
                    "median_us": b["stats"]["median"] * 1e6,
                    "mean_us": b["stats"]["mean"] * 1e6,
                    "rounds": b["stats"]["rounds"],
                }
                for b in data["benchmarks"]
            ],
        }


@contextlib.contextmanager
def _capture_mock() -> Iterator[Any]:
    provider, stop = run_in_thread({"text": MOCK_TEXT, "chunks": 10})
    try:
        yield provider
    finally:
        stop()


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    # every held stream needs descriptors in the client, the proxy and the mock, which inherit this limit
    nofile = phases.raise_file_limit(args.open_streams)
    allowed = phases.streams_within(nofile, args.open_streams)
    if allowed < args.open_streams:
        log(f"the open-file limit ({nofile}) allows {allowed} open streams, not {args.open_streams}")
        args.open_streams = allowed
    with tempfile.TemporaryDirectory(prefix="ccr-fast-bench-") as tmp, contextlib.ExitStack() as stack:
        bench = Bench(args, Path(tmp), stack)
        bench.nofile = nofile
        layout: Layout = bench.main_layout
        log(f"CPU layout: {layout.describe()}")
        os.sched_setaffinity(0, layout.loadgen)
        bench.install()
        log("starting the mocks and the systems under test")
        bench.start_mocks()
        with _capture_mock() as capture:
            bench.start_systems(capture.port)
            captured = bench.capture_upstream_requests(capture)
        bench.build_requests(captured)
        log("checking every system and scenario once")
        bench.smoke()
        bench.record_memory("idle")
        bench.throughput(bench.targets, THROUGHPUT_SCENARIOS, layout.name)
        if bench.shared_targets:
            bench.throughput(bench.shared_targets, SHARED_THROUGHPUT_SCENARIOS, "shared")
        bench.open_loop_phase(
            "latency",
            SCENARIOS[LATENCY_SCENARIO],
            args.rate,
            back_to_back_s=args.duration / 2,
            litellm_rate=args.litellm_rate,
        )
        bench.open_loop_phase(
            "stream", SCENARIOS[STREAM_SCENARIO], args.stream_rate, litellm_rate=args.litellm_stream_rate
        )
        time.sleep(1)
        bench.record_memory("after_load")
        phases.run_soak(bench)
        phases.open_streams(bench)
        # the peers are done; stopping them also ends any stream they kept open upstream after their
        # client left, which would otherwise run on through the feature timings
        bench.stop_peers()
        phases.feature_costs(bench)
        if args.profile:
            bench.profile()
        log("stopping the systems; timing cold starts")
        bench.stop_systems()
        bench.cold_starts()
        log("stopping the mocks")
        stack.close()
        if args.micro:
            bench.micro()
        results = bench.results
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["duration_s"] = round(time.monotonic() - started, 1)
    results["summary"] = report.summarize(results)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = run(args)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{stamp}{'-quick' if args.quick else ''}.json"
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    log(f"results: {path.relative_to(REPO)} ({results['duration_s']} s)")
    print(report.render_summary(results))
    if not args.no_docs:
        report.write_docs(results, path, DOCS_PATH)
        log(f"docs: {DOCS_PATH.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
