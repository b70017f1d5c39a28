"""LATENT values are ComfyUI's: ``samples`` hold the VAE's raw latent; the model's scale
(and shift) is applied inside the sampler (``process_in`` / ``process_out``).

Each node that makes or reads latents is checked against diffusers on the same tiny weights:
diffusers' ``vae.encode(x).latent_dist.mean`` is the raw latent, its pipelines' latents
(``output_type="latent"``) are in the model's space, i.e. raw × ``scaling_factor``.
"""

from __future__ import annotations

import pytest
import torch

from diffusion.latent_formats import LatentFormat
from diffusion.noise import prepare_noise
from diffusion.sampling import sample
from diffusion.text_encoding import encode as encode_text
from diffusion.vae import decode, encode
from engine.declare import Socket
from tests.diffusion.conftest import install, txt2img_prompt

LATENT = Socket("LATENT")
POSITIVE = "a photograph of an astronaut riding a horse"
NEGATIVE = "blurry, low quality"
SCALE = 0.18215


@pytest.fixture(scope="module")
def sd1(manager, tiny):
    return manager.load_checkpoint(tiny("sd1").checkpoint)


@pytest.fixture(scope="module")
def diffusers_vae(tiny):
    from diffusers import AutoencoderKL

    return AutoencoderKL.from_pretrained(tiny("sd1").diffusers_dir, subfolder="vae", local_files_only=True).eval()


