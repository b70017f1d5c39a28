"""The editor's Open list: shipped and saved workflows from GET /workflows, one click to load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import server.routes_editor as routes_editor

from .editor_driver import EditorDriver
from .test_editor_browser import image_workflow

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def ed(page, loom_server, tmp_path, monkeypatch) -> EditorDriver:
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / "Invert an image.json").write_text(json.dumps(image_workflow(prefix="shipped_invert")))
    monkeypatch.setattr(routes_editor, "SHIPPED_WORKFLOWS", shipped)
    user = Path(loom_server.server.folders.user) / "workflows" / "mine"
    user.mkdir(parents=True, exist_ok=True)
    # ComfyUI writes bare NaN into some files; the editor must still open them.
    (user / "nan saved.json").write_text(json.dumps(image_workflow(prefix="user_saved")).replace('"properties": {}', '"properties": {"x": NaN}', 1))
    return EditorDriver(page)


def entries(ed: EditorDriver) -> list[str]:
    ed.page.wait_for_selector(".workflow-entry")
    return ed.js("[...document.querySelectorAll('.workflow-entry')].map(b => b.dataset.name)")


def test_open_button_lists_shipped_and_saved_workflows(ed):
    ed.page.click("#open")
    assert entries(ed) == ["Invert an image.json", "user/mine/nan saved.json"]


def test_clicking_a_shipped_workflow_loads_it_and_names_the_tab(ed):
    ed.page.click("#open")
    entries(ed)
    ed.page.click(".workflow-entry[data-name='Invert an image.json']")
    ed.page.wait_for_function("window.loom.editor.graph.nodes.size === 3")
    save = ed.node_ids("SaveImage")[0]
    assert ed.value(save, "filename_prefix") == "shipped_invert"
    assert ed.page.text_content("#workflow-name") == "Invert an image"


def test_a_saved_workflow_with_nan_in_a_subfolder_opens(ed):
    ed.page.click("#open")
    entries(ed)
    ed.page.click(".workflow-entry[data-name='user/mine/nan saved.json']")
    ed.page.wait_for_function("window.loom.editor.graph.nodes.size === 3")
    assert ed.value(ed.node_ids("SaveImage")[0], "filename_prefix") == "user_saved"
