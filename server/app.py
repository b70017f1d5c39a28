"""The server object: builds the aiohttp app and owns the queue, the store,
the websocket hub and the worker thread.

It exposes what ComfyUI's ``PromptServer`` offers plug-ins — ``routes``,
``send_sync``, ``client_id``, ``last_node_id``, ``loop``, ``app`` — so a
compatibility shim can hand it out as ``PromptServer.instance`` unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path
from typing import Any, Callable, Iterable

from aiohttp import web

from engine.registry import Registry

from .config import ServerOptions
from .http_errors import ApiError
from .hub import Hub
from .prompt_queue import PromptQueue
from .records import DuplicatePrompt, QueueItem
from .routes_files import FileRoutes
from .routes_editor import EditorRoutes, provide_example_inputs
from .routes_info import InfoRoutes
from .routes_jobs import JobRoutes
from .job_service import JobService
from .routes_models import ModelRoutes
from .routes_queue import QueueRoutes
from .routes_userdata import UserdataRoutes
from .security import Guard
from .static import StaticFiles
from .store import Store
from .store_errors import DiskFull
from .store_recovery import open_store
from .websocket import SERVER_KEY, websocket_handler
from .worker import Worker

log = logging.getLogger("loom.server")

DB_NAME = "loom-queue.sqlite3"


class LoomServer:
    def __init__(self, registry: Registry, options: ServerOptions | None = None, *,
                 device: str = "auto", db_path: Path | None = None,
                 make_dispatcher: Callable[["LoomServer"], Any] | None = None):
        self.registry = registry
        #: Builds what runs the queue instead of the in-process worker thread
        #: (``loom serve --workers ray``: ``server.ray_dispatch.RayDispatcher``).
        self.make_dispatcher = make_dispatcher
        self.env = registry.env
        self.folders = registry.env.folders
        self.options = options or ServerOptions()
        self.device_setting = device
        self.db_path = db_path or self.folders.user / DB_NAME
        #: Plug-ins add their own routes here before the server starts
        #: (ComfyUI's ``PromptServer.instance.routes``).
        self.routes = web.RouteTableDef()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.app: web.Application | None = None
        # Built by start(), which needs the event loop; None until then (plug-ins may
        # read the PromptServer surface at import, before the server starts).
        self.hub: Hub | None = None
        self.store: Store | None = None
        self.queue: PromptQueue | None = None
        self.worker: Worker | None = None
        self.jobs: JobService | None = None
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self._number = 0
        self._seq = 0
        #: Set when --recover-queue moved a damaged queue database aside.
        self.recovery_note: str | None = None

    # ------------------------------------------------- PromptServer surface
    @property
    def client_id(self) -> str | None:
        running = self.worker.running if self.worker is not None else None
        return running.client_id if running else None

    @property
    def last_node_id(self) -> str | None:
        running = self.worker.running if self.worker is not None else None
        return running.node if running else None

    def send_sync(self, event: Any, data: Any, sid: str | None = None) -> None:
        self.hub.send_sync(event, data, sid)

    # ------------------------------------------------------------- helpers
    def next_number(self) -> int:
        number, self._number = self._number, self._number + 1
        return number

    def next_seq(self) -> int:
        seq, self._seq = self._seq, self._seq + 1
        return seq

    async def enqueue(self, validation: Any, *, prompt_id: str, extra_data: dict[str, Any],
                      number: float | None = None, front: bool = False) -> QueueItem:
        """Number a validated prompt, save it, then queue it: on disk before anyone is told it
        is queued. ``DuplicatePrompt`` when its id is taken (the store decides, atomically);
        a full disk or damaged database raises the store's own error."""
        counter = self.next_number()  # an explicit number still takes one, as ComfyUI's counter does
        if number is None:
            number = -counter if front else counter
        item = QueueItem(number=number, prompt_id=prompt_id, prompt=validation.prompt, extra_data=extra_data,
                         outputs=list(validation.outputs), seq=self.next_seq(), validation=validation)
        try:
            await asyncio.wrap_future(self.store.enqueue(item))
        except sqlite3.IntegrityError:
            raise DuplicatePrompt(prompt_id) from None
        self.queue.add(item)
        return item

    def queue_info(self) -> dict[str, Any]:
        return {"exec_info": {"queue_remaining": self.queue.remaining()}}

    def features(self) -> dict[str, Any]:
        return {
            "supports_preview_metadata": False,
            "max_upload_size": self.options.max_upload_bytes,
            "loom": {"queue_pause": True, "queue_move": True, "workflow_in_prompt": True},
        }

    def validate(self, prompt: dict[str, Any], targets: Iterable[str] | None = None) -> Any:
        from engine.validation import validate_prompt

        return validate_prompt(self.registry, prompt, targets)

    def convert_workflow(self, workflow: Any) -> dict[str, Any]:
        """A UI-format workflow (the editor's save format) as an API prompt."""
        if not isinstance(workflow, dict):
            raise ApiError(400, "invalid_workflow", "'workflow' must be a UI-format workflow object",
                           node_errors={})
        from engine.workflow_format import WorkflowConversionError, ui_to_api

        try:
            return ui_to_api(workflow, self.registry.schema)
        except WorkflowConversionError as exc:
            raise ApiError(400, "invalid_workflow", f"could not convert the workflow: {exc}",
                           node_errors={}) from None
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise ApiError(400, "invalid_workflow", f"could not convert the workflow: {exc!r}",
                           node_errors={}) from None

    def _revalidate(self, item: QueueItem) -> Any:
        return self.validate(item.prompt, item.outputs or None)

    def _make_executor(self) -> Any:
        from engine.executor import Executor

        return Executor(self.registry, cache=self.options.cache)

    def _free(self, unload_models: bool, free_memory: bool) -> None:
        env = self.env
        if getattr(env, "models_loaded", False):  # never create the manager (and import torch) just to free it
            env.models.free(unload_models=unload_models, free_memory=free_memory)

    async def set_paused(self, paused: bool) -> None:
        """Pause or resume now; the choice is saved so a restart keeps it
        (a full disk: it still applies, and the 507 says it was not saved)."""
        self.queue.set_paused(paused)
        try:
            await asyncio.wrap_future(self.store.set_setting("paused", paused))
        except DiskFull as exc:
            raise ApiError(507, "disk_full", f"the queue is {'paused' if paused else 'resumed'}, but that"
                           f" could not be saved: {exc}") from None

    # -------------------------------------------------------------- the app
    def build_app(self) -> web.Application:
        guard = Guard(self.options)
        # The body limit aiohttp enforces; JSON and upload handlers apply
        # their own tighter ones and answer 413 with a JSON error.
        users = getattr(self, "users", None)  # --users: every request is some user's (server.user_scope)
        app = web.Application(middlewares=[guard.middleware] + ([users.middleware] if users is not None else []),
                              client_max_size=self.options.max_upload_bytes + 1024 * 1024)
        app[SERVER_KEY] = self

        def add(method: str, path: str, handler) -> None:
            app.router.add_route(method, path, handler)
            app.router.add_route(method, "/api" + path, handler)

        add("GET", "/ws", websocket_handler)
        QueueRoutes(self).register(add)
        FileRoutes(self).register(add)
        ModelRoutes(self).register(add, app)  # before InfoRoutes: /models/downloads is not a folder
        InfoRoutes(self).register(add)
        EditorRoutes(self).register(add)
        UserdataRoutes(self).register(add)
        JobRoutes(self).register(add)
        for route in self.routes:  # plug-ins' own routes, also under /api
            if isinstance(route, web.RouteDef):
                add(route.method, route.path, route.handler)
            else:
                route.register(app.router)
        StaticFiles(self.options.web_root, dict(self.registry.web_directories)).register(app, add)
        return app

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        provide_example_inputs(self.folders.input)
        self.hub = Hub(self.loop, outbox_bytes=self.options.ws_outbox_bytes,
                       stall_timeout=self.options.ws_stall_timeout)
        # Every image this host decodes from a file (LoadImage included) is bounded by it.
        self.env.max_image_pixels = self.options.max_image_pixels
        # A damaged file raises DamagedStore (one line for the CLI to print),
        # unless --recover-queue moves it aside.
        self.store, recovered, self.recovery_note = open_store(
            self.db_path, self.options.max_history, recover=self.options.recover_queue)
        self.store.bind_loop(self.loop)
        self._number, self._seq = self.store.counters()
        self.queue = PromptQueue(on_change=self.hub.status_changed)
        self.hub.status_source = self.queue_info
        for item in recovered:
            self.queue.add(item)
        if recovered:
            log.info("resuming %d queued prompt(s) from %s", len(recovered), self.db_path)
        if self.store.get_setting("paused", False) or self.store.start_paused:
            self.queue.set_paused(True)
        if self.make_dispatcher is not None:
            self.worker = self.make_dispatcher(self)
        else:
            self.worker = Worker(queue=self.queue, store=self.store, hub=self.hub,
                                 make_executor=self._make_executor, validate=self._revalidate,
                                 free=self._free, preview_interval=self.options.preview_interval, env=self.env,
                                 max_attempts=self.options.max_prompt_attempts,
                                 interrupt_grace=self.options.interrupt_grace)
        # The jobs API's waits, webhooks, users: before the app answers a request.
        self.jobs = JobService(self)
        await self.jobs.start()
        self.app = self.build_app()
        # keepalive_timeout also bounds slow headers (slowloris): aiohttp's timer
        # starts when a connection opens or a response ends, and bytes of an
        # unfinished request head do not push it back.
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False,
                                     keepalive_timeout=self.options.keepalive_timeout)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.options.listen, self.options.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.options.port
        # In a thread: a dispatcher may connect to a cluster first.
        await asyncio.get_running_loop().run_in_executor(None, self.worker.start)

    async def describe_workers(self) -> list[dict[str, Any]]:
        """What runs prompts: one entry per worker (``/system_stats``)."""
        return await asyncio.get_running_loop().run_in_executor(None, self.worker.describe)

    async def stop(self) -> None:
        """Stop taking work; a running prompt is interrupted and stays queued."""
        if self.worker is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.worker.stop)
        if self.jobs is not None:
            await self.jobs.stop()
        if self.hub is not None:
            await self.hub.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.store is not None:
            self.store.close()

    @property
    def url(self) -> str:
        host = self.options.listen
        if ":" in host:
            host = f"[{host}]"
        if host in ("0.0.0.0", "[::]"):
            host = "127.0.0.1"
        return f"http://{host}:{self.port}"
