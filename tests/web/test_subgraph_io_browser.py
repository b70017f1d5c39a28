"""Changing a subgraph's own inputs and outputs in the real editor (Chromium) on
a real server: a link dragged to a boundary node's empty slot adds an input or
output (named and typed after the inner socket) that every instance shows and
can be wired; the boundary slot's menu renames and removes one; each change is
one undo step; the saved file is ComfyUI's layout and Python converts it to the
prompt the editor queues."""

from __future__ import annotations

import json
import time

import pytest

from engine.workflow_format import schemas_from_object_info, ui_to_api

from .editor_driver import EditorDriver
from .subgraph_workflows import add_workflow
from .test_subgraph_editing_browser import breadcrumb, definition, empty_spot, enter, open_workflow

pytestmark = [pytest.mark.browser, pytest.mark.slow]

EMPTY = "loom:new-slot"  # the boundary nodes' empty slot (web/lib/subgraph_edit.js)


@pytest.fixture
def ed(page) -> EditorDriver:
    return EditorDriver(page)


def queue_and_wait(ed: EditorDriver, loom_server, output_node: str) -> tuple[dict, dict]:
    """Click Queue; return the prompt sent and the history entry of its run."""
    with ed.page.expect_request(lambda r: r.url.endswith("/prompt") and r.method == "POST") as sent:
        ed.page.click("#queue")
    prompt = json.loads(sent.value.post_data)["prompt"]
    deadline = time.time() + 60
    while time.time() < deadline:
        runs = [h for h in loom_server.get("/history").values() if output_node in h.get("outputs", {}) and h["prompt"][2] == prompt]
        if runs:
            return prompt, runs[0]
        time.sleep(0.2)
    raise AssertionError("the queued prompt did not run")


def slot_menu(ed: EditorDriver, node_id: int, kind: str, name: str, entry: str) -> None:
    """Right-click a boundary slot and choose `entry` from its menu."""
    ed.page.mouse.click(*ed.where(node_id, kind, name), button="right")
    ed.page.locator(".context-menu button", has_text=entry).click()


def python_prompt(ed: EditorDriver) -> dict:
    schemas = schemas_from_object_info(ed.js("async () => (await fetch('/object_info')).json()"))
    return ui_to_api(ed.workflow(), schemas)


def test_dragging_from_the_inputs_empty_slot_to_an_inner_widget_adds_an_input_the_instance_can_be_wired_to(ed, page, loom_server):
    open_workflow(ed, add_workflow(start=5))
    enter(ed, 2)
    ed.link_to_widget(-10, EMPTY, 1, "b")
    assert breadcrumb(ed) == ["Root", "Add three"]
    assert [s["name"] for s in definition(ed.workflow())["inputs"]] == ["x", "b"]
    assert ed.js("() => window.loom.editor.nodeById(-10).outputs.map(o => o.name)") == ["x", "b", EMPTY]
    page.keyboard.press("Escape")
    assert ed.value(2, "b") == 3  # a promoted widget, showing the inner value
    ed.link_to_widget(1, "INT", 2, "b")
    prompt, run = queue_and_wait(ed, loom_server, "3")
    assert prompt["2:1"]["inputs"] == {"a": ["1", 0], "b": ["1", 0], "operation": "add"}
    assert run["outputs"]["3"]["text"] == ["10"]
    assert prompt == python_prompt(ed)


def test_dragging_an_inner_output_to_the_outputs_empty_slot_adds_an_output_the_instance_gives_out(ed, page, loom_server):
    open_workflow(ed, add_workflow(start=5))
    enter(ed, 2)
    ed.type_into_widget(1, "b", "4")
    ed.link(1, "INT", -20, EMPTY)
    assert [(s["name"], s["type"]) for s in definition(ed.workflow())["outputs"]] == [("sum", "INT"), ("INT", "INT")]
    page.keyboard.press("Escape")
    assert ed.js("() => window.loom.editor.nodeById(2).outputs.map(o => o.name)") == ["sum", "INT"]
    shown = ed.add_node_by_search("Preview as Text", empty_spot(ed))
    ed.link(2, "INT", shown, "source")
    prompt, run = queue_and_wait(ed, loom_server, str(shown))
    assert prompt[str(shown)]["inputs"] == {"source": ["2:1", 0]}
    assert run["outputs"][str(shown)]["text"] == ["9"]


def test_dragging_back_from_an_inner_input_to_the_inputs_empty_slot_adds_an_input_too(ed, page):
    open_workflow(ed, add_workflow())
    enter(ed, 2)
    added = ed.add_node_by_search("Preview as Text", empty_spot(ed))
    ed.drag(ed.where(added, "input", "source"), ed.where(-10, "output", EMPTY))
    inputs = definition(ed.workflow())["inputs"]
    assert [(s["name"], s["type"]) for s in inputs] == [("x", "INT"), ("source", "*")]
    page.keyboard.press("Escape")
    assert ed.js("() => window.loom.editor.nodeById(2).inputs.map(i => i.name)") == ["x", "source"]


