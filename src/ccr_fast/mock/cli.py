"""``ccr-fast mock`` / ``python -m ccr_fast.mock``: run the mock provider until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import orjson
import uvloop

from ccr_fast.mock.replies import DEFAULT_TEXT
from ccr_fast.mock.server import MockProvider

#: reply spec fields that have a flag of their own; a flag overrides the same field given in --reply
_FLAG_FIELDS = ("ttft_ms", "chunk_delay_ms", "chunks", "latency_ms", "text")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ccr-fast mock",
        description="A fast mock LLM provider speaking the OpenAI, Anthropic and Gemini APIs.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (default 0)")
    parser.add_argument("--ttft-ms", type=float, help="delay before the first streamed token (default 0)")
    parser.add_argument("--chunk-delay-ms", type=float, help="delay between streamed chunks (default 0)")
    parser.add_argument("--chunks", type=int, help="split the text into about this many chunks (default 10)")
    parser.add_argument("--latency-ms", type=float, help="delay before a non-stream response (default 0)")
    parser.add_argument("--text", help=f'reply text when nothing is scripted (default "{DEFAULT_TEXT}")')
    parser.add_argument("--reply", help="a whole default reply spec as JSON (flags above override it)")
    parser.add_argument("--log-size", type=int, default=1000, help="requests kept for /_mock/requests")
    parser.add_argument("--port-file", type=Path, help="write the bound port to this file once listening")
    return parser


def defaults_from(args: argparse.Namespace) -> dict[str, Any]:
    """The default reply spec: --reply, then each flag that was given."""
    spec: dict[str, Any] = {}
    if args.reply:
        loaded = orjson.loads(args.reply)
        if not isinstance(loaded, dict):
            raise ValueError("--reply must be a JSON object")
        spec.update(loaded)
    for key in _FLAG_FIELDS:
        value = getattr(args, key)
        if value is not None:
            spec[key] = value
    return spec


def _write_port(path: Path, port: int) -> None:
    """Written then renamed, so a process polling for the file never reads it half-written."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(f"{port}\n")
    tmp.replace(path)


async def serve(provider: MockProvider, port_file: Path | None) -> None:
    await provider.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    try:
        if port_file is not None:
            _write_port(port_file, provider.port)
        print(f"mock provider listening on {provider.url}", flush=True)
        await stopping.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await provider.stop()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        provider = MockProvider(args.host, args.port, defaults_from(args), log_size=max(args.log_size, 0))
    except ValueError as exc:
        print(f"ccr-fast mock: invalid default reply: {exc}", file=sys.stderr)
        return 2
    try:
        uvloop.run(serve(provider, args.port_file))
    except OSError as exc:
        print(f"ccr-fast mock: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0
