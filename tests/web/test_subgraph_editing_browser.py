"""Editing inside subgraphs in the real editor (Chromium) on a real server:
open an instance, change what is inside, go back, queue — the prompt and the
run reflect the edit; the saved file carries it in the definition, in
ComfyUI's layout; undo works inside; nested subgraphs; proxy widgets."""

from __future__ import annotations

import json
import time

import pytest

from engine.workflow_format import load_workflow_text, schemas_from_object_info, ui_to_api

from .editor_driver import EditorDriver
from .subgraph_workflows import ADD_ID, add_workflow
from .test_compat_browser import FIXTURES

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def ed(page) -> EditorDriver:
    return EditorDriver(page)


def open_workflow(ed: EditorDriver, workflow: dict) -> None:
    ed.js("(w) => window.loom.editor.loadWorkflow(w, {undoable: true})", workflow)


def enter(ed: EditorDriver, instance_id) -> None:
    """Double-click the instance's body, as a user opens a subgraph."""
    ed.page.mouse.dblclick(*ed.where(instance_id, "body"))


def breadcrumb(ed: EditorDriver) -> list[str]:
    if ed.page.locator("#breadcrumb").is_hidden():
        return []
    return [t.strip() for t in ed.page.locator("#breadcrumb .crumb").all_inner_texts()]


def definition(workflow: dict, def_id: str = ADD_ID) -> dict:
    return next(d for d in workflow["definitions"]["subgraphs"] if d["id"] == def_id)


def empty_spot(ed: EditorDriver) -> tuple[float, float]:
    """Screen point below every node of the shown graph."""
    return ed.js("""() => { const e = window.loom.editor; let y = -Infinity; let x = Infinity;
        for (const n of e.graph.nodes.values()) { x = Math.min(x, n.pos[0]); y = Math.max(y, n.pos[1] + 200); }
        return e.toScreen(x + 150, y + 40); }""")


def spread_out(workflow: dict) -> None:
    """The fixture stacks every node at [0, 0]; lay them out left to right as a user would see them."""
    for holder in [workflow, *workflow["definitions"]["subgraphs"]]:
        for k, node in enumerate(holder["nodes"]):
            node["pos"] = [400 * k, 250 * k if holder is not workflow else 0]
        if holder is not workflow:
            holder["inputNode"]["bounding"] = [-300, -30, 140, 80]
            holder["outputNode"]["bounding"] = [400 * len(holder["nodes"]) + 100, -30, 140, 80]


def test_double_clicking_an_instance_shows_its_nodes_and_boundary_with_a_breadcrumb(ed):
    open_workflow(ed, add_workflow())
    enter(ed, 2)
    shown = ed.js("""() => [...window.loom.editor.graph.nodes.values()].map(n => [n.id, n.type,
        n.outputs.map(o => o.name), n.inputs.map(i => i.name)])""")
    assert shown == [[-10, "loom/subgraph-inputs", ["x", "loom:new-slot"], []], [1, "IntMath", ["INT"], ["a"]],
                     [-20, "loom/subgraph-outputs", [], ["sum", "loom:new-slot"]]]
    # The boundary sits where the definition's inputNode/outputNode say (bounding's top-left is the title's).
    assert ed.js("() => [window.loom.editor.nodeById(-10).pos, window.loom.editor.nodeById(-20).pos]") == [[-260, 30], [420, 30]]
    assert breadcrumb(ed) == ["Root", "Add three"]


def test_escape_and_the_breadcrumb_return_to_the_parent_graph(ed, page):
    open_workflow(ed, add_workflow())
    enter(ed, 2)
    page.keyboard.press("Escape")
    assert sorted(ed.node_ids()) == [1, 2, 3] and breadcrumb(ed) == []
    enter(ed, 2)
    page.click("#breadcrumb [data-depth='0']")
    assert sorted(ed.node_ids()) == [1, 2, 3] and breadcrumb(ed) == []


