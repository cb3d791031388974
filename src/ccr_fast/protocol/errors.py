"""Anthropic's error shape, status <-> type tables, and upstream error mapping."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

STATUS_TO_TYPE: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

TYPE_TO_STATUS: dict[str, int] = {v: k for k, v in STATUS_TO_TYPE.items()}


def error_type_for_status(status: int) -> str:
    if status in STATUS_TO_TYPE:
        return STATUS_TO_TYPE[status]
    if status >= 500:
        return "api_error"
    return "invalid_request_error"


class GatewayError(Exception):
    """An error a client may see: carries Anthropic's status, type and a safe message."""

    def __init__(
        self,
        status: int,
        message: str,
        error_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type or error_type_for_status(status)
        self.headers = headers or {}

    def body(self, request_id: str | None = None) -> bytes:
        return error_body(self.error_type, self.message, request_id)

    def event(self) -> bytes:
        return error_event(self.error_type, self.message)


def error_dict(error_type: str, message: str, request_id: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "error", "error": {"type": error_type, "message": message}}
    if request_id:
        out["request_id"] = request_id
    return out


def error_body(error_type: str, message: str, request_id: str | None = None) -> bytes:
    return orjson.dumps(error_dict(error_type, message, request_id))


def error_event(error_type: str, message: str) -> bytes:
    """A mid-stream ``event: error`` frame (the stream then ends without message_stop)."""
    data = orjson.dumps({"type": "error", "error": {"type": error_type, "message": message}})
    return b"event: error\ndata: " + data + b"\n\n"


# Upstream HTTP status -> (status we answer with, Anthropic error type)
_UPSTREAM_MAP: dict[int, tuple[int, str]] = {
    400: (400, "invalid_request_error"),
    422: (400, "invalid_request_error"),
    401: (401, "authentication_error"),
    402: (402, "billing_error"),
    403: (403, "permission_error"),
    404: (404, "not_found_error"),
    408: (504, "timeout_error"),
    504: (504, "timeout_error"),
    413: (413, "request_too_large"),
    429: (429, "rate_limit_error"),
    500: (500, "api_error"),
    502: (529, "overloaded_error"),
    503: (529, "overloaded_error"),
    529: (529, "overloaded_error"),
}


def map_upstream_status(status: int) -> tuple[int, str]:
    if status in _UPSTREAM_MAP:
        return _UPSTREAM_MAP[status]
    if status >= 500:
        return 500, "api_error"
    return 400, "invalid_request_error"


_GOOGLE_STATUS = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "RESOURCE_EXHAUSTED": 429,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}


def upstream_error_message(body: bytes, status: int) -> str:
    """Best-effort human message from an upstream error body of any dialect."""
    text = body[:4096]
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        snippet = text.decode("utf-8", "replace").strip()
        return snippet or f"upstream returned HTTP {status}"
    if isinstance(data, list) and data:
        data = data[0]
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            msg = err.get("message")
            if isinstance(msg, str) and msg:
                return msg
        if isinstance(err, str) and err:
            return err
        msg = data.get("message")
        if isinstance(msg, str) and msg:
            return msg
    return f"upstream returned HTTP {status}"


def from_upstream(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> GatewayError:
    """Map an upstream HTTP error (any dialect) to the error we answer the client with."""
    if 200 <= status < 300:
        raise ValueError("not an error status")
    out_status, etype = map_upstream_status(status)
    # Anthropic upstreams already say the exact type; keep it.
    try:
        data = orjson.loads(body)
        if isinstance(data, list) and data:
            data = data[0]
        if isinstance(data, dict) and data.get("type") == "error" and isinstance(data.get("error"), dict):
            t = data["error"].get("type")
            if isinstance(t, str) and t in TYPE_TO_STATUS:
                etype = t
        elif isinstance(data, dict) and isinstance(data.get("error"), dict):
            gstatus = data["error"].get("status")
            if isinstance(gstatus, str) and gstatus in _GOOGLE_STATUS:
                out_status, etype = map_upstream_status(_GOOGLE_STATUS[gstatus])
    except orjson.JSONDecodeError:
        pass
    keep: dict[str, str] = {}
    if headers:
        for name in ("retry-after", "retry-after-ms"):
            v = headers.get(name)
            if v is not None:
                keep[name] = v
    return GatewayError(out_status, upstream_error_message(body, status), etype, keep)
