"""ccr-fast: a fast, production-grade drop-in replacement for Claude Code Router."""

__version__ = "0.1.0"
__all__ = ["__version__"]
