"""Multiline text boxes (notes, prompts) in the real editor: they fill the node's height,
so a shipped workflow's note shows every line, and resizing a node taller shows more."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from .editor_driver import EditorDriver
from tests.workflows.conftest import shipped_files

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: The height a multiline box had before it followed its node (web/lib/layout.js MULTILINE_MIN_H).
MIN_BOX_H = 72

TEXT_BOXES = """() => {
  const editor = window.loom.editor;
  return [...editor.graph.nodes.values()].flatMap((n) => ["text"].map((w) => {
    const state = editor.renderer.multilineState(n, w);
    return state && { id: n.id, type: n.type, ...state };
  })).filter(Boolean);
}"""

LONG_TEXT = "\n".join(f"line {i}" for i in range(1, 21))


@pytest.fixture
def ed(page) -> EditorDriver:
    return EditorDriver(page)


def open_shipped(ed: EditorDriver, name: str) -> None:
    ed.page.click("#open")
    ed.page.wait_for_selector(f".workflow-entry[data-name='{name}']")
    ed.page.click(f".workflow-entry[data-name='{name}']")
    ed.page.wait_for_function("(stem) => document.querySelector('#workflow-name').textContent === stem",
                              arg=name.removesuffix(".json"))


def show_at_scale_1(ed: EditorDriver, node_id) -> None:
    """Put the node's top-left near the canvas' top-left at 100% zoom, and wait for a frame."""
    ed.js("""(id) => {
        const e = window.loom.editor, n = e.nodeById(id);
        e.view = { scale: 1, offset: [60 - n.pos[0], 80 - n.pos[1]] };
        e.redraw();
    }""", node_id)
    ed.js("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")


def light_pixels_below_min_box(ed: EditorDriver, node_id) -> int:
    """Text-coloured pixels in the note's text box below where a 72 px box ended."""
    rect = ed.js("(id) => window.loom.editor.renderer.multilineState(window.loom.editor.nodeById(id), 'text').rect", node_id)
    top = ed.js("([x, y]) => window.loom.editor.toScreen(x, y)", [rect["x"], rect["y"] + MIN_BOX_H + 4])
    bottom = ed.js("([x, y]) => window.loom.editor.toScreen(x, y)", [rect["x"] + rect["w"], rect["y"] + rect["h"]])
    height = max(1.0, bottom[1] - top[1] - 2)
    shot = ed.page.screenshot(clip={"x": top[0], "y": top[1], "width": bottom[0] - top[0], "height": height})
    image = Image.open(io.BytesIO(shot)).convert("L")
    return sum(1 for v in image.getdata() if v > 150)


@pytest.mark.parametrize("name", shipped_files())
def test_a_shipped_workflows_note_shows_every_line(ed, name):
    open_shipped(ed, name)
    notes = [box for box in ed.js(TEXT_BOXES) if box["type"] == "Note"]
    assert notes, f"{name} has no note"
    for note in notes:
        assert (note["shown"], note["truncated"]) == (note["total"], False), f"{name}: note {note}"


def test_a_shipped_note_longer_than_four_lines_draws_its_lower_lines(ed):
    open_shipped(ed, "controlnet_canny.json")
    note = next(box for box in ed.js(TEXT_BOXES) if box["type"] == "Note")
    assert note["total"] > 4
    show_at_scale_1(ed, note["id"])
    assert light_pixels_below_min_box(ed, note["id"]) > 50


def test_resizing_a_note_taller_shows_more_of_its_text(ed):
    note_id = ed.js("""(text) => {
        const e = window.loom.editor;
        const n = e.graph.addNode("Note", [100, 100]);
        n.values.text = text;
        e.commit();
        return n.id;
    }""", LONG_TEXT)
    show_at_scale_1(ed, note_id)
    state = lambda: ed.js("(id) => window.loom.editor.renderer.multilineState(window.loom.editor.nodeById(id), 'text')", note_id)
    before = state()
    assert (before["total"], before["shown"], before["truncated"]) == (20, 4, True)
    light_before = light_pixels_below_min_box(ed, note_id)

    # The resize corner: the body's bottom-right, just past the text box.
    x, y = ed.js("""(id) => {
        const e = window.loom.editor, n = e.nodeById(id);
        const s = e.renderer.multilineState(n, 'text').rect;
        return e.toScreen(s.x + s.w + 8, s.y + s.h + 10);
    }""", note_id)
    ed.drag((x, y), (x, y + 200))
    ed.js("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")

    after = state()
    assert after["rect"]["h"] == pytest.approx(before["rect"]["h"] + 200, abs=1)
    assert after["shown"] > before["shown"] + 10
    assert light_pixels_below_min_box(ed, note_id) > light_before + 50


def test_clicking_low_in_a_tall_notes_text_opens_its_editor_over_the_whole_box(ed):
    open_shipped(ed, "inpainting.json")
    note = next(box for box in ed.js(TEXT_BOXES) if box["type"] == "Note")
    show_at_scale_1(ed, note["id"])
    r = note["rect"]
    # 20 above the bottom of the node's body, as saved in the file.
    ed.page.mouse.click(*ed.js("""(id) => {
        const e = window.loom.editor, n = e.nodeById(id);
        return e.toScreen(n.pos[0] + n.size[0] / 2, n.pos[1] + n.size[1] - 20);
    }""", note["id"]))
    entry = ed.page.locator("textarea.inline-entry")
    entry.wait_for(timeout=5000)
    assert entry.input_value() == ed.value(note["id"], "text")
    assert entry.bounding_box()["height"] == pytest.approx(r["h"], abs=2)
    entry.press("Escape")
