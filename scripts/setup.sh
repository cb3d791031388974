#!/usr/bin/env bash
# Set up everything ccr-fast needs on a fresh Debian/Ubuntu machine, idempotently.
#   scripts/setup.sh run    virtualenv + package + compiled extensions
#   scripts/setup.sh test   the above + test tools, redis-server, nginx, Claude Code CLI
set -euo pipefail
cd "$(dirname "$0")/.."
MODE="${1:-run}"
PY="${PYTHON:-python3}"
VENV=".venv"

log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root to run: $*"; return 1; fi
}

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
    as_root apt-get update >/dev/null 2>&1
    as_root apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
  }
}

if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  log "Python 3.11+ is required (found $("$PY" --version 2>&1))"; exit 1
fi
"$PY" -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv

EXTRAS=""
[ "$MODE" = test ] && EXTRAS="[test]"
HASH="$(cat pyproject.toml setup.py | sha256sum | cut -c1-16)"
STAMP="$VENV/.installed-$HASH${EXTRAS:+-test}"
# an install with the test extras also serves `run`
[ "$MODE" = run ] && [ -f "$VENV/.installed-$HASH-test" ] && STAMP="$VENV/.installed-$HASH-test"
if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtualenv $VENV"
  "$PY" -m venv "$VENV"
fi
if [ ! -f "$STAMP" ]; then
  log "installing ccr-fast$EXTRAS into $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -U pip "setuptools>=77" wheel "Cython>=3"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".$EXTRAS"
  touch "$STAMP"
fi
# (Re)compile the Cython hot paths in place; a no-op when they are up to date.
if ! "$VENV/bin/python" setup.py -q build_ext --inplace >/tmp/ccr-fast-build-ext.log 2>&1; then
  log "compiling the Cython extensions failed (running as pure Python); see /tmp/ccr-fast-build-ext.log"
fi

if [ "$MODE" = test ]; then
  apt_install redis-server nginx-light
  # Claude Code CLI for the end-to-end test (from the npm registry), kept inside the project.
  if command -v npm >/dev/null && [ ! -x .tools/node_modules/.bin/claude ]; then
    log "installing the Claude Code CLI into .tools/"
    mkdir -p .tools
    npm install --prefix .tools --no-audit --no-fund --loglevel=error @anthropic-ai/claude-code >/dev/null 2>&1 \
      || log "could not install @anthropic-ai/claude-code; its end-to-end test will be skipped"
  fi
fi
"$VENV/bin/ccr-fast" version >&2
