"""ComfyUI's model surface (MODEL as a ModelPatcher, comfy.sample, comfy.sd, CLIP and
VAE methods) used by a pack over the real server on a tiny SD1 checkpoint, checked
against Loom's own nodes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fixtures.tiny_extras import kohya_lora_state, save
from tests.fixtures.tiny_models import build


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory) -> dict[str, Path]:
    """A tiny SD1 checkpoint and a LoRA for it (UNet and text encoder layers)."""
    from diffusion.memory import ModelManager

    folder = tmp_path_factory.mktemp("tiny_model_surface")
    checkpoint = build("sd1", folder).checkpoint
    model, clip, _ = ModelManager(device="cpu").load_checkpoint(checkpoint)
    lora = save(kohya_lora_state(model.unet, [e.model for e in clip.encoders], scale=0.5), folder / "style.safetensors")
    return {"checkpoint": checkpoint, "lora": lora}


@pytest.fixture
async def served(compat, tiny_files):
    for kind, key in (("checkpoints", "checkpoint"), ("loras", "lora")):
        target = compat.base / "models" / kind
        target.mkdir(parents=True, exist_ok=True)
        os.symlink(tiny_files[key], target / tiny_files[key].name)
    return compat


def graph(ckpt: str, sampler_model=("1", 0), sampler_class="KSampler", positive=None, clip=("1", 1), cfg=7.0,
          prefix="img") -> dict:
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red house", "clip": list(clip)}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": list(clip)}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "5": {"class_type": sampler_class, "inputs": {
            "seed": 3, "steps": 2, "cfg": cfg, "sampler_name": "euler", "scheduler": "normal",
            "model": list(sampler_model), "positive": list(positive or ("2", 0)), "negative": ["3", 0],
            "latent_image": ["4", 0]}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveRaw", "inputs": {"image": ["6", 0], "filename_prefix": prefix}},
    }
    if sampler_class == "KSampler":
        prompt["5"]["inputs"]["denoise"] = 1.0
    return prompt


#: Images of graphs that only differ by file name, kept across tests (same files, same seed).
_BASELINES: dict[str, object] = {}


async def _plain(compat, ckpt: str, cfg: float = 7.0):
    """The image of the plain graph (Loom's own nodes only)."""
    key = f"{ckpt}@{cfg}"
    if key not in _BASELINES:
        _BASELINES[key] = await _pixels(compat, graph(ckpt, cfg=cfg, prefix=f"plain_{cfg}"))
    return _BASELINES[key]


async def _pixels(compat, prompt) -> list:
    import numpy as np
    from PIL import Image

    prompt_id = await compat.queue(prompt)
    history = await compat.wait_history(prompt_id, timeout=120)
    assert history["status"]["status_str"] == "success", history["status"]
    saved = [n for n in history["outputs"].values() if "images" in n][0]["images"][0]["filename"]
    with Image.open(compat.base / "output" / saved) as image:
        return np.asarray(image).astype(int)


async def test_a_sampler_node_written_on_comfy_sample_gives_the_ksamplers_image(served, tiny_files):
    ckpt = tiny_files["checkpoint"].name
    ours = await _plain(served, ckpt)
    theirs = await _pixels(served, graph(ckpt, sampler_class="ComfySampleKSampler", prefix="comfy_sample"))
    assert (ours == theirs).all()


async def test_a_cfg_function_set_on_a_model_clone_runs_in_the_sampler(served, tiny_files):
    ckpt = tiny_files["checkpoint"].name
    plain = await _plain(served, ckpt)
    hooked_graph = graph(ckpt, sampler_model=("10", 0), prefix="hooked")
    hooked_graph["10"] = {"class_type": "StandardCFGHook", "inputs": {"model": ["1", 0], "mode": "standard"}}
    pack = served.pack("model_pack")
    before = pack.CALLS["post_cfg"]
    hooked = await _pixels(served, hooked_graph)
    assert abs(hooked - plain).max() <= 1  # the same CFG, computed on clean-latent predictions
    assert pack.CALLS["post_cfg"] - before == 2  # one post-CFG call per euler step
    cond_only_graph = graph(ckpt, sampler_model=("10", 0), prefix="cond_only")
    cond_only_graph["10"] = {"class_type": "StandardCFGHook", "inputs": {"model": ["1", 0], "mode": "cond_only"}}
    cond_only = await _pixels(served, cond_only_graph)
    cfg_one = await _plain(served, ckpt, cfg=1.0)
    assert abs(cond_only - cfg_one).max() <= 1 and abs(cond_only - plain).max() > 8


async def test_a_unet_function_wrapper_wraps_every_model_call(served, tiny_files):
    ckpt = tiny_files["checkpoint"].name
    plain = await _plain(served, ckpt)
    wrapped_graph = graph(ckpt, sampler_model=("10", 0), prefix="wrapped")
    wrapped_graph["10"] = {"class_type": "CountingWrapper", "inputs": {"model": ["1", 0]}}
    pack = served.pack("model_pack")
    before = pack.CALLS["wrapper"]
    wrapped = await _pixels(served, wrapped_graph)
    assert (wrapped == plain).all() and pack.CALLS["wrapper"] - before == 2


async def test_a_lora_state_dict_through_load_lora_for_models_matches_lora_loader(served, tiny_files):
    ckpt, lora = tiny_files["checkpoint"].name, tiny_files["lora"].name

    def with_lora(kind):
        prompt = graph(ckpt, sampler_model=("10", 0), clip=("10", 1), prefix=kind)
        prompt["10"] = {"class_type": kind, "inputs": {"model": ["1", 0], "clip": ["1", 1], "lora_name": lora,
                                                       "strength_model": 0.8, "strength_clip": 0.6}}
        return prompt

    loom = await _pixels(served, with_lora("LoraLoader"))
    pack = await _pixels(served, with_lora("LoraByStateDict"))
    plain = await _plain(served, ckpt)
    assert (loom == pack).all() and abs(loom - plain).max() > 8


async def test_clip_tokenize_and_encode_from_tokens_give_clip_text_encodes_conditioning(served, tiny_files):
    ckpt = tiny_files["checkpoint"].name
    loom = await _plain(served, ckpt)
    prompt = graph(ckpt, positive=("10", 0), prefix="encode_pack")
    prompt["10"] = {"class_type": "TokensEncode", "inputs": {"clip": ["1", 1], "text": "a red house"}}
    assert (await _pixels(served, prompt) == loom).all()


async def test_add_patches_changes_the_weights_the_sampler_uses(served, tiny_files):
    ckpt = tiny_files["checkpoint"].name
    plain = await _plain(served, ckpt)

    def scaled(scale):
        prompt = graph(ckpt, sampler_model=("10", 0), prefix=f"scaled_{scale}")
        prompt["10"] = {"class_type": "ScaleOutWeight", "inputs": {"model": ["1", 0], "scale": scale}}
        return prompt

    same = await _pixels(served, scaled(1.0))
    halved = await _pixels(served, scaled(0.5))
    assert abs(same - plain).max() <= 1 and abs(halved - plain).max() > 8
    again = await _pixels(served, graph(ckpt, prefix="unpatched_again"))
    assert (again == plain).all()  # the patch belonged to the clone only


async def test_model_patcher_facts_packs_read(served, tiny_files):
    ckpt = tiny_files["checkpoint"].name
    prompt = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
              "2": {"class_type": "ModelFacts", "inputs": {"model": ["1", 0], "vae": ["1", 2]}},
              "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}}}
    prompt_id = await served.queue(prompt)
    history = await served.wait_history(prompt_id, timeout=120)
    facts = eval(history["outputs"]["3"]["text"][0])  # noqa: S307 (our own node's repr of a dict)
    assert facts == {"sigma_max": 14.615, "sigma_min": 0.0292, "karras_steps": 5, "t_at_max": 999,
                     "clone_options_apart": True, "transformer_options": True, "load_device": "cpu",
                     "vae_is_sd_VAE": True, "vae_has_first_stage": True, "same_model_sampling": True}


async def test_vae_encode_and_decode_match_loom_vae_nodes(served, tiny_files):
    ckpt = tiny_files["checkpoint"].name
    prompt = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
              "2": {"class_type": "SolidColor", "inputs": {"width": 32, "height": 32, "value": 0.3}},
              "3": {"class_type": "VaeRoundTrip", "inputs": {"vae": ["1", 2], "image": ["2", 0]}},
              "4": {"class_type": "VAEEncode", "inputs": {"pixels": ["2", 0], "vae": ["1", 2]}},
              "5": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["1", 2]}},
              "6": {"class_type": "SaveRaw", "inputs": {"image": ["3", 1], "filename_prefix": "pack_vae"}},
              "7": {"class_type": "SaveRaw", "inputs": {"image": ["5", 0], "filename_prefix": "loom_vae"}}}
    prompt_id = await served.queue(prompt)
    history = await served.wait_history(prompt_id, timeout=120)
    assert history["status"]["status_str"] == "success", history["status"]
    pack = (served.base / "output" / history["outputs"]["6"]["images"][0]["filename"]).read_bytes()
    loom = (served.base / "output" / history["outputs"]["7"]["images"][0]["filename"]).read_bytes()
    assert pack == loom


