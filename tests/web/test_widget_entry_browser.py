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
