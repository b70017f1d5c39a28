"""Takes docs/editor.png: the editor after a finished txt2img run.

    .venv/bin/python scripts/screenshot_editor.py [--out docs/editor.png]

Starts ``loom serve`` on a free port with a temporary base directory holding a
tiny random-weight SD1.5 checkpoint (tests/fixtures/tiny_models.py; no weights
are downloaded, so the picture it makes is noise), opens the editor in Debian's
Chromium, edits the prompt of the default graph, queues it and waits for the
image.  Playwright is only a driver here: it never downloads a browser.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
#: Named like the file a user would download, so the screenshot reads naturally.
CHECKPOINT = "v1-5-pruned-emaonly.safetensors"
PROMPT = "a lighthouse on a cliff at sunset, oil painting, warm light"
VIEWPORT = {"width": 1280, "height": 720}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_base(base: Path) -> None:
    from tests.fixtures.tiny_models import build

    checkpoints = base / "models" / "checkpoints"
    checkpoints.mkdir(parents=True)
    tiny = build("sd1", base / "tiny")
    shutil.copy(tiny.checkpoint, checkpoints / CHECKPOINT)
    shutil.rmtree(base / "tiny")


def start_server(base: Path, port: int, log: Path) -> subprocess.Popen:
    """``loom serve`` in a child process; its output goes to ``log`` (a pipe
    nobody reads would fill up and stall the server)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "server", "--base-directory", str(base), "--port", str(port),
               "--cpu", "--disable-custom-nodes"]
    with log.open("w") as sink:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if "Loom is ready at" in log.read_text():
            return process
        if process.poll() is not None:
            raise RuntimeError(f"loom serve exited with status {process.returncode}:\n{log.read_text()}")
        time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"loom serve did not start within 120 s:\n{log.read_text()}")


def shoot(url: str, out: Path) -> None:
    os.environ["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] = "1"
    from playwright.sync_api import sync_playwright

    from tests.web.editor_driver import EditorDriver

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(url + "/")
            page.wait_for_selector("body[data-ready=true]", timeout=30_000)
            page.wait_for_function("window.loom.api.online === true", timeout=30_000)
            editor = EditorDriver(page)
            positive = next(n["id"] for n in editor.workflow()["nodes"] if n.get("title") == "Positive prompt")
            editor.type_into_widget(positive, "text", PROMPT)
            page.click("#fit")
            page.click("#queue")
            save = editor.node_ids("SaveImage")[0]
            page.wait_for_function(
                """(id) => { const n = window.loom.editor.nodeById(id);
                             return n && n.images && n.images.length > 0 && n.images[0].complete
                                    && n.images[0].naturalWidth > 0; }""",
                arg=save, timeout=300_000)
            page.wait_for_function("document.querySelector('#queue-size').textContent.trim() === 'idle'",
                                   timeout=30_000)
            page.wait_for_timeout(300)  # the last repaint
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out))
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Screenshot the editor after a finished run.")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "editor.png")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="loom-screenshot-") as tmp:
        base = Path(tmp) / "loom"
        prepare_base(base)
        port = free_port()
        server = start_server(base, port, Path(tmp) / "server.log")
        try:
            shoot(f"http://127.0.0.1:{port}", args.out)
        finally:
            server.terminate()
            server.wait(30)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
