"""Logging setup and the one-line-per-request access record (never bodies, never keys)."""

from __future__ import annotations

import logging
import os
import sys

LOG = logging.getLogger("ccr_fast")
ACCESS = logging.getLogger("ccr_fast.access")

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def setup_logging(level: str = "info", *, access: bool = True) -> None:
    root = logging.getLogger("ccr_fast")
    if getattr(root, "_ccr_fast_configured", False):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s %(levelname)s [pid {os.getpid()}] %(name)s: %(message)s")
    )
    root.addHandler(handler)
    root.setLevel(_LEVELS.get(level.lower(), logging.INFO))
    root.propagate = False
    ACCESS.disabled = not access
    root._ccr_fast_configured = True  # type: ignore[attr-defined]
