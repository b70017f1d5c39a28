"""Every stored dtype loads into the compute dtype the ModelManager chose.

Real files ship in fp16 (``v1-5-pruned-emaonly-fp16.safetensors``), bf16 and fp8; on the
CPU the manager computes in float32.  For each component the tiny model is re-saved in
the stored dtype and loaded through the real loaders: every floating-point parameter
must come back float32, and the result must equal, bit for bit, the float32 run of the
same weights rounded to that dtype (the "dequantized" file) — reading fp16 weights into
float32 is exact, so any difference means the model computed in the stored dtype.
"""

from __future__ import annotations

import pytest
import torch

from tests.diffusion.conftest import png_pixels, run_graph, saved_images, txt2img_prompt
from tests.fixtures.tiny_extras import resave

HALF = {"fp16": torch.float16, "bf16": torch.bfloat16}
FP8 = {"fp8_e4m3fn": torch.float8_e4m3fn, "fp8_e5m2": torch.float8_e5m2}


def stored_pair(source, folder, name: str, dtype):
    """(the file stored in ``dtype``, the float32 file of the same rounded weights)."""
    stem = source.name.removesuffix(".safetensors")
    return (resave(source, folder / f"{stem}_{name}.safetensors", dtype),
            resave(source, folder / f"{stem}_{name}_dequantized.safetensors", dtype, dequantize=True))


def float_dtypes(*modules) -> set:
    return {t.dtype for m in modules for t in (*m.parameters(), *m.buffers()) if t.is_floating_point()}


def install(env, checkpoint) -> str:
    folder = env.folders.models / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / checkpoint.name).exists():
        (folder / checkpoint.name).symlink_to(checkpoint)
    return checkpoint.name


def image_of(env, checkpoint, **prompt) -> "torch.Tensor":
    name = install(env, checkpoint)
    outcome = run_graph(env, txt2img_prompt(name, **prompt))
    assert outcome.status == "success", outcome
    return torch.from_numpy(png_pixels(saved_images(env, outcome)[0]))


# -- checkpoints: UNet, VAE and every text encoder ------------------------------------------------

CHECKPOINT_CASES = [(kind, name) for kind in ("sd1", "sd2_v", "sdxl") for name in HALF] + [
    ("sd1", name) for name in FP8]


@pytest.mark.parametrize("kind,stored", CHECKPOINT_CASES)
def test_checkpoint_loads_every_component_in_float32_and_draws_the_dequantized_image(
        kind, stored, tiny, tmp_path, env):
    from nodes.runtime import LoomEnv

    dtype = {**HALF, **FP8}[stored]
    small, reference = stored_pair(tiny(kind).checkpoint, tmp_path, stored, dtype)
    model, clip, vae = env.models.load_checkpoint(small)
    assert float_dtypes(model.unet, vae.vae, *(e.model for e in clip.encoders)) == {torch.float32}
    assert {m.dtype for m in env.models.loaded_models()} == {"float32"}
    other = LoomEnv.at(tmp_path / "reference", device="cpu")
    other.folders.ensure()
    assert torch.equal(image_of(env, small), image_of(other, reference))


# -- standalone VAE and text encoder files --------------------------------------------------------


@pytest.mark.parametrize("stored", sorted(HALF))
def test_standalone_vae_file_decodes_like_its_dequantized_weights(stored, tiny, tmp_path):
    from diffusion.memory import ModelManager
    from diffusion.vae import decode
    from safetensors.torch import load_file

    from tests.fixtures.tiny_extras import save

    whole = load_file(str(tiny("sd1").checkpoint))
    vae_file = save({k: v for k, v in whole.items() if k.startswith("first_stage_model.")}, tmp_path / "vae.safetensors")
    small, reference = stored_pair(vae_file, tmp_path, stored, HALF[stored])
    ours, theirs = ModelManager(device="cpu").load_vae(small), ModelManager(device="cpu").load_vae(reference)
    assert float_dtypes(ours.vae) == {torch.float32}
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    assert torch.equal(decode(ours, latent), decode(theirs, latent))


