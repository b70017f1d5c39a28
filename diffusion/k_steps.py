"""k-diffusion's step rules on an explicit σ schedule (variance-exploding space), and
the loop that runs one over a schedule.  Every sampler the KSampler, KSamplerAdvanced
and SamplerCustom offer runs here; this module also holds their names (SAMPLER_NAMES).

A rule is called as ``rule(D, x, σ, σ_next, noise) -> (x_next, denoised)`` where ``D``
predicts the clean latent at a noise level and ``noise(σ_a, σ_b)`` gives unit-variance
noise for the interval from σ_a to σ_b (k-diffusion's ``noise_sampler``).  Which source
a sampler draws from — seeded Gaussian draws or one seeded Brownian path — is ComfyUI's
choice per sampler (:func:`noise_source`, :mod:`diffusion.k_steps_noise`).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from dataclasses import dataclass

from .errors import SamplingError
from .k_steps_noise import BrownianTreeNoise, NoiseSource, SeededGaussian
from .k_steps_unipc import UniPC


def ancestral_step(sigma_from: float, sigma_to: float, eta: float = 1.0) -> tuple[float, float]:
    """(σ_down, σ_up): where an ancestral step lands deterministically, and the noise it adds."""
    if sigma_to == 0:
        return 0.0, 0.0
    up = min(sigma_to, eta * math.sqrt(sigma_to ** 2 * (sigma_from ** 2 - sigma_to ** 2) / sigma_from ** 2))
    return math.sqrt(sigma_to ** 2 - up ** 2), up


Denoise = Callable[[Any, float], Any]


class _Euler:
    def __call__(self, D: Denoise, x, s: float, s_next: float, noise: NoiseSource):
        denoised = D(x, s)
        return x + (x - denoised) / s * (s_next - s), denoised


class _EulerAncestral:
    def __call__(self, D, x, s, s_next, noise):
        denoised = D(x, s)
        down, up = ancestral_step(s, s_next)
        if down == 0:
            return denoised, denoised
        return x + (x - denoised) / s * (down - s) + noise(s, s_next) * up, denoised


class _Heun:
    def __call__(self, D, x, s, s_next, noise):
        denoised = D(x, s)
        d = (x - denoised) / s
        if s_next == 0:
            return x + d * (s_next - s), denoised
        x_2 = x + d * (s_next - s)
        d_2 = (x_2 - D(x_2, s_next)) / s_next
        return x + (d + d_2) / 2 * (s_next - s), denoised


def _log_midpoint(a: float, b: float) -> float:
    return math.exp((math.log(a) + math.log(b)) / 2)


class _Dpm2:
    """DPM-Solver-2 (k-diffusion's ``sample_dpm_2``); ancestral adds fresh noise."""

    def __init__(self, ancestral: bool):
        self.ancestral = ancestral

    def __call__(self, D, x, s, s_next, noise):
        denoised = D(x, s)
        target, up = ancestral_step(s, s_next) if self.ancestral else (s_next, 0.0)
        d = (x - denoised) / s
        if target == 0:
            x = x + d * (target - s)
        else:
            mid = _log_midpoint(s, target)
            x_2 = x + d * (mid - s)
            d_2 = (x_2 - D(x_2, mid)) / mid
            x = x + d_2 * (target - s)
        if self.ancestral and s_next > 0:
            x = x + noise(s, s_next) * up
        return x, denoised


class _Lms:
    """Linear multistep (order 4) over the σ already visited."""

    order = 4

    def __init__(self, sigmas: Sequence[float]):
        self.sigmas, self.ds, self.i = list(sigmas), [], 0

    def _coeff(self, order: int, i: int, j: int) -> float:
        from scipy import integrate

        t = self.sigmas

        def fn(tau):
            prod = 1.0
            for k in range(order):
                if j != k:
                    prod *= (tau - t[i - k]) / (t[i - j] - t[i - k])
            return prod

        return integrate.quad(fn, t[i], t[i + 1], epsrel=1e-4)[0]

    def __call__(self, D, x, s, s_next, noise):
        denoised = D(x, s)
        self.ds = (self.ds + [(x - denoised) / s])[-self.order:]
        order = min(self.i + 1, self.order)
        coeffs = [self._coeff(order, self.i, j) for j in range(order)]
        x = x + sum(c * d for c, d in zip(coeffs, reversed(self.ds)))
        self.i += 1
        return x, denoised


class _Dpmpp2sAncestral:
    def __call__(self, D, x, s, s_next, noise):
        denoised = D(x, s)
        down, up = ancestral_step(s, s_next)
        if down == 0:
            x = x + (x - denoised) / s * (down - s)
        else:  # a DPM-Solver++(2S) step to sigma_down, then fresh noise
            t, t_next = -math.log(s), -math.log(down)
            h = t_next - t
            s_mid = math.exp(-(t + 0.5 * h))
            x_2 = (s_mid / s) * x - math.expm1(-0.5 * h) * denoised
            denoised_2 = D(x_2, s_mid)
            x = (down / s) * x - math.expm1(-h) * denoised_2
        if s_next > 0:
            x = x + noise(s, s_next) * up
        return x, denoised


def _log_midpoint_f32(s: float, s_next: float) -> float:
    """σ halfway between ``s`` and ``s_next`` in log σ, computed in float32 as ComfyUI's
    dpmpp_sde does: the Brownian path is queried at this exact σ, so its rounding matters."""
    import torch

    lam_s, lam_t = -torch.tensor(s, dtype=torch.float32).log(), -torch.tensor(s_next, dtype=torch.float32).log()
    return float((-(lam_s + 0.5 * (lam_t - lam_s))).exp())


class _DpmppSde:
    """DPM-Solver++ SDE (k-diffusion's ``sample_dpmpp_sde``, eta 1, r ½): an ancestral
    DPM-Solver++ step to the log-σ midpoint, then one over the whole step using the
    midpoint's prediction; the noise of the two is the Brownian path's increments from σ
    to the midpoint and from σ to σ_next.  The last step (to σ 0) lands on the prediction."""

    def __call__(self, D, x, s, s_next, noise):
        denoised = D(x, s)
        if s_next == 0:
            return denoised, denoised
        s_mid = _log_midpoint_f32(s, s_next)
        x_2 = self._ancestral(x, denoised, s, s_mid, noise(s, s_mid))
        return self._ancestral(x, D(x_2, s_mid), s, s_next, noise(s, s_next)), denoised

    @staticmethod
    def _ancestral(x, denoised, s, s_to, noise):
        down, up = ancestral_step(s, s_to)
        return (down / s) * x - math.expm1(math.log(down / s)) * denoised + noise * up


class _Dpmpp2m:
    """DPM-Solver++(2M); with ``eta`` > 0 k-diffusion's SDE variant with the 'midpoint'
    correction (ComfyUI's dpmpp_2m_sde default; its 'heun' variant is another sampler)."""

    def __init__(self, eta: float = 0.0):
        self.eta, self.old, self.h_last = eta, None, None

    def __call__(self, D, x, s, s_next, noise):
        denoised = D(x, s)
        if s_next == 0:
            x = denoised
        else:
            h = math.log(s) - math.log(s_next)
            eta_h = self.eta * h
            if self.eta == 0:
                d = denoised
                if self.old is not None:
                    r = self.h_last / h
                    d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * self.old
                x = (s_next / s) * x - math.expm1(-h) * d
            else:
                x = (s_next / s) * math.exp(-eta_h) * x + (-math.expm1(-h - eta_h)) * denoised
                if self.old is not None:
                    r = self.h_last / h
                    x = x + 0.5 * (-math.expm1(-h - eta_h)) * (1 / r) * (denoised - self.old)
                x = x + noise(s, s_next) * s_next * math.sqrt(-math.expm1(-2 * eta_h))
            self.h_last = h
        self.old = denoised
        return x, denoised


class _Dpmpp3mSde:
    """DPM-Solver++(3M) SDE (k-diffusion's ``sample_dpmpp_3m_sde``, eta 1): multistep over
    the last three predictions, order 1, 2, then 3; ``exp(−h(η+1))`` is k-diffusion's
    ``σ_next/σ · exp(−hη)``."""

    def __init__(self, eta: float = 1.0):
        self.eta = eta
        self.d_1 = self.d_2 = self.h_1 = self.h_2 = None

    def __call__(self, D, x, s, s_next, noise):
        denoised = D(x, s)
        if s_next == 0:
            x = denoised
        else:
            h = math.log(s) - math.log(s_next)
            h_eta = h * (self.eta + 1)
            x = math.exp(-h_eta) * x + (-math.expm1(-h_eta)) * denoised
            phi_2 = math.expm1(-h_eta) / h_eta + 1
            if self.h_2 is not None:
                r0, r1 = self.h_1 / h, self.h_2 / h
                d1_0 = (denoised - self.d_1) / r0
                d1_1 = (self.d_1 - self.d_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                x = x + phi_2 * d1 - (phi_2 / h_eta - 0.5) * d2
            elif self.h_1 is not None:
                x = x + phi_2 * (denoised - self.d_1) / (self.h_1 / h)
            if self.eta:
                x = x + noise(s, s_next) * s_next * math.sqrt(-math.expm1(-2 * h * self.eta))
            self.h_1, self.h_2 = h, self.h_1
        self.d_1, self.d_2 = denoised, self.d_1
        return x, denoised


class _Ipndm:
    """iPNDM (Zhang & Chen's improved pseudo-numerical method, k-diffusion/ComfyUI
    ``sample_ipndm``): Adams-Bashforth in σ on dx/dσ with fixed weights, warming up from
    order 1 to 4; a step to σ 0 lands on the prediction."""

    #: Adams-Bashforth weights by order, newest derivative first
    WEIGHTS = ((1,), (3 / 2, -1 / 2), (23 / 12, -16 / 12, 5 / 12), (55 / 24, -59 / 24, 37 / 24, -9 / 24))

    def __init__(self):
        self.ds: list = []  # the last derivatives, newest first

    def __call__(self, D, x, s, s_next, noise):
        denoised = D(x, s)
        self.ds = [(x - denoised) / s] + self.ds[:len(self.WEIGHTS) - 1]
        if s_next == 0:
            return denoised, denoised
        slope = sum(w * d for w, d in zip(self.WEIGHTS[len(self.ds) - 1], self.ds))
        return x + (s_next - s) * slope, denoised


class _Lcm:
    def __call__(self, D, x, s, s_next, noise):
        denoised = D(x, s)
        return (denoised + noise(s, s_next) * s_next if s_next > 0 else denoised), denoised


# -- CFG++ (Chung et al. 2024): step along the unconditional prediction ------------------------
# These rules need ``D.with_uncond(x, σ) -> (guided prediction, unconditional prediction)``;
# ComfyUI's versions read the unconditional prediction through a post-CFG hook.


class _EulerAncestralCfgPp:
    """ComfyUI's ``euler_ancestral_cfg_pp`` (``euler_cfg_pp`` with eta 0): from the guided
    prediction, re-noise along the unconditional prediction's direction to σ_down, then add
    fresh noise up to σ_next."""

    def __init__(self, eta: float):
        self.eta = eta

    def __call__(self, D, x, s, s_next, noise):
        denoised, uncond = D.with_uncond(x, s)
        if s_next == 0:
            return denoised, denoised
        down, up = ancestral_step(s, s_next, self.eta)
        x = denoised + (x - uncond) / s * down
        if self.eta > 0:
            x = x + noise(s, s_next) * up
        return x, denoised


class _Dpmpp2sAncestralCfgPp:
    """ComfyUI's ``dpmpp_2s_ancestral_cfg_pp``: the DPM-Solver++(2S) ancestral step on the
    unconditional predictions (the midpoint's too), plus the first prediction's guidance
    (guided − unconditional)."""

    def __call__(self, D, x, s, s_next, noise):
        denoised, uncond = D.with_uncond(x, s)
        guidance = denoised - uncond
        down, up = ancestral_step(s, s_next)
        if down == 0:
            x = x + (x - uncond) / s * (down - s)
        else:
            t, t_next = -math.log(s), -math.log(down)
            h = t_next - t
            s_mid = math.exp(-(t + 0.5 * h))
            x_2 = (s_mid / s) * x - math.expm1(-0.5 * h) * uncond
            _, uncond_2 = D.with_uncond(x_2, s_mid)
            x = (down / s) * x - math.expm1(-h) * uncond_2
        if s_next > 0:
            x = x + noise(s, s_next) * up
        return x + guidance, denoised


class _Dpmpp2mCfgPp:
    """ComfyUI's ``dpmpp_2m_cfg_pp``: DPM-Solver++(2M) where x is carried by the unconditional
    prediction and the step lands on the guided one; the second-order term takes the guided
    prediction minus the last unconditional one."""

    def __init__(self):
        self.old_uncond = self.s_last = None

    def __call__(self, D, x, s, s_next, noise):
        denoised, uncond = D.with_uncond(x, s)
        if s_next == 0:
            x = denoised  # exp(−h) is 0
        else:
            h = math.log(s) - math.log(s_next)
            decay = math.exp(-h)
            mix = -decay * uncond
            if self.old_uncond is not None:
                r = (math.log(self.s_last) - math.log(s)) / h
                mix = mix - math.expm1(-h) * (1 / (2 * r)) * (denoised - self.old_uncond)
            x = denoised + mix + decay * x
        self.old_uncond, self.s_last = uncond, s
        return x, denoised


@dataclass(frozen=True)
class _Rule:
    factory: Callable[[Sequence[float]], Any]   # the run's σ → a fresh rule
    noise: str = "gaussian"                      # "gaussian", "brownian" or "brownian_device"
    uncond: bool = False                         # steps with the unconditional prediction (CFG++)


#: sampler name → its rule; in ComfyUI's order.  The SDE samplers draw their noise from a
#: Brownian path built on the CPU; ComfyUI's ``_gpu`` names are the same rules with the
#: path built on the latent's device (the same noise when that device is the CPU).
_RULES: dict[str, _Rule] = {
    "euler": _Rule(lambda sigmas: _Euler()),
    "euler_cfg_pp": _Rule(lambda sigmas: _EulerAncestralCfgPp(eta=0.0), uncond=True),
    "euler_ancestral": _Rule(lambda sigmas: _EulerAncestral()),
    "euler_ancestral_cfg_pp": _Rule(lambda sigmas: _EulerAncestralCfgPp(eta=1.0), uncond=True),
    "heun": _Rule(lambda sigmas: _Heun()),
    "dpm_2": _Rule(lambda sigmas: _Dpm2(False)),
    "dpm_2_ancestral": _Rule(lambda sigmas: _Dpm2(True)),
    "lms": _Rule(_Lms),
    "dpmpp_2s_ancestral": _Rule(lambda sigmas: _Dpmpp2sAncestral()),
    "dpmpp_2s_ancestral_cfg_pp": _Rule(lambda sigmas: _Dpmpp2sAncestralCfgPp(), uncond=True),
    "dpmpp_sde": _Rule(lambda sigmas: _DpmppSde(), "brownian"),
    "dpmpp_sde_gpu": _Rule(lambda sigmas: _DpmppSde(), "brownian_device"),
    "dpmpp_2m": _Rule(lambda sigmas: _Dpmpp2m()),
    "dpmpp_2m_cfg_pp": _Rule(lambda sigmas: _Dpmpp2mCfgPp(), uncond=True),
    "dpmpp_2m_sde": _Rule(lambda sigmas: _Dpmpp2m(eta=1.0), "brownian"),
    "dpmpp_2m_sde_gpu": _Rule(lambda sigmas: _Dpmpp2m(eta=1.0), "brownian_device"),
    "dpmpp_3m_sde": _Rule(lambda sigmas: _Dpmpp3mSde(), "brownian"),
    "dpmpp_3m_sde_gpu": _Rule(lambda sigmas: _Dpmpp3mSde(), "brownian_device"),
    "lcm": _Rule(lambda sigmas: _Lcm()),
    "ipndm": _Rule(lambda sigmas: _Ipndm()),
    "ddim": _Rule(lambda sigmas: _Euler()),  # ComfyUI's ddim is Euler on the given σ
    "uni_pc": _Rule(lambda sigmas: UniPC(sigmas, "bh1")),
    "uni_pc_bh2": _Rule(lambda sigmas: UniPC(sigmas, "bh2")),
}

#: every sampler, in ComfyUI's order: what the KSampler and KSamplerSelect offer (torch-free)
SAMPLER_NAMES = tuple(_RULES)


def check_sampler(name: str) -> str:
    """``name`` when it is a sampler Loom runs; else the one error every caller gives."""
    if name not in _RULES:
        raise SamplingError(f"unknown sampler {name!r}; choose from {', '.join(SAMPLER_NAMES)}")
    return name


def _rule(name: str) -> _Rule:
    return _RULES[check_sampler(name)]


def step_rule(name: str, sigmas: Sequence[float]):
    """The step rule for sampler ``name`` on ``sigmas`` (rules with history are fresh per run)."""
    return _rule(name).factory(sigmas)


def needs_uncond(name: str) -> bool:
    """Whether sampler ``name`` steps with the unconditional prediction (the CFG++ samplers):
    its denoiser must offer ``with_uncond``, and the negative prompt runs even at cfg 1."""
    return _rule(name).uncond


def noise_source(name: str, like, sigmas: Sequence[float], seed: int) -> NoiseSource:
    """The per-step noise sampler ``name`` draws on ``sigmas``, seeded with the sampler's
    seed as ComfyUI seeds it (``like``: a tensor shaped, typed and placed as the latent)."""
    kind = _rule(name).noise
    if kind == "gaussian":
        return SeededGaussian(like, seed)
    return BrownianTreeNoise(like, sigmas, seed, on_cpu=kind == "brownian")


def run_steps(rule, D: Denoise, x, sigmas: Sequence[float], noise: NoiseSource,
              callback: Callable[[int, int, Any], None] | None = None):
    """Step ``x`` through ``sigmas`` with ``rule``; returns (x, the last clean-latent prediction)."""
    total = len(sigmas) - 1
    denoised = None
    for i in range(total):
        x, denoised = rule(D, x, sigmas[i], sigmas[i + 1], noise)
        if callback is not None:
            callback(i + 1, total, denoised)
    return x, denoised
