"""A real Loom server (built-in nodes, a tiny SD1 checkpoint, one input image)
on an ephemeral port, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.browser_session import CHROMIUM, CHROMIUM_ARGS, chromium_missing  # noqa: F401  (re-exported)

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-output" / "screenshots"
CHECKPOINT = "tiny_sd1.safetensors"


class ServerThread:
    """Runs LoomServer on its own asyncio loop in a thread, so sync Playwright can drive it."""

    def __init__(self, base: Path, port: int = 0, preview_method: str = "latent2rgb"):
        self.base = base
        self.port = port
        self.preview_method = preview_method
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

        registry = self.build_registry()
        self.server = LoomServer(registry, ServerOptions(port=self.port, preview_interval=0.0))
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


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """The diffusion engineer's tiny SD1 checkpoint, built once per session."""
    from tests.fixtures.tiny_models import build

    return build("sd1", tmp_path_factory.mktemp("tiny_models")).checkpoint


@pytest.fixture(scope="session")
def loom_base(tmp_path_factory, tiny_checkpoint) -> Path:
    from PIL import Image

    base = tmp_path_factory.mktemp("loom")
    (base / "models" / "checkpoints").mkdir(parents=True)
    shutil.copy(tiny_checkpoint, base / "models" / "checkpoints" / CHECKPOINT)
    (base / "input").mkdir()
    img = Image.new("RGB", (48, 32), (30, 120, 200))
    for x in range(24):
        for y in range(32):
            img.putpixel((x, y), (240, 200, 40))
    img.save(base / "input" / "sample.png")
    return base


@pytest.fixture(scope="session")
def loom_server(loom_base):
    server = ServerThread(loom_base).start()
    yield server
    server.stop()


@contextmanager
def editor_page(browser, url: str, name: str):
    """A fresh editor (empty local storage) at `url`; its screenshot is saved as `name`.png
    afterwards, and any JavaScript error in the page fails the test."""
    context = browser.new_context(viewport={"width": 1400, "height": 820}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + "/")
    page.wait_for_selector("body[data-ready=true]", timeout=15000)
    page.wait_for_function("window.loom.api.online === true", timeout=10000)
    page.js_errors = errors
    yield page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
    context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


@pytest.fixture
def page(browser, loom_server, request):
    """A fresh editor on the real server with the built-in nodes."""
    with editor_page(browser, loom_server.url, request.node.name) as page:
        yield page
