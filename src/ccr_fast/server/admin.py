"""Admin endpoints for circuit breakers: view every deployment's breaker and health, reset, force open.

``GET /api/circuits`` lists them; ``POST /api/circuits/reset`` and ``POST /api/circuits/open`` take
``{"name": "<deployment name>"}`` (names such as ``"deepseek,deepseek-chat"`` contain commas, so they
travel in the body, not the path). State lives in shared memory, so an action taken through one worker
holds in all of them.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ccr_fast.protocol.errors import GatewayError
from ccr_fast.server.health_probes import known_deployments
from ccr_fast.server.http import Request, Response, json_response
from ccr_fast.server.validate import parse_json_body

if TYPE_CHECKING:
    from ccr_fast.server.gateway import Gateway


def _view(gw: Gateway, name: str, now: float) -> dict[str, Any]:
    res = gw.resilience
    return {
        "circuit": res.breakers.get(name).snapshot(now),
        "health": res.health.snapshot(name, now),
    }


async def list_circuits(gw: Gateway, req: Request) -> Response:
    now = time.monotonic()
    names = sorted(known_deployments(gw))
    return json_response({"deployments": {name: _view(gw, name, now) for name in names}})


def _target(gw: Gateway, req: Request) -> str:
    body = parse_json_body(req.body)
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise GatewayError(400, 'name: expected a deployment name, e.g. {"name": "provider,model"}')
    if name not in known_deployments(gw):
        raise GatewayError(404, f"no deployment named '{name}'", "not_found_error")
    return name


async def reset_circuit(gw: Gateway, req: Request) -> Response:
    name = _target(gw, req)
    gw.resilience.breakers.get(name).reset()
    return json_response(_view(gw, name, time.monotonic()))


async def open_circuit(gw: Gateway, req: Request) -> Response:
    name = _target(gw, req)
    gw.resilience.breakers.get(name).force_open()
    return json_response(_view(gw, name, time.monotonic()))
