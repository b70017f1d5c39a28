"""Errors as JSON: every 4xx/5xx the server answers has a body that says what was wrong.

Shape: ``{"error": {"type": ..., "message": ..., "details": ...}}`` — the same
object ComfyUI puts under ``error`` for a rejected prompt.
"""

from __future__ import annotations

import asyncio
import json
import re
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


#: Bodies above this many bytes are parsed in a thread.
_PARSE_IN_THREAD = 1 << 20


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole request body, however it arrives (in one write or many, with
    or without Content-Length); 413 as soon as it passes ``limit`` bytes.

    ``request.content.read(n)`` returns what has arrived so far, not ``n``
    bytes: a body sent in two writes, or a large one, was cut short."""
    length = request.content_length
    if length is not None and length > limit:
        raise ApiError(413, "body_too_large", f"request body of {length} bytes is over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "body_too_large", f"request body is over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: web.Request, limit: int) -> Any:
    """The request's JSON body; 413 above ``limit`` bytes, 400 if it isn't JSON."""
    body = await read_body(request, limit)
    if not body.strip():
        raise ApiError(400, "invalid_json", "request body is empty; expected a JSON object")
    try:
        if len(body) > _PARSE_IN_THREAD:
            # A 100k-node prompt takes most of a second to parse: off the
            # event loop, so other requests and websockets are still served.
            data = await asyncio.to_thread(json.loads, body)
        else:
            data = json.loads(body)
        if _SURROGATE_ESCAPE.search(body):  # rare: only then walk the whole value
            _refuse_lone_surrogates(data)
        return data
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", "request body is not valid JSON", str(exc)) from None
    except RecursionError:
        raise ApiError(400, "invalid_json", "request body is nested too deeply to parse") from None


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
    if isinstance(value, str) and _LONE_SURROGATE.search(value):
        # JSON may escape one (\ud800); no file, database or socket can hold it.
        raise ApiError(400, "invalid_field", f"'{name}' contains a lone surrogate (an unpaired \\ud800-\\udfff"
                                             " escape); it must be valid Unicode text")
    return value


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
#: A ``\\uD800``-``\\uDFFF`` escape in a raw body: a lone surrogate may follow.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _refuse_lone_surrogates(data: Any) -> None:
    """400 for a string (or key) holding a lone surrogate: JSON can escape one,
    but no file name, database row or websocket message can carry it, so it
    would fail later (a history row that cannot be read back)."""
    pending: list[tuple[Any, str]] = [(data, "body")]
    while pending:
        value, where = pending.pop()
        if isinstance(value, str):
            if _LONE_SURROGATE.search(value):
                raise ApiError(400, "invalid_json", f"{where[:200]} contains a lone surrogate (an unpaired"
                                                    " \\ud800-\\udfff escape); text must be valid Unicode")
        elif isinstance(value, dict):
            for key, item in value.items():
                if _LONE_SURROGATE.search(key):
                    raise ApiError(400, "invalid_json", f"a key in {where[:200]} contains a lone surrogate"
                                                        " (an unpaired \\ud800-\\udfff escape)")
                pending.append((item, f"{where}.{key}"))
        elif isinstance(value, list):
            pending.extend((item, f"{where}[{index}]") for index, item in enumerate(value))
