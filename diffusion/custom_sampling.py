"""Sampling on an explicit sigma schedule: ComfyUI's SamplerCustom, KSamplerSelect and the
SIGMAS schedulers (BasicScheduler, SDTurboScheduler).

SIGMAS is what ComfyUI passes between these nodes: a 1-D float tensor of noise levels
(k-diffusion's σ, variance-exploding), high to low, normally ending in 0.  Sampling on it
runs k-diffusion's step rules directly on those σ — there is no diffusers scheduler in
the loop, because no diffusers scheduler takes an arbitrary σ list for every sampler.
The denoiser, the guidance, the seeding and the inpainting mask are the KSampler's own
(:mod:`diffusion.sampling`), so on the same σ the two agree:

* BasicScheduler's σ are exactly the ones the KSampler steps through for its
  k-diffusion samplers (Euler's σ for that scheduler), and for those samplers
  (``dpmpp_2s_ancestral``, the SDE samplers, ``uni_pc``, ``ipndm``; ``euler_ancestral``
  with karras/exponential/beta) the results are identical bit for bit;
* for samplers the KSampler runs through a diffusers scheduler the results agree
  closely but not exactly: diffusers feeds the UNet the timesteps of its own
  spacing, here the timestep is read back from σ (log-σ interpolation, as ComfyUI).

Noise is added as ``latent + noise·σ₀`` (the KSampler's rule; ComfyUI scales by
``sqrt(1 + σ₀²)`` at full denoise, 0.2 % more).  The per-step noise is ComfyUI's, drawn
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
from .guidance import GuidedModel
from .inpaint import keep_unmasked, latent_mask, unet_extra_channels
from .models import DiffusionModel
from .k_steps import RULE_NAMES, needs_uncond, noise_source, run_steps, step_rule
from .noise import prepare_noise
from .sampling import StepCallback, _Denoiser, step_range
from .schedules import SCHEDULER_NAMES, plan

#: SD-Turbo was distilled on these 10 timesteps (ComfyUI's SDTurboScheduler: 999, 899, ... 99).
TURBO_TIMESTEPS = tuple(999 - 100 * i for i in range(10))


@dataclass(frozen=True)
class Sampler:
    """SAMPLER: which step rule SamplerCustom runs (KSamplerSelect's choice)."""

    name: str

    def __post_init__(self):
        if self.name not in RULE_NAMES:
            raise SamplingError(f"unknown sampler {self.name!r}; choose from {', '.join(RULE_NAMES)}")


# -- schedules --------------------------------------------------------------------------


def _training_sigmas():
    """σ of every training timestep (0..999) of the schedule all supported families share."""
    import torch

    ac = torch.as_tensor(plan("euler", "normal").scheduler.alphas_cumprod, dtype=torch.float64)
    return ((1 - ac) / ac) ** 0.5


def scheduler_sigmas(model: DiffusionModel, scheduler: str, steps: int, denoise: float = 1.0):
    """BasicScheduler: the KSampler's σ for ``scheduler`` — the last ``steps`` + 1 of an
    ``int(steps / denoise)``-step schedule, ending in 0; empty when ``denoise`` is 0."""
    import torch

    if scheduler not in SCHEDULER_NAMES:
        raise SamplingError(f"unknown scheduler {scheduler!r}; choose from {', '.join(SCHEDULER_NAMES)}")
    rng = step_range(int(steps), float(denoise))
    if rng.first >= rng.last:
        return torch.zeros(0, dtype=torch.float32)
    source = plan("euler", scheduler, model.prediction_type).scheduler
    source.set_timesteps(rng.total, device="cpu")
    return source.sigmas.float()[rng.first: rng.last + 1].clone()


def turbo_sigmas(model: DiffusionModel, steps: int, denoise: float = 1.0):
    """SDTurboScheduler: σ at the timesteps SD-Turbo was distilled on (999, 899, ...),
    starting ``10 - int(10·denoise)`` of them in, ``steps`` of them, then 0."""
    import torch

    if not 1 <= int(steps) <= 10:
        raise SamplingError(f"SD-Turbo takes 1 to 10 steps, got {steps}")
    start = 10 - int(10 * float(denoise))
    timesteps = list(TURBO_TIMESTEPS[start: start + int(steps)])
    table = _training_sigmas()
    sigmas = [float(table[t]) for t in timesteps] + [0.0]
    return torch.tensor(sigmas, dtype=torch.float32)


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
    import torch

    if not isinstance(sampler, Sampler):
        raise SamplingError(f"sampler must come from a sampler node (KSamplerSelect), got {type(sampler).__name__}")
    if not isinstance(latent, dict) or "samples" not in latent:
        raise SamplingError("latent_image must be a LATENT (a dict with 'samples')")
    samples = latent["samples"]
    if samples.ndim != 4:
        raise SamplingError(f"latent must be [batch, channels, height, width], got shape {list(samples.shape)}")
    if samples.shape[1] != model.latent_format.channels:
        raise SamplingError(f"latent has {samples.shape[1]} channels; this {model.family} model uses "
                            f"{model.latent_format.channels}")
    latent_image = samples.float().cpu()
    out = dict(latent)
    if len(sigmas) == 0:  # BasicScheduler at denoise 0: nothing to do (as ComfyUI)
        out["samples"] = latent_image
        return out, dict(out)
    values = check_sigmas(sigmas)
    rule = step_rule(sampler.name, values)
    noise = prepare_noise(latent_image, seed, latent.get("batch_index")) if add_noise \
        else torch.zeros_like(latent_image)
    mask = None if latent.get("noise_mask") is None else latent_mask(latent["noise_mask"], latent_image.shape)
    extra = unet_extra_channels(model, latent_image, mask)
    # the seed also draws unCLIP's image-embedding noise augmentation (as the KSampler's does)
    guided = GuidedModel(model, positive, negative, cfg, extra, latent_shape=latent_image.shape, seed=seed,
                         keep_uncond=needs_uncond(sampler.name))
    device = guided.device
    D = _Denoiser(model, guided, plan("euler", "normal", model.prediction_type).scheduler)
    if mask is not None:
        D.inpaint(mask.to(device), latent_image.to(device), noise.to(device))
    x = latent_image.to(device)
    if add_noise:
        x = x + noise.to(device) * values[0]
    # the step noise follows the seed even without add_noise (ComfyUI passes noise_seed on)
    step_noise = noise_source(sampler.name, x, values, seed)
    with torch.inference_mode():
        x, denoised = run_steps(rule, D, x, values, step_noise, callback)
    if mask is not None and values[-1] == 0:  # exact, not just up to rounding
        x = keep_unmasked(x, D.mask, D.original)
    out["samples"] = x.float().cpu()
    denoised_out = dict(latent)
    denoised_out["samples"] = denoised.float().cpu()
    return out, denoised_out
