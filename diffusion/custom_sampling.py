"""Sampling on an explicit sigma schedule: ComfyUI's SamplerCustom, KSamplerSelect and the
SIGMAS schedulers (BasicScheduler, SDTurboScheduler).

SIGMAS is what ComfyUI passes between these nodes: a 1-D float tensor of noise levels
(k-diffusion's σ, variance-exploding), high to low, normally ending in 0.  Sampling on it
runs k-diffusion's step rules directly on those σ — there is no diffusers scheduler in
the loop, because no diffusers scheduler takes an arbitrary σ list for every sampler.
The denoiser, the guidance, the seeding and the inpainting mask are the KSampler's own
(:mod:`diffusion.sampling`), so on the same σ the two agree:

* BasicScheduler's σ are ComfyUI's (:mod:`diffusion.sigma_schedules`), the KSampler's
  for the same scheduler (except that the KSampler, as ComfyUI's, drops the second-to-last
  σ for dpm_2, dpm_2_ancestral and the uni_pc samplers), and on the same σ the results of
  SamplerCustom and the KSampler are identical bit for bit, for every sampler.

LATENT samples are raw VAE latents (ComfyUI's convention): the loop runs on ``process_in`` of
them (:mod:`diffusion.latent_formats`) and ``output`` and ``denoised_output`` come back through
``process_out``.  Noise is added in the model's space as ComfyUI's ``noise_scaling`` adds it:
``latent + noise·√(1+σ₀²)`` when the σ start at the model's highest σ, ``latent + noise·σ₀`` below it.  The per-step noise is ComfyUI's, drawn
from ``noise_seed`` even when ``add_noise`` is off (:mod:`diffusion.k_steps_noise`): the SDE
samplers (``dpmpp_sde``, ``dpmpp_2m_sde``, ``dpmpp_3m_sde`` and their ``_gpu`` names) take
increments of one seeded Brownian tree, as k-diffusion's ``BrownianTreeNoiseSampler``; the
ancestral samplers and ``lcm`` draw from a generator seeded with the seed + 1 on the CPU,
as ComfyUI's ``default_noise_sampler``.  The KSampler runs the SDE samplers through these
same rules, so the two agree bit for bit on the same σ for them too.

KSamplerSelect offers every sampler with a step rule, the KSampler's names.  The CFG++
samplers (``*_cfg_pp``) step with the negative prompt's prediction too: the denoiser's
``with_uncond`` gives it beside the guided one, and the negative runs even at cfg 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from .errors import SamplingError
from .k_steps import check_sampler
from .models import DiffusionModel
from .sampling import StepCallback, check_latent, model_sigmas, run_sampler
from .sigma_schedules import SCHEDULER_NAMES, basic_scheduler_sigmas

#: SD-Turbo was distilled on these 10 timesteps (ComfyUI's SDTurboScheduler: 999, 899, ... 99).
TURBO_TIMESTEPS = tuple(999 - 100 * i for i in range(10))


@dataclass(frozen=True)
class Sampler:
    """SAMPLER: which step rule SamplerCustom runs (KSamplerSelect's choice)."""

    name: str

    def __post_init__(self):
        check_sampler(self.name)


# -- schedules --------------------------------------------------------------------------


def scheduler_sigmas(model: DiffusionModel, scheduler: str, steps: int, denoise: float = 1.0):
    """BasicScheduler: ComfyUI's σ for ``scheduler`` — the last ``steps`` + 1 of an
    ``int(steps / denoise)``-step schedule, ending in 0; empty when ``denoise`` is 0."""
    import torch

    if scheduler not in SCHEDULER_NAMES:
        raise SamplingError(f"unknown scheduler {scheduler!r}; choose from {', '.join(SCHEDULER_NAMES)}")
    if int(steps) < 1:
        raise SamplingError(f"steps must be at least 1, got {steps}")
    sigmas = basic_scheduler_sigmas(scheduler, int(steps), float(denoise), model_sigmas(model))
    return torch.tensor(sigmas, dtype=torch.float32)


def turbo_sigmas(model: DiffusionModel, steps: int, denoise: float = 1.0):
    """SDTurboScheduler: σ at the timesteps SD-Turbo was distilled on (999, 899, ...),
    starting ``10 - int(10·denoise)`` of them in, ``steps`` of them, then 0."""
    import torch

    if not 1 <= int(steps) <= 10:
        raise SamplingError(f"SD-Turbo takes 1 to 10 steps, got {steps}")
    start = 10 - int(10 * float(denoise))
    timesteps = list(TURBO_TIMESTEPS[start: start + int(steps)])
    sigmas = model_sigmas(model).sigma(torch.tensor(timesteps, dtype=torch.float32))
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def check_sigmas(sigmas) -> list[float]:
    """SIGMAS as a list of floats, or a clear error saying what is wrong with them."""
    import torch

    if not isinstance(sigmas, torch.Tensor):
        raise SamplingError(f"sigmas must be a 1-D tensor of noise levels, got {type(sigmas).__name__}")
    if sigmas.ndim != 1:
        raise SamplingError(f"sigmas must be a 1-D tensor of noise levels, got shape {list(sigmas.shape)}")
    values = [float(s) for s in sigmas.detach().cpu().double()]
    if len(values) == 1:
        raise SamplingError("sigmas holds a single value; a schedule needs a start and an end (at least 2 values)")
    if not all(math.isfinite(s) for s in values):
        raise SamplingError("sigmas contains NaN or infinity")
    if any(s < 0 for s in values):
        raise SamplingError(f"sigmas must not be negative, got {min(values)}")
    if any(s == 0 for s in values[:-1]):
        raise SamplingError("a sigma of 0 may only end the schedule (the model cannot denoise from noise level 0)")
    return values


# -- SamplerCustom ------------------------------------------------------------------------------


def sample_custom(model: DiffusionModel, sampler: Sampler, sigmas, *, seed: int, add_noise: bool, cfg: float,
                  positive: Sequence, negative: Sequence, latent: dict,
                  callback: StepCallback | None = None) -> tuple[dict, dict]:
    """Run ``sampler`` over ``sigmas``; returns (output LATENT, denoised_output LATENT —
    the model's last prediction of the clean latent)."""
    if not isinstance(sampler, Sampler):
        raise SamplingError(f"sampler must come from a sampler node (KSamplerSelect), got {type(sampler).__name__}")
    check_latent(model, latent)
    # no σ (BasicScheduler at denoise 0): the latent comes back unchanged, as ComfyUI's
    values = check_sigmas(sigmas) if len(sigmas) else []
    return run_sampler(model, sampler.name, values, seed=seed, add_noise=add_noise, cfg=cfg, positive=positive,
                       negative=negative, latent=latent, callback=callback)
