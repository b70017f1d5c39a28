"""A real LoomServer (built-in nodes, CPU) on its own asyncio loop in a thread,
so synchronous tests — Playwright's sync API, urllib clients — can drive it."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


class ServerThread:
    def __init__(self, base: Path, port: int = 0, preview_method: str = "latent2rgb", **options: Any):
        self.base = base
        self.port = port
        self.preview_method = preview_method
        self.options = options  # extra ServerOptions fields
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._start())
        except BaseException as exc:  # surfaced by start()
            self.error = exc
            self.ready.set()
            return
        self.ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        from server.app import LoomServer
        from server.config import ServerOptions

        self.registry = self.build_registry()
        self.server = LoomServer(self.registry, ServerOptions(port=self.port, preview_interval=0.0, **self.options))
        await self.server.start()

    def build_registry(self):
        import nodes
        from engine.registry import Registry
        from nodes.runtime import LoomEnv

        registry = Registry(env=LoomEnv.at(self.base, device="cpu", preview_method=self.preview_method))
        registry.add_all(nodes.builtin_nodes(), origin="builtin")
        return registry

    def start(self) -> "ServerThread":
        self.thread.start()
        self.ready.wait(60)
        if self.error:
            raise self.error
        self.url = f"http://127.0.0.1:{self.server.port}"
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    # -- HTTP, as any client would
    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def get(self, path: str) -> Any:
        status, body = self.request("GET", path)
        assert status == 200, (path, status, body)
        return body