@pytest.mark.parametrize("stored", sorted(HALF))
def test_standalone_text_encoder_file_encodes_like_its_dequantized_weights(stored, tiny, tmp_path):
    from diffusion.memory import ModelManager
    from diffusion.text_encoding import encode
    from safetensors.torch import load_file

    from tests.fixtures.tiny_extras import save

    prefix = "cond_stage_model.transformer."
    whole = load_file(str(tiny("sd1").checkpoint))
    clip_file = save({k[len(prefix):]: v for k, v in whole.items() if k.startswith(prefix)}, tmp_path / "clip_l.safetensors")
    small, reference = stored_pair(clip_file, tmp_path, stored, HALF[stored])
    ours, theirs = ModelManager(device="cpu").load_clip(small), ModelManager(device="cpu").load_clip(reference)
    assert float_dtypes(*(e.model for e in ours.encoders)) == {torch.float32}
    a, b = encode(ours, "a red fox in the snow"), encode(theirs, "a red fox in the snow")
    assert a[0][0].dtype == torch.float32 and torch.equal(a[0][0], b[0][0])


# -- ControlNet, LoRA, upscaler, CLIP vision, GLIGEN, CLIP scorer ---------------------------------


@pytest.mark.parametrize("stored", sorted(HALF) + ["fp8_e4m3fn"])
def test_controlnet_file_loads_in_float32_and_gives_the_dequantized_residuals(stored, tiny, tmp_path):
    from diffusers import UNet2DConditionModel

    from diffusion.controlnet import ControlApplication
    from diffusion.memory import ModelManager
    from tests.fixtures.tiny_extras import tiny_controlnet

    unet = UNet2DConditionModel.from_pretrained(tiny("sd1").diffusers_dir, subfolder="unet", local_files_only=True)
    single, _, _ = tiny_controlnet(unet, tmp_path)
    small, reference = stored_pair(single, tmp_path, stored, {**HALF, **FP8}[stored])
    ours, theirs = ModelManager(device="cpu").load_controlnet(small), ModelManager(device="cpu").load_controlnet(reference)
    assert float_dtypes(ours.model) == {torch.float32}
    g = torch.Generator().manual_seed(0)
    latents, context = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 77, 32, generator=g)
    image = torch.rand(1, 64, 64, 3, generator=g)
    with torch.no_grad():
        down_a, mid_a = ControlApplication(ours, image, strength=1.0).residuals(latents, torch.tensor([500]), context)
        down_b, mid_b = ControlApplication(theirs, image, strength=1.0).residuals(latents, torch.tensor([500]), context)
    assert all(torch.equal(a, b) for a, b in zip(down_a, down_b)) and torch.equal(mid_a, mid_b)


@pytest.mark.parametrize("stored", sorted(HALF) + ["fp8_e4m3fn"])
def test_lora_file_patches_the_float32_model_like_its_dequantized_weights(stored, tiny, tmp_path, env):
    from diffusion.memory import ModelManager
    from tests.fixtures.tiny_extras import kohya_lora_state, save

    from nodes.runtime import LoomEnv

    checkpoint = tiny("sd1").checkpoint
    model, clip, _ = ModelManager(device="cpu").load_checkpoint(checkpoint)
    lora = save(kohya_lora_state(model.unet, [e.model for e in clip.encoders], rank=4, alpha=2.0),
                tmp_path / "style.safetensors")
    small, reference = stored_pair(lora, tmp_path, stored, {**HALF, **FP8}[stored])

    def lora_image(env, lora_file):
        ckpt = install(env, checkpoint)
        folder = env.folders.models / "loras"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / lora_file.name).symlink_to(lora_file)
        prompt = txt2img_prompt(ckpt)
        prompt["10"] = {"class_type": "LoraLoader", "inputs": {
            "model": ["4", 0], "clip": ["4", 1], "lora_name": lora_file.name,
            "strength_model": 1.0, "strength_clip": 1.0}}
        prompt["3"]["inputs"]["model"] = ["10", 0]
        prompt["6"]["inputs"]["clip"] = prompt["7"]["inputs"]["clip"] = ["10", 1]
        outcome = run_graph(env, prompt)
        assert outcome.status == "success", outcome
        unet = env.models.load_checkpoint(env.folders.models / "checkpoints" / ckpt)[0].unet
        assert float_dtypes(unet) == {torch.float32}
        return torch.from_numpy(png_pixels(saved_images(env, outcome)[0]))

    other = LoomEnv.at(tmp_path / "reference", device="cpu")
    other.folders.ensure()
    assert torch.equal(lora_image(env, small), lora_image(other, reference))


