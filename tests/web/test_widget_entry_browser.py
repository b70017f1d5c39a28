"""Typing into widgets as in ComfyUI: one entry follows another without losing
keys to the canvas, a prompt's caret goes where you click, and a prompt's own
shortcuts (Ctrl+Enter queues, Ctrl+Up/Down weights the selected words) work."""

from __future__ import annotations

import pytest

from .editor_driver import EditorDriver

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def ed(page) -> EditorDriver:
    return EditorDriver(page)


def sampler(ed: EditorDriver) -> int:
    return ed.node_ids("KSampler")[0]


def test_editing_cfg_then_clicking_steps_opens_the_steps_entry(ed, page):
    node = sampler(ed)
    page.mouse.click(*ed.where(node, "widget", "cfg"))
    entry = page.locator(".inline-entry")
    entry.fill("5.5")
    page.mouse.click(*ed.where(node, "widget", "steps"))
    page.wait_for_timeout(150)
    assert page.locator(".inline-entry").count() == 1
    assert page.evaluate("document.activeElement.classList.contains('inline-entry')")
    assert page.locator(".inline-entry").input_value() == str(ed.value(node, "steps"))
    page.keyboard.press("Control+a")
    page.keyboard.type("7")
    page.keyboard.press("Enter")
    assert ed.value(node, "cfg") == 5.5
    assert ed.value(node, "steps") == 7
    assert not page.js_errors


def test_leaving_an_entry_by_clicking_the_canvas_logs_no_error(ed, page):
    node = sampler(ed)
    messages = []
    page.on("console", lambda m: messages.append(m.text) if m.type == "error" else None)
    page.mouse.click(*ed.where(node, "widget", "cfg"))
    page.locator(".inline-entry").fill("6")
    page.mouse.click(5, 300)
    page.wait_for_timeout(150)
    assert ed.value(node, "cfg") == 6
    assert page.locator(".inline-entry").count() == 0
    assert not [m for m in messages if "remove" in m], messages


def prompt_node(ed: EditorDriver) -> int:
    return next(n for n in ed.node_ids("CLIPTextEncode")
                if ed.value(n, "text").startswith("a photograph of a lighthouse"))


def open_prompt_at(ed: EditorDriver, node: int, fraction_x: float) -> None:
    rect = ed.js("(id) => window.loom.editor.renderer.multilineState(window.loom.editor.nodeById(id), 'text').rect", node)
    x, y = ed.js("([id, x, y]) => window.loom.editor.toScreen(x, y)", [node, rect["x"] + 8 + fraction_x, rect["y"] + 12])
    ed.page.mouse.click(x, y)
    ed.page.wait_for_selector("textarea.inline-entry")


def test_a_prompt_opens_with_the_caret_where_it_was_clicked(ed, page):
    node = prompt_node(ed)
    text = ed.value(node, "text")
    # just after "a photograph" on the first drawn line: measured with the canvas' own font
    width = ed.js("(t) => { const r = window.loom.editor.renderer; r.textBoxLines('', {w: 100, h: 30});"
                  " return r.ctx.measureText(t).width; }", "a photograph")
    open_prompt_at(ed, node, width)
    start, end = page.evaluate("[document.activeElement.selectionStart, document.activeElement.selectionEnd]")
    assert start == end, "the text must not be all selected"
    assert abs(start - len("a photograph")) <= 1, (start, text)


def test_ctrl_enter_in_a_prompt_keeps_the_text_and_queues(ed, page):
    node = prompt_node(ed)
    queued = []
    page.on("request", lambda r: queued.append(r.post_data_json) if r.url.endswith("/prompt") and r.method == "POST" else None)
    open_prompt_at(ed, node, 4)
    page.keyboard.press("Control+End")
    page.keyboard.type(", at dawn")
    page.keyboard.press("Control+Enter")
    page.wait_for_function("() => !document.querySelector('textarea.inline-entry')")
    assert ed.value(node, "text").endswith(", at dawn")
    page.wait_for_timeout(500)
    assert queued, "Ctrl+Enter in a prompt queues it"
    assert queued[0]["prompt"][str(node)]["inputs"]["text"].endswith(", at dawn")


def test_ctrl_up_weights_the_selected_words(ed, page):
    node = prompt_node(ed)
    open_prompt_at(ed, node, 4)
    text = page.evaluate("document.activeElement.value")
    start = text.index("lighthouse")
    page.evaluate("([s, e]) => document.activeElement.setSelectionRange(s, e)", [start, start + len("lighthouse")])
    page.keyboard.press("Control+ArrowUp")
    page.keyboard.press("Control+ArrowUp")
    assert "(lighthouse:1.1)" in page.evaluate("document.activeElement.value")
    page.keyboard.press("Control+ArrowDown")
    page.evaluate("document.activeElement.blur()")
    assert "(lighthouse:1.05)" in ed.value(node, "text")
