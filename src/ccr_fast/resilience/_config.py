"""The config reader the resilience sections use.

The sections are ccr-fast's own keys and follow the project's rules for config, so they read values with
the same ``Reader`` as the main config check (``ccr_fast.config.reader``); the resilience modules import
it from here.
"""

from __future__ import annotations

from ccr_fast.config.reader import FRACTION_HINT, Reader

__all__ = ["FRACTION_HINT", "Reader"]
