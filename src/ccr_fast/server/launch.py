"""Start Granian: N worker processes on uvloop, respawned when they die, drained on shutdown.

The master validates the config before forking, so a broken config exits non-zero with every
problem listed instead of N workers crashing. Workers rebuild the same snapshot from the same
file (the path travels in the environment) through :func:`create_app`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from ccr_fast.config import Config, demo_config, load_config
from ccr_fast.observe.log import setup_logging
from ccr_fast.server.app import App
from ccr_fast.server.gateway import Gateway
from ccr_fast.state.shared import ENV_SEGMENT, SharedState
from ccr_fast.upstream.fast_transport import make_transport

Interface = Literal["asgi", "rsgi"]

ENV_CONFIG = "CCR_FAST_CONFIG"
ENV_DEMO_URL = "CCR_FAST_DEMO_MOCK_URL"


def worker_config() -> Config:
    demo_url = os.environ.get(ENV_DEMO_URL)
    if demo_url:
        return demo_config(demo_url)
    return load_config(os.environ.get(ENV_CONFIG) or None)


def create_app() -> App:
    """Granian factory: runs once in every worker process."""
    config = worker_config()
    setup_logging(config.log_level, access=config.log)
    transport = make_transport(config)
    segment = os.environ.get(ENV_SEGMENT)
    state = SharedState.attach(segment) if segment else SharedState.local()
    return App(Gateway(config, transport, state))


def serve(
    config: Config,
    *,
    host: str,
    port: int,
    workers: int,
    interface: Interface = "rsgi",
    config_path: str | None = None,
    demo_mock_url: str | None = None,
    uds: str | None = None,
) -> None:
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.server import Server

    if demo_mock_url:
        os.environ[ENV_DEMO_URL] = demo_mock_url
    else:
        os.environ.pop(ENV_DEMO_URL, None)
        if config_path:
            os.environ[ENV_CONFIG] = config_path
    kill_timeout = max(1, round(config.shutdown_timeout_ms / 1000))
    # shared state: created here, before Granian forks the workers, and removed when the server stops
    state = SharedState.create()
    os.environ[ENV_SEGMENT] = state.segment.name
    server = Server(
        "ccr_fast.server.launch:create_app",
        factory=True,
        address=host,
        port=port,
        uds=Path(uds) if uds else None,
        interface=Interfaces.RSGI if interface == "rsgi" else Interfaces.ASGI,
        workers=workers,
        loop=Loops.uvloop,
        http=HTTPModes.auto,
        backlog=2048,
        log_enabled=True,
        log_level=_granian_level(config.log_level),
        respawn_failed_workers=True,
        respawn_interval=1.0,
        workers_kill_timeout=kill_timeout,
    )
    try:
        server.serve()
    finally:
        state.close()
        state.unlink()


def _granian_level(level: str):  # type: ignore[no-untyped-def]
    from granian.log import LogLevels

    return {
        "debug": LogLevels.debug,
        "warn": LogLevels.warning,
        "warning": LogLevels.warning,
        "error": LogLevels.error,
    }.get(level.lower(), LogLevels.info)