def test_renaming_an_input_from_its_menu_labels_it_on_the_definition_and_the_instance(ed, page):
    open_workflow(ed, add_workflow())
    before = ed.js("() => window.loom.editor.toApi()")
    enter(ed, 2)
    slot_menu(ed, -10, "output", "x", "Rename input 'x'")
    entry = page.locator(".inline-entry")
    entry.fill("number")
    entry.press("Enter")
    assert breadcrumb(ed) == ["Root", "Add three"]
    saved = definition(ed.workflow())["inputs"][0]
    assert (saved["name"], saved["label"], saved["id"]) == ("x", "number", "in-x")
    page.keyboard.press("Escape")
    instance = next(n for n in ed.workflow()["nodes"] if n["id"] == 2)
    assert instance["inputs"][0] == {"name": "x", "type": "INT", "link": 1, "widget": {"name": "x"}, "label": "number"}
    assert ed.js("() => window.loom.editor.toApi()") == before


def test_removing_an_input_from_its_menu_removes_it_and_its_links_on_every_instance(ed, page, loom_server):
    workflow = add_workflow(start=5)
    second = json.loads(json.dumps(workflow["nodes"][1]))
    second.update(id=4, pos=[400, 400], inputs=[{"name": "x", "type": "INT", "link": 3}],
                  outputs=[{"name": "sum", "type": "INT", "links": [], "slot_index": 0}])
    workflow["nodes"][0]["outputs"][0]["links"].append(3)
    workflow["links"].append({"id": 3, "origin_id": 1, "origin_slot": 0, "target_id": 4, "target_slot": 0, "type": "INT"})
    workflow["nodes"].append(second)
    workflow["state"].update(lastNodeId=4, lastLinkId=3)
    open_workflow(ed, workflow)
    enter(ed, 2)
    slot_menu(ed, -10, "output", "x", "Remove input 'x'")
    inside = definition(ed.workflow())
    assert inside["inputs"] == [] and all(l["origin_id"] != -10 for l in inside["links"])
    page.keyboard.press("Escape")
    saved = ed.workflow()
    assert [n["inputs"] for n in saved["nodes"] if n["id"] in (2, 4)] == [[], []]
    assert [l["id"] for l in saved["links"]] == [2]
    prompt, run = queue_and_wait(ed, loom_server, "3")
    assert prompt["2:1"]["inputs"] == {"a": 0, "b": 3, "operation": "add"}
    assert run["outputs"]["3"]["text"] == ["3"]
    assert prompt == python_prompt(ed)


def test_each_input_output_change_is_one_undo_step_and_undo_stays_inside(ed, page):
    open_workflow(ed, add_workflow())
    enter(ed, 2)
    names = lambda: [s.get("label", s["name"]) for s in definition(ed.workflow())["inputs"]]  # noqa: E731
    ed.link_to_widget(-10, EMPTY, 1, "b")
    slot_menu(ed, -10, "output", "b", "Rename input 'b'")
    page.locator(".inline-entry").fill("offset")
    page.locator(".inline-entry").press("Enter")
    slot_menu(ed, -10, "output", "x", "Remove input 'x'")
    states = [["x"], ["x", "b"], ["x", "offset"], ["offset"]]
    assert names() == states[3]
    for expected in reversed(states[:3]):
        page.keyboard.press("Control+z")
        assert names() == expected and breadcrumb(ed) == ["Root", "Add three"]
    for expected in states[1:]:
        page.keyboard.press("Control+y")
        assert names() == expected
    assert ed.js("() => window.loom.editor.nodeById(-10).outputs.map(o => o.label || o.name)") == ["offset", "+ new input"]


def test_a_saved_file_with_an_added_input_and_output_loads_back_identically_and_python_queues_the_same_prompt(ed, page):
    open_workflow(ed, add_workflow())
    enter(ed, 2)
    ed.link_to_widget(-10, EMPTY, 1, "b")
    ed.link(1, "INT", -20, EMPTY)
    page.keyboard.press("Escape")
    with page.expect_download() as download:
        page.click("#export")
    saved = json.loads(open(download.value.path()).read())
    inside = definition(saved)
    b, out = inside["inputs"][1], inside["outputs"][1]
    assert set(b) == {"id", "name", "type", "linkIds"} and (b["name"], b["type"]) == ("b", "INT")
    assert set(out) == {"id", "name", "type", "linkIds"} and (out["name"], out["type"]) == ("INT", "INT")
    by_id = {l["id"]: l for l in inside["links"]}
    assert [(by_id[i]["origin_id"], by_id[i]["origin_slot"], by_id[i]["target_id"]) for i in b["linkIds"]] == [(-10, 1, 1)]
    assert [(by_id[i]["origin_id"], by_id[i]["target_id"], by_id[i]["target_slot"]) for i in out["linkIds"]] == [(1, -20, 1)]
    instance = next(n for n in saved["nodes"] if n["id"] == 2)
    assert [i["name"] for i in instance["inputs"]] == ["x", "b"] and [o["name"] for o in instance["outputs"]] == ["sum", "INT"]
    open_workflow(ed, saved)
    assert ed.workflow() == saved
    assert ed.js("() => window.loom.editor.toApi()") == python_prompt(ed)
