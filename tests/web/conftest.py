"""A real Loom server (built-in nodes, a tiny SD1 checkpoint, one input image)
on an ephemeral port, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.server_thread import ServerThread

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-output" / "screenshots"
CHECKPOINT = "tiny_sd1.safetensors"


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
