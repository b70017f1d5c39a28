"""ComfyUI's ``comfy.samplers``: the sampler and scheduler names packs offer in
their own combos, read from Loom's one sampler table (``diffusion.schedules``)."""

from __future__ import annotations

import sys
from typing import Any


def _names(attr: str) -> list[str]:
    # Imported on first use: diffusion.schedules pulls in the model runtime.
    from diffusion import schedules

    return list(getattr(schedules, attr))


class _Names:
    """A class attribute computed when read (``KSampler.SAMPLERS``)."""

    def __init__(self, attr: str):
        self.attr = attr

    def __get__(self, obj: Any, owner: Any) -> list[str]:
        return _names(self.attr)


class KSampler:
    """ComfyUI's sampler object: ``KSampler(model, steps, device, sampler, scheduler,
    denoise).sample(noise, positive, negative, cfg, latent_image, ...)`` on Loom's sampler."""

    SAMPLERS = _Names("SAMPLER_NAMES")
    SCHEDULERS = _Names("SCHEDULER_NAMES")

    def __init__(self, model: Any, steps: int, device: Any = None, sampler: str | None = None,
                 scheduler: str | None = None, denoise: float | None = None, model_options: dict | None = None):
        self.model, self.steps, self.device = model, int(steps), device
        self.sampler = sampler or "euler"
        self.scheduler = scheduler or "normal"
        self.denoise = 1.0 if denoise is None else float(denoise)
        self.model_options = model_options or {}

    def sample(self, noise: Any, positive: Any, negative: Any, cfg: float, latent_image: Any = None,
               start_step: int | None = None, last_step: int | None = None, force_full_denoise: bool = False,
               denoise_mask: Any = None, sigmas: Any = None, callback: Any = None, disable_pbar: bool = False,
               seed: int | None = None) -> Any:
        from comfy.sample import sample

        return sample(self.model, noise, self.steps, cfg, self.sampler, self.scheduler, positive, negative,
                      latent_image, denoise=self.denoise, start_step=start_step, last_step=last_step,
                      force_full_denoise=force_full_denoise, noise_mask=denoise_mask, sigmas=sigmas,
                      callback=callback, seed=seed)


def calculate_sigmas(model_sampling: Any, scheduler_name: str, steps: int) -> Any:
    """The σ of ``scheduler_name`` for ``steps`` on a model's σ table (ending in 0)."""
    import torch

    from diffusion.sigma_schedules import comfy_sigmas

    table = getattr(model_sampling, "_table", None)
    if table is None:
        table = getattr(model_sampling, "sigmas", None)
    return torch.tensor(comfy_sigmas(scheduler_name, int(steps), table), dtype=torch.float32)


def sampler_object(name: str) -> Any:
    """KSamplerSelect's SAMPLER for ``name``."""
    from diffusion.custom_sampling import Sampler

    return Sampler(name)


def ksampler(sampler_name: str, extra_options: dict | None = None, inpaint_options: dict | None = None) -> Any:
    return sampler_object(sampler_name)


def __getattr__(name: str) -> Any:
    if name == "SAMPLER_NAMES":
        return _names("SAMPLER_NAMES")
    if name in ("SCHEDULER_NAMES", "SCHEDULER_HANDLERS"):
        return _names("SCHEDULER_NAMES")
    from loom_compat import placeholders

    return placeholders.attribute(__name__, name)
