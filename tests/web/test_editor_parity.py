"""The editor and the Python converter agree on every workflow fixture.

Each fixture in tests/workflow_format/fixtures is opened the way the editor
opens a file (web/lib/graph.js), saved, and converted to the prompt a queue
would send (web/lib/workflow_to_api.js), under node; the result must equal
engine.workflow_format.ui_to_api on the original file: same node ids, same
inputs.  A file the Python side refuses must be refused by the editor too,
naming the same node."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from engine.workflow_format import WorkflowConversionError, load_workflow_text, schemas_from_object_info, ui_to_api

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "workflow_format" / "fixtures"
CASES = sorted(p for p in FIXTURES.glob("*.json") if p.name != "object_info.json")


@pytest.fixture(scope="module")
def editor_results() -> dict:
    assert shutil.which("node"), "node (>= 18) is needed to run the editor's converter: apt-get install nodejs"
    result = subprocess.run(
        ["node", "tests/web/editor_conversion.mjs", str(FIXTURES / "object_info.json"), *map(str, CASES)],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def schemas():
    return schemas_from_object_info(json.loads((FIXTURES / "object_info.json").read_text()))


def python_conversion(path: Path, schemas) -> dict:
    workflow = load_workflow_text(path.read_text())["workflow"]
    try:
        return {"api": ui_to_api(workflow, schemas)}
    except WorkflowConversionError as exc:
        return {"error": {"node_id": exc.node_id, "class_type": exc.class_type, "message": str(exc)}}


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_editor_queues_the_same_prompt_as_the_python_converter(path, editor_results, schemas):
    python = python_conversion(path, schemas)
    editor = editor_results[path.name]
    if "api" in python:
        assert "error" not in editor, f"the editor refused what Python converts: {editor.get('error')}"
        assert editor["api"] == python["api"]
    else:
        assert "error" in editor, "the editor converted what Python refuses"
        assert (editor["error"]["node_id"], editor["error"]["class_type"]) == (
            python["error"]["node_id"], python["error"]["class_type"])


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_editor_opens_the_fixture_without_placeholders(path, editor_results):
    """Only a node type the server lacks (or a legacy group node) is a placeholder;
    subgraphs, reroutes, primitives and notes are all real nodes in the editor."""
    expected = {"error_unknown_node_type": ["FancyUpscaler"], "error_legacy_group_node": ["workflow>Decode and save"]}.get(path.stem, [])
    editor = editor_results[path.name]
    if editor.get("error", {}).get("stage") == "load":  # not a UI workflow at all
        assert path.stem == "error_api_prompt_given"
        return
    assert editor["missing"] == expected


SHIPPED = sorted((ROOT / "workflows").glob("*.json"))


@pytest.fixture(scope="module")
def builtin_object_info(tmp_path_factory) -> Path:
    """/object_info of the built-in nodes, as the editor receives it from a server."""
    import nodes
    from engine.object_info import object_info
    from engine.registry import Registry
    from nodes.runtime import LoomEnv

    base = tmp_path_factory.mktemp("parity")
    registry = Registry(env=LoomEnv.at(base, device="cpu"))
    registry.add_all(nodes.builtin_nodes(), origin="builtin")
    path = base / "object_info.json"
    path.write_text(json.dumps(object_info(registry)))
    return path


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_workflow_queues_the_same_prompt_in_the_editor_as_in_python(path, builtin_object_info):
    result = subprocess.run(["node", "tests/web/editor_conversion.mjs", str(builtin_object_info), str(path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-4000:]
    editor = json.loads(result.stdout)[path.name]
    schemas = schemas_from_object_info(json.loads(builtin_object_info.read_text()))
    workflow = load_workflow_text(path.read_text())
    try:
        python = {"api": ui_to_api(workflow, schemas)}
    except WorkflowConversionError as exc:
        python = {"error": (exc.node_id, exc.class_type)}
    if "api" in python:
        assert editor.get("api") == python["api"], editor.get("error")
    else:
        assert (editor["error"]["node_id"], editor["error"]["class_type"]) == python["error"]
    assert editor["missing"] == []


EDITED = [("subgraph_proxy_widgets_and_native_reroutes_v1", 10, "ImageInvert"), ("subgraph_flattened", 10, "ImageInvert")]


@pytest.mark.parametrize(("stem", "instance", "added_type"), EDITED, ids=[e[0] for e in EDITED])
def test_subgraph_edited_in_the_editor_queues_the_same_prompt_as_python_converts_from_the_saved_file(stem, instance, added_type, schemas):
    """Inside the subgraph: a number widget changed, a node added between the first output and its feeder."""
    result = subprocess.run(
        ["node", "tests/web/edit_subgraph.mjs", str(FIXTURES / "object_info.json"), str(FIXTURES / f"{stem}.json"), str(instance), added_type],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-4000:]
    edited = json.loads(result.stdout)
    api = edited["api"]
    node_id, widget = edited["edited"]
    original = ui_to_api(load_workflow_text((FIXTURES / f"{stem}.json").read_text())["workflow"], schemas)
    assert api[f"{instance}:{node_id}"]["inputs"][widget] == original[f"{instance}:{node_id}"]["inputs"][widget] + 2
    added = f"{instance}:{edited['added']}"
    assert api[added]["class_type"] == added_type and added not in original
    assert api == ui_to_api(edited["workflow"], schemas)


def renamed(prompt: dict, rename) -> dict:
    """`prompt` with its node ids (and the references to them) renamed by `rename`."""
    ref = lambda v: [rename(v[0]), v[1]] if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) else v  # noqa: E731
    return {rename(k): {**v, "inputs": {n: ref(x) for n, x in v["inputs"].items()}} for k, v in prompt.items()}


def change_subgraph(stem: str, *args: str) -> dict:
    result = subprocess.run(["node", "tests/web/change_subgraph.mjs", str(FIXTURES / "object_info.json"), str(FIXTURES / f"{stem}.json"), *args],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout)


CONVERTED = [("txt2img_v04", "3,8"), ("primitive_node", "3,10"), ("subgraph_proxy_widgets_and_native_reroutes_v1", "10,9"), ("nested_subgraphs", "5")]


@pytest.mark.parametrize(("stem", "ids"), CONVERTED, ids=[c[0] for c in CONVERTED])
def test_nodes_converted_to_a_subgraph_queue_the_same_prompt_in_python_with_the_instance_prefix(stem, ids, schemas):
    converted = change_subgraph(stem, "convert", ids)["converted"]
    original = ui_to_api(load_workflow_text((FIXTURES / f"{stem}.json").read_text())["workflow"], schemas)
    assert ui_to_api(converted["workflow"], schemas) == converted["api"]
    prefix = f"{converted['instance']}:"
    assert renamed(converted["api"], lambda i: i.removeprefix(prefix)) == original


@pytest.mark.parametrize(("stem", "ids"), CONVERTED, ids=[c[0] for c in CONVERTED])
def test_an_unpacked_subgraph_queues_the_original_prompt_in_python_modulo_the_fresh_ids(stem, ids, schemas):
    unpacked = change_subgraph(stem, "convert", ids)["unpacked"]
    original = ui_to_api(load_workflow_text((FIXTURES / f"{stem}.json").read_text())["workflow"], schemas)
    assert ui_to_api(unpacked["workflow"], schemas) == unpacked["api"]
    back = {str(new): str(old) for old, new in unpacked["idMap"].items()}
    assert renamed(unpacked["api"], lambda i: back.get(i.split(":")[0], i.split(":")[0]) + i[len(i.split(":")[0]):]) == original
    assert unpacked["workflow"].get("definitions", {}).get("subgraphs", []) == load_workflow_text((FIXTURES / f"{stem}.json").read_text())["workflow"].get("definitions", {}).get("subgraphs", [])


def test_a_subgraph_whose_inputs_and_outputs_changed_queues_the_same_prompt_in_python(schemas):
    """An input added and linked to an inner widget, one renamed, one input and one output removed."""
    changed = change_subgraph("subgraph_proxy_widgets_and_native_reroutes_v1", "io", "a3f0c1d2-0000-4000-8000-00000000abcd")
    assert ui_to_api(changed["workflow"], schemas) == changed["api"]
    definition = changed["workflow"]["definitions"]["subgraphs"][0]
    assert definition["inputs"][0]["label"] == "renamed" and len(definition["outputs"]) == 1
