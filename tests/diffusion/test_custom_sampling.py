"""SamplerCustom, KSamplerSelect, BasicScheduler and SDTurboScheduler (ComfyUI's custom sampling)."""

from __future__ import annotations

import math

import pytest
import torch

from diffusion.custom_sampling import Sampler, sample_custom, scheduler_sigmas, turbo_sigmas
from diffusion.errors import SamplingError
from diffusion.k_steps import SAMPLER_NAMES, step_rule
from diffusion.sampling import sample
from diffusion.text_encoding import encode
from tests.diffusion.conftest import install, png_pixels, run_graph, saved_images


@pytest.fixture(scope="module")
def sd1(manager, tiny):
    model, clip, vae = manager.load_checkpoint(tiny("sd1").checkpoint)
    return model, encode(clip, "a horse"), encode(clip, "blurry")


def _start(seed=3):
    return torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(seed))


def _ksampler(sd1, sampler, scheduler, steps, latent, denoise=1.0, seed=11):
    model, pos, neg = sd1
    return sample(model, seed=seed, steps=steps, cfg=5.0, sampler_name=sampler, scheduler=scheduler,
                  positive=pos, negative=neg, latent={"samples": latent}, denoise=denoise)["samples"]


def _custom(sd1, sampler, sigmas, latent, seed=11, add_noise=True, cfg=5.0, callback=None):
    model, pos, neg = sd1
    return sample_custom(model, Sampler(sampler), sigmas, seed=seed, add_noise=add_noise, cfg=cfg, positive=pos,
                         negative=neg, latent={"samples": latent}, callback=callback)


# -- BasicScheduler + SamplerCustom = KSampler ----------------------------------------------

@pytest.mark.parametrize("sampler,scheduler", [
    ("dpmpp_2s_ancestral", "normal"), ("dpmpp_2s_ancestral", "karras"), ("euler_ancestral", "karras"),
    ("euler_ancestral", "exponential"), ("dpmpp_sde", "normal"), ("dpmpp_sde", "karras"), ("dpmpp_2m_sde", "normal"),
    ("dpmpp_2m_sde", "karras"), ("dpmpp_3m_sde", "karras"), ("dpmpp_3m_sde", "exponential"),
    ("dpmpp_2m_sde_gpu", "karras"), ("dpmpp_sde_gpu", "normal"), ("dpmpp_3m_sde_gpu", "simple"),
    ("euler_cfg_pp", "normal"), ("euler_ancestral_cfg_pp", "karras"), ("dpmpp_2s_ancestral_cfg_pp", "normal"),
    ("dpmpp_2m_cfg_pp", "karras"), ("euler", "karras"), ("euler", "normal"), ("heun", "karras"),
    ("dpmpp_2m", "karras"), ("lms", "beta"), ("ddim", "ddim_uniform"), ("lcm", "simple"), ("euler", "sgm_uniform"),
])
def test_sampler_custom_on_basic_scheduler_equals_the_ksampler_bit_for_bit(sd1, sampler, scheduler):
    latent = torch.zeros(1, 4, 8, 8)
    expected = _ksampler(sd1, sampler, scheduler, 3, latent)
    got, _ = _custom(sd1, sampler, scheduler_sigmas(sd1[0], scheduler, 3), latent)
    assert torch.equal(got["samples"], expected)


@pytest.mark.parametrize("sampler", ["dpmpp_2s_ancestral", "dpmpp_2m_sde", "dpmpp_3m_sde"])
def test_partial_denoise_schedule_equals_the_ksampler_with_the_same_denoise(sd1, sampler):
    latent = _start()
    expected = _ksampler(sd1, sampler, "normal", 4, latent, denoise=0.5)
    got, _ = _custom(sd1, sampler, scheduler_sigmas(sd1[0], "normal", 4, 0.5), latent)
    assert torch.equal(got["samples"], expected)


@pytest.mark.parametrize("sampler", ["dpm_2", "uni_pc"])
def test_ksampler_drops_the_penultimate_sigma_where_sampler_custom_runs_the_sigmas_it_is_given(sd1, sampler):
    latent = torch.zeros(1, 4, 8, 8)
    expected = _ksampler(sd1, sampler, "karras", 3, latent)
    longer = scheduler_sigmas(sd1[0], "karras", 4)
    got, _ = _custom(sd1, sampler, torch.cat([longer[:-2], longer[-1:]]), latent)
    assert torch.equal(got["samples"], expected)