def test_edits_inside_go_back_into_the_definition_and_queue_runs_them(ed, page, loom_server):
    open_workflow(ed, add_workflow(start=5))
    enter(ed, 2)
    ed.type_into_widget(1, "b", "10")                          # 5 + 10
    added = ed.add_node_by_search("Int Math", empty_spot(ed))
    ed.type_into_widget(added, "b", "100")                    # (5 + 10) + 100
    ed.link_to_widget(1, "INT", added, "a")
    ed.link(added, "INT", -20, "sum")                         # replaces the old output link
    page.keyboard.press("Escape")
    with page.expect_request(lambda r: r.url.endswith("/prompt") and r.method == "POST") as sent:
        page.click("#queue")
    prompt = json.loads(sent.value.post_data)["prompt"]
    assert prompt["2:1"]["inputs"] == {"a": ["1", 0], "b": 10, "operation": "add"}
    assert prompt[f"2:{added}"]["inputs"] == {"a": ["2:1", 0], "b": 100, "operation": "add"}
    assert prompt["3"]["inputs"] == {"source": [f"2:{added}", 0]}
    assert prompt == ui_to_api(ed.workflow(), schemas_from_object_info(loom_server.get("/object_info")))
    deadline = time.time() + 60
    while time.time() < deadline:
        runs = [h for h in loom_server.get("/history").values() if "3" in h.get("outputs", {})
                and h["prompt"][2] == prompt]
        if runs:
            break
        time.sleep(0.2)
    assert runs, "the queued prompt did not run"
    assert runs[0]["outputs"]["3"]["text"] == ["115"]


def test_saved_file_has_the_edit_in_the_definition_in_comfyuis_layout_and_loads_back_identically(ed, page):
    open_workflow(ed, add_workflow())
    enter(ed, 2)
    added = ed.add_node_by_search("Int Math", empty_spot(ed))
    ed.link_to_widget(1, "INT", added, "a")
    ed.link(added, "INT", -20, "sum")
    with page.expect_download() as download:
        page.click("#export")
    saved = json.loads(open(download.value.path()).read())
    inside = definition(saved)
    assert [n["type"] for n in inside["nodes"]] == ["IntMath", "IntMath"]
    assert all(n["id"] > 0 for n in inside["nodes"])  # the boundary is not a node in the file
    links = {(l["origin_id"], l["origin_slot"], l["target_id"], l["target_slot"]) for l in inside["links"]}
    assert links == {(-10, 0, 1, 0), (1, 0, added, 0), (added, 0, -20, 0)}
    out_link = next(l["id"] for l in inside["links"] if l["target_id"] == -20)
    assert inside["outputs"][0]["linkIds"] == [out_link]
    assert inside["inputs"][0]["linkIds"] == [next(l["id"] for l in inside["links"] if l["origin_id"] == -10)]
    assert inside["inputNode"] == {"id": -10, "bounding": [-260, 0, 120, 80]}
    assert inside["state"]["lastNodeId"] >= added
    assert sorted((n["id"], n["type"]) for n in saved["nodes"]) == [(1, "PrimitiveInt"), (2, ADD_ID), (3, "PreviewAny")]
    page.keyboard.press("Escape")
    open_workflow(ed, saved)
    assert ed.workflow() == saved


def test_undo_inside_a_subgraph_restores_the_previous_state_and_stays_inside(ed, page):
    open_workflow(ed, add_workflow())
    enter(ed, 2)
    ed.type_into_widget(1, "b", "42")
    assert ed.js("() => window.loom.editor.toApi()['2:1'].inputs.b") == 42
    page.keyboard.press("Control+z")
    assert breadcrumb(ed) == ["Root", "Add three"]
    assert ed.value(1, "b") == 3
    assert ed.js("() => window.loom.editor.toApi()['2:1'].inputs.b") == 3
    page.keyboard.press("Control+y")
    assert ed.value(1, "b") == 42


