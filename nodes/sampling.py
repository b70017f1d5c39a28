"""KSampler and KSamplerAdvanced: thin adapters over ``diffusion.sampling.sample``."""

from __future__ import annotations

from diffusion.k_steps import SAMPLER_NAMES  # torch-free name tables
from diffusion.sigma_schedules import SCHEDULER_NAMES
from engine.declare import Combo, Float, Input, Int, Socket, node
from engine.node import NodeContext, Preview

MODEL, CONDITIONING, LATENT = Socket("MODEL"), Socket("CONDITIONING"), Socket("LATENT")

MAX_SEED = 0xFFFFFFFFFFFFFFFF


def _progress(ctx: NodeContext, model):
    """The per-step callback: progress (raises on interrupt) plus an optional preview."""
    from .previews import sampling_previewer

    previewer = sampling_previewer(ctx, model)  # x0 below is in the model's space, as it expects

    def report(step: int, total: int, x0) -> None:
        preview = None
        if previewer is not None and x0 is not None:
            preview = Preview("JPEG", previewer(x0))
        ctx.progress(step, total, preview)

    return report


def _sample(ctx: NodeContext, model, **kwargs):
    from diffusion.sampling import sample

    ctx.check_interrupted()
    return sample(model, callback=_progress(ctx, model), **kwargs)


@node(category="sampling", display_name="KSampler",
      description="Uses the provided model, positive and negative conditioning to denoise the latent image.")
def KSampler(ctx: NodeContext, model: MODEL,
             seed: int = Int(0, min=0, max=MAX_SEED, control_after_generate=True,
                             tooltip="The random seed used for creating the noise."),
             steps: int = Int(20, min=1, max=10000, tooltip="The number of steps used in the denoising process."),
             cfg: float = Float(8.0, min=0.0, max=100.0, step=0.1, round=0.01),
             sampler_name: str = Combo(SAMPLER_NAMES, default="euler"),
             scheduler: str = Combo(SCHEDULER_NAMES, default="normal"),
             positive: CONDITIONING = Input(), negative: CONDITIONING = Input(),
             latent_image: LATENT = Input(),
             denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)) -> LATENT:
    return _sample(ctx, model, seed=seed, steps=steps, cfg=cfg, sampler_name=sampler_name, scheduler=scheduler,
                   positive=positive, negative=negative, latent=latent_image, denoise=denoise)


@node(category="sampling", display_name="KSampler (Advanced)")
def KSamplerAdvanced(ctx: NodeContext, model: MODEL,
                     add_noise: str = Combo(("enable", "disable"), default="enable"),
                     noise_seed: int = Int(0, min=0, max=MAX_SEED, control_after_generate=True),
                     steps: int = Int(20, min=1, max=10000),
                     cfg: float = Float(8.0, min=0.0, max=100.0, step=0.1, round=0.01),
                     sampler_name: str = Combo(SAMPLER_NAMES, default="euler"),
                     scheduler: str = Combo(SCHEDULER_NAMES, default="normal"),
                     positive: CONDITIONING = Input(), negative: CONDITIONING = Input(),
                     latent_image: LATENT = Input(),
                     start_at_step: int = Int(0, min=0, max=10000),
                     end_at_step: int = Int(10000, min=0, max=10000),
                     return_with_leftover_noise: str = Combo(("disable", "enable"), default="disable")) -> LATENT:
    """Samples a range of steps; can leave noise in for a later sampler (refiner chains)."""
    return _sample(ctx, model, seed=noise_seed, steps=steps, cfg=cfg, sampler_name=sampler_name,
                   scheduler=scheduler, positive=positive, negative=negative, latent=latent_image,
                   add_noise=add_noise == "enable", start_step=start_at_step, last_step=end_at_step,
                   force_full_denoise=return_with_leftover_noise != "enable")
