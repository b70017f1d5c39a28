"""The shipped workflow files themselves: each is a well-formed ComfyUI version 0.4 UI
workflow, titled, with a note explaining it, laid out readably, naming the models its
loaders need (with where to get them) and only example images that ship with it; and
each has an end-to-end test."""

from __future__ import annotations

import tempfile
from urllib.parse import urlparse

import pytest

from engine.workflow_format import NOTE_TYPES, has_control_widget, widget_inputs

from .conftest import INPUTS, load_workflow, shipped_files
from .test_shipped_workflows_run import RUN_TESTS
from .ui import widget_index

FILES = shipped_files()
NODE_KEYS = ("id", "type", "pos", "size", "flags", "order", "mode", "inputs", "outputs", "properties", "widgets_values")
TITLE_H = 30  # the title bar sits above a node's pos, as in litegraph


@pytest.fixture(scope="module")
def schemas():
    from engine.registry import Registry
    from nodes import builtin_nodes
    from nodes.runtime import LoomEnv

    registry = Registry(env=LoomEnv.at(tempfile.mkdtemp(prefix="loom-workflow-files-")))
    registry.add_all(builtin_nodes(), "builtin")
    return registry.schema


def test_every_shipped_workflow_has_an_end_to_end_test():
    assert FILES, "workflows/ has no workflow files"
    untested = sorted(set(FILES) - set(RUN_TESTS))
    gone = sorted(set(RUN_TESTS) - set(FILES))
    assert not untested, f"workflows without an end-to-end test in test_shipped_workflows_run.py: {untested}"
    assert not gone, f"tests for workflows that are no longer shipped: {gone}"


def test_the_examples_the_issue_asks_for_are_shipped():
    assert {"txt2img_sd15.json", "txt2img_sdxl.json", "img2img.json", "inpainting.json", "hires_fix.json",
            "lora.json", "controlnet_canny.json", "area_composition.json", "upscale_with_model.json",
            "batch8_best2_clip.json", "image_only.json", "txt2img_flux_schnell.json", "txt2img_flux_dev.json",
            "txt2img_sd35.json"} <= set(FILES)


@pytest.mark.parametrize("name", FILES)
def test_is_a_version_0_4_ui_workflow(name):
    workflow = load_workflow(name)
    assert workflow["version"] == 0.4
    for key in ("last_node_id", "last_link_id", "nodes", "links", "groups", "config", "extra"):
        assert key in workflow, key
    ids = [n["id"] for n in workflow["nodes"]]
    assert len(ids) == len(set(ids)), "node ids are unique"
    for node in workflow["nodes"]:
        missing = [k for k in NODE_KEYS if k not in node]
        assert not missing, f"node {node.get('id')} lacks {missing}"
        assert node["mode"] == 0, f"node {node['id']} is muted or bypassed"
    assert workflow["last_node_id"] >= max(ids)
    assert workflow["last_link_id"] >= max((link[0] for link in workflow["links"]), default=0)


@pytest.mark.parametrize("name", FILES)
def test_links_agree_with_the_sockets_at_both_ends(name):
    workflow = load_workflow(name)
    nodes = {n["id"]: n for n in workflow["nodes"]}
    link_ids = set()
    for link_id, source, out_slot, target, in_slot, link_type in workflow["links"]:
        link_ids.add(link_id)
        output = nodes[source]["outputs"][out_slot]
        assert link_id in output["links"] and output["type"] == link_type
        assert nodes[target]["inputs"][in_slot]["link"] == link_id
    for node in workflow["nodes"]:
        referenced = {s["link"] for s in node["inputs"] if s.get("link") is not None}
        referenced |= {i for s in node["outputs"] for i in (s.get("links") or [])}
        assert referenced <= link_ids, f"node {node['id']} names links that do not exist"


@pytest.mark.parametrize("name", FILES)
def test_has_a_title_and_a_note_that_starts_with_it(name):
    workflow = load_workflow(name)
    title = workflow["extra"].get("title")
    assert isinstance(title, str) and title.strip()
    notes = [n["widgets_values"][0] for n in workflow["nodes"] if n["type"] in NOTE_TYPES]
    assert len(notes) == 1
    first_line, _, explanation = notes[0].partition("\n")
    assert first_line == title
    assert len(explanation.split()) >= 15, "the note explains what the workflow does and what to change"


