"""Convert to Subgraph and Unpack Subgraph in the real editor (Chromium) on a real
server: selected nodes become a "New Subgraph" instance wired as they were and
the queued prompt is the same modulo 'instance:inner' ids and runs to the same
result; unpacking gives the graph back modulo ids; each is one undo step; the
saved file loads back identically and Python converts it to the same prompt."""

from __future__ import annotations

import json

import pytest

from .editor_driver import EditorDriver
from .subgraph_workflows import chain_workflow
from .test_subgraph_editing_browser import breadcrumb, enter, open_workflow
from .test_subgraph_io_browser import python_prompt, queue_and_wait

pytestmark = [pytest.mark.browser, pytest.mark.slow]

UUID_LEN = 36


@pytest.fixture
def ed(page) -> EditorDriver:
    return EditorDriver(page)


def select(ed: EditorDriver, *ids: int) -> None:
    ed.page.mouse.click(*ed.where(ids[0], "title"))
    for node_id in ids[1:]:
        ed.page.keyboard.down("Shift")
        ed.page.mouse.click(*ed.where(node_id, "title"))
        ed.page.keyboard.up("Shift")


def menu(ed: EditorDriver, node_id: int, entry: str) -> None:
    ed.page.mouse.click(*ed.where(node_id, "title"), button="right")
    ed.page.locator(".context-menu button", has_text=entry).click()


def convert(ed: EditorDriver, *ids: int) -> int:
    """Select `ids`, choose Convert to Subgraph from a node's menu; returns the instance's id."""
    before = set(ed.node_ids())
    select(ed, *ids)
    menu(ed, ids[0], "Convert to Subgraph")
    new = set(ed.node_ids()) - before
    assert len(new) == 1, f"converting added {new}"
    return new.pop()


def shape(ed: EditorDriver) -> dict:
    """The shown graph as types, widget values and links, without ids or positions."""
    return ed.js("""() => { const g = window.loom.editor.graph;
        const key = (id) => { const n = g.nodes.get(id); return n.type + ' ' + JSON.stringify(n.values); };
        return { nodes: [...g.nodes.values()].map(n => key(n.id)).sort(),
                 links: [...g.links.values()].map(l => key(l.origin_id) + '[' + l.origin_slot + '] -> ' + key(l.target_id)
                        + '.' + g.nodes.get(l.target_id).inputs[l.target_slot].name).sort() }; }""")


def without_prefix(prompt: dict, instance: int) -> dict:
    strip = lambda i: i.removeprefix(f"{instance}:")  # noqa: E731
    return {strip(k): {**v, "inputs": {n: [strip(x[0]), x[1]] if isinstance(x, list) else x for n, x in v["inputs"].items()}}
            for k, v in prompt.items()}


def test_converting_two_nodes_makes_a_new_subgraph_instance_wired_in_their_place(ed):
    open_workflow(ed, chain_workflow())
    instance = convert(ed, 2, 3)
    assert sorted(ed.node_ids()) == sorted([1, 4, instance])
    saved = ed.workflow()
    (definition,) = saved["definitions"]["subgraphs"]
    assert definition["name"] == "New Subgraph" and len(definition["id"]) == UUID_LEN
    assert [(n["id"], n["type"]) for n in definition["nodes"]] == [(2, "IntMath"), (3, "IntMath")]
    assert [(s["name"], s["type"]) for s in definition["inputs"]] == [("a", "INT")]
    assert [(s["name"], s["type"]) for s in definition["outputs"]] == [("INT", "INT")]
    links = {(l["origin_id"], l["target_id"]) for l in saved["links"]}
    assert links == {(1, instance), (instance, 4)}
    assert ed.js("(id) => window.loom.editor.titleOf(window.loom.editor.nodeById(id))", instance) == "New Subgraph"


def test_the_converted_workflow_queues_the_same_prompt_modulo_instance_ids_and_runs_to_the_same_result(ed, loom_server):
    open_workflow(ed, chain_workflow(start=5))
    original = ed.js("() => window.loom.editor.toApi()")
    instance = convert(ed, 2, 3)
    prompt, run = queue_and_wait(ed, loom_server, "4")
    assert f"{instance}:2" in prompt and "2" not in prompt
    assert without_prefix(prompt, instance) == original
    assert run["outputs"]["4"]["text"] == ["16"]  # (5 + 3) * 2
    assert prompt == python_prompt(ed)


def test_unpacking_the_instance_gives_back_the_original_graph_modulo_ids_and_drops_the_definition(ed, loom_server):
    open_workflow(ed, chain_workflow(start=5))
    original = shape(ed)
    instance = convert(ed, 2, 3)
    menu(ed, instance, "Unpack Subgraph")
    assert shape(ed) == original
    assert instance not in ed.node_ids() and not {2, 3} & set(ed.node_ids())
    saved = ed.workflow()
    assert saved.get("definitions", {}).get("subgraphs", []) == []
    prompt, run = queue_and_wait(ed, loom_server, "4")
    assert run["outputs"]["4"]["text"] == ["16"]
    assert prompt == python_prompt(ed)


def test_unpacking_inside_an_open_subgraph_changes_only_that_subgraph(ed, page):
    open_workflow(ed, chain_workflow())
    outer = convert(ed, 2, 3)
    enter(ed, outer)
    inner = convert(ed, 3)
    assert len(ed.workflow()["definitions"]["subgraphs"]) == 2
    menu(ed, inner, "Unpack Subgraph")
    assert breadcrumb(ed) == ["Root", "New Subgraph"]
    assert len(ed.workflow()["definitions"]["subgraphs"]) == 1
    page.keyboard.press("Escape")
    prompt = ed.js("() => window.loom.editor.toApi()")
    inner_ids = sorted(k.split(":", 1)[1] for k in prompt if k.startswith(f"{outer}:"))
    assert sorted(k for k in prompt if ":" not in k) == ["1", "4"]
    assert len(inner_ids) == 2 and inner_ids[0] == "2" and ":" not in inner_ids[1]  # back one level, with a fresh id
    assert prompt == python_prompt(ed)


def test_convert_and_unpack_are_each_one_undo_step(ed, page):
    open_workflow(ed, chain_workflow())
    instance = convert(ed, 2, 3)
    page.keyboard.press("Control+z")
    assert sorted(ed.node_ids()) == [1, 2, 3, 4] and "definitions" not in ed.workflow()
    page.keyboard.press("Control+y")
    assert sorted(ed.node_ids()) == sorted([1, 4, instance])
    menu(ed, instance, "Unpack Subgraph")
    unpacked = sorted(ed.node_ids())
    page.keyboard.press("Control+z")
    assert sorted(ed.node_ids()) == sorted([1, 4, instance]) and len(ed.workflow()["definitions"]["subgraphs"]) == 1
    page.keyboard.press("Control+y")
    assert sorted(ed.node_ids()) == unpacked


def test_a_saved_converted_workflow_loads_back_identically_and_python_queues_the_same_prompt(ed, page):
    open_workflow(ed, chain_workflow())
    convert(ed, 2, 3)
    with page.expect_download() as download:
        page.click("#export")
    saved = json.loads(open(download.value.path()).read())
    open_workflow(ed, saved)
    assert ed.workflow() == saved
    assert ed.js("() => window.loom.editor.toApi()") == python_prompt(ed)
