"""KSampler behaviour: seeds, every sampler and scheduler, denoise, step ranges."""

from __future__ import annotations

import pytest
import torch

from diffusion.errors import SamplingError
from diffusion.noise import prepare_noise
from diffusion.sampling import ksampler_steps, sample
from diffusion.k_steps import SAMPLER_NAMES
from diffusion.sigma_schedules import SCHEDULER_NAMES
from diffusion.text_encoding import encode
from tests.diffusion.conftest import install, run_graph, saved_images, txt2img_prompt


@pytest.fixture(scope="module")
def sd1(manager, tiny):
    model, clip, vae = manager.load_checkpoint(tiny("sd1").checkpoint)
    return model, encode(clip, "a horse"), encode(clip, "blurry")


def _run(sd1, sampler="euler", scheduler="normal", seed=1, steps=3, **kw):
    model, pos, neg = sd1
    latent = kw.pop("latent", {"samples": torch.zeros(2, 4, 8, 8)})
    return sample(model, seed=seed, steps=steps, cfg=5.0, sampler_name=sampler, scheduler=scheduler,
                  positive=pos, negative=neg, latent=latent, **kw)["samples"]


def test_noise_is_drawn_on_the_cpu_from_the_seed():
    torch.manual_seed(7)
    expected = torch.randn(2, 4, 8, 8)
    assert torch.equal(prepare_noise(torch.zeros(2, 4, 8, 8), 7), expected)


def test_batch_items_get_distinct_noise():
    noise = prepare_noise(torch.zeros(2, 4, 8, 8), 7)
    assert not torch.allclose(noise[0], noise[1])


def test_same_seed_gives_identical_png_bytes(tiny, env):
    name = install(env, tiny("sd1"))
    first = run_graph(env, txt2img_prompt(name, seed=5, steps=2))
    second = run_graph(env, txt2img_prompt(name, seed=5, steps=2))
    a, b = saved_images(env, first)[0], saved_images(env, second)[0]
    assert a != b and a.read_bytes() == b.read_bytes()


def test_different_seeds_give_different_images(tiny, env):
    name = install(env, tiny("sd1"))
    first = run_graph(env, txt2img_prompt(name, seed=5, steps=2))
    second = run_graph(env, txt2img_prompt(name, seed=6, steps=2))
    assert saved_images(env, first)[0].read_bytes() != saved_images(env, second)[0].read_bytes()


@pytest.mark.parametrize("sampler", ["euler_ancestral", "dpm_2_ancestral", "dpmpp_2s_ancestral", "dpmpp_sde",
                                     "dpmpp_2m_sde", "dpmpp_3m_sde"])
def test_stochastic_samplers_are_deterministic_for_a_seed(sd1, sampler):
    assert torch.equal(_run(sd1, sampler), _run(sd1, sampler))


@pytest.mark.parametrize("sampler", ["euler_ancestral", "dpmpp_2s_ancestral", "dpmpp_sde"])
def test_stochastic_samplers_give_sane_latents(sd1, sampler):
    out = _run(sd1, sampler)
    reference = _run(sd1, "euler")
    assert torch.isfinite(out).all()
    # same scale as the deterministic result: denoised, not left at noise level
    assert 0.25 < out.std() / reference.std() < 4


@pytest.mark.parametrize("sampler", SAMPLER_NAMES)
def test_every_sampler_runs_with_the_normal_scheduler(sd1, sampler):
    assert torch.isfinite(_run(sd1, sampler, steps=2)).all()


@pytest.mark.parametrize("scheduler", SCHEDULER_NAMES)
def test_every_scheduler_runs_with_euler(sd1, scheduler):
    assert torch.isfinite(_run(sd1, "euler", scheduler, steps=2)).all()


def test_lcm_runs_with_the_karras_scheduler_as_comfyui_s_does(sd1):
    assert torch.isfinite(_run(sd1, "lcm", "karras", steps=2)).all()


def test_unknown_sampler_is_a_clear_error(sd1):
    with pytest.raises(SamplingError, match="unknown sampler 'nope'"):
        _run(sd1, "nope")


def test_partial_denoise_builds_a_longer_schedule_and_runs_its_tail():
    assert ksampler_steps("euler", "normal", 10, 0.5) == ksampler_steps("euler", "normal", 20)[-11:]


def test_partial_denoise_stays_close_to_the_input_latent(sd1):
    start = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    light = _run(sd1, latent={"samples": start}, denoise=0.2, steps=4)
    heavy = _run(sd1, latent={"samples": start}, denoise=1.0, steps=4)
    assert (light - start).abs().mean() < (heavy - start).abs().mean()


def test_zero_denoise_returns_the_latent_unchanged(sd1):
    start = torch.randn(1, 4, 8, 8)
    assert torch.equal(_run(sd1, latent={"samples": start}, denoise=0.0), start)


