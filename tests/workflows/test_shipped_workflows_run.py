"""Every shipped workflow, end to end: the file converts (Python's converter, against the
live server's /object_info) to an API prompt that validates, and the same UI file,
POSTed to the server as ``{"workflow": ...}``, runs on tiny random-weight models
saved under the exact file names the workflow names, and makes the outputs it promises.

Why sizes and steps are changed before running: the files keep their real settings
(SD 1.5 at 512², SDXL at 1024², 20+ steps) and are validated as shipped, but on this
2-core CPU even a tiny model takes ~6 s per step at 512² and the VAE more.  The point
here is the graph's wiring, so the run swaps in small sizes (every size widget scaled
down together, so areas still tile the latent) and 2 steps, and the input images are
downscaled copies of the shipped ones.  ``image_only`` needs no model and runs exactly
as shipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from engine.validation import validate_prompt
from engine.workflow_format import schemas_from_object_info, ui_to_api

from .conftest import INPUTS, Host, Run, load_workflow
from .generate import (CANNY, CLIP_G, CLIP_L, CLIP_L14, ESRGAN, FLUX_AE, FLUX_DEV, FLUX_SCHNELL, LCM_LORA,
                       PATTERN, SCENE, SCENE_INPAINT, SD15, SD15_INPAINT, SD35_LARGE, SDXL, T5XXL)
from .ui import node, runnable_nodes, widget, with_widgets

pytestmark = pytest.mark.slow

#: Shipped file → the test that runs it (checked against workflows/*.json by test_workflow_files).
RUN_TESTS: dict[str, str] = {}


def runs(file: str) -> Callable:
    def register(test: Callable) -> Callable:
        RUN_TESTS[file] = test.__name__
        return test
    return register


FAST = {"KSampler": {"steps": 2}}


def converted(host: Host, name: str) -> dict:
    """The shipped file, after checking it converts against /object_info and validates."""
    workflow = load_workflow(name)
    api = ui_to_api(workflow, schemas_from_object_info(host.object_info()))
    assert {i: entry["class_type"] for i, entry in api.items()} == runnable_nodes(workflow)
    result = validate_prompt(host.registry, api)
    assert result.ok, result.response()
    return workflow


def sizes(paths: list[Path]) -> list[tuple[int, int]]:
    from PIL import Image

    out = []
    for path in paths:
        with Image.open(path) as picture:
            out.append(picture.size)
    return out


def pixels(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as picture:
        return np.asarray(picture.convert("RGB"), dtype=np.int16)


def install_sd15(host: Host) -> None:
    host.install_model("checkpoints", host.models.checkpoint("sd1").checkpoint, SD15["name"])


def saved(run: Run, workflow: dict, match: str = "SaveImage") -> list[Path]:
    paths = run.images(node(workflow, match)["id"])
    assert all(p.is_file() for p in paths)
    return paths


@runs("txt2img_sd15.json")
def test_txt2img_sd15_makes_one_image_the_size_of_its_latent(host):
    install_sd15(host)
    workflow = converted(host, "txt2img_sd15.json")
    schema = host.registry.schema
    assert (widget(workflow, schema, "EmptyLatentImage", "width"), widget(workflow, schema, "EmptyLatentImage", "height")) == (512, 512)
    run = host.run_workflow(with_widgets(workflow, schema, {**FAST, "EmptyLatentImage": {"width": 64, "height": 48}}))
    assert sizes(saved(run, workflow)) == [(64, 48)]


@runs("txt2img_sdxl.json")
def test_txt2img_sdxl_makes_one_image_with_the_sdxl_checkpoint(host):
    host.install_model("checkpoints", host.models.checkpoint("sdxl").checkpoint, SDXL["name"])
    workflow = converted(host, "txt2img_sdxl.json")
    schema = host.registry.schema
    assert widget(workflow, schema, "EmptyLatentImage", "width") == widget(workflow, schema, "EmptyLatentImage", "height") == 1024
    run = host.run_workflow(with_widgets(workflow, schema, {**FAST, "EmptyLatentImage": {"width": 64, "height": 64}}))
    assert sizes(saved(run, workflow)) == [(64, 64)]


def install_flux(host: Host, transformer: str, name: str) -> None:
    flux = host.models.flux()
    host.install_model("diffusion_models", flux.files[transformer], name)
    host.install_model("text_encoders", flux.files["t5"], T5XXL["name"])
    host.install_model("text_encoders", flux.files["clip_l"], CLIP_L["name"])
    host.install_model("vae", flux.files["vae"], FLUX_AE["name"])


@runs("txt2img_flux_schnell.json")
def test_txt2img_flux_schnell_makes_one_image_with_the_flux_files(host):
    install_flux(host, "schnell", FLUX_SCHNELL["name"])
    workflow = converted(host, "txt2img_flux_schnell.json")
    schema = host.registry.schema
    assert widget(workflow, schema, "KSampler", "steps") == 4 and widget(workflow, schema, "KSampler", "cfg") == 1.0
    run = host.run_workflow(with_widgets(workflow, schema, {**FAST, "EmptySD3LatentImage": {"width": 64, "height": 48}}))
    assert sizes(saved(run, workflow)) == [(64, 48)]


@runs("txt2img_flux_dev.json")
def test_txt2img_flux_dev_samples_through_the_guider_and_the_flux_guidance_changes_it(host):
    install_flux(host, "dev", FLUX_DEV["name"])
    workflow = converted(host, "txt2img_flux_dev.json")
    schema = host.registry.schema
    assert widget(workflow, schema, "FluxGuidance", "guidance") == 3.5
    small = {"EmptySD3LatentImage": {"width": 64, "height": 64}, "ModelSamplingFlux": {"width": 64, "height": 64},
             "BasicScheduler": {"steps": 2}}
    first = host.run_workflow(with_widgets(workflow, schema, small))
    assert sizes(saved(first, workflow)) == [(64, 64)]
    other = host.run_workflow(with_widgets(workflow, schema, {**small, "FluxGuidance": {"guidance": 8.0}}))
    assert np.abs(pixels(saved(first, workflow)[0]) - pixels(saved(other, workflow)[0])).max() > 0


@runs("txt2img_sd35.json")
def test_txt2img_sd35_makes_one_image_and_its_early_negative_prompt_changes_it(host):
    sd3 = host.models.sd3()
    host.install_model("checkpoints", sd3.files["checkpoint_bare"], SD35_LARGE["name"])
    for role, model in (("clip_l", CLIP_L), ("clip_g", CLIP_G), ("t5", T5XXL)):
        host.install_model("text_encoders", sd3.files[role], model["name"])
    workflow = converted(host, "txt2img_sd35.json")
    schema = host.registry.schema
    assert widget(workflow, schema, "ModelSamplingSD3", "shift") == 3.0
    small = {"EmptySD3LatentImage": {"width": 64, "height": 48}, "KSampler": {"steps": 4}}
    first = host.run_workflow(with_widgets(workflow, schema, small))
    assert sizes(saved(first, workflow)) == [(64, 48)]
    other = host.run_workflow(with_widgets(workflow, schema, {**small, "Negative prompt": {"text": "a castle"}}))
    assert np.abs(pixels(saved(first, workflow)[0]) - pixels(saved(other, workflow)[0])).max() > 0


@runs("img2img.json")
def test_img2img_redraws_the_loaded_image_at_its_size(host):
    install_sd15(host)
    host.install_input(SCENE, size=(64, 48))
    workflow = converted(host, "img2img.json")
    run = host.run_workflow(with_widgets(workflow, host.registry.schema, FAST))
    # No Empty Latent here: the output's size can only come from the loaded picture.
    assert sizes(saved(run, workflow)) == [(64, 48)]


@runs("inpainting.json")
def test_inpainting_repaints_with_the_inpainting_checkpoint(host):
    host.install_model("checkpoints", host.models.checkpoint("sd1_inpaint").checkpoint, SD15_INPAINT["name"])
    host.install_input(SCENE_INPAINT, size=(64, 64))
    workflow = converted(host, "inpainting.json")
    run = host.run_workflow(with_widgets(workflow, host.registry.schema, FAST))
    assert sizes(saved(run, workflow)) == [(64, 64)]


@runs("hires_fix.json")
def test_hires_fix_second_pass_is_one_and_a_half_times_the_first(host):
    install_sd15(host)
    workflow = converted(host, "hires_fix.json")
    schema = host.registry.schema
    assert widget(workflow, schema, "Upscale latent 1.5x", "scale_by") == 1.5
    assert widget(workflow, schema, "Second pass (denoise 0.5)", "denoise") == 0.5
    run = host.run_workflow(with_widgets(workflow, schema, {**FAST, "EmptyLatentImage": {"width": 64, "height": 64}}))
    assert sizes(saved(run, workflow)) == [(96, 96)]


@runs("lora.json")
def test_lora_workflow_runs_and_the_lora_changes_the_image(host):
    install_sd15(host)
    host.install_model("loras", host.models.lora(), LCM_LORA["name"])
    workflow = converted(host, "lora.json")
    assert widget(workflow, host.registry.schema, "ModelSamplingDiscrete", "sampling") == "lcm"
    small = with_widgets(workflow, host.registry.schema, {**FAST, "EmptyLatentImage": {"width": 64, "height": 64}})
    with_lora = host.run_workflow(small)
    without = host.run_workflow(with_widgets(small, host.registry.schema,
                                             {"LoraLoader": {"strength_model": 0.0, "strength_clip": 0.0}}))
    [styled], [plain] = saved(with_lora, workflow), saved(without, workflow)
    assert sizes([styled]) == [(64, 64)]
    assert np.abs(pixels(styled) - pixels(plain)).max() > 2


@runs("controlnet_canny.json")
def test_controlnet_canny_previews_the_edges_and_the_controlnet_changes_the_image(host):
    install_sd15(host)
    host.install_model("controlnet", host.models.controlnet(), CANNY["name"])
    host.install_input(SCENE, size=(64, 64))
    workflow = converted(host, "controlnet_canny.json")
    small = with_widgets(workflow, host.registry.schema, {**FAST, "EmptyLatentImage": {"width": 64, "height": 64}})
    controlled = host.run_workflow(small)
    free = host.run_workflow(with_widgets(small, host.registry.schema, {"ControlNetApplyAdvanced": {"strength": 0.0}}))
    [edges] = controlled.images(node(workflow, "Edges (preview)")["id"])
    edge_pixels = pixels(edges)
    assert edge_pixels.shape == (64, 64, 3) and set(np.unique(edge_pixels)) == {0, 255}, "canny edges are black/white"
    [image], [unguided] = saved(controlled, workflow), saved(free, workflow)
    assert sizes([image]) == [(64, 64)]
    assert np.abs(pixels(image) - pixels(unguided)).max() > 2


@runs("area_composition.json")
def test_area_composition_runs_with_two_areas_tiling_the_latent(host):
    install_sd15(host)
    workflow = converted(host, "area_composition.json")
    schema = host.registry.schema
    left = [widget(workflow, schema, "Left area (x 0)", k) for k in ("width", "height", "x", "y")]
    right = [widget(workflow, schema, "Right area (x 384)", k) for k in ("width", "height", "x", "y")]
    assert left == [384, 512, 0, 0] and right == [384, 512, 384, 0]
    # Every size a quarter of the file's (areas have a 64-pixel minimum), so the halves still tile the image.
    small = with_widgets(workflow, schema, {
        **FAST, "EmptyLatentImage": {"width": 192, "height": 128},
        "Left area (x 0)": {"width": 96, "height": 128, "x": 0},
        "Right area (x 384)": {"width": 96, "height": 128, "x": 96}})
    run = host.run_workflow(small)
    assert sizes(saved(run, workflow)) == [(192, 128)]


@runs("upscale_with_model.json")
def test_upscale_with_model_makes_the_image_four_times_larger(host):
    host.install_model("upscale_models", host.models.esrgan(), ESRGAN["name"])
    host.install_input(SCENE, size=(40, 32))
    workflow = converted(host, "upscale_with_model.json")
    run = host.run_workflow(workflow)
    assert sizes(saved(run, workflow)) == [(160, 128)]


@runs("batch8_best2_clip.json")
def test_batch_of_eight_keeps_the_two_best_by_clip_score(host):
    from diffusion.clip_ranking import load_clip_scorer, score

    install_sd15(host)
    weights, config = host.models.clip()
    host.install_model("clip_vision", weights, CLIP_L14["name"])
    host.install_model("clip_vision", config, Path(CLIP_L14["name"]).with_suffix(".json").name)
    workflow = converted(host, "batch8_best2_clip.json")
    schema = host.registry.schema
    assert widget(workflow, schema, "EmptyLatentImage", "batch_size") == 8
    assert widget(workflow, schema, "Keep the best 2", "keep_top_k") == 2
    run = host.run_workflow(with_widgets(workflow, schema, {**FAST, "EmptyLatentImage": {"width": 64, "height": 64}}))

    candidates = run.images(node(workflow, "All 8 candidates")["id"])
    best = saved(run, workflow, "Best 2")
    assert len(candidates) == 8 and len(best) == 2
    [text] = run.text(node(workflow, "CLIP scores")["id"])
    shown = [float(s) for s in text.split(",")]
    assert len(shown) == 2 and shown[0] >= shown[1]

    # Scored again here, from the saved candidates: the two kept are the two best, best first.
    import torch

    batch = torch.from_numpy(np.stack([pixels(p) for p in candidates]).astype(np.float32) / 255.0)
    prompt = widget(workflow, schema, "Prompt", "value")
    ours = score(load_clip_scorer(weights), batch, prompt)
    top = ours.argsort(descending=True)[:2].tolist()
    assert [pixels(p).tolist() for p in best] == [pixels(candidates[i]).tolist() for i in top]
    # The node scored the float images, these are their 8-bit PNGs: close, not equal.
    assert shown == pytest.approx(ours[top].tolist(), abs=0.02)


@runs("image_only.json")
def test_image_only_blends_the_scaled_pattern_over_the_scene_exactly(host):
    host.install_input(SCENE)
    host.install_input(PATTERN)
    workflow = converted(host, "image_only.json")
    run = host.run_workflow(workflow)
    [result] = saved(run, workflow)
    got = pixels(result)
    assert got.shape == (512, 512, 3)
    assert np.abs(got - image_only_expected()).max() <= 1  # float32 in Loom, float64 here: truncation may differ by one


def image_only_expected() -> np.ndarray:
    """image_only.json's result computed without Loom: the pattern doubled pixel by pixel
    (nearest-exact 2x), multiplied over the scene, mixed in at 0.5, truncated to 8 bits."""
    scene = pixels(INPUTS / SCENE).astype(np.float64) / 255
    pattern = pixels(INPUTS / PATTERN).astype(np.float64) / 255
    doubled = pattern.repeat(2, axis=0).repeat(2, axis=1)
    return np.clip(255 * (scene * 0.5 + scene * doubled * 0.5), 0, 255).astype(np.uint8)
