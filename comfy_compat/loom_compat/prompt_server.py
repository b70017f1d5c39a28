"""``server.PromptServer.instance``: ComfyUI's server object for plug-ins.

Plug-ins import before Loom's server object exists, and register routes at
import time (``@PromptServer.instance.routes.get("/my/route")``).  So the
instance is a stand-in that keeps those routes and hands them to the real
server (``server.app.LoomServer``) when the host binds it; from then on every
attribute (``send_sync``, ``client_id``, ``last_node_id``, ``loop``, ``app``...)
is the real server's.
"""

from __future__ import annotations

import enum
import json
import logging
import struct
from typing import Any, Callable

log = logging.getLogger("loom.compat")


class BinaryEventTypes(enum.IntEnum):
    """ComfyUI's binary websocket frame types (``server.BinaryEventTypes``)."""

    PREVIEW_IMAGE = 1
    UNENCODED_PREVIEW_IMAGE = 2
    TEXT = 3
    PREVIEW_IMAGE_WITH_METADATA = 4


def _freeze_guard(router: Any) -> Any:
    """Run ``add`` on an aiohttp router even after the app started: ComfyUI's
    router accepts routes a pack adds late (in a node, after start-up); aiohttp
    freezes it at start, so it is reopened for the one registration."""

    class _Reopened:
        def __enter__(self) -> None:
            self.was = router.frozen
            router._frozen = False

        def __exit__(self, *exc: Any) -> None:
            router._frozen = self.was

    return _Reopened()


class _LateRouter:
    """``PromptServer.instance.app.router`` once the app exists: routes added
    after start-up are served too (also under ``/api``, as Loom's own are)."""

    def __init__(self, router: Any):
        self._router = router

    def add_route(self, method: str, path: str, handler: Any, **kwargs: Any) -> Any:
        with _freeze_guard(self._router):
            route = self._router.add_route(method, path, handler, **kwargs)
            if path.startswith("/") and not path.startswith("/api/"):
                try:
                    self._router.add_route(method, "/api" + path, handler, **kwargs)
                except (ValueError, RuntimeError):  # already there
                    pass
        return route

    def add_get(self, path: str, handler: Any, **kwargs: Any) -> Any:
        kwargs.pop("allow_head", None)
        return self.add_route("GET", path, handler, **kwargs)

    def add_post(self, path: str, handler: Any, **kwargs: Any) -> Any:
        return self.add_route("POST", path, handler, **kwargs)

    def add_put(self, path: str, handler: Any, **kwargs: Any) -> Any:
        return self.add_route("PUT", path, handler, **kwargs)

    def add_delete(self, path: str, handler: Any, **kwargs: Any) -> Any:
        return self.add_route("DELETE", path, handler, **kwargs)

    def add_static(self, prefix: str, path: Any, **kwargs: Any) -> Any:
        with _freeze_guard(self._router):
            return self._router.add_static(prefix, str(path), **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._router, name)


class _LateApp:
    """The real aiohttp app, with a router that accepts late routes."""

    def __init__(self, app: Any):
        self._app = app
        self.router = _LateRouter(app.router)

    def add_routes(self, routes: Any) -> None:
        for route in routes:
            if hasattr(route, "method"):
                self.router.add_route(route.method, route.path, route.handler, **dict(route.kwargs))
            else:
                with _freeze_guard(self._app.router):
                    route.register(self._app.router)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app, name)

    def __getitem__(self, key: Any) -> Any:
        return self._app[key]


