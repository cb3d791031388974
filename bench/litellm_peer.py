"""LiteLLM's proxy as a peer: installed by the benchmark into its own virtualenv, configured for the mocks.

``litellm[proxy]`` comes from PyPI into ``.tools/litellm`` (a virtualenv of its own, so none of its many
dependencies meets ccr-fast's), pinned to the version this suite was tested with. It runs as
``litellm --config <file>`` on a loopback port, one uvicorn worker as it starts, with:

* ``LITELLM_MASTER_KEY`` set to the API key the benchmark's requests carry (Claude Code's ``x-api-key``);
* ``LITELLM_USE_CHAT_COMPLETIONS_URL_FOR_ANTHROPIC_MESSAGES=True``, so ``/v1/messages`` for an OpenAI
  model goes to the mock's chat-completions endpoint, as ccr-fast and CCR do;
* ``LITELLM_LOCAL_MODEL_COST_MAP=True``: its bundled price list instead of a download at start-up;
* its log at ERROR and uvicorn's access log off: the other proxies write no line per request either.

The config maps every scenario's ``model`` (the same request bodies every proxy receives, with CCR's
``provider,model`` names as plain model names here) to the mock that scenario uses. The config is JSON,
which is YAML, so no YAML writer is needed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from bench.bodies import CLAUDE_CODE_HEADERS
from bench.peers import LOOPBACK, TOOLS, Server, free_port, log, spawn

#: the release this suite was run with (performance.md's numbers too); newer ones may change the numbers
LITELLM_VERSION = "1.108.7"
LITELLM_PREFIX = TOOLS / "litellm"
LITELLM_BIN = LITELLM_PREFIX / "bin" / "litellm"
#: LiteLLM answers this without auth once it can serve
READY_PATH = "/health/liveliness"
#: LiteLLM takes about 10 s to start (performance.md); more on a loaded machine
START_TIMEOUT_S = 90.0
#: the API key every benchmark request carries doubles as LiteLLM's master key (it must start with "sk-")
MASTER_KEY = dict(CLAUDE_CODE_HEADERS)["x-api-key"]
UPSTREAM_KEY = "sk-bench-upstream"
UPSTREAM_ANTHROPIC_KEY = "sk-ant-bench-upstream"

#: uvicorn's logging with the access log (one line per request) turned off
LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"uvicorn.access": {"level": "WARNING"}},
}


def litellm_route(model: str, mock_port: int, upstream_model: str, *, anthropic: bool) -> dict[str, Any]:
    """One ``model_list`` entry: requests for ``model`` go to the mock on ``mock_port``."""
    if anthropic:
        params = {
            "model": f"anthropic/{upstream_model}",
            "api_base": f"http://{LOOPBACK}:{mock_port}",
            "api_key": UPSTREAM_ANTHROPIC_KEY,
        }
    else:
        params = {
            "model": f"openai/{upstream_model}",
            "api_base": f"http://{LOOPBACK}:{mock_port}/v1",
            "api_key": UPSTREAM_KEY,
        }
    return {"model_name": model, "litellm_params": params}


def litellm_config(routes: Iterable[tuple[str, int, str, bool]]) -> dict[str, Any]:
    """The proxy config for ``(model, mock port, upstream model, anthropic upstream)`` routes; a model
    named twice keeps its first route."""
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    for model, port, upstream_model, anthropic in routes:
        if model in seen:
            continue
        seen.add(model)
        entries.append(litellm_route(model, port, upstream_model, anthropic=anthropic))
    return {
        "model_list": entries,
        "litellm_settings": {"drop_params": True, "telemetry": False, "request_timeout": 60},
        "general_settings": {"master_key": MASTER_KEY},
    }


def litellm_env(home: Path) -> dict[str, str]:
    """The environment LiteLLM runs with (see the module docstring)."""
    return {
        "HOME": str(home),
        "LITELLM_MASTER_KEY": MASTER_KEY,
        "LITELLM_USE_CHAT_COMPLETIONS_URL_FOR_ANTHROPIC_MESSAGES": "True",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
    }


def installed_version(prefix: Path = LITELLM_PREFIX) -> str | None:
    """The litellm version installed in ``prefix`` (from its dist-info directory), or None."""
    found = sorted(prefix.glob("lib/python*/site-packages/litellm-*.dist-info"))
    if not found:
        return None
    return found[-1].name.removeprefix("litellm-").removesuffix(".dist-info")


def ensure_litellm() -> Path | None:
    """``litellm`` (the proxy CLI) of version ``LITELLM_VERSION`` in ``.tools/litellm``, installed with pip
    from PyPI if needed (a couple of minutes the first time); None, with a message, if that fails."""
    if LITELLM_BIN.exists() and installed_version() == LITELLM_VERSION:
        return LITELLM_BIN
    python = LITELLM_PREFIX / "bin" / "python"
    if not python.exists():
        log(f"creating a virtualenv for LiteLLM in {LITELLM_PREFIX}")
        base = getattr(sys, "_base_executable", sys.executable)
        made = subprocess.run([base, "-m", "venv", str(LITELLM_PREFIX)], capture_output=True, text=True)
        if made.returncode != 0:
            log(f"could not create LiteLLM's virtualenv; LiteLLM is skipped:\n{made.stderr.strip()[-1000:]}")
            return None
    log(f"installing litellm[proxy]=={LITELLM_VERSION} from PyPI into {LITELLM_PREFIX} (takes a few minutes)")
    result = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            f"litellm[proxy]=={LITELLM_VERSION}",
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0 or not LITELLM_BIN.exists():
        log(f"pip could not install LiteLLM; it is skipped:\n{result.stderr.strip()[-2000:]}")
        return None
    return LITELLM_BIN


def start_litellm(
    name: str, config: Mapping[str, Any], workdir: Path, *, cpus: set[int] | None, binary: Path = LITELLM_BIN
) -> Server:
    """``litellm --config …`` on a free loopback port, in its own session with a private HOME."""
    home = workdir / f"home-{name}"
    home.mkdir(parents=True, exist_ok=True)
    config_path = workdir / f"{name}.yaml"
    config_path.write_text(_json(config))
    log_config = workdir / f"{name}-logging.json"
    log_config.write_text(_json(LOG_CONFIG))
    port = free_port()
    args = [
        str(binary),
        "--config",
        str(config_path),
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--num_workers",
        "1",
        "--log_config",
        str(log_config),
    ]
    return spawn(name, args, port=port, workdir=workdir, cpus=cpus, env=litellm_env(home))


def _json(value: Any) -> str:
    return json.dumps(value, indent=2) + "\n"
