"""ControlNet inside the sampler: a graph with ControlNetApply(Advanced) gives diffusers'
StableDiffusionControlNetPipeline's image on the same tiny weights (one ControlNet and a
chain of two), the old Apply node guides the negative too, and a ControlNet outside its
percent range leaves the image untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.capabilities.conftest import install, run_graph
from tests.fixtures.tiny_extras import tiny_controlnet

TOLERANCE = 2 / 255
POSITIVE, NEGATIVE = "a red house by a lake", "blurry"
SEED, STEPS, CFG = 42, 4, 7.0


@pytest.fixture(scope="module")
def controls(tiny, tmp_path_factory):
    """Two different tiny ControlNets for the tiny SD1: [(single file, diffusers folder)]."""
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(tiny("sd1").diffusers_dir, subfolder="unet", local_files_only=True)
    out = []
    for seed in (5, 6):
        single, folder, _ = tiny_controlnet(unet, tmp_path_factory.mktemp(f"controlnet{seed}"), seed=seed)
        out.append((single, folder))
    return out


def hint_png(env, name: str, seed: int) -> str:
    from PIL import Image

    rng = np.random.default_rng(seed)
    image = np.zeros((64, 64, 3), np.uint8)
    image[16:48, 8 + seed:40 + seed] = rng.integers(0, 256, 3)  # a block on black: a plausible "edge map"
    Image.fromarray(image).save(env.folders.input / name)
    return name


def graph(ckpt: str, controls: list[tuple[str, str, dict]], node: str = "ControlNetApplyAdvanced") -> dict:
    """txt2img with each (controlnet name, hint file, extra inputs) applied in turn."""
    prompt = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": POSITIVE, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": NEGATIVE, "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    }
    positive, negative = ["6", 0], ["7", 0]
    for i, (name, hint, extra) in enumerate(controls):
        loader, image, apply = f"{20 + 3 * i}", f"{21 + 3 * i}", f"{22 + 3 * i}"
        prompt[loader] = {"class_type": "ControlNetLoader", "inputs": {"control_net_name": name}}
        prompt[image] = {"class_type": "LoadImage", "inputs": {"image": hint}}
        if node == "ControlNetApplyAdvanced":
            inputs = {"positive": positive, "negative": negative, "control_net": [loader, 0], "image": [image, 0],
                      "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0, **extra}
            positive, negative = [apply, 0], [apply, 1]
        else:
            inputs = {"conditioning": positive, "control_net": [loader, 0], "image": [image, 0], "strength": 1.0,
                      **extra}
            positive = [apply, 0]
        prompt[apply] = {"class_type": node, "inputs": inputs}
    prompt["3"] = {"class_type": "KSampler", "inputs": {
        "seed": SEED, "steps": STEPS, "cfg": CFG, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
        "model": ["4", 0], "positive": positive, "negative": negative, "latent_image": ["5", 0]}}
    prompt["8"] = {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}}
    prompt["9"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": "cn", "images": ["8", 0]}}
    return prompt


def saved(env, outcome) -> np.ndarray:
    from PIL import Image

    assert outcome.status == "success", outcome.error
    item = outcome.outputs["9"]["images"][0]
    path = env.folders.output / item.get("subfolder", "") / item["filename"]
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255


def reference(model_dir, folders, hints, scales) -> np.ndarray:
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline
    from PIL import Image

    from diffusion.noise import prepare_noise
    from tests.diffusion.reference_schedulers import plan

    nets = [ControlNetModel.from_pretrained(f, local_files_only=True) for f in folders]
    pipe = StableDiffusionControlNetPipeline.from_pretrained(
        model_dir, controlnet=nets if len(nets) > 1 else nets[0], local_files_only=True,
        safety_checker=None, requires_safety_checker=False)
    pipe.scheduler = plan("euler", "normal").scheduler
    pipe.set_progress_bar_config(disable=True)
    images = [Image.open(h).convert("RGB") for h in hints]
    result = pipe(POSITIVE, negative_prompt=NEGATIVE, image=images if len(images) > 1 else images[0],
                  num_inference_steps=STEPS, guidance_scale=CFG, height=64, width=64,
                  latents=prepare_noise(torch.zeros(1, 4, 8, 8), SEED),
                  controlnet_conditioning_scale=scales if len(scales) > 1 else scales[0], output_type="np")
    return result.images[0]


@pytest.mark.parametrize("node", ["ControlNetApplyAdvanced", "ControlNetApply"])
def test_controlnet_graph_matches_the_diffusers_controlnet_pipeline(env, tiny, controls, node):
    model = tiny("sd1")
    name = install(env, "controlnet", controls[0][0])
    hint = hint_png(env, "hint.png", 1)
    ours = saved(env, run_graph(env, graph(install(env, "checkpoints", model.checkpoint), [(name, hint, {})], node)))
    theirs = reference(model.diffusers_dir, [controls[0][1]], [env.folders.input / hint], [1.0])
    assert np.abs(ours - theirs).max() <= TOLERANCE


def test_two_chained_controlnets_match_diffusers_multi_controlnet(env, tiny, controls):
    model = tiny("sd1")
    names = []
    for i, (single, _) in enumerate(controls):  # both files are named tiny_controlnet.safetensors
        link = env.folders.models / "controlnet" / f"control_{i}.safetensors"
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(single)
        names.append(link.name)
    hints = [hint_png(env, "hint_a.png", 1), hint_png(env, "hint_b.png", 9)]
    applied = [(names[0], hints[0], {"strength": 0.8}), (names[1], hints[1], {"strength": 1.3})]
    ours = saved(env, run_graph(env, graph(install(env, "checkpoints", model.checkpoint), applied)))
    theirs = reference(model.diffusers_dir, [f for _, f in controls], [env.folders.input / h for h in hints],
                       [0.8, 1.3])
    assert np.abs(ours - theirs).max() <= TOLERANCE


def test_controlnet_changes_the_image(env, tiny, controls):
    ckpt = install(env, "checkpoints", tiny("sd1").checkpoint)
    applied = [(install(env, "controlnet", controls[0][0]), hint_png(env, "hint.png", 1), {})]
    plain = saved(env, run_graph(env, graph(ckpt, [])))
    controlled = saved(env, run_graph(env, graph(ckpt, applied)))
    assert np.abs(plain - controlled).max() > 4 / 255


def test_controlnet_outside_its_percent_range_leaves_the_image_as_without_it(env, tiny, controls):
    ckpt = install(env, "checkpoints", tiny("sd1").checkpoint)
    # 4 euler steps run at timesteps 999, 666, 333, 0: the range [0.5, 0.5] is t = 499.5 only
    applied = [(install(env, "controlnet", controls[0][0]), hint_png(env, "hint.png", 1),
                {"start_percent": 0.5, "end_percent": 0.5})]
    plain = saved(env, run_graph(env, graph(ckpt, [])))
    idle = saved(env, run_graph(env, graph(ckpt, applied)))
    assert np.array_equal(plain, idle)


def test_controlnet_is_owned_by_the_model_manager(env, tiny, controls):
    ckpt = install(env, "checkpoints", tiny("sd1").checkpoint)
    applied = [(install(env, "controlnet", controls[0][0]), hint_png(env, "hint.png", 1), {})]
    saved(env, run_graph(env, graph(ckpt, applied)))
    assert [m.source for m in env.models.loaded_models() if m.component == "controlnet"] == ["tiny_controlnet.safetensors"]
