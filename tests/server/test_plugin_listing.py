"""GET /api/transformers lists the config's Python plugin transformers next to the built-ins."""

from __future__ import annotations

from pathlib import Path

import orjson

from ccr_fast.config import config_from_dict
from ccr_fast.server.gateway import Gateway
from ccr_fast.server.http import Request
from ccr_fast.upstream.mock_transport import MockResponse, MockTransport
from ccr_fast.upstream.transport import UpstreamRequest

PLUGIN = '''
from ccr_fast.transformers.base import PlanBuilder, Transformer


class Stamp(Transformer):
    """Adds a user field to every request."""

    name = "stamp"

    def configure(self, plan: PlanBuilder) -> None:
        plan.upstream_hooks.append(lambda body: body.__setitem__("user", "stamped"))
'''


async def _unused(request: UpstreamRequest) -> MockResponse:
    raise AssertionError("no upstream call expected")


async def test_plugins_are_listed(tmp_path: Path) -> None:
    plugin = tmp_path / "stamp.py"
    plugin.write_text(PLUGIN)
    config = config_from_dict(
        {
            "transformers": [{"path": str(plugin)}],
            "Providers": [
                {
                    "name": "p",
                    "api_base_url": "https://x.test/v1/chat/completions",
                    "api_key": "k",
                    "models": ["m"],
                    "transformer": {"use": ["stamp"]},
                }
            ],
            "Router": {"default": "p,m"},
        }
    )
    gw = Gateway(config, MockTransport(_unused))
    resp = await gw.handle(Request("GET", "/api/transformers", "", {}, b"", "127.0.0.1", "req_1"))
    listed = {t["name"]: t for t in orjson.loads(resp.body)["transformers"]}
    assert listed["stamp"]["available"] is True
    assert listed["stamp"]["plugin"].endswith("stamp.py")
    assert listed["stamp"]["description"] == "Adds a user field to every request."
    assert listed["Anthropic"]["available"] is True