def test_full_denoise_scales_the_seed_noise_by_sqrt_one_plus_sigma_max_squared(sd1):
    from diffusion.noise import prepare_noise

    sigmas = scheduler_sigmas(sd1[0], "normal", 1)
    seen = []
    _custom(sd1, "euler", sigmas, torch.zeros(1, 4, 8, 8), seed=4, callback=lambda i, n, x0: seen.append(x0))
    # one Euler step to σ 0 lands on the prediction; what went in is the scaled noise
    top = float(sigmas[0])
    scaled = prepare_noise(torch.zeros(1, 4, 8, 8), 4) * math.sqrt(1 + top ** 2)
    model, pos, neg = sd1
    from diffusion.sampling import _Denoiser, model_sigmas
    from diffusion.guidance import GuidedModel

    D = _Denoiser(model, GuidedModel(model, pos, neg, 5.0, latent_shape=scaled.shape), model_sigmas(model))
    with torch.inference_mode():
        assert torch.equal(seen[0], D(scaled, top))


def test_basic_scheduler_gives_the_tail_of_the_longer_schedule_for_partial_denoise(sd1):
    full = scheduler_sigmas(sd1[0], "karras", 8)
    assert torch.equal(scheduler_sigmas(sd1[0], "karras", 4, 0.5), full[-5:])
    assert len(full) == 9 and full[-1] == 0 and bool((full[:-1] > full[1:]).all())


def test_basic_scheduler_at_zero_denoise_gives_no_sigmas_and_the_latent_comes_back_unchanged(sd1):
    sigmas = scheduler_sigmas(sd1[0], "normal", 10, 0.0)
    latent = _start()
    out, denoised = _custom(sd1, "euler", sigmas, latent)
    assert len(sigmas) == 0 and torch.equal(out["samples"], latent) and torch.equal(denoised["samples"], latent)


# -- SDTurboScheduler -------------------------------------------------------------------------

def _reference_sigma(t: int) -> float:
    """σ at training timestep t of SD's scaled-linear schedule, computed from the betas."""
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    alpha_bar = torch.cumprod(1 - betas, 0)[t]
    return float(((1 - alpha_bar) / alpha_bar) ** 0.5)


def test_sd_turbo_sigmas_are_the_model_sigmas_at_timesteps_999_899_799_then_zero(sd1):
    sigmas = turbo_sigmas(sd1[0], 3)
    expected = [_reference_sigma(t) for t in (999, 899, 799)] + [0.0]
    assert sigmas.dtype == torch.float32 and len(sigmas) == 4
    assert torch.allclose(sigmas.double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-6)


def test_sd_turbo_partial_denoise_starts_further_down_the_timesteps(sd1):
    sigmas = turbo_sigmas(sd1[0], 2, denoise=0.5)
    assert math.isclose(float(sigmas[0]), _reference_sigma(499), rel_tol=1e-6)
    assert math.isclose(float(sigmas[1]), _reference_sigma(399), rel_tol=1e-6)


def test_sd_turbo_one_step_denoises_to_a_finite_latent(sd1):
    out, _ = _custom(sd1, "euler_ancestral", turbo_sigmas(sd1[0], 1), torch.zeros(1, 4, 8, 8), cfg=1.0)
    assert torch.isfinite(out["samples"]).all() and out["samples"].abs().max() > 0


def test_sd_turbo_takes_one_to_ten_steps(sd1):
    with pytest.raises(SamplingError, match="1 to 10 steps"):
        turbo_sigmas(sd1[0], 11)


# -- add_noise and denoised_output ------------------------------------------------------------

def test_add_noise_false_leaves_the_seed_noise_out(sd1):
    sigmas = scheduler_sigmas(sd1[0], "normal", 3)
    latent = _start() * float(sigmas[0])  # a latent that already carries its noise
    a, _ = _custom(sd1, "euler", sigmas, latent, seed=1, add_noise=False)
    b, _ = _custom(sd1, "euler", sigmas, latent, seed=2, add_noise=False)
    noisy, _ = _custom(sd1, "euler", sigmas, latent, seed=1, add_noise=True)
    assert torch.equal(a["samples"], b["samples"])
    assert not torch.allclose(a["samples"], noisy["samples"])


