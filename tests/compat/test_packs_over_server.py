"""Custom-node packs written against ComfyUI's modules, run unchanged over the real server."""

from __future__ import annotations

import asyncio
import uuid

from tests.server.conftest import listen


def _types(messages):
    return [m["type"] for m in messages]


async def _run(compat, prompt, client_id=None):
    prompt_id = await compat.queue(prompt, client_id)
    return prompt_id, await compat.wait_history(prompt_id)


# -- loading -----------------------------------------------------------------------------


async def test_every_well_formed_pack_loads_and_registers_its_nodes(compat):
    loaded = {plugin.name for plugin in compat.host.plugin_report.loaded}
    assert {"util_pack", "image_pack", "flow_pack", "route_pack", "v3_pack", "v3_versioned_pack"} <= loaded
    info = await compat.get_json("/object_info")
    for node in ("SlowCounter", "SaveImageWithPrefix", "RepeatAddOne", "Announce", "V3Multiply", "V3Greeting"):
        assert node in info


async def test_a_pack_importing_a_module_loom_lacks_loads_and_the_summary_names_it(compat):
    summary = compat.host.plugin_report.summary()
    loaded = {plugin.name: plugin for plugin in compat.host.plugin_report.loaded}
    assert loaded["broken_module_pack"].unprovided == ["comfy.ldm.modules.attention"]
    assert "not provided by Loom (fails when used): comfy.ldm.modules.attention" in summary


async def test_a_pack_importing_an_attribute_loom_lacks_loads_and_the_summary_names_it(compat):
    loaded = {plugin.name: plugin for plugin in compat.host.plugin_report.loaded}
    assert loaded["broken_attribute_pack"].unprovided == ["comfy.utils.not_a_loom_helper"]


# -- utility pack: progress, caching, interrupt ----------------------------------------------


