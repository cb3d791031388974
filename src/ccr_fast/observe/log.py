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


#: above every level: the access logger's level when access records are off
_OFF = logging.CRITICAL + 1


def setup_logging(level: str = "info", *, access: bool = True) -> None:
    root = logging.getLogger("ccr_fast")
    # A level rather than ``Logger.disabled``: Granian configures logging with dictConfig in each
    # worker, which re-enables every existing logger. Set in every process, configured or not.
    ACCESS.setLevel(logging.NOTSET if access else _OFF)
    if getattr(root, "_ccr_fast_configured", False):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s %(levelname)s [pid {os.getpid()}] %(name)s: %(message)s")
    )
    root.addHandler(handler)
    root.setLevel(_LEVELS.get(level.lower(), logging.INFO))
    root.propagate = False
    root._ccr_fast_configured = True  # type: ignore[attr-defined]
