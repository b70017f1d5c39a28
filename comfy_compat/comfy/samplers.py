"""ComfyUI's ``comfy.samplers``: the sampler and scheduler names packs offer in
their own combos, read from Loom's one sampler table (``diffusion.k_steps.SAMPLER_NAMES``)."""

from __future__ import annotations

from typing import Any


def _names(attr: str) -> list[str]:
    # Imported on first use, as ComfyUI's lists are read: SAMPLER_NAMES from the step rules,
    # SCHEDULER_NAMES from the σ schedules.
    from diffusion import k_steps, sigma_schedules

    return list(getattr(k_steps if attr == "SAMPLER_NAMES" else sigma_schedules, attr))


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


def _guider_base() -> type:
    from diffusion.guiders import Guider

    return Guider


def _build_cfg_guider() -> type:
    """``CFGGuider``, built on first use over Loom's GUIDER (importing it early would load the runtime)."""
    Guider = _guider_base()

    class CFGGuider(Guider):
        """ComfyUI's guider object, as Loom's GUIDER: ``CFGGuider(model)``, then
        ``set_conds(positive, negative)`` and ``set_cfg(cfg)``; SamplerCustomAdvanced runs
        it like Loom's own CFGGuider node's.  (A subclass's ``predict_noise`` is not called:
        Loom's sampler guides itself; use the model's ``sampler_cfg_function`` instead.)"""

        def __init__(self, model_patcher: Any):
            object.__setattr__(self, "model", model_patcher)
            object.__setattr__(self, "model_patcher", model_patcher)
            object.__setattr__(self, "positive", [])
            object.__setattr__(self, "negative", None)
            object.__setattr__(self, "cfg", 1.0)
            object.__setattr__(self, "model_options", getattr(model_patcher, "model_options", {}))

        def set_conds(self, positive: Any, negative: Any = None) -> None:
            object.__setattr__(self, "positive", positive)
            object.__setattr__(self, "negative", negative)

        def set_cfg(self, cfg: float) -> None:
            object.__setattr__(self, "cfg", float(cfg))

        def sample(self, noise: Any, latent_image: Any, sampler: Any, sigmas: Any, denoise_mask: Any = None,
                   callback: Any = None, disable_pbar: bool = False, seed: int | None = None) -> Any:
            from comfy.sample import sample_custom

            negative = self.negative if self.negative is not None else self.positive
            cfg = self.cfg if self.negative is not None else 1.0
            return sample_custom(self.model, noise, cfg, sampler, sigmas, self.positive, negative, latent_image,
                                 noise_mask=denoise_mask, callback=callback, seed=seed)

    return CFGGuider


_built: dict[str, type] = {}


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
    if name == "CFGGuider":
        if name not in _built:
            _built[name] = _build_cfg_guider()
        return _built[name]
    if name == "SAMPLER_NAMES":
        return _names("SAMPLER_NAMES")
    if name in ("SCHEDULER_NAMES", "SCHEDULER_HANDLERS"):
        return _names("SCHEDULER_NAMES")
    from loom_compat import placeholders

    return placeholders.attribute(__name__, name)
