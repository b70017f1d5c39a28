"""Errors as JSON: every 4xx/5xx the server answers has a body that says what was wrong.

Shape: ``{"error": {"type": ..., "message": ..., "details": ...}}`` — the same
object ComfyUI puts under ``error`` for a rejected prompt.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .jsonio import json_response


class ApiError(Exception):
    """Raised in a handler; the error middleware turns it into a JSON response."""

    def __init__(self, status: int, kind: str, message: str, details: str = "", **extra: Any):
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.details = details
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": {"type": self.kind, "message": self.message, "details": self.details,
                          "extra_info": {}}, **self.extra}


def error_response(status: int, kind: str, message: str, details: str = "", **extra: Any) -> web.Response:
    return json_response(ApiError(status, kind, message, details, **extra).body(), status=status)


async def read_json(request: web.Request, limit: int) -> Any:
    """The request's JSON body; 413 above ``limit`` bytes, 400 if it isn't JSON."""
    length = request.content_length
    if length is not None and length > limit:
        raise ApiError(413, "body_too_large", f"request body of {length} bytes is over the {limit}-byte limit")
    body = await request.content.read(limit + 1)
    if len(body) > limit:
        raise ApiError(413, "body_too_large", f"request body is over the {limit}-byte limit")
    if not body.strip():
        raise ApiError(400, "invalid_json", "request body is empty; expected a JSON object")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", "request body is not valid JSON", str(exc)) from None


async def read_json_object(request: web.Request, limit: int) -> dict[str, Any]:
    data = await read_json(request, limit)
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_body", f"expected a JSON object, got {type(data).__name__}")
    return data


def expect(value: Any, kind: type | tuple[type, ...], name: str) -> Any:
    """``value`` if it has the right JSON type, else a 400 naming the field."""
    bad_bool = isinstance(value, bool) and kind in (int, float, (int, float))
    if not isinstance(value, kind) or bad_bool:
        wanted = {str: "a string", bool: "true or false", int: "an integer", list: "a list",
                  dict: "an object", (int, float): "a number"}.get(kind, str(kind))  # type: ignore[call-overload]
        raise ApiError(400, "invalid_field", f"'{name}' must be {wanted}, got {json.dumps(value)[:80]}")
    return value
