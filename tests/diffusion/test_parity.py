"""Loom's graph output equals diffusers' own pipelines on the same tiny weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.diffusion.conftest import install, png_pixels, run_graph, saved_images, txt2img_prompt

TOLERANCE = 2 / 255
POSITIVE = "a photograph of an astronaut riding a horse"
NEGATIVE = "blurry, low quality"


def _reference(model_dir, sampler, scheduler, *, xl=False, steps=4, seed=42, cfg=7.0, size=64):
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    from diffusion.noise import prepare_noise
    from tests.diffusion.reference_schedulers import plan

    cls = StableDiffusionXLPipeline if xl else StableDiffusionPipeline
    pipe = cls.from_pretrained(model_dir, local_files_only=True)
    # diffusers' own solver (Euler, Heun, DPM-Solver++(2M)) fed ComfyUI's σ for the scheduler, the
    # UNet timesteps ComfyUI gives and its initial noise scale (init_noise_sigma): the schedule
    # is Loom's (= ComfyUI's), so this checks the model and the solver math against diffusers
    pipe.scheduler = plan(sampler, scheduler).scheduler
    pipe.set_progress_bar_config(disable=True)
    latents = prepare_noise(torch.zeros(1, 4, size // 8, size // 8), seed)
    # SDXL's size conditioning: diffusers defaults it to the image size, as ComfyUI does.
    result = pipe(POSITIVE, negative_prompt=NEGATIVE, num_inference_steps=steps, guidance_scale=cfg,
                  height=size, width=size, latents=latents, output_type="np")
    return result.images[0]


@pytest.mark.parametrize("sampler,scheduler", [
    ("euler", "normal"), ("heun", "normal"), ("dpmpp_2m", "normal"), ("dpmpp_2m", "karras"), ("ddim", "normal"),
    ("euler", "beta"), ("heun", "ddim_uniform"),
])
def test_sd1_graph_matches_stable_diffusion_pipeline(tiny, env, sampler, scheduler):
    model = tiny("sd1")
    outcome = run_graph(env, txt2img_prompt(install(env, model), sampler=sampler, scheduler=scheduler))
    assert outcome.status == "success", outcome.error
    ours = png_pixels(saved_images(env, outcome)[0])
    theirs = _reference(model.diffusers_dir, sampler, scheduler)
    assert ours.shape == theirs.shape == (64, 64, 3)
    assert np.abs(ours - theirs).max() <= TOLERANCE


def test_sdxl_graph_matches_stable_diffusion_xl_pipeline(tiny, env):
    model = tiny("sdxl")
    outcome = run_graph(env, txt2img_prompt(install(env, model)))
    assert outcome.status == "success", outcome.error
    ours = png_pixels(saved_images(env, outcome)[0])
    theirs = _reference(model.diffusers_dir, "euler", "normal", xl=True)
    assert np.abs(ours - theirs).max() <= TOLERANCE
