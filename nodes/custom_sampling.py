"""ComfyUI's custom-sampling nodes: KSamplerSelect (→ SAMPLER), BasicScheduler and
SDTurboScheduler (→ SIGMAS) and SamplerCustom, which samples on any SIGMAS.

Names, inputs, defaults and outputs are ComfyUI's, so its SD-Turbo and custom-sampling
workflows load as they are; the work is in :mod:`diffusion.custom_sampling`.
"""

from __future__ import annotations

from engine.declare import Boolean, Combo, Float, Input, Int, Socket, node
from engine.node import NodeContext

from diffusion.k_steps import SAMPLER_NAMES  # torch-free: the names of the step rules

from .sampling import MAX_SEED, SCHEDULER_NAMES, _progress

MODEL, CONDITIONING, LATENT = Socket("MODEL"), Socket("CONDITIONING"), Socket("LATENT")
SAMPLER, SIGMAS = Socket("SAMPLER"), Socket("SIGMAS")


@node(category="sampling/samplers", display_name="KSamplerSelect")
def KSamplerSelect(sampler_name: str = Combo(SAMPLER_NAMES, default="euler")) -> SAMPLER:
    """Picks the sampler (step rule) SamplerCustom runs."""
    from diffusion.custom_sampling import Sampler

    return Sampler(sampler_name)


@node(category="sampling/schedulers", display_name="BasicScheduler")
def BasicScheduler(model: MODEL,
                   scheduler: str = Combo(SCHEDULER_NAMES, default="normal"),
                   steps: int = Int(20, min=1, max=10000),
                   denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)) -> SIGMAS:
    """The noise levels (sigmas) the KSampler would step through for this scheduler."""
    from diffusion.custom_sampling import scheduler_sigmas

    return scheduler_sigmas(model, scheduler, steps, denoise)


@node(category="sampling/schedulers", display_name="SDTurboScheduler")
def SDTurboScheduler(model: MODEL,
                     steps: int = Int(1, min=1, max=10),
                     denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)) -> SIGMAS:
    """Sigmas at the timesteps SD-Turbo was distilled on (999, 899, ...), for 1-10 steps."""
    from diffusion.custom_sampling import turbo_sigmas

    return turbo_sigmas(model, steps, denoise)


@node(category="sampling/custom_sampling", display_name="SamplerCustom",
      output_names=("output", "denoised_output"))
def SamplerCustom(ctx: NodeContext, model: MODEL,
                  add_noise: bool = Boolean(True),
                  noise_seed: int = Int(0, min=0, max=MAX_SEED, control_after_generate=True),
                  cfg: float = Float(8.0, min=0.0, max=100.0, step=0.1, round=0.01),
                  positive: CONDITIONING = Input(), negative: CONDITIONING = Input(),
                  sampler: SAMPLER = Input(), sigmas: SIGMAS = Input(),
                  latent_image: LATENT = Input()) -> tuple[LATENT, LATENT]:
    """Samples with the given sampler over the given sigmas; also returns the model's
    last prediction of the clean latent (denoised_output)."""
    from diffusion.custom_sampling import sample_custom

    ctx.check_interrupted()
    return sample_custom(model, sampler, sigmas, seed=noise_seed, add_noise=add_noise, cfg=cfg,
                         positive=positive, negative=negative, latent=latent_image,
                         callback=_progress(ctx, model))