def test_deleting_an_inner_node_and_its_links_updates_every_instance(ed, page):
    workflow = add_workflow()
    second = json.loads(json.dumps(workflow["nodes"][1]))
    second.update(id=4, pos=[400, 400], inputs=[{"name": "x", "type": "INT", "link": None}],
                  outputs=[{"name": "sum", "type": "INT", "links": [], "slot_index": 0}])
    workflow["nodes"].append(second)
    workflow["state"]["lastNodeId"] = 4
    open_workflow(ed, workflow)
    enter(ed, 4)
    ed.page.mouse.click(*ed.where(1, "title"))
    page.keyboard.press("Delete")
    page.keyboard.press("Escape")
    inside = definition(ed.workflow())
    assert inside["nodes"] == [] and inside["links"] == []
    assert inside["inputs"][0]["linkIds"] == [] and inside["outputs"][0]["linkIds"] == []
    prompt = ed.js("() => window.loom.editor.toApi()")
    assert sorted(prompt) == ["1", "3"] and prompt["3"]["inputs"] == {}  # nothing inside any instance now


def test_the_boundary_nodes_cannot_be_deleted(ed, page):
    open_workflow(ed, add_workflow())
    enter(ed, 2)
    ed.page.mouse.click(*ed.where(-10, "title"))
    page.keyboard.press("Delete")
    assert -10 in ed.node_ids()
    assert "drag a link to their empty slot" in page.locator(".toast").last.inner_text()


def test_linking_the_input_boundary_to_an_inner_widget_promotes_it_on_the_instance(ed, page):
    workflow = add_workflow()
    definition(workflow)["inputs"].append({"id": "in-k", "name": "k", "type": "INT", "linkIds": []})
    open_workflow(ed, workflow)
    enter(ed, 2)
    ed.link_to_widget(-10, "k", 1, "b")
    page.keyboard.press("Escape")
    assert ed.js("() => window.loom.editor.graph.schemaOf(window.loom.editor.nodeById(2)).inputs.find(s => s.name === 'k').isWidget")
    assert ed.value(2, "k") == 3  # the inner widget's value, until set on the instance
    ed.type_into_widget(2, "k", "8")
    assert ed.js("() => window.loom.editor.toApi()['2:1'].inputs.b") == 8


def test_nested_subgraphs_open_level_by_level_and_edits_reach_the_innermost_definition(ed, page):
    workflow = load_workflow_text((FIXTURES / "nested_subgraphs.json").read_text())["workflow"]
    spread_out(workflow)
    open_workflow(ed, workflow)
    enter(ed, 5)
    enter(ed, 7)
    assert breadcrumb(ed) == ["Root", "wrap", "invert twice"]
    ed.page.mouse.click(*ed.where(2, "title"))
    page.keyboard.press("Delete")
    ed.link(1, "IMAGE", -20, "IMAGE")
    page.keyboard.press("Escape")
    assert breadcrumb(ed) == ["Root", "wrap"]
    page.click("#breadcrumb [data-depth='0']")
    prompt = ed.js("() => window.loom.editor.toApi()")
    assert sorted(prompt) == ["1", "5:7:1", "6"]
    assert prompt["6"]["inputs"]["images"] == ["5:7:1", 0]
    schemas = schemas_from_object_info(ed.js("async () => (await fetch('/object_info')).json()"))
    assert prompt == ui_to_api(ed.workflow(), schemas)


def test_proxy_widgets_show_on_the_instance_and_editing_one_sets_the_inner_widget(ed):
    open_workflow(ed, add_workflow(proxy_widgets=[["1", "b"], ["1", "operation"]]))
    assert ed.value(2, "proxy:1:b") == 3
    assert ed.value(2, "proxy:1:operation") == "add"
    ed.type_into_widget(2, "proxy:1:b", "7")
    assert ed.js("() => window.loom.editor.toApi()['2:1'].inputs.b") == 7
    saved = ed.workflow()
    assert definition(saved)["nodes"][0]["widgets_values"] == [0, 7, "add"]
    instance = next(n for n in saved["nodes"] if n["id"] == 2)
    assert instance["properties"]["proxyWidgets"] == [["1", "b"], ["1", "operation"]]
    # A proxy's value lives in the inner node, as ComfyUI saves it; the instance keeps its promoted input's only.
    assert instance["widgets_values"] == [0]


def test_proxy_widgets_stored_as_json_text_are_read_too(ed):
    open_workflow(ed, add_workflow(proxy_widgets='[["1", "b"]]'))
    assert ed.value(2, "proxy:1:b") == 3
