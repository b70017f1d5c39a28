"""ComfyUI's σ schedules, value for value: the seven schedulers of its ``calculate_sigmas``,
on the model's 1000 training σ, plus the KSampler's rules around them (denoise < 1, the
samplers that drop the second-to-last σ) and the initial noise scale.

Everything here computes in float32 where ComfyUI does (its training σ and their logs are
float32 buffers; its schedules are float32 tensors), so the σ agree to the last bit or two,
not just to a tolerance.  What each scheduler is (ComfyUI's comfy/samplers.py and
k-diffusion's sampling.py):

* ``normal`` — σ(t) at ``steps`` timesteps evenly spaced from the last training timestep to
  the first, then 0; σ(t) interpolates *log* σ between the two neighbouring training σ;
* ``sgm_uniform`` — the same with ``steps + 1`` timesteps, dropping the last;
* ``karras`` — Karras et al.'s ρ = 7 ramp between σ_min and σ_max, then 0;
* ``exponential`` — evenly spaced in log σ from σ_max to σ_min, then 0;
* ``simple`` — the training σ read backwards with a stride of ``1000 / steps``, then 0;
* ``ddim_uniform`` — the training σ at 1, 1 + s, 1 + 2s, … (s = ``1000 // steps``),
  highest first, then 0;
* ``beta`` — the training σ at timesteps placed by the Beta(0.6, 0.6) quantile function
  (rounded, repeats dropped), then 0.
"""

from __future__ import annotations

import math
from typing import Sequence

from .errors import SamplingError

SCHEDULER_NAMES = ("normal", "karras", "exponential", "sgm_uniform", "simple", "ddim_uniform", "beta")

#: ComfyUI's KSampler computes one more σ for these and drops the second-to-last
#: (comfy/samplers.py ``DISCARD_PENULTIMATE_SIGMA_SAMPLERS``): their last step is then a full one
DISCARD_PENULTIMATE = frozenset({"dpm_2", "dpm_2_ancestral", "uni_pc", "uni_pc_bh2"})

#: ComfyUI treats a denoise above this as a full denoise (KSampler.set_steps)
FULL_DENOISE = 0.9999


def training_sigmas(beta_start: float = 0.00085, beta_end: float = 0.012, timesteps: int = 1000):
    """σ of every training timestep (0 … 999) as ComfyUI's ModelSamplingDiscrete holds them:
    the "linear" (√β evenly spaced) β schedule in float64, ᾱ its cumulative product, σ =
    √((1 − ᾱ)/ᾱ) stored as float32.  SD1, SD2 and SDXL all train on these."""
    return training_sigmas_f64(beta_start, beta_end, timesteps).float()


def training_sigmas_f64(beta_start: float = 0.00085, beta_end: float = 0.012, timesteps: int = 1000):
    """:func:`training_sigmas` before the float32 rounding (ComfyUI rescales these for zsnr)."""
    import torch

    betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, timesteps, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1 - betas, dim=0)
    return ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5


class DiscreteSigmas:
    """ComfyUI's discrete model sampling: σ ↔ timestep on a table of training σ."""

    def __init__(self, sigmas):
        import torch

        table = torch.as_tensor(sigmas)
        self.sigmas = table.float()
        self.log_sigmas = table.double().log().float()

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    def timestep(self, sigma: float) -> int:
        """The training timestep whose log σ is nearest (what the UNet is given)."""
        import torch

        log_sigma = torch.tensor(sigma, dtype=torch.float32).log()
        return int((log_sigma - self.log_sigmas).abs().argmin())

    def sigma(self, timesteps):
        """σ at (fractional) timesteps: log σ interpolated linearly between neighbours."""
        import torch

        t = torch.as_tensor(timesteps, dtype=torch.float32).clamp(0, len(self.sigmas) - 1)
        low, high, w = t.floor().long(), t.ceil().long(), t.frac()
        return ((1 - w) * self.log_sigmas[low] + w * self.log_sigmas[high]).exp()


def as_table(sigmas) -> DiscreteSigmas:
    """A σ table: ``sigmas`` itself when it is one (a model's own, e.g. LCM's distilled
    table with its own σ ↔ timestep rule), else the discrete table of those σ."""
    return sigmas if isinstance(sigmas, DiscreteSigmas) else DiscreteSigmas(sigmas)


def _as_float32(values: Sequence[float]) -> list[float]:
    import torch

    return [float(v) for v in torch.tensor(values, dtype=torch.float32)]


def _normal(ms: DiscreteSigmas, steps: int, sgm: bool) -> list[float]:
    import torch

    start, end = ms.timestep(ms.sigma_max), ms.timestep(ms.sigma_min)
    if sgm:
        timesteps = torch.linspace(start, end, steps + 1)[:-1]
        return [float(s) for s in ms.sigma(timesteps)] + [0.0]
    if math.isclose(float(ms.sigma(end)), 0, abs_tol=1e-5):  # a schedule that already ends at 0
        return [float(s) for s in ms.sigma(torch.linspace(start, end, steps + 1))]
    return [float(s) for s in ms.sigma(torch.linspace(start, end, steps))] + [0.0]


