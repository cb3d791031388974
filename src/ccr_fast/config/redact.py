"""Secret-free copies of config data, for `GET /api/config`, logs and error messages.

A value is secret when its key says so (`api_key`, `APIKEY`, `x-api-key`, `access_token`, `password`,
`secret`, `Authorization`, ...), at any depth and whatever it holds. Separately, every string is searched for
URLs, whose `user:password@` part and secret-looking query parameters (`?key=`, `?token=`) are masked, since
proxy and endpoint URLs carry credentials under keys that are not secret themselves.

Keys are split into words (`max_tokens` is `max tokens`, `apiKey` is `api key`) so that limits and
tokenizer settings stay readable while everything credential-like is masked.

`APIKEYS` (named client keys, `[{name, key}]`) is a secret key too, but the names in it are not secrets and
are what `RateLimit.perKey.keys` and `Queue.keyPriorities` refer to, so they stay visible.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import SplitResult, parse_qsl, quote, urlsplit, urlunsplit

MASK = "***"
# Long enough that four visible characters cannot help guess the rest; they help tell keys apart.
_SHOW_TAIL_FROM = 20
_TAIL = 4

_SECRET_WORDS = frozenset(
    {
        "apikey",
        "apikeys",
        "authorization",
        "bearer",
        "cookie",
        "credential",
        "credentials",
        "passphrase",
        "passwd",
        "password",
        "pwd",
        "secret",
        "secrets",
        "token",
    }
)
# Words that make a trailing "key"/"keys" a credential (`api_key`, `private-key`) unlike `cache_key`.
_KEY_QUALIFIERS = frozenset(
    {"access", "api", "auth", "client", "master", "private", "secret", "session", "signing"}
)
_SECRET_PARAMS = frozenset(
    {"access_token", "api_key", "apikey", "auth", "key", "password", "secret", "sig", "signature", "token"}
)

#: secret lists of `{name, ...}` objects whose `name` is shown (everything else in them is masked)
_NAMED_SECRETS = frozenset({"APIKEYS"})

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s\"'<>]+")
# An environment reference left unresolved is not a secret, and showing it tells the user what is missing.
_ENV_REFERENCE = re.compile(r"\$\{[^}]+\}|\$[A-Z_][A-Z0-9_]*")


def redact(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A plain-`dict` deep copy of `raw` with every secret masked; the input is not changed."""
    return {k: _value(k, v) for k, v in raw.items()}


def is_secret_key(key: str) -> bool:
    words = [w.lower() for w in _WORD.findall(key)]
    if not words:
        return False
    if any(w in _SECRET_WORDS for w in words):
        return True
    if words[-1] in ("key", "keys"):
        return len(words) == 1 or words[-2] in _KEY_QUALIFIERS
    return False


def mask(secret: str) -> str:
    """`***` plus, for long values, the last four characters (`***abcd`)."""
    if _ENV_REFERENCE.fullmatch(secret):
        return secret
    if len(secret) >= _SHOW_TAIL_FROM:
        return MASK + secret[-_TAIL:]
    return MASK


def redact_text(text: str) -> str:
    """`text` with the credentials of every URL in it masked."""
    if "://" not in text:
        return text
    return _URL.sub(lambda m: _redact_url(m.group()), text)


def _value(key: str, value: Any) -> Any:
    if key in _NAMED_SECRETS and isinstance(value, list | tuple):
        return [_named(entry) for entry in value]
    if is_secret_key(key):
        return _masked(value)
    if isinstance(value, Mapping):
        return {k: _value(k, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_value(key, v) for v in value]
    return redact_text(value) if isinstance(value, str) else value


def _named(entry: Any) -> Any:
    if not isinstance(entry, Mapping):
        return _masked(entry)
    return {k: v if k == "name" and isinstance(v, str) else _masked(v) for k, v in entry.items()}


def _masked(value: Any) -> Any:
    """Everything under a secret key: strings and numbers masked, structure and flags kept."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, Mapping):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    if value is None or isinstance(value, bool):
        return value
    return MASK


def _redact_url(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced "[" in the host part: mask the whole thing rather than guess
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rpartition("@")[2]
    query = _redact_query(parts.query)
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit(SplitResult(parts.scheme, netloc, parts.path, query, parts.fragment))


def _redact_query(query: str) -> str:
    if not query:
        return query
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(_is_secret_param(name) for name, _ in pairs):
        return query
    return "&".join(
        f"{quote(name, safe='')}={MASK if _is_secret_param(name) else quote(value, safe='')}"
        for name, value in pairs
    )


def _is_secret_param(name: str) -> bool:
    return name.lower() in _SECRET_PARAMS or is_secret_key(name)
