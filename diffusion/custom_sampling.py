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
  (``dpmpp_2s_ancestral``; ``euler_ancestral`` with karras/exponential/beta) the
  results are identical bit for bit;
* for samplers the KSampler runs through a diffusers scheduler the results agree
  closely but not exactly: diffusers feeds the UNet the timesteps of its own
  spacing, here the timestep is read back from σ (log-σ interpolation, as ComfyUI).

Noise is added as ``latent + noise·σ₀`` (the KSampler's rule; ComfyUI scales by
``sqrt(1 + σ₀²)`` at full denoise, 0.2 % more).  The SDE samplers draw Gaussian noise
per step from the seed (ComfyUI uses a Brownian tree): same as the KSampler here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .errors import SamplingError
from .guidance import GuidedModel
from .inpaint import keep_unmasked, latent_mask, unet_extra_channels
from .models import DiffusionModel
from .noise import prepare_noise
from .sampling import StepCallback, _ancestral, _Denoiser, step_range
from .schedules import SAMPLER_NAMES, SCHEDULER_NAMES, plan

#: SD-Turbo was distilled on these 10 timesteps (ComfyUI's SDTurboScheduler: 999, 899, ... 99).
TURBO_TIMESTEPS = tuple(999 - 100 * i for i in range(10))


@dataclass(frozen=True)
class Sampler:
    """SAMPLER: which step rule SamplerCustom runs (KSamplerSelect's choice)."""

    name: str

    def __post_init__(self):
        if self.name not in SAMPLER_NAMES:
            raise SamplingError(f"unknown sampler {self.name!r}; choose from {', '.join(SAMPLER_NAMES)}")


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


# -- step rules (k-diffusion's, on explicit σ) ------------------------------------------------

Denoise = Callable[[Any, float], Any]
Noise = Callable[[], Any]


class _Euler:
    def __call__(self, D: Denoise, x, s: float, s_next: float, randn: Noise):
        denoised = D(x, s)
        return x + (x - denoised) / s * (s_next - s), denoised


class _EulerAncestral:
    def __call__(self, D, x, s, s_next, randn):
        denoised = D(x, s)
        down, up = _ancestral(s, s_next)
        x = x + (x - denoised) / s * (down - s)
        if s_next > 0:
            x = x + randn() * up
        return x, denoised


class _Heun:
    def __call__(self, D, x, s, s_next, randn):
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

    def __call__(self, D, x, s, s_next, randn):
        denoised = D(x, s)
        target, up = _ancestral(s, s_next) if self.ancestral else (s_next, 0.0)
        d = (x - denoised) / s
        if target == 0:
            x = x + d * (target - s)
        else:
            mid = _log_midpoint(s, target)
            x_2 = x + d * (mid - s)
            d_2 = (x_2 - D(x_2, mid)) / mid
            x = x + d_2 * (target - s)
        if self.ancestral and s_next > 0:
            x = x + randn() * up
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

    def __call__(self, D, x, s, s_next, randn):
        denoised = D(x, s)
        self.ds = (self.ds + [(x - denoised) / s])[-self.order:]
        order = min(self.i + 1, self.order)
        coeffs = [self._coeff(order, self.i, j) for j in range(order)]
        x = x + sum(c * d for c, d in zip(coeffs, reversed(self.ds)))
        self.i += 1
        return x, denoised


class _Dpmpp2sAncestral:
    def __call__(self, D, x, s, s_next, randn):
        denoised = D(x, s)
        down, up = _ancestral(s, s_next)
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
            x = x + randn() * up
        return x, denoised


class _Dpmpp2m:
    """DPM-Solver++(2M); with ``eta`` > 0 the SDE variant (midpoint), Gaussian noise."""

    def __init__(self, eta: float = 0.0):
        self.eta, self.old, self.h_last = eta, None, None

    def __call__(self, D, x, s, s_next, randn):
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
                x = x + randn() * s_next * math.sqrt(-math.expm1(-2 * eta_h))
            self.h_last = h
        self.old = denoised
        return x, denoised


class _Dpmpp3mSde:
    def __init__(self, eta: float = 1.0):
        self.eta = eta
        self.d_1 = self.d_2 = self.h_1 = self.h_2 = None

    def __call__(self, D, x, s, s_next, randn):
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
                x = x + randn() * s_next * math.sqrt(-math.expm1(-2 * h * self.eta))
            self.h_1, self.h_2 = h, self.h_1
        self.d_1, self.d_2 = denoised, self.d_1
        return x, denoised


class _Lcm:
    def __call__(self, D, x, s, s_next, randn):
        denoised = D(x, s)
        return (denoised + randn() * s_next if s_next > 0 else denoised), denoised


def _step_rule(name: str, sigmas: Sequence[float]):
    rules: dict[str, Callable[[], Any]] = {
        "euler": _Euler, "ddim": _Euler,  # ComfyUI's ddim is Euler on the given σ
        "euler_ancestral": _EulerAncestral, "heun": _Heun,
        "dpm_2": lambda: _Dpm2(False), "dpm_2_ancestral": lambda: _Dpm2(True),
        "lms": lambda: _Lms(sigmas), "dpmpp_2s_ancestral": _Dpmpp2sAncestral,
        "dpmpp_2m": _Dpmpp2m, "dpmpp_2m_sde": lambda: _Dpmpp2m(eta=1.0),
        "dpmpp_3m_sde": _Dpmpp3mSde, "lcm": _Lcm,
    }
    if name not in rules:
        raise SamplingError(f"sampler {name!r} is not available on a custom sigma schedule yet; "
                            f"use the KSampler for it, or one of {', '.join(rules)}")
    return rules[name]()


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
    rule = _step_rule(sampler.name, values)
    noise = prepare_noise(latent_image, seed, latent.get("batch_index")) if add_noise \
        else torch.zeros_like(latent_image)
    mask = None if latent.get("noise_mask") is None else latent_mask(latent["noise_mask"], latent_image.shape)
    extra = unet_extra_channels(model, latent_image, mask)
    # the seed also draws unCLIP's image-embedding noise augmentation (as the KSampler's does)
    guided = GuidedModel(model, positive, negative, cfg, extra, latent_shape=latent_image.shape, seed=seed)
    device = guided.device
    generator = torch.Generator("cpu").manual_seed(int(seed) & 0xFFFFFFFFFFFFFFFF)
    D = _Denoiser(model, guided, plan("euler", "normal", model.prediction_type).scheduler)
    if mask is not None:
        D.inpaint(mask.to(device), latent_image.to(device), noise.to(device))
    x = latent_image.to(device)
    if add_noise:
        x = x + noise.to(device) * values[0]

    def randn():
        return torch.randn(x.shape, generator=generator, dtype=torch.float32).to(device)

    total = len(values) - 1
    denoised = None
    with torch.inference_mode():
        for i in range(total):
            x, denoised = rule(D, x, values[i], values[i + 1], randn)
            if callback is not None:
                callback(i + 1, total, denoised)
    if mask is not None and values[-1] == 0:  # exact, not just up to rounding
        x = keep_unmasked(x, D.mask, D.original)
    out["samples"] = x.float().cpu()
    denoised_out = dict(latent)
    denoised_out["samples"] = denoised.float().cpu()
    return out, denoised_out
