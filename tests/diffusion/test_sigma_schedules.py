"""Loom's σ schedules are ComfyUI's: each scheduler's formula is written out here again,
independently and in float64 (from ComfyUI's comfy/samplers.py and k-diffusion's
sampling.py, cited per function), on the SD1 training schedule, and Loom's σ must equal
them to 1e-6 (relative) for several step counts and denoise values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from diffusion.errors import SamplingError
from diffusion.sigma_schedules import (SCHEDULER_NAMES, basic_scheduler_sigmas, comfy_sigmas, initial_noise_scale,
                                       ksampler_sigmas)

STEPS = (1, 2, 3, 7, 20, 33)


def _training_sigmas() -> np.ndarray:
    # ModelSamplingDiscrete._register_schedule with make_beta_schedule("linear"): √β evenly
    # spaced from √0.00085 to √0.012 over 1000 steps, squared; σ = √((1 − ᾱ)/ᾱ)
    betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000) ** 2
    ac = np.cumprod(1 - betas)
    return np.sqrt((1 - ac) / ac)


SIGMAS = _training_sigmas()
LOG_SIGMAS = np.log(SIGMAS)


def _sigma_at(t: float) -> float:
    # ModelSamplingDiscrete.sigma: log σ interpolated between floor(t) and ceil(t)
    t = min(max(t, 0.0), 999.0)
    lo, hi = math.floor(t), math.ceil(t)
    w = t - lo
    return math.exp((1 - w) * LOG_SIGMAS[lo] + w * LOG_SIGMAS[hi])


def _normal(n: int) -> list[float]:
    # samplers.normal_scheduler (sgm=False): timesteps linspace(999, 0, n), σ(t), then 0
    return [_sigma_at(t) for t in np.linspace(999, 0, n)] + [0.0]


def _sgm_uniform(n: int) -> list[float]:
    # samplers.normal_scheduler (sgm=True): linspace(999, 0, n + 1) without its last, then 0
    return [_sigma_at(t) for t in np.linspace(999, 0, n + 1)[:-1]] + [0.0]


def _karras(n: int) -> list[float]:
    # k_diffusion.sampling.get_sigmas_karras(n, σ_min, σ_max, rho=7), append_zero; its ramp is a
    # float32 tensor, and the 7th power magnifies float32 rounding past 1e-6, so float32 here too
    # (σ_min, σ_max and their 7th roots are Python floats of the float32 σ; the ramp float32)
    lo, hi = float(np.float32(SIGMAS[0])) ** (1 / 7), float(np.float32(SIGMAS[-1])) ** (1 / 7)
    ramp = np.linspace(0, 1, n).astype(np.float32)
    return [float(v) for v in (np.float32(hi) + ramp * np.float32(lo - hi)) ** np.float32(7)] + [0.0]


def _exponential(n: int) -> list[float]:
    # k_diffusion.sampling.get_sigmas_exponential: evenly spaced in log σ, append_zero
    return [math.exp(v) for v in np.linspace(math.log(SIGMAS[-1]), math.log(SIGMAS[0]), n)] + [0.0]


def _simple(n: int) -> list[float]:
    # samplers.simple_scheduler: sigmas[-(1 + int(i · 1000/n))] for i < n, then 0
    return [SIGMAS[-(1 + int(i * (1000 / n)))] for i in range(n)] + [0.0]


def _ddim_uniform(n: int) -> list[float]:
    # samplers.ddim_scheduler: sigmas[1], sigmas[1 + s], … (s = max(1000 // n, 1)), reversed, then 0
    stride = max(1000 // n, 1)
    return [SIGMAS[t] for t in range(1, 1000, stride)][::-1] + [0.0]


def _beta(n: int) -> list[float]:
    # samplers.beta_scheduler(α=β=0.6): timesteps rint(ppf(1 − i/n) · 999), consecutive repeats dropped
    ts = np.rint(stats.beta.ppf(1 - np.arange(n) / n, 0.6, 0.6) * 999).astype(int)
    kept = [t for i, t in enumerate(ts) if i == 0 or t != ts[i - 1]]
    return [SIGMAS[t] for t in kept] + [0.0]


COMFY = {"normal": _normal, "karras": _karras, "exponential": _exponential, "sgm_uniform": _sgm_uniform,
         "simple": _simple, "ddim_uniform": _ddim_uniform, "beta": _beta}


def _assert_same(ours: list[float], theirs: list[float]) -> None:
    assert len(ours) == len(theirs)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-9)


def test_every_loom_scheduler_has_a_comfyui_formula_here():
    assert set(SCHEDULER_NAMES) == set(COMFY)


@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("scheduler", SCHEDULER_NAMES)
def test_scheduler_gives_comfyui_s_sigmas(scheduler, steps):
    _assert_same(comfy_sigmas(scheduler, steps), COMFY[scheduler](steps))


@pytest.mark.parametrize("denoise", [0.3, 0.5, 0.75, 0.99])
@pytest.mark.parametrize("scheduler", SCHEDULER_NAMES)
def test_basic_scheduler_below_full_denoise_is_the_tail_of_the_longer_comfyui_schedule(scheduler, denoise):
    # nodes_custom_sampler.BasicScheduler: calculate_sigmas(int(steps / denoise))[-(steps + 1):]
    steps = 7
    _assert_same(basic_scheduler_sigmas(scheduler, steps, denoise), COMFY[scheduler](int(steps / denoise))[-8:])


def test_basic_scheduler_at_zero_denoise_has_no_sigmas():
    assert basic_scheduler_sigmas("normal", 5, 0.0) == []


@pytest.mark.parametrize("denoise", [1.0, 0.6])
@pytest.mark.parametrize("sampler", ["dpm_2", "dpm_2_ancestral", "uni_pc", "uni_pc_bh2"])
def test_ksampler_drops_the_penultimate_sigma_of_a_one_step_longer_schedule(sampler, denoise):
    # samplers.KSampler.calculate_sigmas with DISCARD_PENULTIMATE_SIGMA_SAMPLERS, then set_steps' tail
    steps = 6
    longer = _karras(int(steps / denoise) + 1)
    expected = (longer[:-2] + longer[-1:])[-(steps + 1):]
    _assert_same(ksampler_sigmas(sampler, "karras", steps, denoise), expected)


@pytest.mark.parametrize("sampler", ["euler", "dpmpp_2m", "heun", "lms", "dpmpp_sde"])
def test_ksampler_uses_basic_scheduler_s_sigmas_for_the_other_samplers(sampler):
    for denoise in (1.0, 0.45):
        assert ksampler_sigmas(sampler, "normal", 9, denoise) == basic_scheduler_sigmas("normal", 9, denoise)


def test_ksampler_counts_a_denoise_above_0_9999_as_full():
    # samplers.KSampler.set_steps: `denoise > 0.9999` builds the plain schedule
    assert ksampler_sigmas("euler", "normal", 20000, 0.99995) == comfy_sigmas("normal", 20000)


def test_initial_noise_is_scaled_by_sqrt_one_plus_sigma_squared_from_the_top_of_the_schedule():
    # model_sampling.EPS.noise_scaling with max_denoise (KSAMPLER.max_denoise: σ₀ ≈ σ_max)
    top = float(SIGMAS[-1])
    assert initial_noise_scale(top, top) == pytest.approx(math.sqrt(1 + top ** 2), rel=1e-12)
    assert initial_noise_scale(4.0, top) == 4.0


def test_unknown_scheduler_and_zero_steps_are_clear_errors():
    with pytest.raises(SamplingError, match="unknown scheduler 'nope'"):
        comfy_sigmas("nope", 4)
    with pytest.raises(SamplingError, match="steps must be at least 1"):
        comfy_sigmas("normal", 0)
