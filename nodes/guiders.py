"""SamplerCustomAdvanced and its NOISE / GUIDER nodes (ComfyUI's names, inputs and defaults):
RandomNoise, DisableNoise, BasicGuider, CFGGuider.  The work is in diffusion/guiders.py."""

from __future__ import annotations

from engine.declare import Float, Int, Socket, node
from engine.node import NodeContext

from .sampling import MAX_SEED, _progress

MODEL, CONDITIONING, LATENT = Socket("MODEL"), Socket("CONDITIONING"), Socket("LATENT")
SAMPLER, SIGMAS, NOISE, GUIDER = Socket("SAMPLER"), Socket("SIGMAS"), Socket("NOISE"), Socket("GUIDER")


@node(category="sampling/custom_sampling/noise", display_name="RandomNoise")
def RandomNoise(noise_seed: int = Int(0, min=0, max=MAX_SEED, control_after_generate=True)) -> NOISE:
    """Initial noise drawn from this seed (on the CPU, as ComfyUI: the same image on any device)."""
    from diffusion.guiders import Noise

    return Noise(int(noise_seed))


@node(category="sampling/custom_sampling/noise", display_name="DisableNoise")
def DisableNoise() -> NOISE:
    """No initial noise (the latent is sampled as it is)."""
    from diffusion.guiders import Noise

    return Noise(0, enabled=False)


@node(category="sampling/custom_sampling/guiders", display_name="BasicGuider")
def BasicGuider(model: MODEL, conditioning: CONDITIONING) -> GUIDER:
    """Denoises with one conditioning and no CFG (FLUX.1's usual guider)."""
    from diffusion.guiders import Guider

    return Guider(model, conditioning)


@node(category="sampling/custom_sampling/guiders", display_name="CFGGuider")
def CFGGuider(model: MODEL, positive: CONDITIONING, negative: CONDITIONING,
              cfg: float = Float(8.0, min=0.0, max=100.0, step=0.1, round=0.01)) -> GUIDER:
    """Classifier-free guidance between a positive and a negative conditioning."""
    from diffusion.guiders import Guider

    return Guider(model, positive, negative, float(cfg))


@node(category="sampling/custom_sampling", display_name="SamplerCustomAdvanced",
      output_names=("output", "denoised_output"))
def SamplerCustomAdvanced(ctx: NodeContext, noise: NOISE, guider: GUIDER, sampler: SAMPLER, sigmas: SIGMAS,
                          latent_image: LATENT) -> tuple[LATENT, LATENT]:
    """Samples with the guider's model and conditioning, the sampler, the sigmas and the noise;
    also returns the model's last prediction of the clean latent."""
    from diffusion.guiders import sample_advanced

    ctx.check_interrupted()
    model = getattr(guider, "model", None)
    return sample_advanced(noise, guider, sampler, sigmas, latent_image,
                           callback=_progress(ctx, model) if model is not None else None)
