"""The Models sidebar and the template browser: model files per kind with a search;
a click puts the file into the selected loader or adds a loader; the Open list shows
each workflow's title and description from its note."""

from __future__ import annotations

import json

import pytest

import server.routes_editor as routes_editor

from .conftest import CHECKPOINT
from .editor_driver import EditorDriver

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def ed(page) -> EditorDriver:
    return EditorDriver(page)


def open_models(ed: EditorDriver) -> None:
    ed.page.click("[data-tab=models]")
    ed.page.wait_for_selector(f".model-file[data-file='{CHECKPOINT}']")


def test_the_models_tab_lists_checkpoints_and_searches(ed, page):
    open_models(ed)
    assert page.locator(".model-kind[data-kind=checkpoints] summary").text_content().startswith("checkpoints")
    page.fill(".panel-body input", "no-such-model")
    assert page.locator(".model-file").count() == 0
    page.fill(".panel-body input", CHECKPOINT[:6])
    assert page.locator(f".model-file[data-file='{CHECKPOINT}']").count() == 1


def test_clicking_a_model_with_its_loader_selected_puts_it_there(ed, page):
    loader = ed.node_ids("CheckpointLoaderSimple")[0]
    ed.js("(id) => { const e = window.loom.editor; e.nodeById(id).values.ckpt_name = 'other.safetensors'; e.selection = new Set([id]); }", loader)
    open_models(ed)
    page.click(f".model-file[data-file='{CHECKPOINT}']")
    assert ed.value(loader, "ckpt_name") == CHECKPOINT
    assert len(ed.node_ids("CheckpointLoaderSimple")) == 1


def test_clicking_a_model_with_nothing_selected_adds_its_loader(ed, page):
    ed.js("() => { window.loom.editor.selection = new Set(); }")
    open_models(ed)
    page.click(f".model-file[data-file='{CHECKPOINT}']")
    loaders = ed.node_ids("CheckpointLoaderSimple")
    assert len(loaders) == 2 and ed.value(max(loaders), "ckpt_name") == CHECKPOINT


def test_the_open_list_shows_titles_and_descriptions(ed, page, tmp_path, monkeypatch):
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    note = {"id": 1, "type": "Note", "pos": [0, 0], "widgets_values": ["Moonlit fox\nA fox under the moon, with a LoRA."]}
    (shipped / "fox.json").write_text(json.dumps({"nodes": [note], "links": [], "version": 0.4}))
    monkeypatch.setattr(routes_editor, "SHIPPED_WORKFLOWS", shipped)
    page.click("#open")
    entry = page.locator(".workflow-entry[data-name='fox.json']")
    entry.wait_for()
    assert entry.text_content().startswith("Moonlit fox")
    assert entry.locator(".workflow-description").text_content() == "A fox under the moon, with a LoRA."
