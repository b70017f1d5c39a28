"""``server.PromptServer.instance``: ComfyUI's server object for plug-ins.

Plug-ins import before Loom's server object exists, and register routes at
import time (``@PromptServer.instance.routes.get("/my/route")``).  So the
instance is a stand-in that keeps those routes and hands them to the real
server (``server.app.LoomServer``) when the host binds it; from then on every
attribute (``send_sync``, ``client_id``, ``last_node_id``, ``loop``, ``app``...)
is the real server's.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("loom.compat")


class _PendingRouter:
    """``PromptServer.instance.app.router`` before the app exists: routes added
    here are served once it does."""

    def __init__(self, routes: Any):
        self._routes = routes

    def add_route(self, method: str, path: str, handler: Any, **kwargs: Any) -> None:
        self._routes.route(method, path, **kwargs)(handler)

    def add_get(self, path: str, handler: Any, **kwargs: Any) -> None:
        kwargs.pop("allow_head", None)
        self.add_route("GET", path, handler, **kwargs)

    def add_post(self, path: str, handler: Any, **kwargs: Any) -> None:
        self.add_route("POST", path, handler, **kwargs)

    def add_static(self, prefix: str, path: Any, **kwargs: Any) -> None:
        self._routes.static(prefix, str(path), **kwargs)


class _PendingApp:
    def __init__(self, routes: Any):
        self.router = _PendingRouter(routes)

    def add_routes(self, routes: Any) -> None:
        for route in routes:
            self.router._routes._items.append(route)


class _PromptServerInstance:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        from aiohttp import web

        self._server: Any = None
        self.routes = web.RouteTableDef()

    def bind(self, server: Any) -> None:
        """Serve the routes plug-ins registered; delegate to ``server`` from now on."""
        for route in self.routes:
            server.routes._items.append(route)
        self.routes = server.routes
        self._server = server

    @property
    def app(self) -> Any:
        app = getattr(self._server, "app", None)
        return app if app is not None else _PendingApp(self.routes)

    @property
    def loop(self) -> Any:
        return getattr(self._server, "loop", None)

    @property
    def client_id(self) -> str | None:
        return getattr(self._server, "client_id", None)

    @property
    def last_node_id(self) -> str | None:
        return getattr(self._server, "last_node_id", None)

    def send_sync(self, event: Any, data: Any, sid: str | None = None) -> None:
        """A websocket message to ``sid`` (everyone when ``None``); dropped, with a
        log line, when no server runs (``loom run``)."""
        if self._server is None or not hasattr(self._server, "hub"):
            log.debug("no server to send %r to", event)
            return
        self._server.send_sync(event, data, sid)

    async def send(self, event: Any, data: Any, sid: str | None = None) -> None:
        self.send_sync(event, data, sid)

    def __getattr__(self, name: str) -> Any:
        server = self.__dict__.get("_server")
        if server is not None and not name.startswith("_"):
            return getattr(server, name)
        raise AttributeError(f"PromptServer.instance has no attribute '{name}' in Loom", name=name, obj=self)


PROMPT_SERVER = _PromptServerInstance()


class PromptServer:
    """ComfyUI's class; plug-ins only use its ``instance``."""

    instance = PROMPT_SERVER
