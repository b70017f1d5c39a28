"""Images in, as in ComfyUI: a picture without a workflow dropped on a Load Image
node is uploaded into it; dropped on the empty canvas it gets a new Load Image node;
an image pasted from the clipboard goes into the selected Load Image node."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from .editor_driver import EditorDriver
from .test_editor_browser import image_workflow, load

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def ed(page) -> EditorDriver:
    return EditorDriver(page)


def picture(color=(10, 200, 90), fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), color).save(buffer, fmt)
    return buffer.getvalue()


def drop_at(page, x: float, y: float, name: str, mime: str, data: bytes) -> None:
    page.evaluate(
        """([x, y, name, mime, b64]) => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], name, {type: mime}));
            document.querySelector('#canvas').dispatchEvent(new DragEvent('drop',
                {dataTransfer: dt, bubbles: true, cancelable: true, clientX: x, clientY: y}));
        }""",
        [x, y, name, mime, base64.b64encode(data).decode()])


def wait_value(ed: EditorDriver, node: int, expected: str) -> None:
    ed.page.wait_for_function(
        "([id, v]) => window.loom.editor.nodeById(id)?.values.image === v", arg=[node, expected], timeout=10000)


def input_dir(loom_server) -> Path:
    return Path(loom_server.server.folders.input)


def test_a_plain_png_dropped_on_load_image_is_uploaded_into_it(ed, page, loom_server):
    load(ed, image_workflow())
    x, y = ed.where(1, "title")
    drop_at(page, x, y + 60, "dropped plain.png", "image/png", picture())
    wait_value(ed, 1, "dropped plain.png")
    assert (input_dir(loom_server) / "dropped plain.png").read_bytes() == picture()
    assert len(ed.node_ids()) == 3  # no workflow replaced the graph
    assert not page.locator(".toast.error").count()


def test_a_jpeg_dropped_on_the_empty_canvas_adds_a_load_image_node(ed, page, loom_server):
    load(ed, image_workflow())
    before = set(ed.node_ids("LoadImage"))
    drop_at(page, 700, 650, "photo.jpg", "image/jpeg", picture(fmt="JPEG"))
    page.wait_for_function("window.loom.editor.graph.nodes.size === 4")
    (added,) = set(ed.node_ids("LoadImage")) - before
    wait_value(ed, added, "photo.jpg")
    assert (input_dir(loom_server) / "photo.jpg").exists()


def test_an_image_pasted_goes_into_the_selected_load_image_node(ed, page, loom_server):
    load(ed, image_workflow())
    page.mouse.click(*ed.where(1, "title"))
    page.evaluate(
        """(b64) => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], "pasted.png", {type: "image/png"}));
            document.dispatchEvent(new ClipboardEvent('paste', {clipboardData: dt, bubbles: true, cancelable: true}));
        }""", base64.b64encode(picture((250, 10, 10))).decode())
    wait_value(ed, 1, "pasted.png")
    assert len(ed.node_ids()) == 3