@pytest.mark.parametrize("name", FILES)
def test_every_node_is_a_loom_node_with_the_right_sockets(name, schemas):
    for node in load_workflow(name)["nodes"]:
        if node["type"] in NOTE_TYPES:
            continue
        schema = schemas(node["type"])
        assert schema is not None, f"Loom has no node {node['type']}"
        assert [(o["name"], o["type"]) for o in node["outputs"]] == [(o.name, o.type) for o in schema.outputs]
        by_name = {s.name: s for s in schema.inputs}
        for slot in node["inputs"]:
            assert slot["name"] in by_name and slot["type"] == by_name[slot["name"]].type, (node["type"], slot)
        slots = sum(2 if has_control_widget(spec) else 1 for spec in widget_inputs(schema))
        assert len(node["widgets_values"]) == slots, f"{node['type']}: one value per widget (and seed control)"


@pytest.mark.parametrize("name", FILES)
def test_loaders_name_the_model_file_and_folder_with_a_download_url(name, schemas):
    """Each model widget (a combo listing a model folder) has a properties.models entry
    with the same file name and that folder as directory, and nothing else is listed."""
    for node in load_workflow(name)["nodes"]:
        if node["type"] in NOTE_TYPES:
            continue
        schema = schemas(node["type"])
        wanted = sorted((node["widgets_values"][widget_index(schema, spec.name)], spec.model_kind)
                        for spec in widget_inputs(schema) if spec.model_kind)
        listed = node["properties"].get("models", [])
        assert sorted((m["name"], m["directory"]) for m in listed) == wanted, node["type"]
        for entry in listed:
            url = urlparse(entry["url"])
            assert url.scheme == "https" and url.netloc == "huggingface.co" and "/resolve/" in url.path, entry


@pytest.mark.parametrize("name", FILES)
def test_nodes_do_not_overlap_and_links_run_left_to_right(name):
    workflow = load_workflow(name)
    boxes = {n["id"]: (n["pos"][0], n["pos"][1] - TITLE_H, n["size"][0], n["size"][1] + TITLE_H)
             for n in workflow["nodes"]}
    items = sorted(boxes.items())
    for i, (a, (ax, ay, aw, ah)) in enumerate(items):
        for b, (bx, by, bw, bh) in items[i + 1:]:
            apart = ax + aw <= bx or bx + bw <= ax or ay + ah <= by or by + bh <= ay
            assert apart, f"nodes {a} and {b} overlap"
    for _, source, _, target, _, _ in workflow["links"]:
        sx, _, sw, _ = boxes[source]
        assert sx + sw < boxes[target][0], f"link {source} -> {target} runs right to left"


@pytest.mark.parametrize("name", FILES)
def test_example_images_ship_in_workflows_inputs(name, schemas):
    for node in load_workflow(name)["nodes"]:
        if node["type"] == "LoadImage":
            image = node["widgets_values"][widget_index(schemas("LoadImage"), "image")]
            assert (INPUTS / image).is_file(), f"{image} is not in workflows/inputs"


def test_the_inpainting_example_has_a_transparent_hole_to_repaint():
    from nodes.io import load_image

    image, mask = load_image(INPUTS / "loom_scene_inpaint.png")
    assert image.shape == (1, 512, 512, 3)
    covered = float(mask.mean())
    assert set(mask.unique().tolist()) == {0.0, 1.0} and 0.05 < covered < 0.3


def test_the_files_are_what_generate_py_writes():
    """generate.py is where the workflows are described; an edit made only to a file
    would be lost the next time they are regenerated."""
    import numpy as np
    from PIL import Image

    from .generate import documents, pictures

    stale = [name for name, document in documents().items() if load_workflow(name) != document]
    for name, picture in pictures().items():
        with Image.open(INPUTS / name) as shipped:
            if shipped.mode != picture.mode or not np.array_equal(np.asarray(shipped), np.asarray(picture)):
                stale.append(f"inputs/{name}")
    assert not stale, f"out of date (run: .venv/bin/python -m tests.workflows.generate): {stale}"
