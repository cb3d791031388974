"""The run's later phases: memory per open stream, the soak, and the cost of each ccr-fast feature.

Each takes the :class:`bench.run.Bench` of the run (its servers, targets, layouts and results) and fills in
one section of the results document. The load itself is in :mod:`bench.memload` and :mod:`bench.loadgen`;
what is read from it is summarised by :mod:`bench.report_memory` and :mod:`bench.report_overhead`.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import resource
from typing import TYPE_CHECKING, Any

import orjson
import uvloop

from bench import histogram, peers, redis_peer
from bench.features import API_KEY, FEATURES, NOT_TIMED, feature_config
from bench.loadgen import back_to_back, summarize_run
from bench.memload import hold_streams, soak, step_counts
from bench.peers import LOOPBACK, Server, log
from bench.scenarios import HOLD_SCENARIO, SCENARIOS

if TYPE_CHECKING:
    from bench.run import Bench

#: new streams per second while the open-streams phase ramps up
OPEN_STREAM_RAMP = 200.0
#: the most streams the phase will hold open through one system
MAX_OPEN_STREAMS = 10_000
#: file descriptors per held stream, at worst: the client's socket, the proxy's two, the mock's one
FDS_PER_STREAM = 4
#: the soak's systems (each gets the full rate), when they run
SOAK_SYSTEMS = ("ccr-fast", "ccr")
SOAK_MIX = ("nonstream-1k", "stream-50")
#: requests each back-to-back feature run sends before it times anything
FEATURE_WARMUP = 20


def raise_file_limit(streams: int) -> int:
    """Raise this process's open-file limit (the servers it starts inherit it) as far as the hard limit
    allows, for ``streams`` held streams; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max(soft, streams * FDS_PER_STREAM + 1024)
    new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if new > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def streams_within(limit: int, streams: int) -> int:
    """How many streams the file limit allows (each system's streams are held in turn, not at once)."""
    return max(0, min(streams, MAX_OPEN_STREAMS, (limit - 512) // FDS_PER_STREAM))


def tree_memory(server: Server) -> dict[str, Any]:
    """RSS and PSS (MB) of a server's process tree, without the per-process breakdown."""
    used = peers.memory(server.proc.pid)
    return {"rss_mb": used["rss_mb"], "pss_mb": used["pss_mb"], "processes": len(used["processes"])}


def _get(port: int, path: str) -> str:
    """The body of ``GET path`` ("" if the server does not answer 200). The request carries the key the
    benchmark's requests carry, which ccr-fast asks for on ``/metrics`` when ``APIKEY`` is set."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
    try:
        conn.request("GET", path, headers={"x-api-key": API_KEY})
        response = conn.getresponse()
        body = response.read()
        return body.decode() if response.status == 200 else ""
    except OSError:
        return ""
    finally:
        conn.close()


def scrape(port: int) -> str:
    """ccr-fast's ``/metrics`` (Prometheus text), "" if it does not answer."""
    return _get(port, "/metrics")


def client_aborts(mock_port: int) -> int:
    """How many responses the mock had under way when their client (a proxy) went away."""
    try:
        return int(orjson.loads(_get(mock_port, "/_mock/stats") or b"{}").get("client_aborts", 0))
    except (orjson.JSONDecodeError, ValueError, AttributeError):
        return 0


def overhead(port: int) -> histogram.Histogram | None:
    """ccr-fast's server-side overhead histogram, all routes added together, as it stands now."""
    return histogram.parse_histogram(scrape(port), histogram.OVERHEAD_FAMILY)


def difference(
    after: histogram.Histogram | None, before: histogram.Histogram | None
) -> dict[str, Any] | None:
    """``after - before`` as JSON (a scrape before any request has no samples: count from zero)."""
    if after is None:
        return None
    if before is None:
        return after.to_json()
    return after.minus(before).to_json()


# --------------------------------------------------------------------------- memory per open stream


def open_streams(bench: Bench) -> None:
    args = bench.args
    section: dict[str, Any] = {
        "streams": args.open_streams,
        "steps": args.open_stream_steps,
        "ramp_rate": OPEN_STREAM_RAMP,
        "pool_size": bench.pool_size,
        "nofile": bench.nofile,
        "litellm_streams": min(args.open_streams, args.litellm_open_streams),
        "scenario": HOLD_SCENARIO.title,
        "systems": {},
    }
    bench.results["open_streams"] = section
    if args.open_streams <= 0:
        section["skipped"] = "`--open-streams 0`"
        return
    layout = bench.layouts["shared"]
    for target in bench.targets:
        server = target.server
        if server is None:
            continue
        count = section["litellm_streams"] if target.kind == "litellm" else args.open_streams
        target.apply_layout(bench.all_mocks(), layout)
        log(f"open streams: {count} through {target.key}")
        aborts = client_aborts(bench.mocks["hold"].port)
        result = uvloop.run(
            hold_streams(
                HOLD_SCENARIO.proxy_request(server.port),
                steps=step_counts(count, args.open_stream_steps),
                sample=functools.partial(tree_memory, server),
                ramp_rate=OPEN_STREAM_RAMP,
                settle=0.5 if args.quick else 1.0,
                after=2.0 if args.quick else 4.0,
            )
        )
        # a proxy that lets go of a stream its client left closes the upstream stream too
        # a system that lets go of a stream its client left closes the upstream stream too; one that does
        # not keeps streaming from the mock until the end (~100 s) or until it is stopped
        result["upstream_closed"] = client_aborts(bench.mocks["hold"].port) - aborts
        if result["errors"]:
            log(f"open streams through {target.key}: {result['errors']} failed: {result['error_kinds']}")
        section["systems"][target.key] = result


# --------------------------------------------------------------------------- soak


def run_soak(bench: Bench) -> None:
    args = bench.args
    if args.soak_seconds <= 0:
        bench.results["soak"] = {"skipped": "`--soak-seconds 0`"}
        return
    chosen = [
        t
        for t in bench.targets
        if t.key in SOAK_SYSTEMS and t.server is not None and all(k in t.requests for k in SOAK_MIX)
    ]
    if not chosen:
        bench.results["soak"] = {"skipped": "neither ccr-fast nor CCR answered the soak's requests"}
        return
    layout = bench.layouts["shared"]
    for target in chosen:
        target.apply_layout(bench.all_mocks(), layout)
    loads = {t.key: [(t.requests[k], SCENARIOS[k].stream) for k in SOAK_MIX] for t in chosen}
    servers = {t.key: t.server for t in chosen if t.server is not None}
    log(f"soak: {args.soak_rate:g} req/s to each of {', '.join(loads)} for {args.soak_seconds:g} s")
    result = uvloop.run(
        soak(
            loads,
            rate=args.soak_rate,
            duration=args.soak_seconds,
            interval=args.soak_interval,
            sample=lambda: {key: tree_memory(server) for key, server in servers.items()},
        )
    )
    result["mix"] = (
        "the non-stream 1 KB request and the 50-chunk stream (OpenAI translation, zero-latency mock)"
    )
    bench.results["soak"] = result


# --------------------------------------------------------------------------- per-feature cost


def feature_costs(bench: Bench) -> None:
    args = bench.args
    section: dict[str, Any] = {
        "options": {"rounds": args.feature_rounds, "duration": args.feature_duration},
        "variants": {},
        "not_timed": dict(NOT_TIMED),
        "skipped_variants": {},
    }
    bench.results["features"] = section
    if args.feature_rounds <= 0 or "ccr-fast" not in args.systems:
        section["skipped"] = "`--feature-rounds 0`" if args.feature_rounds <= 0 else "ccr-fast not measured"
        return
    sut = set(bench.main_layout.sut)
    redis: Server | None = None
    try:
        redis = redis_peer.start_redis(bench.workdir, set(bench.main_layout.mock))
        bench.stack.callback(redis.stop)
        bench.others.append(redis)
    except RuntimeError as exc:
        section["skipped_variants"]["redis"] = str(exc).splitlines()[0]
    servers: dict[str, Server] = {}
    for key, feature in FEATURES.items():
        if feature.needs_redis and redis is None:
            continue
        config = feature_config(
            bench.config, key, redis_url=f"redis://{LOOPBACK}:{redis.port}/0" if redis else None
        )
        name = f"feature-{key}"
        server = bench.start_extra(
            name,
            functools.partial(
                peers.start_ccr_fast,
                name,
                config,
                bench.workdir,
                workers=len(sut),
                interface="rsgi",
                cpus=sut,
            ),
        )
        if server is None:
            section["skipped_variants"][key] = "did not start"
            continue
        servers[key] = server
        section["variants"][key] = {"title": feature.title, "rounds": []}
    scenario = SCENARIOS["nonstream-1k"]
    redis_commands = redis_requests = 0
    for mock in bench.all_mocks():
        peers.pin(mock.pids(), set(bench.main_layout.mock))
    try:
        for round_index in range(args.feature_rounds):
            for key, server in servers.items():
                log(f"feature cost {round_index + 1}/{args.feature_rounds}: {key}")
                request = scenario.proxy_request(server.port)
                before = scrape(server.port)
                commands = redis_peer.commands_processed(redis.port) if key == "redis" and redis else 0
                meter, waited = bench.quiet_start()
                run = uvloop.run(
                    back_to_back(request, duration=args.feature_duration, stream=False, warmup=FEATURE_WARMUP)
                )
                share = meter.share()
                if key == "redis" and redis:
                    # the INFO that read ``commands`` counts too; the warm-up requests used Redis as well
                    redis_commands += redis_peer.commands_processed(redis.port) - commands - 1
                    redis_requests += len(run.exchanges) + FEATURE_WARMUP
                after = scrape(server.port)
                result = summarize_run(run)
                result.pop("latency_cdf_ms", None)
                family = histogram.OVERHEAD_FAMILY
                result["inside"] = difference(
                    histogram.parse_histogram(after, family), histogram.parse_histogram(before, family)
                )
                result["rate_limited"] = histogram.counter_total(
                    after, "ccr_rate_limited_total"
                ) - histogram.counter_total(before, "ccr_rate_limited_total")
                result.update(foreign_cpu=share, waited_s=waited)
                section["variants"][key]["rounds"].append(result)
        if redis is not None and "redis" in servers:
            section["redis"] = {
                "ping": redis_peer.ping_round_trip(redis.port),
                "commands": redis_commands,
                "requests": redis_requests,
            }
    finally:
        peers.stop_all(servers.values())