@pytest.mark.parametrize("stored", sorted(HALF) + ["fp8_e4m3fn"])
def test_upscale_model_file_loads_in_float32_and_upscales_like_its_dequantized_weights(stored, tmp_path):
    from diffusion.upscale import load_upscale_model, upscale
    from tests.fixtures.tiny_extras import esrgan_old_state, save

    source = save(esrgan_old_state(scale=2, seed=3), tmp_path / "2x_tiny.safetensors")
    small, reference = stored_pair(source, tmp_path, stored, {**HALF, **FP8}[stored])
    ours, theirs = load_upscale_model(small), load_upscale_model(reference)
    assert float_dtypes(ours.model.model) == {torch.float32}
    image = torch.rand(1, 9, 7, 3, generator=torch.Generator().manual_seed(2))
    assert torch.equal(upscale(ours, image), upscale(theirs, image))


@pytest.mark.parametrize("stored", sorted(HALF))
def test_clip_vision_file_loads_in_float32_and_encodes_like_its_dequantized_weights(stored, tmp_path):
    from diffusion.clip_vision import encode_image, load_clip_vision
    from diffusion.memory import ModelManager
    from tests.fixtures.tiny_extras import save
    from tests.fixtures.tiny_models import tiny_clip_vision

    source = save(tiny_clip_vision(7).state_dict(), tmp_path / "vision.safetensors")
    small, reference = stored_pair(source, tmp_path, stored, HALF[stored])
    ours = load_clip_vision(small, ModelManager(device="cpu"))
    theirs = load_clip_vision(reference, ModelManager(device="cpu"))
    assert float_dtypes(ours.model) == {torch.float32}
    assert float_dtypes(load_clip_vision(small).model) == {torch.float32}  # without a manager too
    image = torch.rand(1, 224, 224, 3, generator=torch.Generator().manual_seed(4))
    assert torch.equal(encode_image(ours, image).image_embeds, encode_image(theirs, image).image_embeds)


@pytest.mark.parametrize("stored", sorted(HALF))
def test_gligen_and_clip_scorer_files_load_in_float32(stored, tiny, tmp_path):
    from diffusion.clip_ranking import load_clip_scorer
    from diffusion.gligen import load_gligen
    from diffusion.memory import ModelManager
    from tests.fixtures.tiny_extras import tiny_clip, tiny_gligen

    manager = ModelManager(device="cpu")
    gligen_file, _ = tiny_gligen(tiny("sd1").diffusers_dir, tmp_path)
    small, _ = stored_pair(gligen_file, tmp_path, stored, HALF[stored])
    assert float_dtypes(load_gligen(small, manager, dtype=manager.unet_dtype).modules) == {torch.float32}
    _, scorer_file, _ = tiny_clip(tmp_path)
    small, _ = stored_pair(scorer_file, tmp_path, stored, HALF[stored])
    (small.with_suffix(".json")).write_text(scorer_file.with_suffix(".json").read_text())
    assert float_dtypes(load_clip_scorer(small).model) == {torch.float32}