def test_denoised_output_is_the_model_prediction_of_the_clean_latent(sd1):
    from diffusion.guidance import GuidedModel
    from diffusion.noise import prepare_noise

    model, pos, neg = sd1
    sigmas = torch.tensor([6.0, 2.0])  # one step that stops at σ=2, leaving noise in
    latent = _start()
    out, denoised = _custom(sd1, "euler", sigmas, latent, seed=4)
    # LATENT samples are raw VAE latents (ComfyUI's convention): the sampler works on
    # process_in of them (× 0.18215 for SD1) and hands back process_out (÷ 0.18215)
    scale_in = model.latent_format.scale_factor
    x = latent * scale_in + prepare_noise(latent, 4) * 6.0
    log_sigmas = ((1 - model_alphas()) / model_alphas()).sqrt().log()
    # the UNet's timestep: the training timestep nearest σ = 6 in log σ (ComfyUI's timestep(σ))
    t = int((log_sigmas - math.log(6.0)).abs().argmin())
    eps = GuidedModel(model, pos, neg, 5.0, latent_shape=latent.shape)(x / math.sqrt(37.0), t)
    expected_x0 = x - 6.0 * eps
    # (up to the σ→t table: the sampler's is float32, this one float64)
    scale = expected_x0.abs().max()
    assert (denoised["samples"] * scale_in - expected_x0).abs().max() <= 1e-3 * scale
    # and the output is the Euler step from x towards that prediction, still noisy at σ=2
    assert (out["samples"] * scale_in - (x + (x - expected_x0) / 6.0 * (2.0 - 6.0))).abs().max() <= 1e-3 * scale


def model_alphas():
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, 0)


def _interp(value: float, table) -> float:
    """The fractional index where the increasing ``table`` reaches ``value``."""
    hi = int(torch.searchsorted(table, torch.tensor(value, dtype=table.dtype)))
    lo = hi - 1
    return lo + (value - float(table[lo])) / (float(table[hi]) - float(table[lo]))


def test_every_step_is_reported_with_its_prediction(sd1):
    seen = []
    _custom(sd1, "heun", scheduler_sigmas(sd1[0], "normal", 3), torch.zeros(1, 4, 8, 8),
            callback=lambda step, total, x0: seen.append((step, total, tuple(x0.shape))))
    assert seen == [(1, 3, (1, 4, 8, 8)), (2, 3, (1, 4, 8, 8)), (3, 3, (1, 4, 8, 8))]


@pytest.mark.parametrize("sampler", SAMPLER_NAMES)
def test_every_sampler_on_custom_sigmas_gives_a_finite_denoised_latent(sd1, sampler):
    out, _ = _custom(sd1, sampler, scheduler_sigmas(sd1[0], "karras", 3), torch.zeros(1, 4, 8, 8))
    reference, _ = _custom(sd1, "euler", scheduler_sigmas(sd1[0], "karras", 3), torch.zeros(1, 4, 8, 8))
    assert torch.isfinite(out["samples"]).all()
    assert 0.25 < out["samples"].std() / reference["samples"].std() < 4


# -- bad inputs ------------------------------------------------------------------------------

@pytest.mark.parametrize("sigmas,message", [
    (torch.tensor([14.6]), "single value"),
    (torch.ones(2, 3), "1-D"),
    (torch.tensor([14.6, float("nan"), 0.0]), "NaN"),
    (torch.tensor([14.6, -1.0]), "negative"),
    (torch.tensor([14.6, 0.0, 1.0, 0.0]), "may only end"),
    ([14.6, 0.0], "1-D tensor"),
])
def test_bad_sigmas_are_clear_errors(sd1, sigmas, message):
    with pytest.raises(SamplingError, match=message):
        _custom(sd1, "euler", sigmas, torch.zeros(1, 4, 8, 8))


def test_unknown_sampler_name_is_a_clear_error():
    with pytest.raises(SamplingError, match="unknown sampler 'nope'"):
        Sampler("nope")


def test_a_sampler_name_without_a_step_rule_is_a_clear_error():
    # a ComfyUI sampler Loom does not have
    with pytest.raises(SamplingError, match="unknown sampler 'res_multistep_cfg_pp'; choose from euler"):
        step_rule("res_multistep_cfg_pp", [1.0, 0.0])


