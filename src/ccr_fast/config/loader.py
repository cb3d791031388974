"""Finding, reading and parsing the config file, and CCR's environment interpolation.

The file is CCR's `~/.claude-code-router/config.json`, which CCR parses as JSON5. Most files are plain JSON
(CCR's UI writes plain JSON), so they go through orjson first; the JSON5 parser, a pure-Python parser that
takes tens of milliseconds for a large config, only sees files that really use JSON5 syntax.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import json5
import orjson

from ccr_fast.config.errors import ConfigError, Problem
from ccr_fast.config.model import Config
from ccr_fast.config.reader import child
from ccr_fast.config.validate import check

CONFIG_DIR_NAME = ".claude-code-router"
CONFIG_FILE_NAME = "config.json"

# CCR's pattern, unchanged: `${ANY NAME}` or `$UPPER_CASE_NAME`.
_ENV_REFERENCE = re.compile(r"\$\{([^}]+)\}|\$([A-Z_][A-Z0-9_]*)")
# json5 reports syntax errors as "<string>:LINE REASON at column COL".
_JSON5_ERROR = re.compile(r"^[^:]*:(\d+) (.*) at column (\d+)$", re.DOTALL)
_CONTROL_CHARS = re.compile(r"[\x00-\x1f]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    """`$HOME/.claude-code-router`: the config file, the PID file and `logs/` live here, as in CCR."""
    home = (os.environ if env is None else env).get("HOME")
    return (Path(home) if home else Path.home()) / CONFIG_DIR_NAME


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    return config_dir(env) / CONFIG_FILE_NAME


def interpolate(value: Any, env: Mapping[str, str], path: str = "") -> tuple[Any, list[Problem]]:
    """`value` with environment references replaced in every string, keys excepted, at any depth.

    Exactly CCR's rule: a reference whose variable is unset *or empty* stays as written. Each one that
    stays produces a warning naming the key path, so a forgotten `export` is visible at startup.
    """
    warnings: list[Problem] = []
    return _interpolate(value, env, path, warnings), warnings


def _interpolate(value: Any, env: Mapping[str, str], path: str, warnings: list[Problem]) -> Any:
    if isinstance(value, str):
        return _substitute(value, env, path, warnings) if "$" in value else value
    if isinstance(value, Mapping):
        return {k: _interpolate(v, env, child(path, k), warnings) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_interpolate(v, env, child(path, i), warnings) for i, v in enumerate(value)]
    return value


def _substitute(text: str, env: Mapping[str, str], path: str, warnings: list[Problem]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        found = env.get(name)
        if found:
            return found
        warnings.append(
            Problem(path, f'environment variable {name} is not set (or empty); "{match.group(0)}" kept as is')
        )
        return match.group(0)

    return _ENV_REFERENCE.sub(replace, text)


def parse_json5(text: str) -> Any:
    """Parse config text; a syntax error becomes a ConfigError that names the line and column."""
    if not text.strip():
        raise ConfigError([Problem("", "the file is empty; expected a JSON5 object such as {}")])
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    try:
        return json5.loads(text)
    except ValueError as exc:
        raise ConfigError([_syntax_problem(str(exc))]) from None


def _syntax_problem(message: str) -> Problem:
    found = _JSON5_ERROR.match(message)
    if found is None:
        return Problem("", f"JSON5 syntax error: {_printable(message)}")
    line, reason, column = found.groups()
    return Problem("", f"JSON5 syntax error at line {line}, column {column}: {_printable(reason)}")


def _printable(text: str) -> str:
    return _CONTROL_CHARS.sub(lambda m: _ESCAPES.get(m.group(), f"\\x{ord(m.group()):02x}"), text)


def config_from_dict(
    data: Mapping[str, Any], *, source: str = "<dict>", env: Mapping[str, str] | None = None
) -> Config:
    """Interpolate, check and freeze parsed config data; every problem found is raised at once."""
    return _build(data, source, env, ())


def _build(
    data: Mapping[str, Any], source: str, env: Mapping[str, str] | None, notes: Sequence[Problem]
) -> Config:
    environ = os.environ if env is None else env
    if not isinstance(data, Mapping):
        top = f"expected a JSON object at the top level, got {type(data).__name__}"
        raise ConfigError([Problem("", top)], source)
    interpolated, unresolved = interpolate(data, environ)
    config, errors = check(interpolated, source=source, env=environ, notes=[*notes, *unresolved])
    if errors:
        raise ConfigError(errors, source)
    return config


def parse_config(text: str, *, source: str = "<string>", env: Mapping[str, str] | None = None) -> Config:
    try:
        data = parse_json5(text)
    except ConfigError as exc:
        raise ConfigError(exc.problems, source) from None
    return config_from_dict(data, source=source, env=env)


def load_config(path: str | Path | None = None, *, env: Mapping[str, str] | None = None) -> Config:
    """Load the config file (`None`: the default path).

    A missing file gives the default config with no providers, as CCR starts with; whether to offer the
    demo config instead is the caller's decision. Any other read failure is a ConfigError.
    """
    file = Path(path).expanduser() if path is not None else default_config_path(env)
    source = str(file)
    try:
        text = file.read_text(encoding="utf-8-sig")  # -sig: tolerate the BOM some Windows editors add
    except FileNotFoundError:
        missing = Problem("", f"{source} not found; using the default config (no providers)")
        return _build({}, source, env, [missing])
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem("", f"cannot read the file: {exc}")], source) from None
    return parse_config(text, source=source, env=env)
