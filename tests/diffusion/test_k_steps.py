"""The k-diffusion step rules SamplerCustom runs, each checked against an independent
reference on a toy denoiser in double precision, on hand-written σ schedules."""

from __future__ import annotations

import math

import pytest
import torch

from diffusion.k_steps import brownian_pair, run_steps, step_rule

#: a fixed linear map: enough structure that every solver order and correction shows
_MIX = torch.randn(6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.3


def toy_denoiser(x, sigma: float):
    """D(x, σ): a fixed, σ-dependent linear map standing in for the model."""
    return (x + 0.2 * math.tanh(sigma) * (x @ _MIX)) / (1 + sigma ** 2)


def _start(sigma_max: float):
    return torch.randn(2, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * sigma_max


def _no_noise():
    raise AssertionError("a deterministic sampler drew noise")


# -- uni_pc / uni_pc_bh2 against diffusers' UniPCMultistepScheduler -----------------------------

def _diffusers_unipc(variant: str, sigmas: list[float], x_ve):
    """diffusers' UniPC (order 3, data prediction, lower order at the end) on ``sigmas``,
    fed the toy denoiser in its variance-preserving space.  diffusers takes no custom VE σ,
    so its σ table is set directly; a final 0 becomes 0.001, as ComfyUI's uni_pc does."""
    from diffusers import UniPCMultistepScheduler

    scheduler = UniPCMultistepScheduler(solver_order=3, solver_type=variant, prediction_type="sample",
                                        lower_order_final=True)
    steps = len(sigmas) - 1
    scheduler.set_timesteps(steps)
    table = sigmas[:-1] + [sigmas[-1] or 0.001]
    scheduler.sigmas = torch.tensor(table, dtype=torch.float64)
    scheduler.set_begin_index(0)

    def alpha(s):
        return 1 / math.sqrt(1 + s * s)

    x = x_ve * alpha(table[0])
    for i in range(steps):
        x = scheduler.step(toy_denoiser(x / alpha(table[i]), table[i]), scheduler.timesteps[i], x).prev_sample
    return x / alpha(table[-1])


SCHEDULES = {
    "7 steps to 0": [14.6, 7.0, 3.1, 1.4, 0.6, 0.2, 0.05, 0.0],
    "4 steps stopping at 0.3": [9.0, 4.0, 1.5, 0.7, 0.3],
    "3 steps": [14.6, 2.0, 0.4, 0.0],
    "2 steps": [5.0, 1.0, 0.0],
}


@pytest.mark.parametrize("schedule", SCHEDULES, ids=list(SCHEDULES))
@pytest.mark.parametrize("name,variant", [("uni_pc", "bh1"), ("uni_pc_bh2", "bh2")])
def test_uni_pc_matches_diffusers_unipc_on_a_custom_schedule(name, variant, schedule):
    sigmas = SCHEDULES[schedule]
    x = _start(sigmas[0])
    ours, _ = run_steps(step_rule(name, sigmas), toy_denoiser, x.clone(), sigmas, _no_noise)
    reference = _diffusers_unipc(variant, sigmas, x)
    assert (ours - reference).abs().max() <= 1e-9 * reference.abs().max()


def test_uni_pc_bh1_and_bh2_are_different_solvers():
    sigmas = SCHEDULES["7 steps to 0"]
    x = _start(sigmas[0])
    bh1, _ = run_steps(step_rule("uni_pc", sigmas), toy_denoiser, x.clone(), sigmas, _no_noise)
    bh2, _ = run_steps(step_rule("uni_pc_bh2", sigmas), toy_denoiser, x.clone(), sigmas, _no_noise)
    assert (bh1 - bh2).abs().max() > 1e-4


def test_one_step_uni_pc_is_a_first_order_step_to_the_final_sigma():
    # (ComfyUI's own uni_pc returns the input untouched for a 1-step schedule; here it steps)
    x = _start(3.0)
    ours, denoised = run_steps(step_rule("uni_pc", [3.0, 0.0]), toy_denoiser, x.clone(), [3.0, 0.0], _no_noise)
    # DPM-Solver-1 in VE space: x_t = (σ_t/σ)·x − expm1(−h)·D with h = log(σ/σ_t), σ_t = 0.001
    h = math.log(3.0 / 0.001)
    expected = (0.001 / 3.0) * x - math.expm1(-h) * toy_denoiser(x, 3.0)
    assert torch.allclose(ours, expected, rtol=0, atol=1e-12) and torch.equal(denoised, toy_denoiser(x, 3.0))


# -- dpmpp_sde against diffusers' DPMSolverSDEScheduler, on the same Brownian path ------------

class _PinnedPath:
    """A Brownian path W(σ) fixed at every σ and log-σ midpoint a dpmpp_sde run visits, built
    from a list of standard normal draws; its ``noise_sampler`` is k-diffusion's contract
    (W(σ_to) − W(σ_from)) / sqrt|σ_to − σ_from|."""

    def __init__(self, sigmas: list[float], draws: list):
        self.points: list[tuple[float, torch.Tensor]] = [(sigmas[0], torch.zeros_like(draws[0]))]
        for i, (s, s_next) in enumerate(zip(sigmas[:-2], sigmas[1:-1])):
            s_mid = math.sqrt(s * s_next)
            w_mid = self.at(s) + draws[2 * i] * math.sqrt(s - s_mid)
            self.points += [(s_mid, w_mid), (s_next, w_mid + draws[2 * i + 1] * math.sqrt(s_mid - s_next))]

    def at(self, sigma: float):
        return next(w for s, w in self.points if math.isclose(s, sigma, rel_tol=1e-12))

    def noise_sampler(self, sigma_from, sigma_to):
        a, b = float(sigma_from), float(sigma_to)
        return (self.at(b) - self.at(a)) / math.sqrt(abs(b - a))


def _diffusers_dpmpp_sde(sigmas: list[float], x, path: _PinnedPath):
    from diffusers import DPMSolverSDEScheduler

    scheduler = DPMSolverSDEScheduler(prediction_type="epsilon")
    scheduler.set_timesteps(len(sigmas) - 1)
    table = torch.tensor(sigmas, dtype=torch.float64)  # its layout: σ0, σ1, σ1, σ2, σ2, ..., 0
    scheduler.sigmas = torch.cat([table[:1], table[1:-1].repeat_interleave(2), table[-1:]])
    scheduler.set_begin_index(0)
    scheduler.noise_sampler = path.noise_sampler
    for t in scheduler.timesteps:
        midpoint = scheduler.mid_point_sigma  # set between the two halves of a step
        sigma = float(midpoint) if midpoint is not None else float(scheduler.sigmas[scheduler.step_index or 0])
        x = scheduler.step((x - toy_denoiser(x, sigma)) / sigma, t, x).prev_sample
    return x


@pytest.mark.parametrize("name", ["dpmpp_sde", "dpmpp_sde_gpu"])
def test_dpmpp_sde_matches_diffusers_dpm_solver_sde_on_the_same_brownian_path(name):
    sigmas = [14.6, 7.0, 3.1, 1.4, 0.6, 0.0]
    generator = torch.Generator().manual_seed(5)
    draws = [torch.randn(2, 6, generator=generator, dtype=torch.float64) for _ in range(2 * (len(sigmas) - 2))]
    x = _start(sigmas[0])
    feed = iter(draws)
    ours, _ = run_steps(step_rule(name, sigmas), toy_denoiser, x.clone(), sigmas, lambda: next(feed))
    reference = _diffusers_dpmpp_sde(sigmas, x, _PinnedPath(sigmas, draws))
    assert next(feed, None) is None  # every draw was used: two per step, none for the last (Euler) step
    assert (ours - reference).abs().max() <= 1e-9 * reference.abs().max()


def test_the_two_noises_of_a_dpmpp_sde_step_are_increments_of_one_brownian_path():
    generator = torch.Generator().manual_seed(9)
    s, s_mid, s_next = 4.0, 2.0, 1.0
    first, whole = brownian_pair(lambda: torch.randn(400_000, generator=generator, dtype=torch.float64),
                                 s, s_mid, s_next)
    # unit variance each; correlated as W(σ_mid)−W(σ) is part of W(σ_next)−W(σ)
    assert abs(float(first.var()) - 1) < 0.01 and abs(float(whole.var()) - 1) < 0.01
    expected = math.sqrt((s - s_mid) / (s - s_next))
    assert abs(float((first * whole).mean()) - expected) < 0.01


# -- ipndm against k-diffusion's recurrence, written out ----------------------------------------

def test_ipndm_is_adams_bashforth_in_sigma_warming_up_to_order_4():
    # k-diffusion / ComfyUI ``sample_ipndm`` (from zju-pi/diff-sampler): d = (x − D)/σ, then
    # x += Δσ·(AB weights of order min(4, i+1) over the newest d first); a step to σ 0 returns D
    sigmas = [10.0, 5.0, 2.5, 1.2, 0.5, 0.2, 0.0]
    x = _start(sigmas[0])
    ours, _ = run_steps(step_rule("ipndm", sigmas), toy_denoiser, x.clone(), sigmas, _no_noise)

    def d(x, s):
        return (x - toy_denoiser(x, s)) / s

    s = sigmas
    d0 = d(x, s[0]); x1 = x + (s[1] - s[0]) * d0
    d1 = d(x1, s[1]); x2 = x1 + (s[2] - s[1]) * (3 * d1 - d0) / 2
    d2 = d(x2, s[2]); x3 = x2 + (s[3] - s[2]) * (23 * d2 - 16 * d1 + 5 * d0) / 12
    d3 = d(x3, s[3]); x4 = x3 + (s[4] - s[3]) * (55 * d3 - 59 * d2 + 37 * d1 - 9 * d0) / 24
    d4 = d(x4, s[4]); x5 = x4 + (s[5] - s[4]) * (55 * d4 - 59 * d3 + 37 * d2 - 9 * d1) / 24
    expected = toy_denoiser(x5, s[5])
    assert (ours - expected).abs().max() <= 1e-12 * expected.abs().max()