async def test_progress_bar_updates_arrive_as_progress_messages_of_the_node(compat):
    listener = await listen(compat)
    prompt = {"1": {"class_type": "SlowCounter", "inputs": {"steps": 4, "delay": 0.0}},
              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    prompt_id = await compat.queue(prompt, listener.client_id)
    messages = await listener.until_done(prompt_id)
    progress = [m["data"] for m in messages if m["type"] == "progress"]
    assert [(p["value"], p["max"], p["node"]) for p in progress] == [(1, 4, "1"), (2, 4, "1"), (3, 4, "1"), (4, 4, "1")]
    history = await compat.wait_history(prompt_id)
    assert history["outputs"]["2"]["text"] == ["4"]


async def test_an_unchanged_pack_node_is_cached_on_the_second_run(compat):
    prompt = {"1": {"class_type": "CountedUpper", "inputs": {"text": "loom"}},
              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    _, first = await _run(compat, prompt)
    listener = await listen(compat)
    prompt_id = await compat.queue(prompt, listener.client_id)
    messages = await listener.until_done(prompt_id)
    cached = next(m["data"]["nodes"] for m in messages if m["type"] == "execution_cached")
    assert first["outputs"]["2"]["text"] == ["LOOM"]
    assert sorted(cached) == ["1", "2"]
    assert compat.pack("util_pack").CALLS["CountedUpper"] == 1


async def test_interrupting_a_running_pack_node_stops_it_at_its_next_check(compat):
    listener = await listen(compat)
    prompt = {"1": {"class_type": "SlowCounter", "inputs": {"steps": 400, "delay": 0.01}},
              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    prompt_id = await compat.queue(prompt, listener.client_id)
    while (await listener.next_json())["type"] != "progress":
        pass
    async with await compat.post("/interrupt", {}) as response:
        assert response.status == 200
    messages = await listener.until_done(prompt_id)
    interrupted = [m for m in messages if m["type"] == "execution_interrupted"]
    assert interrupted and interrupted[0]["data"]["node_id"] == "1"
    history = await compat.wait_history(prompt_id)
    assert history["status"]["completed"] is False
    assert "2" not in history["outputs"]


async def test_a_node_calling_interrupt_current_processing_ends_the_prompt_as_interrupted(compat):
    listener = await listen(compat)
    prompt = {"1": {"class_type": "StopWorkflow", "inputs": {"value": 1}},
              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    prompt_id = await compat.queue(prompt, listener.client_id)
    messages = await listener.until_done(prompt_id)
    assert "execution_interrupted" in _types(messages)
    assert "execution_error" not in _types(messages)


async def test_folder_paths_lists_and_finds_checkpoints_in_the_hosts_model_folders(compat):
    checkpoints = compat.base / "models" / "checkpoints" / "sd"
    checkpoints.mkdir(parents=True)
    (checkpoints / "tiny.safetensors").write_bytes(b"x")
    info = await compat.get_json("/object_info/ListCheckpoints")
    assert info["ListCheckpoints"]["input"]["required"]["ckpt_name"][0] == ["sd/tiny.safetensors"]
    prompt = {"1": {"class_type": "ListCheckpoints", "inputs": {"ckpt_name": "sd/tiny.safetensors"}},
              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    _, history = await _run(compat, prompt)
    assert history["outputs"]["2"]["text"] == [str(checkpoints / "tiny.safetensors")]


# -- image pack ------------------------------------------------------------------------------


async def test_a_subclass_of_core_save_image_saves_through_loom_into_its_subfolder(compat):
    prompt = {"1": {"class_type": "SolidColor", "inputs": {"width": 4, "height": 2, "value": 0.25}},
              "2": {"class_type": "SaveImageWithPrefix", "inputs": {"images": ["1", 0], "filename_prefix": "red"}}}
    _, history = await _run(compat, prompt)
    images = history["outputs"]["2"]["images"]
    assert images == [{"filename": "red_00001_.png", "subfolder": "image_pack", "type": "output"}]
    assert (compat.base / "output" / "image_pack" / "red_00001_.png").is_file()


async def test_get_save_image_path_counts_on_from_the_files_already_saved(compat):
    def prompt(value):
        return {"1": {"class_type": "SolidColor", "inputs": {"width": 3, "height": 3, "value": value}},
                "2": {"class_type": "SaveRaw", "inputs": {"image": ["1", 0], "filename_prefix": "set/raw"}}}

    _, first = await _run(compat, prompt(0.1))
    _, second = await _run(compat, prompt(0.2))
    assert first["outputs"]["2"]["images"][0]["filename"] == "raw_00001_.png"
    assert second["outputs"]["2"]["images"][0] == {"filename": "raw_00002_.png", "subfolder": "set", "type": "output"}


async def test_packs_can_call_core_nodes_and_comfy_utils_on_images(compat):
    from PIL import Image

    prompt = {"1": {"class_type": "SolidColor", "inputs": {"width": 3, "height": 2, "value": 0.25}},
              "2": {"class_type": "UpscaleTwice", "inputs": {"image": ["1", 0]}},
              "3": {"class_type": "InvertViaCore", "inputs": {"image": ["2", 0]}},
              "4": {"class_type": "SaveRaw", "inputs": {"image": ["3", 0], "filename_prefix": "inv"}}}
    _, history = await _run(compat, prompt)
    saved = history["outputs"]["4"]["images"][0]["filename"]
    with Image.open(compat.base / "output" / saved) as image:
        assert image.size == (6, 4)
        assert image.getpixel((0, 0)) == (191, 191, 191)


# -- flow-control pack -------------------------------------------------------------------------


async def test_a_loop_unrolled_by_graph_builder_expansion_runs_every_step(compat):
    prompt = {"1": {"class_type": "RepeatAddOne", "inputs": {"value": 10, "times": 5}},
              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    _, history = await _run(compat, prompt)
    assert history["outputs"]["2"]["text"] == ["15"]


async def test_a_recursive_expansion_loop_runs_until_its_condition_ends_it(compat):
    prompt = {"1": {"class_type": "CountdownLoop", "inputs": {"value": 0, "remaining": 6}},
              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    _, history = await _run(compat, prompt)
    assert history["outputs"]["2"]["text"] == ["6"]


async def test_an_execution_blocker_from_comfy_execution_skips_its_consumers(compat):
    prompt = {"1": {"class_type": "Gate", "inputs": {"value": 3, "open": False}},
              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
              "3": {"class_type": "PreviewAny", "inputs": {"source": "still runs"}}}
    _, history = await _run(compat, prompt)
    assert history["status"]["status_str"] == "success"
    assert "2" not in history["outputs"]
    assert history["outputs"]["3"]["text"] == ["still runs"]


# -- routes, websocket events, web extensions ------------------------------------------------------


async def test_a_route_registered_on_prompt_server_instance_is_served(compat):
    async with await compat.get("/route_pack/echo?text=hey") as response:
        assert response.status == 200
        assert await response.json() == {"echo": "hey"}


async def test_send_sync_from_a_node_reaches_the_client_that_queued_the_prompt(compat):
    listener = await listen(compat)
    other = await listen(compat)
    prompt = {"1": {"class_type": "Announce", "inputs": {"text": "made it"}}}
    prompt_id = await compat.queue(prompt, listener.client_id)
    messages = await listener.until_done(prompt_id)
    history = await compat.wait_history(prompt_id)
    assert history["status"]["status_str"] == "success"
    seen = [m for m in listener.messages if m["type"] == "route_pack.announce"]
    assert seen == [{"type": "route_pack.announce", "data": {"text": "made it", "node": "1", "last_node_id": "1"}}]
    await asyncio.sleep(0.1)
    assert not any(m["type"] == "route_pack.announce" for m in other.messages)
    assert messages  # the run's own messages arrived too


async def test_web_directory_files_are_served_and_listed_for_the_editor(compat):
    listed = await compat.get_json("/extensions")
    assert "/extensions/route_pack/announce.js" in listed
    async with await compat.get("/extensions/route_pack/announce.js") as response:
        assert response.status == 200
        assert "registerExtension" in await response.text()


# -- V3 packs ------------------------------------------------------------------------------------


async def test_a_v3_schema_compiles_to_the_same_object_info_shape(compat):
    info = (await compat.get_json("/object_info/V3Multiply"))["V3Multiply"]
    assert info["display_name"] == "Multiply (V3)"
    assert info["input"]["required"]["a"] == ["INT", {"default": 2, "min": 0, "max": 100}]
    assert info["input"]["optional"]["b"] == ["INT", {"default": 3}]
    assert info["output"] == ["INT"] and info["output_name"] == ["product"]


async def test_a_v3_node_runs_with_its_hidden_inputs_and_ui_output(compat):
    prompt = {"1": {"class_type": "V3Multiply", "inputs": {"a": 6, "b": 7}},
              "2": {"class_type": "V3ShowText", "inputs": {"value": ["1", 0]}}}
    _, history = await _run(compat, prompt)
    assert history["outputs"]["2"]["text"] == ["42 @ 2"]


async def test_a_v3_node_expands_into_other_nodes(compat):
    prompt = {"1": {"class_type": "V3Square", "inputs": {"value": 9}},
              "2": {"class_type": "V3ShowText", "inputs": {"value": ["1", 0]}}}
    _, history = await _run(compat, prompt)
    assert history["outputs"]["2"]["text"] == ["81 @ 2"]


async def test_a_v3_block_execution_stops_an_output_node_with_its_message(compat):
    prompt = {"1": {"class_type": "V3Blocker", "inputs": {"value": 1}},
              "2": {"class_type": "V3ShowText", "inputs": {"value": ["1", 0]}}}
    _, history = await _run(compat, prompt)
    errors = [m for m in history["status"]["messages"] if m[0] == "execution_error"]
    assert errors and errors[0][1]["exception_message"] == "blocked by V3Blocker"


async def test_an_async_v3_node_from_the_versioned_api_runs(compat):
    prompt = {"1": {"class_type": "V3Greeting", "inputs": {"who": "loom"}},
              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    _, history = await _run(compat, prompt)
    assert history["outputs"]["2"]["text"] == ["hello loom"]


async def test_an_invalid_combo_value_for_a_v3_node_is_rejected_naming_the_input(compat):
    body = {"prompt": {"1": {"class_type": "V3Greeting", "inputs": {"who": "nobody"}},
                       "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}},
            "client_id": uuid.uuid4().hex}
    async with await compat.post("/prompt", body) as response:
        data = await response.json()
    assert response.status == 400
    assert data["node_errors"]["1"]["errors"][0]["extra_info"]["input_name"] == "who"
