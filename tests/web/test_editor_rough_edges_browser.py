"""The editor's rough edges a ComfyUI user trips on first: chrome that overflows or
shows when it should not, and a lightbox that shows small outputs small."""

from __future__ import annotations

import base64
import io

import pytest

from .editor_driver import EditorDriver


pytestmark = [pytest.mark.browser, pytest.mark.slow]


def tiny_png_data_url(size: int = 64) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (200, 60, 30)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_no_breadcrumb_is_shown_on_the_top_level_graph(page):
    assert page.evaluate("document.querySelector('#breadcrumb').hidden") is True
    box = page.evaluate("document.querySelector('#breadcrumb').getBoundingClientRect().width")
    assert box == 0  # hidden means not drawn, even though the bar is display: flex when shown


def test_the_toolbar_fits_a_1024_pixel_window(browser, loom_server):
    context = browser.new_context(viewport={"width": 1024, "height": 700})
    page = context.new_page()
    page.goto(loom_server.url + "/")
    page.wait_for_selector("body[data-ready=true]", timeout=15000)
    try:
        assert page.evaluate("document.documentElement.scrollWidth") <= 1024
        rights = page.evaluate(
            "[...document.querySelectorAll('#toolbar button, #toolbar input')]"
            ".map(b => [b.id || b.textContent, b.getBoundingClientRect().right])")
        outside = [name for name, right in rights if right > 1024]
        assert not outside, f"toolbar controls past the window's edge: {outside}"
    finally:
        context.close()


def test_the_lightbox_scales_a_small_output_up(page):
    url = tiny_png_data_url(64)
    page.evaluate("""(src) => { const img = new Image(); img.src = src;
        window.loom.editor.emit("lightbox", { images: [img], index: 0 }); }""", url)
    page.wait_for_selector(".lightbox img")
    page.wait_for_function("document.querySelector('.lightbox img').complete")
    width, height = page.evaluate(
        "(() => { const r = document.querySelector('.lightbox img').getBoundingClientRect(); return [r.width, r.height]; })()")
    assert width == height and width >= 0.7 * 820 * 0.78  # far larger than 64 px, still square
    assert page.evaluate("getComputedStyle(document.querySelector('.lightbox img')).imageRendering") == "pixelated"


def test_the_lightbox_offers_open_download_and_copy(page):
    page.evaluate("""(src) => { const img = new Image(); img.src = src; img.dataset.filename = "ComfyUI_00001_.png";
        window.loom.editor.emit("lightbox", { images: [img], index: 0 }); }""", tiny_png_data_url(32))
    page.wait_for_selector(".lightbox-open")
    assert page.is_visible(".lightbox-copy")
    with page.expect_download() as download:
        page.click(".lightbox-download")
    assert download.value.suggested_filename == "ComfyUI_00001_.png"
    page.keyboard.press("Escape")
    assert page.query_selector(".lightbox") is None


def test_clicking_a_node_title_is_not_an_edit(page):
    ed = EditorDriver(page)
    node = ed.node_ids("KSampler")[0]
    steps_before = page.evaluate("window.loom.editor.undo.undoStates.length")
    page.mouse.click(*ed.where(node, "title"))
    assert page.evaluate("window.loom.editor.selection.has(%d)" % node)
    assert page.evaluate("window.loom.editor.unsaved") is False
    assert page.evaluate("window.loom.editor.undo.undoStates.length") == steps_before


def test_one_ctrl_z_brings_back_a_node_deleted_after_clicking_it(page):
    ed = EditorDriver(page)
    node = ed.node_ids("KSampler")[0]
    page.mouse.click(*ed.where(node, "title"))
    page.keyboard.press("Delete")
    assert node not in ed.node_ids()
    page.keyboard.press("Control+z")
    assert node in ed.node_ids()


def test_refresh_after_adding_the_first_checkpoint_selects_it_and_drops_the_note(browser, tmp_path, tiny_checkpoint):
    import shutil

    from tests.server_thread import ServerThread

    server = ServerThread(tmp_path).start()
    context = browser.new_context(viewport={"width": 1400, "height": 820})
    try:
        page = context.new_page()
        page.goto(server.url + "/")
        page.wait_for_selector("body[data-ready=true]", timeout=15000)
        ed = EditorDriver(page)
        loader = ed.node_ids("CheckpointLoaderSimple")[0]
        assert ed.value(loader, "ckpt_name") == ""
        assert ed.node_ids("Note")
        (tmp_path / "models" / "checkpoints").mkdir(parents=True, exist_ok=True)
        shutil.copy(tiny_checkpoint, tmp_path / "models" / "checkpoints" / "first.safetensors")
        page.click("#refresh")
        page.wait_for_function("(id) => window.loom.editor.nodeById(id).values.ckpt_name === 'first.safetensors'", arg=loader)
        assert ed.node_ids("Note") == []
    finally:
        context.close()
        server.stop()
