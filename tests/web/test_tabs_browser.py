"""Workflow tabs: several open graphs, each with its own undo history and unsaved
mark, and a "discard unsaved changes?" question before Open, New or a run from
History replaces a modified graph."""

from __future__ import annotations

import json

import pytest

from .editor_driver import EditorDriver
from .test_editor_browser import image_workflow, load

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def ed(page) -> EditorDriver:
    return EditorDriver(page)


def tab_names(ed: EditorDriver) -> list[str]:
    return ed.js("[...document.querySelectorAll('#tabs .tab-name')].map(b => b.textContent)")


def new_tab(ed: EditorDriver) -> None:
    count = len(tab_names(ed))
    ed.page.click("#tabs .tab-new")
    ed.page.wait_for_function("(n) => document.querySelectorAll('#tabs .tab').length === n", arg=count + 1)


def click_tab(ed: EditorDriver, index: int) -> None:
    ed.page.locator("#tabs .tab-name").nth(index).click()


def dialogs(ed: EditorDriver, *answers: bool) -> list[str]:
    queue, seen = list(answers), []
    ed.page.on("dialog", lambda d: (seen.append(d.message), d.accept() if queue.pop(0) else d.dismiss()))
    return seen


def test_a_new_tab_holds_its_own_graph_and_switching_back_restores_the_first(ed, page):
    load(ed, image_workflow(prefix="first_tab"))
    new_tab(ed)
    assert ed.node_ids("KSampler")  # the new tab shows the default graph
    assert not ed.node_ids("ImageInvert")
    click_tab(ed, 0)
    page.wait_for_function("window.loom.editor.graph.nodes.size === 3")
    assert ed.value(3, "filename_prefix") == "first_tab"


def test_each_tab_has_its_own_undo_history(ed, page):
    load(ed, image_workflow())
    ed.type_into_widget(3, "filename_prefix", "edited in tab one")
    new_tab(ed)
    sampler = ed.node_ids("KSampler")[0]
    page.mouse.click(*ed.where(sampler, "title"))
    page.keyboard.press("Delete")
    click_tab(ed, 0)
    page.locator("#canvas").focus()
    page.keyboard.press("Control+z")
    assert ed.value(3, "filename_prefix") == "loom_test"  # tab one's own last edit was undone
    click_tab(ed, 1)
    page.locator("#canvas").focus()
    page.keyboard.press("Control+z")
    assert sampler in ed.node_ids()  # and tab two's


def test_each_tab_shows_its_own_unsaved_mark(ed, page):
    new_tab(ed)
    ed.type_into_widget(ed.node_ids("SaveImage")[0], "filename_prefix", "changed")
    names = tab_names(ed)
    assert names[1].startswith("• ") and not names[0].startswith("• ")


def test_opening_over_a_modified_graph_asks_and_no_keeps_it(ed, page):
    load(ed, image_workflow())
    ed.type_into_widget(3, "filename_prefix", "unsaved work")
    seen = dialogs(ed, False)
    ed.js("(w) => window.loom.panels.loadHistoryItem({prompt: [1, 'x', {}, {extra_pnginfo: {workflow: w}}, []]})",
          image_workflow(prefix="from history"))
    assert "Discard the unsaved changes" in seen[0]
    assert ed.value(3, "filename_prefix") == "unsaved work"


def test_new_over_a_modified_graph_replaces_it_when_confirmed(ed, page):
    load(ed, image_workflow())
    ed.type_into_widget(3, "filename_prefix", "unsaved work")
    seen = dialogs(ed, True)
    page.click("#new")
    page.wait_for_function("window.loom.editor.graph.nodes.size > 3")
    assert "start a new workflow" in seen[0]
    assert ed.node_ids("KSampler")


def test_closing_a_modified_tab_asks_first(ed, page):
    new_tab(ed)
    ed.type_into_widget(ed.node_ids("SaveImage")[0], "filename_prefix", "changed")
    seen = dialogs(ed, False, True)
    page.locator("#tabs .tab-close").nth(1).click()
    assert len(tab_names(ed)) == 2 and "unsaved changes" in seen[0]
    page.locator("#tabs .tab-close").nth(1).click()
    page.wait_for_function("document.querySelectorAll('#tabs .tab').length === 1")


def test_tabs_come_back_after_a_reload(ed, page):
    load(ed, image_workflow(prefix="kept across reload"))
    new_tab(ed)
    page.wait_for_timeout(500)  # tabs are stored a moment after each change
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert len(tab_names(ed)) == 2
    click_tab(ed, 0)
    page.wait_for_function("window.loom.editor.graph.nodes.size === 3")
    assert ed.value(3, "filename_prefix") == "kept across reload"
    assert json.loads(json.dumps(ed.workflow()))["nodes"]
