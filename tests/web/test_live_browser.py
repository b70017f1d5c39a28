"""What the editor shows while and after things run: live sampler previews, the queue
and history panels, and the offline banner across a server restart."""

from __future__ import annotations

import pytest

from .conftest import SCREENSHOTS, ServerThread, editor_page
from .editor_driver import EditorDriver
from .test_editor_browser import image_workflow, load, wait_for_output_image

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def ed(page) -> EditorDriver:
    return EditorDriver(page)


def post(ed: EditorDriver, path: str, body: dict) -> dict:
    return ed.js("([p, b]) => fetch(p, {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(b)}).then(r => r.json())", [path, body])


def test_sampler_node_shows_live_preview_frames_while_it_runs(ed, page):
    """The default txt2img graph on the tiny checkpoint; the server sends latent2rgb previews."""
    ed.js("() => { window.previewFrames = 0; window.loom.api.addEventListener('b_preview', () => window.previewFrames++); }")
    sampler = ed.node_ids("KSampler")[0]
    latent = ed.node_ids("EmptyLatentImage")[0]
    ed.type_into_widget(latent, "width", "64")
    ed.type_into_widget(latent, "height", "64")
    ed.type_into_widget(sampler, "steps", "3")
    page.click("#queue")
    page.wait_for_function("""(id) => { const n = window.loom.editor.nodeById(id);
        return n.preview && n.preview.complete && n.preview.naturalWidth > 0; }""", arg=sampler, timeout=120_000)
    assert ed.js("window.previewFrames") >= 1
    page.wait_for_timeout(200)  # previews repaint at most every 80 ms
    page.screenshot(path=str(SCREENSHOTS / "sampler_live_preview_while_running.png"))
    assert ed.js("(id) => window.loom.editor.nodeById(id).preview.src.startsWith('blob:')", sampler)
    wait_for_output_image(page, ed.node_ids("SaveImage")[0])


def queue_rows(page) -> list[str]:
    return page.eval_on_selector_all(".queue-list li", "els => els.map(e => e.textContent)")


def test_queue_panel_lists_pending_runs_cancels_one_and_clears_the_rest(ed, page):
    load(ed, image_workflow(prefix="queued"))
    post(ed, "/queue", {"pause": True})  # nothing starts, so the runs stay pending
    try:
        page.fill("#batch", "3")
        page.click("#queue")
        page.wait_for_function("fetch('/queue').then(r => r.json()).then(q => q.queue_pending.length === 3)")
        page.click("[data-tab=queue]")
        page.wait_for_function("document.querySelectorAll('.queue-list li').length === 3")
        assert "3 pending" in page.text_content(".panel-body h3")
        page.click(".queue-list li:nth-child(2) button")
        page.wait_for_function("document.querySelectorAll('.queue-list li').length === 2")
        assert ed.js("fetch('/queue').then(r => r.json()).then(q => q.queue_pending.length)") == 2
        page.click("text=Clear pending")
        page.wait_for_function("document.querySelectorAll('.queue-list li').length === 0")
        assert ed.js("fetch('/queue').then(r => r.json()).then(q => q.queue_pending.length)") == 0
    finally:
        post(ed, "/queue", {"resume": True, "clear": True})


def test_clicking_a_history_entry_loads_that_runs_workflow(ed, page):
    load(ed, image_workflow(prefix="from_history"))
    page.click("#queue")
    wait_for_output_image(page, 3)
    ed.clear_canvas()
    page.click("[data-tab=history]")
    page.wait_for_selector(".history-item img")
    page.click(".history-item >> nth=0 >> .load-run")
    page.wait_for_function("window.loom.editor.graph.nodes.size === 3")
    assert ed.value(ed.node_ids("SaveImage")[0], "filename_prefix") == "from_history"


def test_offline_banner_shows_while_the_server_restarts_and_goes_away_after(browser, tmp_path, request):
    first = ServerThread(tmp_path).start()
    port = first.server.port
    try:
        with editor_page(browser, first.url, request.node.name) as page:
            assert page.is_hidden("#offline")
            first.stop()
            first = None
            page.wait_for_selector("#offline", state="visible", timeout=10_000)
            assert page.text_content("#conn") == "offline"
            page.screenshot(path=str(tmp_path / "offline.png"))
            second = ServerThread(tmp_path, port=port).start()
            try:
                page.wait_for_selector("#offline", state="hidden", timeout=15_000)
                assert page.text_content("#conn") == "connected"
                assert ed_online(page)
            finally:
                second.stop()
    finally:
        if first is not None:
            first.stop()


def ed_online(page) -> bool:
    return page.evaluate("window.loom.api.online")
