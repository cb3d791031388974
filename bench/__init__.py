"""End-to-end benchmarks: ccr-fast against direct-to-mock and Claude Code Router, in one script run.

``python -m bench.run`` installs what it needs, starts every system on loopback ports, runs the scenarios
interleaved, writes ``bench/results/<timestamp>.json`` and regenerates ``docs/benchmarks.md``.
Micro benchmarks of the hot paths live in ``bench/micro`` (pytest-benchmark).
"""
