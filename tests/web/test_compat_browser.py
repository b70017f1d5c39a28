"""ComfyUI's saved files in the real editor (Chromium): they open without
placeholders, look like ComfyUI draws them (subgraph instances as nodes,
links through native reroutes), queue the prompt the Python converter gives,
and save back without losing anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.workflow_format import (WorkflowConversionError, load_workflow_text, schemas_from_object_info,
                                    ui_to_api)

from .editor_driver import EditorDriver

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FIXTURES = Path(__file__).resolve().parents[1] / "workflow_format" / "fixtures"
SUBGRAPH_V1 = "subgraph_proxy_widgets_and_native_reroutes_v1"
#: The only fixtures with nodes the editor keeps as placeholders: types no server has.
PLACEHOLDERS = {"error_unknown_node_type": ["FancyUpscaler"], "error_legacy_group_node": ["workflow>Decode and save"]}


@pytest.fixture
def ed(page) -> EditorDriver:
    return EditorDriver(page)


def fixture_workflow(stem: str) -> dict:
    return load_workflow_text((FIXTURES / f"{stem}.json").read_text())["workflow"]


def open_workflow(ed: EditorDriver, workflow: dict) -> None:
    """As opening a file does, keeping the file's view (extra.ds)."""
    ed.js("(w) => window.loom.editor.loadWorkflow(w, {undoable: true})", workflow)


def server_schemas(ed: EditorDriver):
    return schemas_from_object_info(ed.js("async () => (await fetch('/object_info')).json()"))


def python_conversion(workflow: dict, schemas) -> dict:
    try:
        return {"api": ui_to_api(workflow, schemas)}
    except WorkflowConversionError as exc:
        return {"error": [exc.node_id, exc.class_type]}


def test_every_fixture_opens_without_placeholders_and_queues_pythons_prompt(ed):
    info = json.loads((FIXTURES / "object_info.json").read_text())
    ed.js("""async (info) => {
        const { schemasFromObjectInfo } = await import('/lib/schema.js');
        window.loom.editor.setSchemas(schemasFromObjectInfo(info));
    }""", info)
    schemas = schemas_from_object_info(info)
    seen, expected = {}, {}
    for path in sorted(p for p in FIXTURES.glob("*.json") if p.name != "object_info.json"):
        workflow = load_workflow_text(path.read_text())["workflow"]
        if not isinstance(workflow.get("nodes"), list):
            continue  # an API prompt: the editor lays those out instead (test_editor_browser)
        seen[path.stem] = ed.js("""(w) => {
            const editor = window.loom.editor;
            editor.loadWorkflow(w);
            const missing = editor.graph.missingTypes();
            try { return { missing, api: editor.toApi() }; }
            catch (err) { return { missing, error: [err.nodeId, err.classType] }; }
        }""", workflow)
        expected[path.stem] = {"missing": PLACEHOLDERS.get(path.stem, []),
                               **python_conversion(workflow, schemas)}
    assert len(seen) >= 25
    assert seen == expected


def test_subgraph_instance_is_a_node_named_after_its_subgraph_with_its_inputs_and_outputs(ed):
    open_workflow(ed, fixture_workflow(SUBGRAPH_V1))
    node = ed.js("""() => { const e = window.loom.editor; const n = e.nodeById(10);
        return { missing: n.missing, title: e.titleOf(n), inputs: n.inputs.map(i => i.name),
                 outputs: n.outputs.map(o => o.name) }; }""")
    assert node == {"missing": False, "title": "Sample and decode",
                    "inputs": ["model", "positive", "negative", "latent_image", "vae", "passthrough"],
                    "outputs": ["IMAGE", "inverted"]}


def test_promoted_widget_shows_the_instance_value_and_editing_it_reaches_the_inner_node(ed):
    open_workflow(ed, fixture_workflow(SUBGRAPH_V1))
    assert ed.value(10, "steps") == 33
    ed.type_into_widget(10, "steps", "12")
    assert ed.js("() => window.loom.editor.toApi()['10:1'].inputs.steps") == 12


def test_queueing_a_subgraph_sends_the_flattened_prompt_the_python_converter_gives(ed):
    workflow = fixture_workflow(SUBGRAPH_V1)
    open_workflow(ed, workflow)
    prompt = ed.js("() => window.loom.editor.toApi()")
    assert sorted(prompt) == ["10:1", "10:2", "10:3", "4", "5", "6", "7", "9"]
    assert prompt == ui_to_api(workflow, server_schemas(ed))


def test_version1_file_with_subgraph_and_native_reroutes_saves_back_without_loss(ed, page):
    original = fixture_workflow(SUBGRAPH_V1)
    open_workflow(ed, original)
    with page.expect_download() as download:
        page.click("#export")
    saved = json.loads(open(download.value.path()).read())
    for node in saved["nodes"]:  # the one thing Loom adds: widget values by name, for readers that want them
        node.pop("widgets_values_named", None)
    assert saved == original


def test_links_are_drawn_through_native_reroutes_origin_side_first(ed):
    open_workflow(ed, fixture_workflow(SUBGRAPH_V1))
    # The VAE link (8) passes reroute 1 then reroute 2; the MODEL link (1) only reroute 1.
    points = ed.js("""() => { const r = window.loom.editor.renderer; r.refreshIndex();
        const g = window.loom.editor.graph;
        return [r.linkPoints(g.links.get(8)).slice(1, -1), r.linkPoints(g.links.get(1)).slice(1, -1)]; }""")
    assert points == [[[790, 150], [780, 420]], [[790, 150]]]


def test_dragging_a_native_reroute_moves_it_and_the_save_keeps_the_link_through_it(ed, page):
    open_workflow(ed, fixture_workflow(SUBGRAPH_V1))
    start = ed.js("() => window.loom.editor.toScreen(780, 420)")
    scale = ed.js("() => window.loom.editor.view.scale")
    ed.drag((start[0], start[1]), (start[0] + 60, start[1] + 40))
    saved = ed.workflow()
    reroute = next(r for r in saved["reroutes"] if r["id"] == 2)
    assert reroute["pos"] == pytest.approx([780 + 60 / scale, 420 + 40 / scale], abs=1)
    assert next(link for link in saved["links"] if link["id"] == 8)["parentId"] == 2
    page.keyboard.press("Control+z")
    assert next(r for r in ed.workflow()["reroutes"] if r["id"] == 2)["pos"] == [780, 420]


def test_bypassed_and_muted_nodes_are_tagged_in_their_title_bar(ed):
    open_workflow(ed, fixture_workflow("bypassed_pass_through_by_type"))
    tags = ed.js("""async () => { const { titleTag } = await import('/ui/renderer.js');
        return [...window.loom.editor.graph.nodes.values()].map(n => [n.mode, titleTag(n, false)?.text ?? null]); }""")
    assert [4, "bypassed"] in tags
    open_workflow(ed, fixture_workflow("muted_node_removed"))
    tags = ed.js("""async () => { const { titleTag } = await import('/ui/renderer.js');
        return [...window.loom.editor.graph.nodes.values()].map(n => [n.mode, titleTag(n, false)?.text ?? null]); }""")
    assert [2, "muted"] in tags
