"""Each shipped workflow in the real editor (Debian's Chromium): it is in the Open list,
one click opens it with every node known (no "missing" placeholder), and the prompt the
editor would queue is exactly the one Python's converter makes from the same file.

A screenshot of each opened workflow is saved to test-output/screenshots/workflow_<name>.png."""

from __future__ import annotations

import pytest

from engine.workflow_format import schemas_from_object_info, ui_to_api

from .conftest import ROOT, ServerThread, load_workflow, shipped_files

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCREENSHOTS = ROOT / "test-output" / "screenshots"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server with the built-in nodes and no models: opening and converting needs none."""
    running = ServerThread(tmp_path_factory.mktemp("editor")).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def page(server, browser):
    context = browser.new_context(viewport={"width": 1600, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url + "/")
    page.wait_for_selector("body[data-ready=true]", timeout=15000)
    page.wait_for_function("window.loom.api.online === true", timeout=10000)
    page.js_errors = errors
    yield page
    context.close()


@pytest.mark.parametrize("name", shipped_files())
def test_opens_from_the_open_list_without_placeholders_and_queues_pythons_prompt(page, server, name):
    workflow = load_workflow(name)
    entry = f".workflow-entry[data-name='{name}']"
    if not page.is_visible(entry):  # the Open button toggles the panel, which stays open after a pick
        page.click("#open")
    page.click(entry)
    page.wait_for_function("([stem, n]) => document.querySelector('#workflow-name').textContent === stem"
                           " && window.loom.editor.graph.nodes.size === n",
                           arg=[name.removesuffix(".json"), len(workflow["nodes"])])
    page.evaluate("() => window.loom.editor.fitView()")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"workflow_{name.removesuffix('.json')}.png"))

    opened = page.evaluate("""() => {
        const editor = window.loom.editor;
        return { missing: editor.graph.missingTypes(), api: editor.toApi() };
    }""")
    expected = ui_to_api(workflow, schemas_from_object_info(server.get("/object_info")))
    assert opened["missing"] == []
    assert opened["api"] == expected
    assert page.js_errors == []
