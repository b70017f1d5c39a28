"""JSON for what the server sends to clients: every HTTP response, websocket
message and history row goes through here, so it uses orjson (about 10× faster than the
standard library on these small objects — a measurable share of a trivial
prompt's time).

What clients receive is strict JSON: NaN and ±Infinity become ``null``
(browsers' ``JSON.parse`` rejects Python's ``NaN``), and values JSON has no
form for (tensors, bytes, objects from a plug-in's ui dict) are written as a
readable string instead of failing the message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

_OPTIONS = orjson.OPT_NON_STR_KEYS


def _fallback(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    return repr(value)


def dumps(value: Any) -> str:
    """Strict, compact JSON text for ``value``."""
    try:
        return orjson.dumps(value, default=_fallback, option=_OPTIONS).decode()
    except orjson.JSONEncodeError:
        # e.g. an integer beyond 64 bits: the standard library writes any int.
        return json.dumps(_strict(value), separators=(",", ":"), default=_fallback)


def json_response(data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """``aiohttp.web.json_response`` with strict JSON: a plug-in's ``"max":
    float("inf")`` or a NaN in a queued prompt must not make the browser's
    ``JSON.parse`` reject the whole of ``/object_info`` or ``/queue``."""
    return web.Response(text=dumps(data), status=status, headers=headers, content_type="application/json")


def _strict(value: Any) -> Any:
    """``value`` with non-finite floats as None, for the standard library's path."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, Mapping):
        return {key: _strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(item) for item in value]
    return value
