"""The KSampler: ComfyUI's sampling semantics on top of diffusers' schedulers.

Latents enter and leave in ComfyUI's convention: unscaled-by-noise "x0 + σ·noise"
(variance-exploding) space.  Schedulers that work in variance-preserving space
(DDIM, DPM-Solver, UniPC, LCM) get ``x·sqrt(ᾱ)`` and give back ``x/sqrt(ᾱ)``.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .errors import SamplingError
from .guidance import GuidedModel
from .inpaint import keep_unmasked, latent_mask, unet_extra_channels
from .k_steps import needs_uncond, noise_source, run_steps, step_rule
from .k_steps_noise import step_generator
from .models import DiffusionModel
from .noise import prepare_noise
from .schedules import plan

#: callback(step, total, x0_preview_latent) — called after every step.
StepCallback = Callable[[int, int, Any], None]


@dataclass(frozen=True)
class StepRange:
    """Which part of a ``total``-step schedule runs: steps [first, last)."""

    total: int
    first: int
    last: int
    force_full_denoise: bool


def step_range(steps: int, denoise: float = 1.0, start_step: int | None = None, last_step: int | None = None,
               force_full_denoise: bool = True) -> StepRange:
    """ComfyUI's rules: denoise < 1 builds ``int(steps / denoise)`` steps and runs the last
    ``steps``; KSamplerAdvanced picks [start_at_step, end_at_step) of ``steps``."""
    if steps < 1:
        raise SamplingError("steps must be at least 1")
    if denoise <= 0:
        return StepRange(steps, steps, steps, force_full_denoise)
    total = steps if denoise >= 1 else max(steps, int(steps / denoise))
    first = total - steps
    if start_step is not None:
        first = max(first, start_step)
    last = total if last_step is None else min(total, last_step)
    return StepRange(total, min(first, last), last, force_full_denoise)


def _vp_space(scheduler) -> bool:
    return float(getattr(scheduler, "init_noise_sigma", 1.0)) == 1.0


def _alpha_bar(scheduler, t) -> float:
    return float(scheduler.alphas_cumprod[int(round(float(t)))])


def _x0(model: DiffusionModel, x_vp, out, alpha: float):
    """Predicted clean latent from a VP-space sample and the model output."""
    a, s = math.sqrt(alpha), math.sqrt(1 - alpha)
    if model.prediction_type == "v_prediction":
        return a * x_vp - s * out
    return (x_vp - s * out) / a


def sample(model: DiffusionModel, *, seed: int, steps: int, cfg: float, sampler_name: str, scheduler: str,
           positive: Sequence, negative: Sequence, latent: dict, denoise: float = 1.0, add_noise: bool = True,
           start_step: int | None = None, last_step: int | None = None, force_full_denoise: bool = True,
           callback: StepCallback | None = None) -> dict:
    """Run one KSampler; returns a new LATENT dict."""
    import torch

    samples = latent["samples"]
    if samples.ndim != 4:
        raise SamplingError(f"latent must be [batch, channels, height, width], got shape {list(samples.shape)}")
    if samples.shape[1] != model.latent_format.channels:
        raise SamplingError(f"latent has {samples.shape[1]} channels; this {model.family} model uses "
                            f"{model.latent_format.channels}")
    latent_image = samples.float().cpu()
    noise = prepare_noise(latent_image, seed, latent.get("batch_index")) if add_noise else torch.zeros_like(latent_image)
    rng = step_range(steps, denoise, start_step, last_step, force_full_denoise)
    out = dict(latent)
    if rng.first >= rng.last:
        out["samples"] = latent_image
        return out
    run = plan(sampler_name, scheduler, model.prediction_type)
    mask = None if latent.get("noise_mask") is None else latent_mask(latent["noise_mask"], latent_image.shape)
    extra = unet_extra_channels(model, latent_image, mask)
    guided = GuidedModel(model, positive, negative, cfg, extra, latent_shape=latent_image.shape, seed=seed,
                         keep_uncond=run.own is not None and needs_uncond(run.own))
    with torch.inference_mode():
        if run.own is None:
            # the ancestral schedulers draw one noise per step from it, as ComfyUI's samplers do
            generator = step_generator(seed, guided.device)
            x = _diffusers_loop(model, run.scheduler, guided, latent_image, noise, rng, add_noise, generator, callback,
                                mask)
        else:
            x = _own_loop(model, run.scheduler, run.own, guided, latent_image, noise, rng, add_noise, seed,
                          callback, mask)
    out["samples"] = x.float().cpu()
    return out


def _diffusers_loop(model, scheduler, guided, latent_image, noise, rng: StepRange, add_noise, generator, callback,
                    mask=None):
    device = guided.device
    scheduler.set_timesteps(rng.total, device=device)
    order = getattr(scheduler, "order", 1)
    timesteps = scheduler.timesteps
    begin, end = rng.first * order, min(len(timesteps), rng.last * order)
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(begin)
    vp = _vp_space(scheduler)
    latent_image = latent_image.to(device)
    noise = noise.to(device)
    t0 = timesteps[begin]
    if rng.first == 0 and add_noise:
        base = latent_image * math.sqrt(_alpha_bar(scheduler, t0)) if vp else latent_image
        x = base + noise * scheduler.init_noise_sigma
    elif add_noise:
        clean = latent_image * 1.0
        x = scheduler.add_noise(clean, noise, t0.reshape(1))
    else:  # the latent already carries the noise of step `first` (ComfyUI's VE convention)
        x = latent_image * math.sqrt(_alpha_bar(scheduler, t0)) if vp else latent_image
    if mask is not None:
        mask = mask.to(device)
        # as diffusers' inpaint pipeline: the unmasked part is the original latent noised to
        # the level the sample is at (scheduler.add_noise knows each scheduler's space)
        x = keep_unmasked(x, mask, scheduler.add_noise(latent_image, noise, t0.reshape(1)))
    step_kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
    total = end - begin
    for n, i in enumerate(range(begin, end)):
        t = timesteps[i]
        x_in = scheduler.scale_model_input(x, t)
        out = guided(x_in, t)
        final_jump = rng.force_full_denoise and rng.last < rng.total and i == end - 1
        result = scheduler.step(out, t, x, return_dict=True, **step_kwargs)
        x0 = getattr(result, "pred_original_sample", None)
        if x0 is None or final_jump:
            if vp:
                x0 = _x0(model, x, out, _alpha_bar(scheduler, t))
            else:
                sigma = float(scheduler.sigmas[scheduler.step_index - 1 if scheduler.step_index else i])
                x0 = _x0(model, x / math.sqrt(sigma ** 2 + 1), out, 1 / (sigma ** 2 + 1))
        x = x0 if final_jump else result.prev_sample
        if mask is not None:
            x0 = keep_unmasked(x0, mask, latent_image)
            if final_jump or i + 1 >= len(timesteps):
                x = keep_unmasked(x, mask, latent_image)
            else:
                x = keep_unmasked(x, mask, scheduler.add_noise(latent_image, noise, timesteps[i + 1].reshape(1)))
        if callback is not None:
            callback(n + 1, total, x0)
    if rng.last < rng.total and not rng.force_full_denoise and vp:
        x = x / math.sqrt(_alpha_bar(scheduler, timesteps[end] if end < len(timesteps) else timesteps[-1]))
    return x


# -- Loom's own samplers (k-diffusion formulation, VE space) ------------------------------

class _Denoiser:
    def __init__(self, model: DiffusionModel, guided: GuidedModel, scheduler):
        import torch

        self.model, self.guided = model, guided
        ac = torch.as_tensor(scheduler.alphas_cumprod, dtype=torch.float64)
        self.log_sigmas = (((1 - ac) / ac) ** 0.5).log()
        self.mask = self.original = self.noise = None

    def t(self, sigma: float) -> float:
        import numpy as np

        return float(np.interp(math.log(sigma), self.log_sigmas.numpy(), np.arange(len(self.log_sigmas))))

    def inpaint(self, mask, original, noise) -> None:
        """Keep the unmasked part at ``original`` (ComfyUI's KSamplerX0Inpaint): the model
        sees it noised to the current sigma, and its prediction there is ``original``."""
        self.mask, self.original, self.noise = mask, original, noise

    def __call__(self, x, sigma: float):
        return self._denoise(x, sigma, with_uncond=False)[0]

    def with_uncond(self, x, sigma: float):
        """(guided prediction, the negative prompt's prediction) of the clean latent, for the
        CFG++ step rules (the GuidedModel must keep the unconditional output)."""
        return self._denoise(x, sigma, with_uncond=True)

    def _denoise(self, x, sigma: float, with_uncond: bool):
        if self.mask is not None:
            x = keep_unmasked(x, self.mask, self.original + self.noise * sigma)
        c_in = 1 / math.sqrt(sigma ** 2 + 1)
        if with_uncond:
            outs = self.guided.with_uncond(x * c_in, self.t(sigma))
        else:
            outs = (self.guided(x * c_in, self.t(sigma)),)
        x0s = tuple(_x0(self.model, x * c_in, out, 1 / (sigma ** 2 + 1)) for out in outs)
        return x0s if self.mask is None else tuple(keep_unmasked(x0, self.mask, self.original) for x0 in x0s)


def _own_loop(model, scheduler, name, guided, latent_image, noise, rng: StepRange, add_noise, seed: int, callback,
              mask=None):
    device = guided.device
    scheduler.set_timesteps(rng.total, device="cpu")
    sigmas = [float(s) for s in scheduler.sigmas][rng.first: rng.last + 1]
    if rng.force_full_denoise:
        sigmas[-1] = 0.0
    D = _Denoiser(model, guided, scheduler)
    if mask is not None:
        D.inpaint(mask.to(device), latent_image.to(device), noise.to(device))
    x = latent_image.to(device)
    if add_noise:
        scale = float(scheduler.init_noise_sigma) if rng.first == 0 else sigmas[0]
        x = x + noise.to(device) * scale
    x, _ = run_steps(step_rule(name, sigmas), D, x, sigmas, noise_source(name, x, sigmas, seed), callback)
    if mask is not None and sigmas[-1] == 0:  # exact, not just up to rounding
        x = keep_unmasked(x, D.mask, D.original)
    return x