def test_advanced_split_with_leftover_noise_continues_where_it_stopped(sd1):
    first = _run(sd1, steps=4, last_step=2, force_full_denoise=False)
    finished = _run(sd1, steps=4, start_step=2, add_noise=False, latent={"samples": first})
    whole = _run(sd1, steps=4)
    assert torch.allclose(finished, whole, atol=1e-4)


def test_latent_with_wrong_channel_count_is_a_clear_error(sd1):
    with pytest.raises(SamplingError, match="3 channels"):
        _run(sd1, latent={"samples": torch.zeros(1, 3, 8, 8)})


def test_sd2_v_prediction_model_samples(manager, tiny):
    model, clip, _ = manager.load_checkpoint(tiny("sd2_v").checkpoint)
    assert model.prediction_type == "v_prediction"
    out = sample(model, seed=1, steps=2, cfg=5.0, sampler_name="euler", scheduler="normal",
                 positive=encode(clip, "a horse"), negative=encode(clip, ""),
                 latent={"samples": torch.zeros(1, 4, 8, 8)})["samples"]
    assert torch.isfinite(out).all()


def test_conditioning_from_another_family_is_a_clear_error(manager, tiny):
    model = manager.load_checkpoint(tiny("sd1").checkpoint)[0]
    clip = manager.load_checkpoint(tiny("sdxl").checkpoint)[1]
    with pytest.raises(SamplingError, match="96 wide.*expects 32"):
        sample(model, seed=1, steps=1, cfg=5.0, sampler_name="euler", scheduler="normal",
               positive=encode(clip, "a"), negative=encode(clip, ""), latent={"samples": torch.zeros(1, 4, 8, 8)})


def test_the_ksampler_node_offers_exactly_the_samplers_it_can_run():
    from nodes.sampling import SAMPLER_NAMES as OFFERED

    assert sorted(OFFERED) == sorted(SAMPLER_NAMES)


@pytest.mark.parametrize("name", ["dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde"])
def test_gpu_variants_on_the_cpu_sample_exactly_like_their_base_names(sd1, name):
    # ComfyUI's _gpu names build their Brownian path on the latent's device: the CPU here
    assert torch.equal(_run(sd1, f"{name}_gpu"), _run(sd1, name))


@pytest.mark.parametrize("name", ["dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde", "euler_ancestral"])
def test_step_noise_follows_the_seed_even_without_added_noise(sd1, name):
    noisy = {"samples": torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3)) * 14.6}
    a = _run(sd1, name, seed=1, add_noise=False, latent=noisy)
    again = _run(sd1, name, seed=1, add_noise=False, latent=noisy)
    b = _run(sd1, name, seed=2, add_noise=False, latent=noisy)
    assert torch.equal(a, again) and not torch.allclose(a, b)


def test_advanced_end_step_cuts_the_schedule_and_lands_on_zero_when_forced():
    full = ksampler_steps("euler", "karras", 6)
    assert ksampler_steps("euler", "karras", 6, last_step=3) == full[:3] + [0.0]
    assert ksampler_steps("euler", "karras", 6, last_step=3, force_full_denoise=False) == full[:4]


def test_advanced_start_step_at_or_past_the_end_leaves_nothing_to_do(sd1):
    assert ksampler_steps("euler", "normal", 4, start_step=4) == []
    start = torch.randn(1, 4, 8, 8)
    assert torch.equal(_run(sd1, latent={"samples": start}, steps=4, start_step=4), start)


@pytest.mark.parametrize("name", ["dpm_2", "dpm_2_ancestral", "uni_pc", "uni_pc_bh2"])
def test_ksampler_drops_the_second_to_last_sigma_for_the_samplers_comfyui_drops_it_for(name):
    longer = ksampler_steps("euler", "normal", 5)
    assert ksampler_steps(name, "normal", 4) == longer[:-2] + longer[-1:]


def test_v_prediction_model_runs_every_scheduler(manager, tiny):
    model, clip, _ = manager.load_checkpoint(tiny("sd2_v").checkpoint)
    for scheduler in SCHEDULER_NAMES:
        out = sample(model, seed=1, steps=2, cfg=5.0, sampler_name="dpmpp_2m", scheduler=scheduler,
                     positive=encode(clip, "a horse"), negative=encode(clip, ""),
                     latent={"samples": torch.zeros(1, 4, 8, 8)})["samples"]
        assert torch.isfinite(out).all(), scheduler


def test_uni_pc_and_uni_pc_bh2_are_different_solvers(sd1):
    bh1, bh2 = _run(sd1, "uni_pc", steps=4), _run(sd1, "uni_pc_bh2", steps=4)
    assert torch.isfinite(bh1).all() and torch.isfinite(bh2).all()
    assert not torch.allclose(bh1, bh2)