async def test_a_pack_guider_and_sampler_object_run_in_sampler_custom_advanced_like_loom_own(served, tiny_files):
    ckpt = tiny_files["checkpoint"].name

    def advanced(guider_class, select_class, prefix):
        prompt = graph(ckpt, prefix=prefix)
        del prompt["5"]
        prompt.update({
            "10": {"class_type": "RandomNoise", "inputs": {"noise_seed": 3}},
            "11": {"class_type": select_class, "inputs": {"sampler_name": "euler"}},
            "12": {"class_type": "BasicScheduler", "inputs": {"model": ["1", 0], "scheduler": "normal", "steps": 2,
                                                              "denoise": 1.0}},
            "13": {"class_type": guider_class, "inputs": {"model": ["1", 0], "positive": ["2", 0],
                                                          "negative": ["3", 0], "cfg": 7.0}},
            "5": {"class_type": "SamplerCustomAdvanced", "inputs": {
                "noise": ["10", 0], "guider": ["13", 0], "sampler": ["11", 0], "sigmas": ["12", 0],
                "latent_image": ["4", 0]}}})
        return prompt

    loom = await _pixels(served, advanced("CFGGuider", "KSamplerSelect", "advanced_loom"))
    pack = await _pixels(served, advanced("PackCFGGuider", "PackSamplerSelect", "advanced_pack"))
    assert (loom == pack).all()
    assert (loom == await _plain(served, ckpt)).all()  # SamplerCustomAdvanced on the KSampler's σ: same image