def _karras(ms: DiscreteSigmas, steps: int, rho: float = 7.0) -> list[float]:
    import torch

    ramp = torch.linspace(0, 1, steps)
    lo, hi = ms.sigma_min ** (1 / rho), ms.sigma_max ** (1 / rho)
    return [float(s) for s in (hi + ramp * (lo - hi)) ** rho] + [0.0]


def _exponential(ms: DiscreteSigmas, steps: int) -> list[float]:
    import torch

    return [float(s) for s in torch.linspace(math.log(ms.sigma_max), math.log(ms.sigma_min), steps).exp()] + [0.0]


def _simple(ms: DiscreteSigmas, steps: int) -> list[float]:
    stride = len(ms.sigmas) / steps
    return [float(ms.sigmas[-(1 + int(i * stride))]) for i in range(steps)] + [0.0]


def _ddim_uniform(ms: DiscreteSigmas, steps: int) -> list[float]:
    sigmas = ms.sigmas
    ends_at_zero = math.isclose(float(sigmas[1]), 0, abs_tol=1e-5)
    if ends_at_zero:
        steps += 1
    stride = max(len(sigmas) // steps, 1)
    picked = [float(sigmas[t]) for t in range(1, len(sigmas), stride)]
    return picked[::-1] + ([] if ends_at_zero else [0.0])


def _beta(ms: DiscreteSigmas, steps: int, alpha: float = 0.6, beta: float = 0.6) -> list[float]:
    import numpy as np
    from scipy import stats

    last = len(ms.sigmas) - 1
    timesteps = np.rint(stats.beta.ppf(1 - np.linspace(0, 1, steps, endpoint=False), alpha, beta) * last)
    sigmas, previous = [], None
    for t in timesteps:
        if t != previous:  # the rounded quantiles repeat near the ends: each timestep once
            sigmas.append(float(ms.sigmas[int(t)]))
        previous = t
    return sigmas + [0.0]


_SCHEDULERS = {
    "normal": lambda ms, n: _normal(ms, n, sgm=False),
    "karras": _karras,
    "exponential": _exponential,
    "sgm_uniform": lambda ms, n: _normal(ms, n, sgm=True),
    "simple": _simple,
    "ddim_uniform": _ddim_uniform,
    "beta": _beta,
}


def comfy_sigmas(scheduler: str, steps: int, sigmas=None) -> list[float]:
    """ComfyUI's ``calculate_sigmas(model_sampling, scheduler, steps)``: ``steps`` + 1 noise
    levels (fewer for ``beta`` when timesteps coincide), high to low, ending in 0.
    ``sigmas``: the model's training σ or its :class:`DiscreteSigmas` table (default: the SD
    training schedule)."""
    if scheduler not in _SCHEDULERS:
        raise SamplingError(f"unknown scheduler {scheduler!r}; choose from {', '.join(SCHEDULER_NAMES)}")
    if int(steps) < 1:
        raise SamplingError(f"steps must be at least 1, got {steps}")
    ms = as_table(training_sigmas() if sigmas is None else sigmas)
    return _as_float32(_SCHEDULERS[scheduler](ms, int(steps)))


def basic_scheduler_sigmas(scheduler: str, steps: int, denoise: float = 1.0, sigmas=None) -> list[float]:
    """ComfyUI's BasicScheduler: below denoise 1 the last ``steps`` + 1 σ of an
    ``int(steps / denoise)``-step schedule; nothing at denoise 0."""
    total = int(steps)
    if denoise < 1.0:
        if denoise <= 0.0:
            return []
        total = int(steps / denoise)
    return comfy_sigmas(scheduler, total, sigmas)[-(int(steps) + 1):]


def ksampler_sigmas(sampler: str, scheduler: str, steps: int, denoise: float = 1.0, sigmas=None) -> list[float]:
    """The σ ComfyUI's KSampler runs (before start/end steps): BasicScheduler's, except that
    the samplers in :data:`DISCARD_PENULTIMATE` get one more σ and lose the second-to-last,
    and a denoise above 0.9999 counts as 1."""

    def schedule(n: int) -> list[float]:
        if sampler not in DISCARD_PENULTIMATE:
            return comfy_sigmas(scheduler, n, sigmas)
        longer = comfy_sigmas(scheduler, n + 1, sigmas)
        return longer[:-2] + longer[-1:]

    if int(steps) < 1:
        raise SamplingError(f"steps must be at least 1, got {steps}")
    if denoise > FULL_DENOISE:
        return schedule(int(steps))
    if denoise <= 0.0:
        return []
    return schedule(int(steps / denoise))[-(int(steps) + 1):]


def starts_at_full_noise(sigma: float, sigma_max: float) -> bool:
    """ComfyUI's ``max_denoise``: the run starts at (or above) the model's highest σ, so the
    initial noise is scaled by √(1 + σ²) — pure noise in the model's input scaling — not σ."""
    return math.isclose(sigma_max, sigma, rel_tol=1e-5) or sigma > sigma_max


def initial_noise_scale(sigma: float, sigma_max: float) -> float:
    """The factor ComfyUI's ``noise_scaling`` gives the seed noise for a run starting at σ."""
    return math.sqrt(1.0 + sigma ** 2) if starts_at_full_noise(sigma, sigma_max) else sigma
