"""The k-diffusion step rules SamplerCustom runs, each checked against an independent
reference on a toy denoiser in double precision, on hand-written σ schedules."""

from __future__ import annotations

import math

import pytest
import torch

from diffusion.k_steps import noise_source, run_steps, step_rule
from diffusion.k_steps_noise import BrownianTreeNoise, SeededGaussian

#: a fixed linear map: enough structure that every solver order and correction shows
_MIX = torch.randn(6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.3


def toy_denoiser(x, sigma: float):
    """D(x, σ): a fixed, σ-dependent linear map standing in for the model."""
    return (x + 0.2 * math.tanh(sigma) * (x @ _MIX.to(x.dtype))) / (1 + sigma ** 2)


def _start(sigma_max: float):
    return torch.randn(2, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * sigma_max


def _no_noise(sigma, sigma_next):
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
        return next(w for s, w in self.points if math.isclose(s, sigma, rel_tol=1e-6))

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
    path = _PinnedPath(sigmas, draws)
    ours, _ = run_steps(step_rule(name, sigmas), toy_denoiser, x.clone(), sigmas, path.noise_sampler)
    reference = _diffusers_dpmpp_sde(sigmas, x, path)
    # (the log-σ midpoint is float32 here, as ComfyUI's; diffusers' is float64)
    assert (ours - reference).abs().max() <= 1e-6 * reference.abs().max()


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


# -- the SDE samplers' noise: k-diffusion's Brownian tree, built here independently ------------

#: torchsde warns when a float32 query falls outside its bounds rounded to 6 decimals (and clamps it)
_TORCHSDE_ROUNDING = pytest.mark.filterwarnings("ignore:Should have:UserWarning")


class _KDiffusionBrownianNoise:
    """k-diffusion's ``BrownianTreeNoiseSampler`` as ComfyUI builds it for dpmpp_sde,
    dpmpp_2m_sde and dpmpp_3m_sde (comfy/k_diffusion/sampling.py: ``BatchedBrownianTree``
    with ``cpu=True``, one integer seed → one ``torchsde.BrownianTree`` for the whole batch,
    identity transform), written out from those facts: the tree spans [min σ > 0, max σ] of
    the float32 sigmas, starts at zeros shaped like x on the CPU, takes the seed as its
    entropy; a query sorts the interval, reads the tree at float32 times, flips the sign for
    a step down, casts to the sigmas' dtype and divides by sqrt|σ_next − σ|."""

    def __init__(self, x, sigmas, seed: int):
        import torchsde

        sigma_min, sigma_max = sigmas[sigmas > 0].min(), sigmas.max()
        self.tree = torchsde.BrownianTree(sigma_min.cpu(), torch.zeros_like(x).cpu(), sigma_max.cpu(), entropy=seed)

    def __call__(self, sigma, sigma_next):
        sigma, sigma_next = torch.as_tensor(sigma), torch.as_tensor(sigma_next)
        low, high, sign = (sigma, sigma_next, 1) if sigma < sigma_next else (sigma_next, sigma, -1)
        w = self.tree(low.cpu().float(), high.cpu().float()).to(dtype=sigma.dtype) * sign
        return w / (sigma_next - sigma).abs().sqrt()


SDE_SIGMAS = [14.614642, 6.0807, 2.7124, 1.1803, 0.4556, 0.1359, 0.0292, 0.0]


def _sigmas32(values=SDE_SIGMAS):
    return torch.tensor(values, dtype=torch.float32)


@_TORCHSDE_ROUNDING
@pytest.mark.parametrize("seed", [0, 42, 2 ** 63 + 5])
def test_brownian_noise_is_k_diffusions_brownian_tree_noise_for_the_same_seed_and_intervals(seed):
    sigmas = _sigmas32()
    x = torch.zeros(2, 4, 8, 8)
    values = [float(s) for s in sigmas]
    ours = noise_source("dpmpp_2m_sde", x, values, seed)
    reference = _KDiffusionBrownianNoise(x, sigmas, seed)
    intervals = list(zip(sigmas[:-2], sigmas[1:-1]))  # every step down that draws noise
    intervals += [(a, ((a.log() + b.log()) / 2).exp()) for a, b in intervals]  # dpmpp_sde's half steps
    for a, b in intervals:
        assert torch.equal(ours(float(a), float(b)), reference(a, b))


def test_brownian_noise_of_nested_intervals_is_one_path_s_increments():
    x = torch.zeros(20_000)
    noise = BrownianTreeNoise(x, [4.0, 1.0, 0.0], seed=3)
    first, whole = noise(4.0, 2.0), noise(4.0, 1.0)
    # unit variance each; correlated as W(2)−W(4) is part of W(1)−W(4): sqrt(2/3)
    assert abs(float(first.var()) - 1) < 0.05 and abs(float(whole.var()) - 1) < 0.05
    assert abs(float((first * whole).mean()) - math.sqrt(2 / 3)) < 0.03


def test_brownian_noise_depends_on_the_seed():
    x = torch.zeros(2, 4, 8, 8)
    a = noise_source("dpmpp_sde", x, SDE_SIGMAS, 1)(6.0807, 2.7124)
    b = noise_source("dpmpp_sde", x, SDE_SIGMAS, 2)(6.0807, 2.7124)
    again = noise_source("dpmpp_sde", x, SDE_SIGMAS, 1)(6.0807, 2.7124)
    assert torch.equal(a, again) and not torch.allclose(a, b)


# -- the SDE recurrences, as k-diffusion defines them, with that noise -----------------------

def _kd_dpmpp_2m_sde(x, sigmas, noise):
    """comfy/k_diffusion/sampling.py ``sample_dpmpp_2m_sde``, eta 1, s_noise 1,
    solver_type 'midpoint' (ComfyUI's default), for an ε model: λ = −log σ, α_t = 1."""
    eta, old, h_last = 1.0, None, None
    for i in range(len(sigmas) - 1):
        denoised = toy_denoiser(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            lam_s, lam_t = -sigmas[i].log(), -sigmas[i + 1].log()
            h = lam_t - lam_s
            h_eta = h * (eta + 1)
            x = sigmas[i + 1] / sigmas[i] * (-h * eta).exp() * x + (-h_eta).expm1().neg() * denoised
            if old is not None:
                r = h_last / h
                x = x + 0.5 * (-h_eta).expm1().neg() * (1 / r) * (denoised - old)
            x = x + noise(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-2 * h * eta).expm1().neg().sqrt()
            h_last = h
        old = denoised
    return x


def _kd_dpmpp_3m_sde(x, sigmas, noise):
    """comfy/k_diffusion/sampling.py ``sample_dpmpp_3m_sde``, eta 1, s_noise 1, ε model."""
    eta = 1.0
    d_1 = d_2 = h_1 = h_2 = None
    for i in range(len(sigmas) - 1):
        denoised = toy_denoiser(x, sigmas[i])
        h = None
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            lam_s, lam_t = -sigmas[i].log(), -sigmas[i + 1].log()
            h = lam_t - lam_s
            h_eta = h * (eta + 1)
            x = sigmas[i + 1] / sigmas[i] * (-h * eta).exp() * x + (-h_eta).expm1().neg() * denoised
            if h_2 is not None:
                r0, r1 = h_1 / h, h_2 / h
                d1_0, d1_1 = (denoised - d_1) / r0, (d_1 - d_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                phi_3 = phi_2 / h_eta - 0.5
                x = x + phi_2 * d1 - phi_3 * d2
            elif h_1 is not None:
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                x = x + phi_2 * (denoised - d_1) / (h_1 / h)
            x = x + noise(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-2 * h * eta).expm1().neg().sqrt()
        d_1, d_2 = denoised, d_1
        h_1, h_2 = h, h_1
    return x


def _kd_dpmpp_sde(x, sigmas, noise):
    """comfy/k_diffusion/sampling.py ``sample_dpmpp_sde``, eta 1, s_noise 1, r ½, ε model."""
    def ancestral(sigma_from, sigma_to):
        up = min(sigma_to, (sigma_to ** 2 * (sigma_from ** 2 - sigma_to ** 2) / sigma_from ** 2) ** 0.5)
        return (sigma_to ** 2 - up ** 2) ** 0.5, up

    for i in range(len(sigmas) - 1):
        denoised = toy_denoiser(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        lam_s, lam_t = -sigmas[i].log(), -sigmas[i + 1].log()
        h = lam_t - lam_s
        lam_mid = lam_s + 0.5 * h
        sigma_mid = lam_mid.neg().exp()
        sd, su = ancestral(lam_s.neg().exp(), sigma_mid)
        h_ = -sd.log() - lam_s
        x_2 = (-h_).exp() * x - (-h_).expm1() * denoised + noise(sigmas[i], sigma_mid) * su
        denoised_2 = toy_denoiser(x_2, sigma_mid)
        sd, su = ancestral(lam_s.neg().exp(), lam_t.neg().exp())
        h_ = -sd.log() - lam_s
        x = (-h_).exp() * x - (-h_).expm1() * denoised_2 + noise(sigmas[i], sigmas[i + 1]) * su
    return x


REFERENCES = {"dpmpp_2m_sde": _kd_dpmpp_2m_sde, "dpmpp_3m_sde": _kd_dpmpp_3m_sde, "dpmpp_sde": _kd_dpmpp_sde}


@_TORCHSDE_ROUNDING
@pytest.mark.parametrize("stop", ["to 0", "at 0.1359"])
@pytest.mark.parametrize("name", list(REFERENCES) + [f"{n}_gpu" for n in REFERENCES])
def test_sde_sampler_matches_k_diffusion_s_recurrence_with_its_brownian_noise(name, stop):
    sigmas = _sigmas32(SDE_SIGMAS if stop == "to 0" else SDE_SIGMAS[:-2])
    x = _start(float(sigmas[0])).float()
    seed = 1234
    reference = REFERENCES[name.removesuffix("_gpu")](x.clone(), sigmas, _KDiffusionBrownianNoise(x, sigmas, seed))
    values = [float(s) for s in sigmas]
    ours, _ = run_steps(step_rule(name, values), toy_denoiser, x.clone(), values,
                        noise_source(name, x, values, seed))
    assert (ours - reference).abs().max() <= 1e-6 * reference.abs().max()


def test_dpmpp_2m_sde_is_the_midpoint_variant_not_heun():
    # with 'heun' the second-order term is ((−expm1(−h_η))/(−h_η) + 1)·(D − D_old)/r instead
    sigmas = _sigmas32()
    x = _start(float(sigmas[0])).float()
    values = [float(s) for s in sigmas]
    zero = lambda a, b: torch.zeros_like(x)  # noqa: E731 - no noise: only the deterministic part differs
    ours, _ = run_steps(step_rule("dpmpp_2m_sde", values), toy_denoiser, x.clone(), values, zero)
    assert (ours - _kd_dpmpp_2m_sde(x.clone(), sigmas, zero)).abs().max() <= 1e-6 * ours.abs().max()


# -- the ancestral samplers' noise: ComfyUI's default_noise_sampler ------------------------------

def test_ancestral_noise_is_comfyui_s_default_noise_sampler_seeded_with_seed_plus_one_on_the_cpu():
    # comfy/k_diffusion/sampling.py default_noise_sampler(x, seed): a generator on x's device,
    # seeded with seed + 1 when that is the CPU; torch.randn(x.size(), dtype=x.dtype) per call
    x = torch.zeros(2, 4, 8, 8)
    ours = noise_source("euler_ancestral", x, SDE_SIGMAS, 77)
    generator = torch.Generator().manual_seed(78)
    for a, b in zip(SDE_SIGMAS[:-1], SDE_SIGMAS[1:]):
        assert torch.equal(ours(a, b), torch.randn(x.size(), dtype=x.dtype, generator=generator))


def test_euler_ancestral_matches_k_diffusion_s_recurrence_with_that_noise():
    sigmas = SDE_SIGMAS
    x = _start(sigmas[0])
    ours, _ = run_steps(step_rule("euler_ancestral", sigmas), toy_denoiser, x.clone(), sigmas,
                        SeededGaussian(x, 5))
    generator = torch.Generator().manual_seed(6)
    expected = x.clone()
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):  # k-diffusion sample_euler_ancestral, eta 1
        denoised = toy_denoiser(expected, s)
        up = min(s_next, (s_next ** 2 * (s ** 2 - s_next ** 2) / s ** 2) ** 0.5)
        down = (s_next ** 2 - up ** 2) ** 0.5
        if down == 0:
            expected = denoised
        else:
            noise = torch.randn(x.size(), dtype=x.dtype, generator=generator)
            expected = expected + (expected - denoised) / s * (down - s) + noise * up
    assert (ours - expected).abs().max() <= 1e-12 * expected.abs().max()


# -- CFG++ samplers against ComfyUI's recurrences, on a toy guided denoiser ----------------------

_MIX_UNCOND = torch.randn(6, 6, generator=torch.Generator().manual_seed(11), dtype=torch.float64) * 0.3


class ToyGuided:
    """A guided denoiser: the toy prediction (conditional) and another linear map
    (unconditional), combined with CFG; ``with_uncond`` also returns the unconditional one."""

    cfg = 0.8  # CFG++ uses a small scale

    def uncond(self, x, sigma: float):
        return (x + 0.3 * math.tanh(sigma) * (x @ _MIX_UNCOND)) / (1 + sigma ** 2)

    def with_uncond(self, x, sigma: float):
        uncond = self.uncond(x, sigma)
        return uncond + self.cfg * (toy_denoiser(x, sigma) - uncond), uncond

    def __call__(self, x, sigma: float):
        return self.with_uncond(x, sigma)[0]


def _kd_euler_ancestral_cfg_pp(x, sigmas, noise, eta):
    """comfy/k_diffusion/sampling.py ``sample_euler_ancestral_cfg_pp`` (``sample_euler_cfg_pp``
    is eta 0, s_noise 0), ε model: α = 1."""
    D = ToyGuided()
    for i in range(len(sigmas) - 1):
        denoised, uncond = D.with_uncond(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        d = (x - uncond) / sigmas[i]
        if eta:
            up = min(sigmas[i + 1], eta * (sigmas[i + 1] ** 2 * (sigmas[i] ** 2 - sigmas[i + 1] ** 2)
                                           / sigmas[i] ** 2) ** 0.5)
            down = (sigmas[i + 1] ** 2 - up ** 2) ** 0.5
        else:
            down, up = sigmas[i + 1], 0.0
        x = denoised + down * d
        if eta > 0:
            x = x + noise(sigmas[i], sigmas[i + 1]) * up
    return x


def _kd_dpmpp_2s_ancestral_cfg_pp(x, sigmas, noise):
    """comfy/k_diffusion/sampling.py ``sample_dpmpp_2s_ancestral_cfg_pp``, eta 1, ε model."""
    D = ToyGuided()
    for i in range(len(sigmas) - 1):
        denoised, uncond = D.with_uncond(x, sigmas[i])
        guidance_vector = denoised - uncond
        s, s_next = sigmas[i], sigmas[i + 1]
        up = min(s_next, (s_next ** 2 * (s ** 2 - s_next ** 2) / s ** 2) ** 0.5)
        down = (s_next ** 2 - up ** 2) ** 0.5
        if down == 0:
            x = x + (x - uncond) / s * (down - s)
        else:
            t, t_next = -math.log(s), -math.log(down)
            h = t_next - t
            mid = t + 0.5 * h
            x_2 = (math.exp(-mid) / math.exp(-t)) * x - math.expm1(-h * 0.5) * uncond
            _, uncond_2 = D.with_uncond(x_2, math.exp(-mid))
            x = (math.exp(-t_next) / math.exp(-t)) * x - math.expm1(-h) * uncond_2
        if s_next > 0:
            x = x + noise(s, s_next) * up
        x = x + guidance_vector
    return x


def _kd_dpmpp_2m_cfg_pp(x, sigmas, noise):
    """comfy/k_diffusion/sampling.py ``sample_dpmpp_2m_cfg_pp``."""
    D = ToyGuided()
    old_uncond = None
    for i in range(len(sigmas) - 1):
        denoised, uncond = D.with_uncond(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            t, t_next = -math.log(sigmas[i]), -math.log(sigmas[i + 1])
            h = t_next - t
            if old_uncond is None:
                mix = -math.exp(-h) * uncond
            else:
                h_last = t - (-math.log(sigmas[i - 1]))
                r = h_last / h
                mix = -math.exp(-h) * uncond - math.expm1(-h) * (1 / (2 * r)) * (denoised - old_uncond)
            x = denoised + mix + math.exp(-h) * x
        old_uncond = uncond
    return x


CFG_PP_REFERENCES = {
    "euler_cfg_pp": lambda x, sigmas, noise: _kd_euler_ancestral_cfg_pp(x, sigmas, noise, eta=0.0),
    "euler_ancestral_cfg_pp": lambda x, sigmas, noise: _kd_euler_ancestral_cfg_pp(x, sigmas, noise, eta=1.0),
    "dpmpp_2s_ancestral_cfg_pp": _kd_dpmpp_2s_ancestral_cfg_pp,
    "dpmpp_2m_cfg_pp": _kd_dpmpp_2m_cfg_pp,
}


@pytest.mark.parametrize("schedule", ["7 steps to 0", "4 steps stopping at 0.3"])
@pytest.mark.parametrize("name", CFG_PP_REFERENCES)
def test_cfg_pp_sampler_matches_comfyui_s_recurrence(name, schedule):
    sigmas = SCHEDULES[schedule]
    x = _start(sigmas[0])
    reference = CFG_PP_REFERENCES[name](x.clone(), sigmas, SeededGaussian(x, 9))
    ours, _ = run_steps(step_rule(name, sigmas), ToyGuided(), x.clone(), sigmas, noise_source(name, x, sigmas, 9))
    assert (ours - reference).abs().max() <= 1e-12 * reference.abs().max()


@pytest.mark.parametrize("name", CFG_PP_REFERENCES)
def test_cfg_pp_samplers_step_with_the_unconditional_prediction(name):
    # the same guided prediction with another unconditional one must change the result
    class OtherUncond(ToyGuided):
        def with_uncond(self, x, sigma):
            denoised, uncond = super().with_uncond(x, sigma)
            return denoised, uncond * 0.5

    sigmas = SCHEDULES["7 steps to 0"][:-1]  # stop with noise left: the last step lands on the guided prediction
    x = _start(sigmas[0])
    a, _ = run_steps(step_rule(name, sigmas), ToyGuided(), x.clone(), sigmas, noise_source(name, x, sigmas, 1))
    b, _ = run_steps(step_rule(name, sigmas), OtherUncond(), x.clone(), sigmas, noise_source(name, x, sigmas, 1))
    assert (a - b).abs().max() > 1e-3
