"""Saving into the server as a ComfyUI user expects: Save asks for a name the first
time and writes user/workflows/<name>.json through the userdata API, Save writes
there again, Save As asks before overwriting, and the Open list renames and
deletes saved workflows. Export still downloads a copy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .editor_driver import EditorDriver

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def saved_dir(loom_server) -> Path:
    folder = Path(loom_server.server.folders.user) / "workflows"
    shutil.rmtree(folder, ignore_errors=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def ed(page, saved_dir) -> EditorDriver:
    return EditorDriver(page)


def answer_dialogs(ed: EditorDriver, *answers: str | bool) -> list[str]:
    """Answers the next prompt()/confirm() dialogs in order; returns their messages."""
    queue, seen = list(answers), []

    def handle(dialog):
        seen.append(dialog.message)
        answer = queue.pop(0)
        if answer is False:
            dialog.dismiss()
        elif answer is True:
            dialog.accept()
        else:
            dialog.accept(answer)
    ed.page.on("dialog", handle)
    return seen


def wait_saved(ed: EditorDriver, path: Path) -> dict:
    ed.page.wait_for_function("!window.loom.editor.unsaved")
    for _ in range(100):
        if path.exists():
            return json.loads(path.read_text())
        ed.page.wait_for_timeout(50)
    raise AssertionError(f"{path} was not written")


def test_first_save_asks_for_a_name_and_writes_user_workflows(ed, saved_dir):
    messages = answer_dialogs(ed, "my first")
    ed.page.click("#save")
    saved = wait_saved(ed, saved_dir / "my first.json")
    assert "Save the workflow as" in messages[0]
    assert len(saved["nodes"]) == len(ed.node_ids())
    assert ed.page.text_content("#workflow-name") == "my first"


def test_a_second_save_writes_the_same_file_without_asking(ed, saved_dir):
    messages = answer_dialogs(ed, "again")
    ed.page.click("#save")
    wait_saved(ed, saved_dir / "again.json")
    (saved_dir / "again.json").unlink()
    ed.page.click("#canvas", position={"x": 5, "y": 5})
    ed.page.keyboard.press("Control+s")
    wait_saved(ed, saved_dir / "again.json")
    assert len(messages) == 1  # the name was asked once


def test_save_as_onto_an_existing_name_asks_before_overwriting(ed, saved_dir):
    saved_dir.mkdir(parents=True, exist_ok=True)
    (saved_dir / "taken.json").write_text('{"keep": true}')
    messages = answer_dialogs(ed, "taken", False, "taken", True)
    ed.page.click("#save-as")
    ed.page.wait_for_function("window.loom.editor.unsaved === false")
    for _ in range(50):
        if len(messages) == 2:
            break
        ed.page.wait_for_timeout(50)
    assert "exists. Overwrite it?" in messages[1]
    assert json.loads((saved_dir / "taken.json").read_text()) == {"keep": True}
    assert ed.js("window.loom.files.path") is None

    ed.page.click("#save-as")
    ed.page.wait_for_function("window.loom.files.path === 'workflows/taken.json'")
    assert "nodes" in json.loads((saved_dir / "taken.json").read_text())


def test_a_saved_workflow_is_listed_and_reopens_from_the_open_list(ed, saved_dir):
    answer_dialogs(ed, "listed")
    ed.page.click("#save")
    wait_saved(ed, saved_dir / "listed.json")
    ed.page.click("#new")
    ed.page.click("#open")
    ed.page.wait_for_selector(".workflow-entry[data-name='user/listed.json']")
    ed.page.click(".workflow-entry[data-name='user/listed.json']")
    ed.page.wait_for_function("window.loom.files.path === 'workflows/listed.json'")
    assert ed.page.text_content("#workflow-name") == "listed"


def test_rename_and_delete_from_the_open_list(ed, saved_dir):
    answer_dialogs(ed, "before", "after", True)
    ed.page.click("#save")
    wait_saved(ed, saved_dir / "before.json")
    ed.page.click("#open")
    ed.page.click(".rename-workflow[data-name='user/before.json']")
    ed.page.wait_for_selector(".workflow-entry[data-name='user/after.json']")
    assert not (saved_dir / "before.json").exists()
    assert ed.js("window.loom.files.path") == "workflows/after.json"  # the open workflow follows its file
    ed.page.click(".delete-workflow[data-name='user/after.json']")
    ed.page.wait_for_function("!document.querySelector(\".workflow-entry[data-name='user/after.json']\")")
    assert not (saved_dir / "after.json").exists()
    assert ed.js("window.loom.files.path") is None


def test_export_downloads_a_copy_and_does_not_change_the_saved_file(ed, saved_dir):
    with ed.page.expect_download() as info:
        ed.page.click("#export")
    assert info.value.suggested_filename.endswith(".json")
    assert not saved_dir.exists() or not any(saved_dir.iterdir())


def test_loading_a_run_from_history_forgets_the_open_files_name(ed, saved_dir):
    answer_dialogs(ed, "opened one", "from history")
    ed.page.click("#save")
    wait_saved(ed, saved_dir / "opened one.json")
    entry = {"prompt": [1, "x", {}, {"extra_pnginfo": {"workflow": ed.workflow()}}, []]}
    ed.js("(entry) => window.loom.panels.loadHistoryItem(entry)", entry)
    assert ed.js("window.loom.files.path") is None
    ed.page.click("#save")
    wait_saved(ed, saved_dir / "from history.json")
    assert json.loads((saved_dir / "opened one.json").read_text())["nodes"]  # untouched
