"""The small ComfyUI surfaces packs use most, run by a pack over the real server
and checked against Loom's own nodes."""

from __future__ import annotations

import struct

from tests.server.conftest import listen


async def _run(compat, prompt, client_id=None):
    prompt_id = await compat.queue(prompt, client_id)
    return await compat.wait_history(prompt_id)


async def test_the_surface_pack_loads_every_node_with_nothing_left_to_placeholders(compat):
    loaded = {plugin.name: plugin for plugin in compat.host.plugin_report.loaded}
    assert len(loaded["surface_pack"].nodes) == 9
    assert loaded["surface_pack"].skipped == [] and loaded["surface_pack"].unprovided == []


async def test_conditioning_set_values_gives_what_loom_conditioning_set_area_gives(compat):
    area = {"width": 64, "height": 96, "x": 8, "y": 16, "strength": 0.5}
    prompt = {"1": {"class_type": "MakeConditioning", "inputs": {"tokens": 3}},
              "2": {"class_type": "AreaByHelper", "inputs": {"conditioning": ["1", 0], **area}},
              "3": {"class_type": "ConditioningSetArea", "inputs": {"conditioning": ["1", 0], **area}},
              "4": {"class_type": "SameConditioning", "inputs": {"a": ["2", 0], "b": ["3", 0]}},
              "5": {"class_type": "PreviewAny", "inputs": {"source": ["4", 0]}}}
    history = await _run(compat, prompt)
    assert history["outputs"]["5"]["text"] == ["same"]


async def test_core_class_attributes_offer_loom_image_scale_choices_and_scale_the_same(compat):
    info = await compat.get_json("/object_info")
    ours = info["ImageScale"]["input"]["required"]
    theirs = info["ScaleWithCoreMethods"]["input"]["required"]
    assert theirs["method"][0] == ours["upscale_method"][0] and theirs["crop"][0] == ours["crop"][0]
    prompt = {"1": {"class_type": "SolidColor", "inputs": {"width": 3, "height": 2, "value": 0.25}},
              "2": {"class_type": "ScaleWithCoreMethods", "inputs": {"image": ["1", 0], "method": "bilinear",
                                                                      "crop": "disabled"}},
              "3": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "bilinear",
                                                            "width": 6, "height": 4, "crop": "disabled"}},
              "4": {"class_type": "SaveRaw", "inputs": {"image": ["2", 0], "filename_prefix": "pack"}},
              "5": {"class_type": "SaveRaw", "inputs": {"image": ["3", 0], "filename_prefix": "loom"}}}
    history = await _run(compat, prompt)
    pack = (compat.base / "output" / history["outputs"]["4"]["images"][0]["filename"]).read_bytes()
    loom = (compat.base / "output" / history["outputs"]["5"]["images"][0]["filename"]).read_bytes()
    assert pack == loom


async def test_a_comfy_extras_node_class_is_loom_builtin_and_runs_the_same(compat):
    prompt = {"1": {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": 8, "height": 8}},
              "2": {"class_type": "MaskComposite", "inputs": {"destination": ["1", 0], "source": ["6", 0],
                                                               "x": 3, "y": 3, "operation": "add"}},
              "6": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 2, "height": 2}},
              "3": {"class_type": "GrowViaExtras", "inputs": {"mask": ["2", 0], "expand": 2}},
              "4": {"class_type": "GrowMask", "inputs": {"mask": ["2", 0], "expand": 2, "tapered_corners": True}},
              "7": {"class_type": "MaskToImage", "inputs": {"mask": ["3", 0]}},
              "8": {"class_type": "MaskToImage", "inputs": {"mask": ["4", 0]}},
              "9": {"class_type": "SaveRaw", "inputs": {"image": ["7", 0], "filename_prefix": "pack_mask"}},
              "10": {"class_type": "SaveRaw", "inputs": {"image": ["8", 0], "filename_prefix": "loom_mask"}}}
    history = await _run(compat, prompt)
    assert history["status"]["status_str"] == "success", history["status"]
    pack = (compat.base / "output" / history["outputs"]["9"]["images"][0]["filename"]).read_bytes()
    loom = (compat.base / "output" / history["outputs"]["10"]["images"][0]["filename"]).read_bytes()
    assert pack == loom


async def test_image_alpha_fix_and_extras_composite_paste_rgb_onto_rgba(compat):
    from PIL import Image

    prompt = {"1": {"class_type": "SolidColor", "inputs": {"width": 4, "height": 4, "value": 0.0}},
              "2": {"class_type": "SolidColor", "inputs": {"width": 2, "height": 2, "value": 1.0}},
              "3": {"class_type": "PasteAlpha", "inputs": {"destination": ["1", 0], "source": ["2", 0]}},
              "4": {"class_type": "SaveRaw", "inputs": {"image": ["3", 0], "filename_prefix": "pasted"}}}
    history = await _run(compat, prompt)
    with Image.open(compat.base / "output" / history["outputs"]["4"]["images"][0]["filename"]) as image:
        assert image.getpixel((0, 0)) == (255, 255, 255) and image.getpixel((3, 3)) == (0, 0, 0)


async def test_pillow_opens_an_input_file_through_folder_paths(compat):
    from PIL import Image

    Image.new("RGB", (5, 3)).save(compat.base / "input" / "five.png")
    prompt = {"1": {"class_type": "LoadWithPillow", "inputs": {"name": "five.png"}},
              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    history = await _run(compat, prompt)
    assert history["outputs"]["2"]["text"] == ["5x3"]


async def test_latent_preview_gives_a_previewer_with_the_latent_formats_rgb_map(compat):
    prompt = {"1": {"class_type": "PreviewLatentAsImage", "inputs": {"size": 6}},
              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    history = await _run(compat, prompt)
    # a zero latent maps to the middle grey (bias 0): (0 + 1) / 2 * 255
    assert history["outputs"]["2"]["text"] == ["JPEG 6x6 512 True (128, 128, 128)"]


async def test_prompt_server_instance_serves_what_packs_read_and_sends_progress_text(compat):
    listener = await listen(compat)
    prompt = {"1": {"class_type": "ServerFacts", "inputs": {"text": "REPLACE_ME"}}}
    prompt_id = await compat.queue(prompt, listener.client_id)
    await listener.until_done(prompt_id)
    history = await compat.wait_history(prompt_id)
    (facts,) = history["outputs"]["1"]["facts"]
    assert facts == {"text": "replaced by on_prompt", "supports": True, "remaining": 1, "running": [prompt_id],
                     "history_is_dict": True, "text_event": 3, "custom_nodes": True, "device": "cpu",
                     "cpu_flag": True}
    texts = [frame for frame in listener.binary if struct.unpack(">I", frame[:4])[0] == 3]
    assert texts, "no TEXT frame arrived"
    (length,) = struct.unpack(">I", texts[0][4:8])
    assert texts[0][8:8 + length] == b"1" and texts[0][8 + length:] == b"working on replaced by on_prompt"


async def test_a_route_a_pack_adds_after_start_up_is_served(compat):
    await _run(compat, {"1": {"class_type": "ServerFacts", "inputs": {"text": "x"}}})
    for path in ("/surface_pack/late", "/api/surface_pack/late"):
        async with await compat.get(path) as response:
            assert response.status == 200 and await response.json() == {"late": True}
