"""The KSampler: ComfyUI's sampling semantics, σ for σ.

Every sampler runs k-diffusion's step rules (:mod:`diffusion.k_steps`) on ComfyUI's σ
schedule (:mod:`diffusion.sigma_schedules`), in ComfyUI's convention: LATENT samples are
raw VAE latents, taken into the model's space by ``latent_format.process_in`` (an all-zero
latent stays zero) and brought back by ``process_out``; in the model's space latents are
"x0 + σ·noise" (variance-exploding), the UNet sees ``x/√(σ²+1)`` at the training timestep
nearest σ.  The step callback and previews see the prediction in the model's space.  SamplerCustom (:mod:`diffusion.custom_sampling`) runs the same loop on given σ,
so the two agree bit for bit on the same σ.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from .errors import SamplingError
from .guidance import GuidedModel
from .inpaint import entry_concat, keep_unmasked, latent_mask, unet_extra_channels
from .k_steps import needs_uncond, noise_source, run_steps, step_rule
from .models import DiffusionModel
from .noise import prepare_noise
from .k_steps import check_sampler
from .sigma_schedules import SCHEDULER_NAMES
from .model_sampling import denoised as model_denoised, input_scale, sigma_table
from .sigma_schedules import DiscreteSigmas, as_table, initial_noise_scale, ksampler_sigmas

#: callback(step, total, x0) — called after every step; x0 is the prediction of the clean
#: latent in the model's space (what ComfyUI's latent previewers read).
StepCallback = Callable[[int, int, Any], None]


def ksampler_steps(sampler_name: str, scheduler: str, steps: int, denoise: float = 1.0,
                   start_step: int | None = None, last_step: int | None = None,
                   force_full_denoise: bool = True, table: DiscreteSigmas | None = None) -> list[float]:
    """The σ ComfyUI's KSampler steps through: its schedule for ``denoise`` on the model's σ
    ``table`` (default: the SD training σ), cut to [start_step, last_step] (KSamplerAdvanced);
    a cut before the end lands on σ 0 when ``force_full_denoise``.  Empty when there is nothing to do."""
    check_sampler(sampler_name)
    if scheduler not in SCHEDULER_NAMES:
        raise SamplingError(f"unknown scheduler {scheduler!r}; choose from {', '.join(SCHEDULER_NAMES)}")
    sigmas = ksampler_sigmas(sampler_name, scheduler, steps, denoise, table)
    if last_step is not None and last_step < len(sigmas) - 1:
        sigmas = sigmas[:max(last_step, 0) + 1]
        if force_full_denoise:
            sigmas[-1] = 0.0
    if start_step is not None:
        if start_step >= len(sigmas) - 1:
            return []
        sigmas = sigmas[max(start_step, 0):]
    return sigmas if len(sigmas) > 1 else []


def check_latent(model: DiffusionModel, latent) -> None:
    if not isinstance(latent, dict) or "samples" not in latent:
        raise SamplingError("latent_image must be a LATENT (a dict with 'samples')")
    samples = latent["samples"]
    if samples.ndim != 4:
        raise SamplingError(f"latent must be [batch, channels, height, width], got shape {list(samples.shape)}")
    if samples.shape[1] != model.latent_format.channels:
        raise SamplingError(f"latent has {samples.shape[1]} channels; this {model.family} model uses "
                            f"{model.latent_format.channels}")


def sample(model: DiffusionModel, *, seed: int, steps: int, cfg: float, sampler_name: str, scheduler: str,
           positive: Sequence, negative: Sequence, latent: dict, denoise: float = 1.0, add_noise: bool = True,
           start_step: int | None = None, last_step: int | None = None, force_full_denoise: bool = True,
           callback: StepCallback | None = None) -> dict:
    """Run one KSampler; returns a new LATENT dict."""
    check_latent(model, latent)
    if steps < 1:
        raise SamplingError("steps must be at least 1")
    sigmas = ksampler_steps(sampler_name, scheduler, steps, denoise, start_step, last_step, force_full_denoise,
                            model_sigmas(model))
    out, _ = run_sampler(model, sampler_name, sigmas, seed=seed, add_noise=add_noise, cfg=cfg,
                         positive=positive, negative=negative, latent=latent, callback=callback)
    return out


def run_sampler(model: DiffusionModel, name: str, sigmas: list[float], *, seed: int, add_noise: bool, cfg: float,
                positive: Sequence, negative: Sequence, latent: dict,
                callback: StepCallback | None = None, noise: Any = None) -> tuple[dict, dict]:
    """Step rule ``name`` over ``sigmas`` as ComfyUI's KSAMPLER does; returns (output LATENT,
    LATENT of the last clean-latent prediction).  No σ: the latent comes back unchanged."""
    import torch

    from .flux_model import is_flow

    if is_flow(model):  # FLUX.1: flow-matching transformer (diffusion.flux_sampling)
        from .flux_sampling import run_flow_sampler

        return run_flow_sampler(model, name, sigmas, seed=seed, add_noise=add_noise, cfg=cfg, positive=positive,
                                negative=negative, latent=latent, callback=callback)

    raw = latent["samples"].float().cpu()
    out = dict(latent)
    if len(sigmas) == 0:
        out["samples"] = raw
        return out, dict(out)
    # LATENT samples are raw VAE latents (ComfyUI's convention): the model works on
    # process_in of them, noise is added in the model's space, the result goes back out
    fmt = model.latent_format
    latent_image = fmt.sampler_input(raw)
    rule = step_rule(name, sigmas)
    if noise is not None:  # a custom node's own initial noise (comfy.sample.sample)
        noise = noise.float().cpu()
    else:
        noise = prepare_noise(raw, seed, latent.get("batch_index")) if add_noise else torch.zeros_like(raw)
    mask = None if latent.get("noise_mask") is None else latent_mask(latent["noise_mask"], raw.shape)
    extra = unet_extra_channels(model, latent_image, mask)
    # the seed also draws unCLIP's image-embedding noise augmentation
    guided = GuidedModel(model, positive, negative, cfg, extra, latent_shape=latent_image.shape, seed=seed,
                         keep_uncond=needs_uncond(name))
    if extra is not None:  # entries with their own inpainting image and mask (InpaintModelConditioning)
        for row in guided.rows:
            own = entry_concat(model, row.meta, latent_image, mask)
            if own is not None:
                guided.row_extra[id(row)] = own
    device = guided.device
    D = _Denoiser(model, guided, model_sigmas(model))
    if mask is not None:
        D.inpaint(mask.to(device), latent_image.to(device), noise.to(device))
    x = latent_image.to(device)
    if add_noise:  # ComfyUI's noise_scaling: √(1+σ₀²) from the top of the schedule, σ₀ below it
        x = x + noise.to(device) * initial_noise_scale(sigmas[0], D.table.sigma_max)
    # the step noise follows the seed even without add_noise (ComfyUI passes the seed on)
    step_noise = noise_source(name, x, sigmas, seed)
    with torch.inference_mode():
        x, denoised = run_steps(rule, D, x, sigmas, step_noise, callback)
    samples = fmt.process_out(x.float().cpu())
    if mask is not None and sigmas[-1] == 0:  # the unmasked part is the input, bit for bit
        samples = keep_unmasked(samples, mask, raw)
    out["samples"] = samples
    denoised_out = dict(latent)
    denoised_out["samples"] = fmt.process_out(denoised.float().cpu())
    return out, denoised_out


def model_sigmas(model: DiffusionModel) -> DiscreteSigmas:
    """The model's σ table: the training σ every supported family shares, unless
    ModelSamplingDiscrete gave the model another (zsnr, LCM's distilled 50); a flow model's own."""
    if hasattr(model, "sigma_table"):  # flow models (FLUX.1): diffusion.flux_model.FlowSigmas
        return model.sigma_table()
    return sigma_table(model.prediction_type, model.zsnr)


class _Denoiser:
    """ComfyUI's model wrapper: D(x, σ) is the guided prediction of the clean latent."""

    def _hooked(self, x, sigma: float, t: int, c_in: float, with_uncond: bool, options: dict) -> tuple:
        """CFG through a custom node's hooks (ComfyUI's cfg_function), on clean-latent
        predictions: ``sampler_cfg_function`` replaces the CFG formula and sees ``x − x0``
        for cond/uncond; each ``sampler_post_cfg_function`` then gets the result."""
        import torch

        prediction = self.model.prediction_type
        cond_out, uncond_out = self.guided.parts(x * c_in, t)
        cond = model_denoised(prediction, x, cond_out.to(x), sigma, t)
        # a skipped negative (cfg 1) reads as zero, as ComfyUI's empty batch does
        uncond = torch.zeros_like(cond) if uncond_out is None else model_denoised(prediction, x, uncond_out.to(x),
                                                                                   sigma, t)
        cfg = self.guided.cfg
        sigmas = torch.full((x.shape[0],), float(sigma), device=x.device, dtype=x.dtype)
        fn = options.get("sampler_cfg_function")
        if fn is not None:
            result = x - fn({"cond": x - cond, "uncond": x - uncond, "cond_scale": cfg, "timestep": sigmas,
                             "input": x, "sigma": sigmas, "cond_denoised": cond, "uncond_denoised": uncond,
                             "model": self.model, "model_options": options})
        else:
            result = uncond + cfg * (cond - uncond)
        for post in options.get("sampler_post_cfg_function", ()):
            result = post({"denoised": result, "cond": None, "uncond": None, "cond_scale": cfg, "model": self.model,
                           "uncond_denoised": uncond, "cond_denoised": cond, "sigma": sigmas,
                           "model_options": options, "input": x})
        return (result, uncond) if with_uncond else (result,)

    def __init__(self, model: DiffusionModel, guided: GuidedModel, sigmas):
        self.model, self.guided = model, guided
        self.table = as_table(sigmas)
        self.mask = self.original = self.noise = None

    def t(self, sigma: float) -> int:
        """The UNet's timestep for σ: the nearest training timestep in log σ, as ComfyUI's
        ``ModelSamplingDiscrete.timestep`` (an integer, not an interpolated one)."""
        return self.table.timestep(sigma)

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
        prediction, t = self.model.prediction_type, self.t(sigma)
        c_in = input_scale(prediction, sigma)
        options = self.guided.options
        if options.get("sampler_cfg_function") is not None or options.get("sampler_post_cfg_function"):
            x0s = self._hooked(x, sigma, t, c_in, with_uncond, options)
        else:
            if with_uncond:
                outs = self.guided.with_uncond(x * c_in, t)
            else:
                outs = (self.guided(x * c_in, t),)
            x0s = tuple(model_denoised(prediction, x, out, sigma, t) for out in outs)
        return x0s if self.mask is None else tuple(keep_unmasked(x0, self.mask, self.original) for x0 in x0s)