class _PromptQueueView:
    """``PromptServer.instance.prompt_queue``: ComfyUI's read methods over Loom's
    queue and history (packs show queue sizes and read results)."""

    def __init__(self, server: Any):
        self._server = server

    @staticmethod
    def _row(item: Any) -> tuple:
        return (item.number, item.prompt_id, item.prompt, item.extra_data, item.outputs)

    def get_current_queue(self) -> tuple[list[tuple], list[tuple]]:
        running, pending = self._server.queue.snapshot()
        return [self._row(i) for i in running], [self._row(i) for i in pending]

    get_current_queue_volatile = get_current_queue

    def get_tasks_remaining(self) -> int:
        return self._server.queue.remaining()

    def get_history(self, prompt_id: str | None = None, max_items: int | None = None,
                    offset: int = -1, map_function: Any = None) -> dict[str, Any]:
        store = self._server.store
        if prompt_id is not None:
            text = store.history_entry_json(prompt_id).result(timeout=30)
        else:
            text = store.history_json(max_items, max(offset, 0)).result(timeout=30)
        history = json.loads(text) if text else {}
        if map_function is not None:
            history = {k: map_function(v) for k, v in history.items()}
        return history

    def get_flags(self, reset: bool = True) -> dict[str, Any]:
        return {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        from .placeholders import placeholder

        return placeholder(f"server.PromptServer.instance.prompt_queue.{name}")


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
        self.on_prompt_handlers: list[Callable[[dict], dict]] = []
        #: ComfyUI's capability list (the frontend checks it).
        self.supports = ["custom_nodes_from_web"]
        self.number = 0

    def bind(self, server: Any) -> None:
        """Serve the routes plug-ins registered; delegate to ``server`` from now on."""
        for route in self.routes:
            server.routes._items.append(route)
        self.routes = server.routes
        self._server = server
        server.on_prompt = self.trigger_on_prompt  # POST /prompt runs the packs' handlers

    @property
    def app(self) -> Any:
        app = getattr(self._server, "app", None)
        return _LateApp(app) if app is not None else _PendingApp(self.routes)

    @property
    def prompt_queue(self) -> Any:
        if getattr(self._server, "queue", None) is None:
            from .placeholders import placeholder

            return placeholder("server.PromptServer.instance.prompt_queue")
        return _PromptQueueView(self._server)

    def add_on_prompt_handler(self, handler: Callable[[dict], dict]) -> None:
        """``handler(json_data) -> json_data`` runs on every POST /prompt body."""
        self.on_prompt_handlers.append(handler)

    def trigger_on_prompt(self, json_data: dict) -> dict:
        for handler in self.on_prompt_handlers:
            try:
                changed = handler(json_data)
                if isinstance(changed, dict):
                    json_data = changed
            except Exception:  # a pack's handler never blocks a prompt (as in ComfyUI)
                log.exception("an on_prompt handler of a custom node failed")
        return json_data

    def send_progress_text(self, text: str | bytes, node_id: str, sid: str | None = None) -> None:
        """ComfyUI's TEXT frame: node id length (u32), node id, then the text."""
        if isinstance(text, str):
            text = text.encode("utf-8")
        node = str(node_id).encode("utf-8")
        self.send_sync(BinaryEventTypes.TEXT, struct.pack(">I", len(node)) + node + bytes(text), sid)

    def get_queue_info(self) -> dict[str, Any]:
        if getattr(self._server, "queue", None) is None:
            return {"exec_info": {"queue_remaining": 0}}
        return self._server.queue_info()

    def queue_updated(self) -> None:
        self.send_sync("status", {"status": self.get_queue_info()})

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
        if getattr(self._server, "hub", None) is None:
            log.debug("no server to send %r to", event)
            return
        self._server.send_sync(event, data, sid)

    async def send(self, event: Any, data: Any, sid: str | None = None) -> None:
        self.send_sync(event, data, sid)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        server = self.__dict__.get("_server")
        if server is not None and hasattr(server, name):
            return getattr(server, name)
        from .placeholders import placeholder

        return placeholder(f"server.PromptServer.instance.{name}")


PROMPT_SERVER = _PromptServerInstance()


class PromptServer:
    """ComfyUI's class; plug-ins only use its ``instance``."""

    instance = PROMPT_SERVER


def server_attribute(name: str) -> Any:
    """``server.<name>`` for a ComfyUI pack (``from server import PromptServer``)."""
    if name == "PromptServer":
        return PromptServer
    if name == "BinaryEventTypes":
        return BinaryEventTypes
    if name == "web":
        from aiohttp import web

        return web
    from .placeholders import attribute

    return attribute("server", name)
