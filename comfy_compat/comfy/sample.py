"""ComfyUI's ``comfy.sample``: sampling helpers custom sampler nodes are built on,
running Loom's sampler (:func:`diffusion.sampling.run_sampler`).

``latent_image`` and the result are LATENT samples as Loom's nodes pass them (raw
VAE latents, ComfyUI's convention); the model's ``model_options`` hooks
(``sampler_cfg_function``...) are honoured by the sampler itself.
"""

from __future__ import annotations

from typing import Any, Callable


def prepare_noise(latent_image: Any, seed: int, noise_inds: Any = None) -> Any:
    """The seed's initial noise for ``latent_image`` (drawn on the CPU, as ComfyUI's)."""
    from diffusion.noise import prepare_noise as draw

    return draw(latent_image, seed, noise_inds)


def fix_empty_latent_channels(model: Any, latent_image: Any) -> Any:
    """An all-zero latent with another channel count becomes zeros with the model's."""
    import torch

    channels = model.latent_format.channels
    if latent_image.shape[1] != channels and torch.count_nonzero(latent_image) == 0:
        shape = list(latent_image.shape)
        shape[1] = channels
        return torch.zeros(shape, dtype=latent_image.dtype, device=latent_image.device)
    return latent_image


def _callback(callback: Callable[..., Any] | None, steps: int) -> Callable[[int, int, Any], None] | None:
    """Loom's step callback → ComfyUI's ``callback(step, x0, x, total_steps)`` (x is not kept: None)."""
    if callback is None:
        return None
    return lambda step, total, x0: callback(step, x0, None, total)


def _run(model: Any, noise: Any, positive: Any, negative: Any, cfg: float, latent_image: Any, sampler_name: str,
         sigmas: list[float], noise_mask: Any, callback: Any, seed: int | None, steps: int) -> Any:
    import torch

    latent: dict[str, Any] = {"samples": latent_image}
    if noise_mask is not None:
        latent["noise_mask"] = noise_mask
    add_noise = noise is not None and bool(torch.count_nonzero(noise))
    from diffusion.sampling import run_sampler

    out, _ = run_sampler(model, sampler_name, sigmas, seed=int(seed or 0), add_noise=add_noise, cfg=cfg,
                         positive=positive, negative=negative, latent=latent, callback=_callback(callback, steps),
                         noise=noise if add_noise else None)
    return out["samples"]


def sample(model: Any, noise: Any, steps: int, cfg: float, sampler_name: str, scheduler: str, positive: Any,
           negative: Any, latent_image: Any, denoise: float = 1.0, disable_noise: bool = False,
           start_step: int | None = None, last_step: int | None = None, force_full_denoise: bool = False,
           noise_mask: Any = None, sigmas: Any = None, callback: Any = None, disable_pbar: bool = False,
           seed: int | None = None) -> Any:
    """ComfyUI's KSampler core: the sampled latent samples."""
    from diffusion.sampling import ksampler_steps, model_sigmas

    if sigmas is None:
        schedule = ksampler_steps(sampler_name, scheduler, steps, denoise, start_step, last_step,
                                  force_full_denoise, model_sigmas(model))
    else:
        schedule = [float(s) for s in sigmas]
    return _run(model, None if disable_noise else noise, positive, negative, cfg, latent_image, sampler_name,
                schedule, noise_mask, callback, seed, steps)


def sample_custom(model: Any, noise: Any, cfg: float, sampler: Any, sigmas: Any, positive: Any, negative: Any,
                  latent_image: Any, noise_mask: Any = None, callback: Any = None, disable_pbar: bool = False,
                  seed: int | None = None) -> Any:
    """SamplerCustom's core: ``sampler`` (KSamplerSelect's SAMPLER) over ``sigmas``."""
    from diffusion.custom_sampling import Sampler, check_sigmas

    name = sampler.name if isinstance(sampler, Sampler) else str(getattr(sampler, "name", sampler))
    values = check_sigmas(sigmas) if len(sigmas) else []
    return _run(model, noise, positive, negative, cfg, latent_image, name, values, noise_mask, callback, seed,
                max(len(values) - 1, 0))


def __getattr__(name: str) -> Any:
    from loom_compat import placeholders

    return placeholders.attribute(__name__, name)
