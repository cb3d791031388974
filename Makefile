# The README's commands. Each one sets itself up from nothing (virtualenv, package,
# compiled extensions, system packages) and is idempotent.
.PHONY: run test lint bench setup setup-test clean

VENV := .venv
ARGS ?=

run: setup                 ## start ccr-fast (your config, or the demo config + bundled mock)
	$(VENV)/bin/ccr-fast $(ARGS) start

test: setup-test           ## the whole test suite
	$(VENV)/bin/python -m pytest -q $(ARGS)

lint: setup-test
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

bench: setup-test          ## the benchmark suite (writes bench/results/ and docs/benchmarks.md)
	$(VENV)/bin/python -m bench.run $(ARGS)

setup:
	@scripts/setup.sh run

setup-test:
	@scripts/setup.sh test

clean:
	rm -rf $(VENV) .tools build src/ccr_fast/_ext/*.so ext/*.c
