"""A user without a workflow's models gets told, for each one, the file that is missing
and the folder to put it in — when queueing the workflow as the editor does."""

from __future__ import annotations

import pytest

from .conftest import ServerThread, load_workflow, shipped_files

NEEDS_MODELS = [name for name in shipped_files()
                if any(n["properties"].get("models") for n in load_workflow(name)["nodes"])]
#: Workflows with an output that needs no model (the Canny edge preview reads only the
#: example image): as in ComfyUI, that output is queued and the others are reported.
RUNS_PARTLY_WITHOUT_MODELS = {"controlnet_canny.json"}


@pytest.fixture(scope="module")
def empty_host(tmp_path_factory):
    """A server with no models at all (validation needs no torch: this is quick)."""
    server = ServerThread(tmp_path_factory.mktemp("no_models")).start()
    yield server
    server.stop()


def test_txt2img_without_its_checkpoint_is_refused_naming_the_file_and_the_folder(empty_host):
    workflow = load_workflow("txt2img_sd15.json")
    loader = next(n for n in workflow["nodes"] if n["type"] == "CheckpointLoaderSimple")
    status, body = empty_host.request("POST", "/prompt", {"workflow": workflow})
    assert status == 400
    [error] = body["node_errors"][str(loader["id"])]["errors"]
    text = f"{error['message']}: {error['details']}"
    assert "'v1-5-pruned-emaonly-fp16.safetensors' not found" in text
    assert "models/checkpoints" in text


@pytest.mark.parametrize("name", NEEDS_MODELS)
def test_each_missing_model_of_a_workflow_is_named_with_its_folder(empty_host, name):
    workflow = load_workflow(name)
    status, body = empty_host.request("POST", "/prompt", {"workflow": workflow})
    assert status == (200 if name in RUNS_PARTLY_WITHOUT_MODELS else 400)
    for node in workflow["nodes"]:
        for model in node["properties"].get("models", []):
            errors = body["node_errors"].get(str(node["id"]), {}).get("errors", [])
            details = " ".join(e["details"] for e in errors)
            assert f"'{model['name']}' not found" in details, (node["type"], errors)
            assert f"models/{model['directory']}" in details, (node["type"], errors)