# -- what KSamplerSelect offers ----------------------------------------------------------------

def _ksampler_select_options() -> list[str]:
    from engine.object_info import object_info_for
    from engine.registry import Registry
    from nodes import builtin_nodes

    registry = Registry(env=None)
    registry.add_all(builtin_nodes(), "nodes")
    return object_info_for(registry, "KSamplerSelect")["KSamplerSelect"]["input"]["required"]["sampler_name"][0]


def test_every_sampler_ksampler_select_offers_has_a_step_rule():
    offered = _ksampler_select_options()
    for name in offered:
        assert callable(step_rule(name, [14.6, 1.0, 0.0])), name
    assert set(offered) == set(SAMPLER_NAMES)


def test_ksampler_select_offers_every_sampler_the_ksampler_offers_and_comfyuis_custom_only_names():
    from nodes.sampling import SAMPLER_NAMES

    offered = _ksampler_select_options()
    assert set(SAMPLER_NAMES) <= set(offered)
    assert {"uni_pc_bh2", "dpmpp_sde_gpu", "dpmpp_2m_sde_gpu", "dpmpp_3m_sde_gpu", "ipndm"} <= set(offered)


def test_a_gpu_named_sampler_is_the_same_rule_as_its_cpu_name(sd1):
    sigmas = scheduler_sigmas(sd1[0], "karras", 3)
    for name in ("dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde"):
        cpu, _ = _custom(sd1, name, sigmas, torch.zeros(1, 4, 8, 8), seed=7)
        gpu, _ = _custom(sd1, name + "_gpu", sigmas, torch.zeros(1, 4, 8, 8), seed=7)
        assert torch.equal(cpu["samples"], gpu["samples"]), name


@pytest.mark.parametrize("sampler", ["dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde"])
def test_an_sde_sampler_s_step_noise_follows_the_seed(sd1, sampler):
    sigmas = scheduler_sigmas(sd1[0], "karras", 3)
    latent = _start() * float(sigmas[0])  # already noisy: only the per-step noise depends on the seed
    a, _ = _custom(sd1, sampler, sigmas, latent, seed=1, add_noise=False)
    again, _ = _custom(sd1, sampler, sigmas, latent, seed=1, add_noise=False)
    b, _ = _custom(sd1, sampler, sigmas, latent, seed=2, add_noise=False)
    assert torch.equal(a["samples"], again["samples"])
    assert not torch.allclose(a["samples"], b["samples"])


def test_something_else_in_the_sampler_socket_is_a_clear_error(sd1):
    model, pos, neg = sd1
    with pytest.raises(SamplingError, match="KSamplerSelect"):
        sample_custom(model, "euler", torch.tensor([1.0, 0.0]), seed=0, add_noise=True, cfg=1.0, positive=pos,
                      negative=neg, latent={"samples": torch.zeros(1, 4, 8, 8)})


def test_unknown_scheduler_is_a_clear_error(sd1):
    with pytest.raises(SamplingError, match="unknown scheduler 'nope'"):
        scheduler_sigmas(sd1[0], "nope", 3)


# -- the nodes in a graph -----------------------------------------------------------------------

