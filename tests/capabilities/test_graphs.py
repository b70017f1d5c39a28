"""End to end through the engine on the tiny SD1 checkpoint: LoRA graphs (two prompts with
different LoRAs share one loaded model and each get their own result), hires-fix latent
upscaling, and mask nodes."""

from __future__ import annotations

import numpy as np

from tests.capabilities.conftest import install, run_graph
from tests.fixtures.tiny_extras import kohya_lora_state, save


def txt2img(ckpt: str, lora: str | None = None, strength: float = 1.0, hires: bool = False) -> dict:
    model, clip = ["4", 0], ["4", 1]
    prompt = {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}}}
    if lora:
        prompt["10"] = {"class_type": "LoraLoader", "inputs": {"model": model, "clip": clip, "lora_name": lora,
                                                               "strength_model": strength, "strength_clip": strength}}
        model, clip = ["10", 0], ["10", 1]
    sampler = {"seed": 3, "steps": 2, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
               "model": model, "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}
    prompt.update({
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red house", "clip": clip}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": clip}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": sampler},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "cap", "images": ["8", 0]}},
    })
    if hires:
        prompt["11"] = {"class_type": "LatentUpscaleBy", "inputs": {"samples": ["3", 0],
                                                                    "upscale_method": "bislerp", "scale_by": 1.5}}
        prompt["12"] = {"class_type": "KSampler", "inputs": dict(sampler, latent_image=["11", 0], denoise=0.5)}
        prompt["8"]["inputs"]["samples"] = ["12", 0]
    return prompt


def pixels(env, outcome):
    from PIL import Image

    record = outcome.outputs["9"]["images"][0]
    path = env.folders.output / record.get("subfolder", "") / record["filename"]
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def test_prompts_with_and_without_lora_share_the_model_and_each_get_their_own_image(env, tiny, tmp_path):
    from diffusion.memory import ModelManager

    ckpt = install(env, "checkpoints", tiny("sd1").checkpoint)
    model, clip, _ = ModelManager(device="cpu").load_checkpoint(tiny("sd1").checkpoint)
    lora = save(kohya_lora_state(model.unet, [e.model for e in clip.encoders], scale=0.5),
                tmp_path / "strong_style.safetensors")
    name = install(env, "loras", lora)
    plain = run_graph(env, txt2img(ckpt))
    styled = run_graph(env, txt2img(ckpt, name, 1.0))
    half = run_graph(env, txt2img(ckpt, name, 0.5))
    styled_again = run_graph(env, txt2img(ckpt, name, 1.0))
    plain_again = run_graph(env, txt2img(ckpt))
    assert all(o.status == "success" for o in (plain, styled, half, styled_again, plain_again))
    a, b, c = pixels(env, plain), pixels(env, styled), pixels(env, half)
    assert np.abs(a - b).max() > 2 and np.abs(b - c).max() > 2
    assert np.array_equal(b, pixels(env, styled_again))
    assert np.array_equal(a, pixels(env, plain_again)), "the LoRA left no trace in the shared model"
    assert len(env.models.loaded_models()) == 3, "one UNet, one VAE, one text encoder: nothing copied"


def test_sdxl_lora_on_sd1_graph_fails_with_a_message_naming_both(env, tiny, tmp_path):
    from diffusion.memory import ModelManager

    ckpt = install(env, "checkpoints", tiny("sd1").checkpoint)
    xl_model, xl_clip, _ = ModelManager(device="cpu").load_checkpoint(tiny("sdxl").checkpoint)
    name = install(env, "loras", save(kohya_lora_state(xl_model.unet, [e.model for e in xl_clip.encoders], sdxl=True),
                                      tmp_path / "xl_lora.safetensors"))
    outcome = run_graph(env, txt2img(ckpt, name))
    assert outcome.status == "error"
    message = outcome.error.message() if callable(getattr(outcome.error, "message", None)) else str(outcome.error)
    assert "xl_lora.safetensors" in str(message) and "tiny_sd1.safetensors" in str(message)


def test_hires_fix_graph_samples_upscales_the_latent_and_samples_again(env, tiny):
    ckpt = install(env, "checkpoints", tiny("sd1").checkpoint)
    outcome = run_graph(env, txt2img(ckpt, hires=True))
    assert outcome.status == "success" and pixels(env, outcome).shape == (96, 96, 3)


def test_mask_graph_through_the_engine(env):
    prompt = {
        "1": {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": 16, "height": 16}},
        "2": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 4, "height": 4}},
        "3": {"class_type": "MaskComposite", "inputs": {"destination": ["1", 0], "source": ["2", 0], "x": 6, "y": 6,
                                                        "operation": "add"}},
        "4": {"class_type": "GrowMask", "inputs": {"mask": ["3", 0], "expand": 2, "tapered_corners": False}},
        "5": {"class_type": "MaskToImage", "inputs": {"mask": ["4", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "mask", "images": ["5", 0]}},
    }
    outcome = run_graph(env, prompt)
    assert outcome.status == "success"
    image = pixels(env, outcome)[..., 0]
    expected = np.zeros((16, 16))
    expected[4:12, 4:12] = 255
    assert np.array_equal(image, expected)