def _image(size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(1, size, size, 3, generator=g)
    return torch.nn.functional.avg_pool2d(image.movedim(-1, 1), 5, 1, 2).movedim(1, -1)


def _node(name):
    from nodes import builtin_nodes

    return next(d for d in builtin_nodes() if d.class_type == name)


def _run_node(name, **inputs):
    definition = _node(name)
    return definition.fn(**inputs)


# -- the formats ------------------------------------------------------------------------------


def test_process_in_scales_and_shifts_and_process_out_undoes_it():
    fmt = LatentFormat("test", 4, 0.5, ((0, 0, 0),) * 4, shift_factor=0.25)
    raw = torch.randn(1, 4, 2, 2)
    assert torch.allclose(fmt.process_in(raw), (raw - 0.25) * 0.5)
    assert torch.allclose(fmt.process_out(fmt.process_in(raw)), raw, atol=1e-6)


def test_the_sampler_does_not_shift_an_empty_latent_as_comfyui_does_not():
    # CFGGuider.inner_sample skips process_in when torch.count_nonzero(latent_image) == 0
    fmt = LatentFormat("test", 4, 0.5, ((0, 0, 0),) * 4, shift_factor=0.25)
    zeros = torch.zeros(1, 4, 2, 2)
    assert torch.equal(fmt.sampler_input(zeros), zeros)
    ones = torch.ones(1, 4, 2, 2)
    assert torch.equal(fmt.sampler_input(ones), fmt.process_in(ones))


# -- VAEEncode / VAEDecode (and tiled) ----------------------------------------------------------


def test_vae_encode_node_gives_the_raw_latent_distribution_mean(sd1, diffusers_vae):
    image = _image()
    ours = _run_node("VAEEncode", pixels=image, vae=sd1[2])["samples"]
    with torch.no_grad():
        theirs = diffusers_vae.encode(image.movedim(-1, 1) * 2 - 1).latent_dist.mean
    assert ours.shape == theirs.shape == (1, 4, 8, 8)
    assert torch.allclose(ours, theirs, atol=1e-5)  # no scaling factor


def test_vae_decode_node_takes_the_raw_latent(sd1, diffusers_vae):
    raw = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    ours = _run_node("VAEDecode", samples={"samples": raw}, vae=sd1[2])
    with torch.no_grad():
        theirs = (diffusers_vae.decode(raw).sample / 2 + 0.5).clamp(0, 1).movedim(1, -1)
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_decode_of_encode_is_diffusers_round_trip(sd1, diffusers_vae):
    image = _image(seed=3)
    ours = decode(sd1[2], encode(sd1[2], image))
    with torch.no_grad():
        mean = diffusers_vae.encode(image.movedim(-1, 1) * 2 - 1).latent_dist.mean
        theirs = (diffusers_vae.decode(mean).sample / 2 + 0.5).clamp(0, 1).movedim(1, -1)
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_vae_encode_tiled_within_one_tile_equals_vae_encode(sd1):
    image = _image()
    tiled = _run_node("VAEEncodeTiled", pixels=image, vae=sd1[2], tile_size=512, overlap=64,
                      temporal_size=64, temporal_overlap=8)["samples"]
    assert torch.equal(tiled, encode(sd1[2], image))


def test_vae_encode_tiled_blends_tiles_of_a_larger_image_into_the_whole_latent(sd1):
    image = _image(size=160, seed=2)[:, :, :96]  # 160 × 96 pixels: 3 × 2 tiles of 64 with overlap
    tiled = _run_node("VAEEncodeTiled", pixels=image, vae=sd1[2], tile_size=64, overlap=32,
                      temporal_size=64, temporal_overlap=8)["samples"]
    whole = encode(sd1[2], image)
    assert tiled.shape == whole.shape == (1, 4, 20, 12) and torch.isfinite(tiled).all()
    # raw values, blended: each tile's latent matches the whole image's only up to the
    # encoder's receptive field, so compare the statistics
    assert abs(float(tiled.mean() - whole.mean())) < 0.1 * float(whole.std())
    assert 0.5 < float(tiled.std() / whole.std()) < 2


def test_vae_decode_tiled_limits_the_overlap_to_a_quarter_tile_as_comfyui(sd1):
    raw = torch.randn(1, 4, 20, 12, generator=torch.Generator().manual_seed(4))
    clamped = _run_node("VAEDecodeTiled", samples={"samples": raw}, vae=sd1[2], tile_size=64, overlap=64,
                        temporal_size=64, temporal_overlap=8)
    quarter = _run_node("VAEDecodeTiled", samples={"samples": raw}, vae=sd1[2], tile_size=64, overlap=16,
                        temporal_size=64, temporal_overlap=8)
    assert torch.equal(clamped, quarter)


# -- samplers -----------------------------------------------------------------------------------


def test_ksampler_output_is_the_diffusers_pipeline_latent_divided_by_the_scale(tiny, sd1):
    from diffusers import StableDiffusionPipeline

    from tests.diffusion.reference_schedulers import plan

    model, clip, _ = sd1
    ours = sample(model, seed=42, steps=4, cfg=7.0, sampler_name="euler", scheduler="normal",
                  positive=encode_text(clip, POSITIVE), negative=encode_text(clip, NEGATIVE),
                  latent={"samples": torch.zeros(1, 4, 8, 8)})["samples"]
    pipe = StableDiffusionPipeline.from_pretrained(tiny("sd1").diffusers_dir, local_files_only=True)
    pipe.scheduler = plan("euler", "normal").scheduler
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe(POSITIVE, negative_prompt=NEGATIVE, num_inference_steps=4, guidance_scale=7.0, height=64,
                  width=64, latents=prepare_noise(torch.zeros(1, 4, 8, 8), 42), output_type="latent").images
    # diffusers' latents are in the model's space; a LATENT holds them divided by 0.18215
    assert torch.allclose(ours * SCALE, theirs, atol=2e-4 * float(theirs.abs().max()))
    assert not torch.allclose(ours, theirs, atol=0.1 * float(theirs.abs().max()))


def test_img2img_samples_the_raw_encoded_latent_as_diffusers_samples_the_scaled_one(tiny, sd1):
    from diffusers import StableDiffusionImg2ImgPipeline

    from tests.diffusion.reference_schedulers import plan

    model, clip, vae = sd1
    raw = encode(vae, _image(seed=5))
    ours = sample(model, seed=42, steps=2, cfg=7.0, sampler_name="euler", scheduler="normal",
                  positive=encode_text(clip, POSITIVE), negative=encode_text(clip, NEGATIVE),
                  latent={"samples": raw}, denoise=0.5)["samples"]
    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(tiny("sd1").diffusers_dir, local_files_only=True)
    pipe.scheduler = plan("euler", "normal").scheduler
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe(POSITIVE, negative_prompt=NEGATIVE, image=raw * SCALE, strength=0.5, num_inference_steps=4,
                  guidance_scale=7.0, generator=torch.Generator().manual_seed(42), output_type="latent").images
    assert torch.allclose(ours * SCALE, theirs, atol=2e-4 * float(theirs.abs().max()))


def test_a_custom_node_reading_the_ksampler_output_sees_raw_values(tiny, env):
    from engine.declare import node
    from engine.executor import Executor
    from engine.registry import Registry
    from nodes import builtin_nodes

    seen = {}

    @node(category="testing", output_node=True)
    def LatentProbe(samples: LATENT) -> None:
        seen["samples"] = samples["samples"].clone()

    registry = Registry(env=env)
    registry.add_all(builtin_nodes(), "nodes")
    registry.add(LatentProbe, "custom_nodes.probe")
    prompt = txt2img_prompt(install(env, tiny("sd1")), steps=3)
    prompt["20"] = {"class_type": "LatentProbe", "inputs": {"samples": ["3", 0]}}
    outcome = Executor(registry, cache="none").execute(prompt, prompt_id="probe", sink=lambda e: None)
    assert outcome.status == "success", outcome.error
    model, clip, _ = env.models.load_checkpoint(tiny("sd1").checkpoint)
    model_space = sample(model, seed=42, steps=3, cfg=7.0, sampler_name="euler", scheduler="normal",
                         positive=encode_text(clip, POSITIVE), negative=encode_text(clip, NEGATIVE),
                         latent={"samples": torch.zeros(1, 4, 8, 8)})["samples"] * SCALE
    assert torch.allclose(seen["samples"], model_space / SCALE, atol=1e-5)
    # the spread of a raw SD latent is the model space's divided by 0.18215
    assert float(seen["samples"].std()) == pytest.approx(float(model_space.std()) / SCALE, rel=1e-4)


def test_previews_see_the_prediction_in_model_space_and_denoised_output_is_raw(sd1):
    # ComfyUI's latent previewers read the sampler's x0 before process_out; SamplerCustom's
    # denoised_output is process_out of that x0
    from diffusion.custom_sampling import Sampler, sample_custom, scheduler_sigmas

    model, clip, vae = sd1
    seen = []
    _, denoised = sample_custom(model, Sampler("euler"), scheduler_sigmas(model, "normal", 2), seed=3,
                                add_noise=True, cfg=5.0, positive=encode_text(clip, "a"),
                                negative=encode_text(clip, ""), latent={"samples": encode(vae, _image())},
                                callback=lambda step, total, x0: seen.append(x0.clone()))
    assert torch.allclose(seen[-1], denoised["samples"] * SCALE, atol=1e-6)


def test_one_euler_step_denoises_process_in_of_the_latent(sd1):
    # x enters the model as latent × 0.18215 (+ σ·noise); the step's output goes back ÷ 0.18215
    from diffusion.custom_sampling import Sampler, sample_custom
    from diffusion.guidance import GuidedModel
    from diffusion.sampling import _Denoiser, model_sigmas

    model, clip, vae = sd1
    raw = encode(vae, _image(seed=7))
    pos, neg = encode_text(clip, "a"), encode_text(clip, "")
    sigmas = torch.tensor([2.0, 0.0])
    out, _ = sample_custom(model, Sampler("euler"), sigmas, seed=1, add_noise=False, cfg=5.0, positive=pos,
                           negative=neg, latent={"samples": raw})
    D = _Denoiser(model, GuidedModel(model, pos, neg, 5.0, latent_shape=raw.shape), model_sigmas(model))
    with torch.inference_mode():
        expected = D(raw * SCALE, 2.0) / SCALE
    assert torch.allclose(out["samples"], expected, atol=1e-5)


# -- inpainting -----------------------------------------------------------------------------------


def _right_half(size=64):
    mask = torch.zeros(1, size, size)
    mask[:, :, size // 2:] = 1
    return mask


def test_inpaint_model_conditioning_outputs_comfyuis_latent_and_concat_keys(sd1):
    model, clip, vae = sd1
    image, mask = _image(seed=8), _right_half()
    pos, neg = encode_text(clip, "a"), encode_text(clip, "")
    positive, negative, latent = _run_node("InpaintModelConditioning", positive=pos, negative=neg, vae=vae,
                                           pixels=image, mask=mask, noise_mask=True)
    assert torch.equal(latent["samples"], encode(vae, image))  # the whole image, raw
    assert latent["noise_mask"].shape == (1, 1, 64, 64) and torch.equal(latent["noise_mask"][0, 0], mask[0])
    greyed = image.clone()
    greyed[:, :, 32:] = 0.5
    for entries in (positive, negative):
        meta = entries[0][1]
        assert torch.allclose(meta["concat_latent_image"], encode(vae, greyed), atol=1e-6)
        assert torch.equal(meta["concat_mask"], latent["noise_mask"])
        assert "pooled_output" in meta  # the entry's own keys are kept
    assert "concat_latent_image" not in pos[0][1]  # the input conditioning is not changed
    _, _, without = _run_node("InpaintModelConditioning", positive=pos, negative=neg, vae=vae, pixels=image,
                              mask=mask, noise_mask=False)
    assert "noise_mask" not in without


def test_inpainting_unet_sees_process_in_of_the_concat_image_and_the_rounded_concat_mask(manager, tiny):
    model, clip, vae = manager.load_checkpoint(tiny("sd1_inpaint").checkpoint)
    image, mask = _image(seed=9), _right_half() * 0.8  # 0.8 rounds to 1 for the UNet
    plain_negative = encode_text(clip, "")
    positive, _, latent = _run_node("InpaintModelConditioning", positive=encode_text(clip, "a"),
                                    negative=plain_negative, vae=vae, pixels=image, mask=mask, noise_mask=False)
    inputs = []
    hook = model.unet.register_forward_pre_hook(lambda module, args: inputs.append(args[0].clone()))
    try:
        sample(model, seed=1, steps=1, cfg=5.0, sampler_name="euler", scheduler="normal", positive=positive,
               negative=plain_negative, latent=latent)
    finally:
        hook.remove()
    x_in = inputs[0]
    assert x_in.shape == (2, 9, 8, 8)  # the positive row and the negative row
    expected_mask = torch.zeros(1, 1, 8, 8)
    expected_mask[..., 4:] = 1
    concat = positive[0][1]["concat_latent_image"]
    assert torch.equal(x_in[:1, 4:5], expected_mask)
    assert torch.allclose(x_in[:1, 5:], concat * SCALE, atol=1e-6)
    # the negative entry has no concat keys: no noise mask either, so ComfyUI's blank (all masked)
    assert torch.equal(x_in[1:, 4:5], torch.ones(1, 1, 8, 8))
    assert torch.allclose(x_in[1:, 5:, 0, 0], torch.tensor([0.8223, -0.6876, 0.6364, 0.1380]))


def test_noise_mask_inpainting_keeps_the_raw_unmasked_latent_exactly(sd1):
    from diffusion.inpaint import set_noise_mask

    model, clip, vae = sd1
    raw = encode(vae, _image(seed=10))
    out = sample(model, seed=1, steps=2, cfg=5.0, sampler_name="euler", scheduler="normal",
                 positive=encode_text(clip, "a"), negative=encode_text(clip, ""),
                 latent=set_noise_mask({"samples": raw}, _right_half()))["samples"]
    # kept exactly in raw space: process_out(process_in(raw)) alone would round it
    assert torch.equal(out[..., :4], raw[..., :4]) and not torch.equal(out[..., 4:], raw[..., 4:])


def test_vae_encode_for_inpaint_gives_a_raw_latent(sd1, diffusers_vae):
    image, mask = _image(seed=11), _right_half()
    latent = _run_node("VAEEncodeForInpaint", pixels=image, vae=sd1[2], mask=mask, grow_mask_by=0)
    greyed = image.clone()
    greyed[:, :, 32:] = 0.5
    with torch.no_grad():
        theirs = diffusers_vae.encode(greyed.movedim(-1, 1) * 2 - 1).latent_dist.mean
    assert torch.allclose(latent["samples"], theirs, atol=1e-5)


# -- conditioning ----------------------------------------------------------------------------------


def test_sd1_clip_text_encode_carries_clip_ls_pooled_output(tiny, sd1):
    from transformers import CLIPTextModel

    from diffusion.tokenizer import clip_tokenizer

    clip = sd1[1]
    (cond, meta), = encode_text(clip, "a horse")  # what CLIPTextEncode returns
    pooled = meta["pooled_output"]
    assert pooled is not None and pooled.shape == (1, 32)
    theirs = CLIPTextModel.from_pretrained(tiny("sd1").diffusers_dir, subfolder="text_encoder",
                                           local_files_only=True).eval()
    ids = clip_tokenizer()("a horse", padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        expected = theirs(input_ids=ids).pooler_output
    assert torch.allclose(pooled, expected, atol=1e-5)
    # clip skip changes the tokens' hidden states, not the pooled output (ComfyUI's too)
    skipped = encode_text(clip.clone(layer=-2), "a horse")[0][1]["pooled_output"]
    assert torch.allclose(skipped, pooled, atol=1e-6)