def _turbo_prompt(ckpt: str) -> dict:
    """ComfyUI's SD-Turbo example graph (1 step, cfg 1, euler_ancestral), in API format."""
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "14": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler_ancestral"}},
        "22": {"class_type": "SDTurboScheduler", "inputs": {"model": ["4", 0], "steps": 1, "denoise": 1.0}},
        "13": {"class_type": "SamplerCustom", "inputs": {
            "model": ["4", 0], "add_noise": True, "noise_seed": 0, "cfg": 1.0, "positive": ["6", 0],
            "negative": ["7", 0], "sampler": ["14", 0], "sigmas": ["22", 0], "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["13", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "turbo", "images": ["8", 0]}},
    }


def test_sd_turbo_workflow_runs_through_the_engine(tiny, env):
    outcome = run_graph(env, _turbo_prompt(install(env, tiny("sd1"))))
    assert outcome.status == "success", outcome.error
    assert len(saved_images(env, outcome)) == 1


def test_bad_sigmas_in_a_graph_fail_the_node_with_the_message(tiny, env):
    prompt = _turbo_prompt(install(env, tiny("sd1")))
    prompt["22"]["inputs"]["denoise"] = 0.05  # fewer than one of SD-Turbo's 10 timesteps: σ is just [0]
    outcome = run_graph(env, prompt)
    assert outcome.status == "error"
    assert "single value" in outcome.error.message()["data"]["exception_message"]


#: the samplers that had no custom-σ step rule before (uni_pc, dpmpp_sde) or no name here
NEWLY_ENABLED = ["uni_pc", "uni_pc_bh2", "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m_sde_gpu", "dpmpp_3m_sde_gpu",
                 "ipndm"]


@pytest.mark.parametrize("sampler", NEWLY_ENABLED)
def test_sampler_custom_in_a_graph_makes_an_image_and_the_seed_reproduces_it(tiny, env, sampler):
    prompt = _turbo_prompt(install(env, tiny("sd1")))
    prompt["14"]["inputs"]["sampler_name"] = sampler
    prompt["13"]["inputs"].update(noise_seed=123, cfg=4.0, sigmas=["22", 0])
    prompt["22"] = {"class_type": "BasicScheduler",
                    "inputs": {"model": ["4", 0], "scheduler": "karras", "steps": 4, "denoise": 1.0}}
    first = run_graph(env, prompt)
    second = run_graph(env, prompt)
    assert first.status == "success" and second.status == "success", (first.error, second.error)
    a, b = png_pixels(saved_images(env, first)[0]), png_pixels(saved_images(env, second)[0])
    assert a.std() > 0  # a NaN latent decodes to a flat image
    assert (a == b).all()


def test_custom_sampling_nodes_have_comfyui_inputs_and_outputs():
    from engine.object_info import object_info_for
    from engine.registry import Registry
    from nodes import builtin_nodes

    registry = Registry(env=None)
    registry.add_all(builtin_nodes(), "nodes")
    custom = object_info_for(registry, "SamplerCustom")["SamplerCustom"]
    assert custom["input_order"]["required"] == ["model", "add_noise", "noise_seed", "cfg", "positive", "negative",
                                                 "sampler", "sigmas", "latent_image"]
    assert custom["output"] == ["LATENT", "LATENT"] and custom["output_name"] == ["output", "denoised_output"]
    turbo = object_info_for(registry, "SDTurboScheduler")["SDTurboScheduler"]["input"]["required"]
    assert turbo["steps"] == ["INT", {"default": 1, "min": 1, "max": 10}]
    assert object_info_for(registry, "KSamplerSelect")["KSamplerSelect"]["output"] == ["SAMPLER"]
    assert object_info_for(registry, "BasicScheduler")["BasicScheduler"]["output"] == ["SIGMAS"]


# -- CFG++ samplers -------------------------------------------------------------------------------

CFG_PP = ["euler_cfg_pp", "euler_ancestral_cfg_pp", "dpmpp_2s_ancestral_cfg_pp", "dpmpp_2m_cfg_pp"]


@pytest.mark.parametrize("sampler", CFG_PP)
def test_a_cfg_pp_sampler_at_cfg_1_still_steps_with_the_negative_prompt(sd1, sampler):
    # ComfyUI evaluates the negative prompt for CFG++ even at cfg 1 (no cfg-1 shortcut)
    model, pos, neg = sd1
    sigmas = scheduler_sigmas(model, "karras", 3)
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    run = lambda negative: sample_custom(model, Sampler(sampler), sigmas, seed=5, add_noise=True, cfg=1.0,  # noqa: E731
                                         positive=pos, negative=negative, latent=latent)[0]["samples"]
    assert torch.isfinite(run(neg)).all()
    assert not torch.allclose(run(neg), run(pos))


@pytest.mark.parametrize("sampler", CFG_PP)
def test_a_cfg_pp_sampler_in_a_ksampler_graph_makes_an_image_and_the_seed_reproduces_it(tiny, env, sampler):
    from tests.diffusion.conftest import txt2img_prompt

    prompt = txt2img_prompt(install(env, tiny("sd1")), sampler=sampler, scheduler="karras", cfg=1.0)
    first, second = run_graph(env, prompt), run_graph(env, prompt)
    assert first.status == "success" and second.status == "success", (first.error, second.error)
    a, b = png_pixels(saved_images(env, first)[0]), png_pixels(saved_images(env, second)[0])
    assert a.std() > 0 and (a == b).all()
