"""The middleware every request passes: errors as JSON, host and origin checks,
the auth token and CORS.

- Host check (DNS rebinding): a server listening on loopback only answers
  requests addressed to a loopback name; a page on ``evil.example`` whose name
  was re-pointed at 127.0.0.1 is refused.
- Origin check (CSRF): a browser request that changes state (POST, PUT,
  PATCH, DELETE, websocket upgrade) from another origin is refused, unless that
  origin was named with ``--enable-cors-header``.
- Token: with ``--auth-token`` every route, static files and the websocket
  included, needs it — as ``Authorization: Bearer <token>``, a ``token`` query
  parameter (links, websockets) or the ``loom_token`` cookie, which is set when
  a page is opened with ``?token=`` so the editor's own requests carry it.
"""

from __future__ import annotations

import hmac
import logging
from typing import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from .jsonio import json_response
from .config import ServerOptions, is_loopback
from .http_errors import ApiError, error_response

log = logging.getLogger("loom.server")

TOKEN_COOKIE = "loom_token"
_STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _host_name(host: str) -> str | None:
    try:
        return urlsplit("//" + host).hostname
    except ValueError:
        return None


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _same_origin(origin: str, host: str, scheme: str) -> bool:
    """Whether ``origin`` is the server the request was addressed to: the same
    host name *and* port, a missing port being the scheme's default.  So
    ``http://127.0.0.1`` is port 80, not this server on 8188 (another local
    web page there must not drive this one)."""
    try:
        parts = urlsplit(origin)
        origin_port = parts.port
        served = urlsplit(f"//{host}")
        host_port = served.port
    except ValueError:
        return False
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or not served.hostname:
        return False
    if parts.hostname != served.hostname:
        return False
    origin_port = origin_port or _DEFAULT_PORTS[parts.scheme]
    host_port = host_port or _DEFAULT_PORTS.get(scheme, 80)
    return origin_port == host_port


def _is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


class Guard:
    def __init__(self, options: ServerOptions):
        self.options = options
        self.token = options.auth_token or None
        self.cors_origin = options.cors_origin.rstrip("/") if options.cors_origin else None

    # ------------------------------------------------------------ checks
    def _cors_allows(self, origin: str | None) -> bool:
        if self.cors_origin is None or origin is None:
            return False
        return self.cors_origin == "*" or origin.rstrip("/").lower() == self.cors_origin.lower()

    def check_host(self, request: web.Request) -> None:
        if not self.options.listens_on_loopback_only:
            return
        host = request.headers.get("Host")
        if host is None:
            return
        name = _host_name(host)
        if name is None or not is_loopback(name):
            raise ApiError(403, "forbidden_host",
                           f"this server listens on {self.options.listen} and only answers requests"
                           f" addressed to it, not to '{host[:100]}'")

    def check_origin(self, request: web.Request) -> None:
        if request.method not in _STATE_CHANGING and not _is_websocket(request):
            return
        origin = request.headers.get("Origin")
        if origin is None:
            return  # not a browser, or a same-origin GET
        if self._cors_allows(origin):
            return
        if _same_origin(origin, request.headers.get("Host") or "", request.scheme):
            return
        raise ApiError(403, "cross_origin",
                       f"cross-origin request from '{origin[:100]}' refused; start the server with"
                       " --enable-cors-header ORIGIN to allow one origin")

    def check_token(self, request: web.Request) -> bool:
        """Whether the request is allowed; True also when it came with
        ``?token=`` (the caller then sets the cookie)."""
        if self.token is None:
            return False
        header = request.headers.get("Authorization", "")
        offered = []
        if header.lower().startswith("bearer "):
            offered.append(header[7:].strip())
        cookie = request.cookies.get(TOKEN_COOKIE)
        if cookie:
            offered.append(cookie)
        query = request.query.get("token")
        if query:
            offered.append(query)
        for candidate in offered:
            if hmac.compare_digest(candidate.encode(), self.token.encode()):
                return query is not None and candidate == query and cookie != query
        raise ApiError(401, "unauthorized",
                       "this server needs its access token: send 'Authorization: Bearer <token>'"
                       " or open the page with ?token=<token>")

    # -------------------------------------------------------- middleware
    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        try:
            self.check_host(request)
            if request.method == "OPTIONS":
                return self._preflight(origin)
            self.check_origin(request)
            set_cookie = self.check_token(request)
            response = await handler(request)
        except ApiError as exc:
            response = json_response(exc.body(), status=exc.status)
            if exc.status == 401:
                response.headers["WWW-Authenticate"] = 'Bearer realm="loom"'
            set_cookie = False
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = _http_exception_json(exc)
            set_cookie = False
        except (ConnectionError, TimeoutError):
            raise
        except Exception:
            log.exception("error handling %s %s", request.method, request.path)
            response = error_response(500, "internal_error",
                                      "the server failed handling this request; see its log")
            set_cookie = False
        if set_cookie and not response.prepared:
            response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="Strict", path="/")
        if self._cors_allows(origin) and not response.prepared:
            self._cors_headers(response, origin)
        return response

    def _preflight(self, origin: str | None) -> web.StreamResponse:
        if not self._cors_allows(origin):
            return error_response(403, "cross_origin", "cross-origin requests are not allowed here")
        response = web.Response(status=204)
        self._cors_headers(response, origin)
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, DELETE, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type, Authorization"
        response.headers["Access-Control-Max-Age"] = "600"
        return response

    def _cors_headers(self, response: web.StreamResponse, origin: str | None) -> None:
        response.headers["Access-Control-Allow-Origin"] = origin or "*"
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Vary"] = "Origin"


_KINDS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 413: "body_too_large", 415: "unsupported_media_type"}


def _http_exception_json(exc: web.HTTPException) -> web.Response:
    kind = _KINDS.get(exc.status, "http_error")
    message = exc.reason
    if exc.status == 404:
        message = "no such route or file"
    elif exc.status == 413:
        message = "request body too large"
    elif exc.status == 405:
        message = f"method not allowed; allowed: {', '.join(sorted(getattr(exc, 'allowed_methods', ())))}"
    details = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else ""
    response = error_response(exc.status, kind, message, details or "")
    if exc.status == 405 and "Allow" in exc.headers:
        response.headers["Allow"] = exc.headers["Allow"]
    return response
