"""Menus as a ComfyUI user reaches for them: Clone and Alt+drag clone, Add Node by
category, the link midpoint menu (insert a node, delete), the group menu (fit, colour,
bypass/mute the group), and a node library without `_for_testing`."""

from __future__ import annotations

import pytest

from .editor_driver import EditorDriver
from .test_editor_browser import image_workflow, load

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def ed(page) -> EditorDriver:
    load_ed = EditorDriver(page)
    load(load_ed, image_workflow())
    return load_ed


def menu(ed: EditorDriver, label: str) -> None:
    ed.page.locator(".context-menu button", has_text=label).first.click()


def right_click(ed: EditorDriver, x: float, y: float) -> None:
    ed.page.mouse.click(x, y, button="right")
    ed.page.wait_for_selector(".context-menu")


def test_clone_from_the_node_menu_copies_values_without_links(ed, page):
    right_click(ed, *ed.where(3, "title"))
    menu(ed, "Clone")
    saves = ed.node_ids("SaveImage")
    assert len(saves) == 2
    clone = max(saves)
    assert ed.value(clone, "filename_prefix") == "loom_test"
    assert all(link[2] != clone for link in ed.links())  # arrives unlinked
    page.locator("#canvas").focus()
    page.keyboard.press("Control+z")
    assert ed.node_ids("SaveImage") == [3]


def test_alt_drag_leaves_the_original_and_moves_a_clone(ed, page):
    before = ed.js("() => [...window.loom.editor.nodeById(2).pos]")
    x, y = ed.where(2, "title")
    page.keyboard.down("Alt")
    ed.drag((x, y), (x + 150, y + 200))
    page.keyboard.up("Alt")
    inverts = ed.node_ids("ImageInvert")
    assert len(inverts) == 2
    assert ed.js("() => [...window.loom.editor.nodeById(2).pos]") == before
    moved = ed.js("(id) => [...window.loom.editor.nodeById(id).pos]", max(inverts))
    scale = ed.js("window.loom.editor.view.scale")
    assert moved[0] == pytest.approx(before[0] + 150 / scale, abs=2)
    assert moved[1] == pytest.approx(before[1] + 200 / scale, abs=2)


def test_add_node_walks_the_categories(ed, page):
    right_click(ed, 700, 650)
    menu(ed, "Add Node")
    menu(ed, "image ▸")
    labels = ed.js("[...document.querySelectorAll('.context-menu button')].map(b => b.textContent)")
    assert "‹ Back" in labels and "Invert Image" in labels
    menu(ed, "Invert Image")
    assert len(ed.node_ids("ImageInvert")) == 2


def link_midpoint(ed: EditorDriver) -> tuple[float, float]:
    return ed.js("""() => { const e = window.loom.editor;
        const link = [...e.graph.links.values()].find(l => l.origin_id === 2 && l.target_id === 3);
        const p = e.renderer.linkPoints(link); const k = Math.floor((p.length - 1) / 2);
        return e.toScreen((p[k][0] + p[k+1][0]) / 2, (p[k][1] + p[k+1][1]) / 2); }""")


def test_the_link_midpoint_menu_deletes_the_link(ed, page):
    right_click(ed, *link_midpoint(ed))
    menu(ed, "Delete link")
    assert (2, 0, 3, 0) not in ed.links()


def test_the_link_midpoint_menu_inserts_a_node_on_the_link(ed, page):
    right_click(ed, *link_midpoint(ed))
    menu(ed, "Add Node on this link")
    box = page.locator(".node-search input")
    box.fill("Invert Image")
    page.keyboard.press("Enter")
    inserted = max(ed.node_ids("ImageInvert"))
    assert (2, 0, inserted, 0) in ed.links() and (inserted, 0, 3, 0) in ed.links()


def test_the_group_menu_fits_the_group_and_bypasses_its_nodes(ed, page):
    ed.js("""() => { const e = window.loom.editor;
        e.graph.groups.push({ title: "G", bounding: [20, 40, 1200, 700], color: "#3f789e", font_size: 24, flags: {}, rest: {} });
        e.graph.touch(); e.commit(); }""")
    x, y = ed.js("() => window.loom.editor.toScreen(30, 50)")
    right_click(ed, x, y)
    menu(ed, "Bypass group")
    assert ed.js("() => [...window.loom.editor.graph.nodes.values()].every(n => n.mode === 4)")
    right_click(ed, x, y)
    menu(ed, "Fit group to nodes")
    bounding = ed.js("() => window.loom.editor.graph.groups[0].bounding")
    assert bounding[2] < 1200 and bounding[3] < 700  # shrunk around the three nodes
    assert ed.js("() => window.loom.editor.nodesInGroup(window.loom.editor.graph.groups[0]).length") == 3


def test_the_node_library_hides_for_testing_nodes(ed, page):
    page.click("[data-tab=library]")
    page.wait_for_selector(".library")
    text = page.text_content(".library")
    assert "_for_testing" not in text


def test_right_click_on_a_nodes_image_offers_open_save_and_copy(ed, page):
    page.wait_for_function("window.loom.editor.nodeById(1).images?.[0]?.complete")
    x, y = ed.js("""() => { const e = window.loom.editor; const n = e.nodeById(1);
        const [bx, by, bw, bh] = e.renderer.geom.get(1).bounds; return e.toScreen(bx + bw / 2, by + bh - 40); }""")
    right_click(ed, x, y)
    labels = ed.js("[...document.querySelectorAll('.context-menu button')].map(b => b.textContent)")
    assert labels[:3] == ["Open Image", "Save Image", "Copy Image"]
    with page.expect_download() as download:
        menu(ed, "Save Image")
    assert download.value.suggested_filename == "sample.png"
