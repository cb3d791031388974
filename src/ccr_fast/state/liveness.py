"""Whether a process still exists: how shared state tells a dead owner (of a lock, slot or lease) from a
live one."""

from __future__ import annotations

import os

__all__ = ["pid_alive"]


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists (also when it belongs to another user); False once it has gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
