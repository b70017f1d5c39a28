"""NOISE and GUIDER: ComfyUI's SamplerCustomAdvanced split of SamplerCustom's inputs.

RandomNoise / DisableNoise give a NOISE (the seed, or none); BasicGuider / CFGGuider a
GUIDER (the model with its conditioning and CFG scale).  SamplerCustomAdvanced runs the
KSampler's loop (:func:`diffusion.sampling.run_sampler`) with them, so on the same σ, seed
and conditioning it gives what SamplerCustom gives — for SD models and flow models (FLUX.1)
alike.  ComfyUI's DisableNoise still seeds the per-step noise, with 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from .errors import SamplingError


@dataclass(frozen=True)
class Noise:
    """NOISE: ``seed`` draws the initial noise; ``enabled`` False adds none (DisableNoise)."""

    seed: int
    enabled: bool = True


@dataclass(frozen=True)
class Guider:
    """GUIDER: what to denoise with.  ``negative`` None: the positive alone (BasicGuider, cfg 1)."""

    model: Any
    positive: Sequence
    negative: Sequence | None = None
    cfg: float = 1.0


def sample_advanced(noise: Noise, guider: Guider, sampler, sigmas, latent: dict,
                    callback=None) -> tuple[dict, dict]:
    """SamplerCustomAdvanced: (output LATENT, denoised_output LATENT)."""
    from .custom_sampling import Sampler, check_sigmas
    from .sampling import check_latent, run_sampler

    if not isinstance(noise, Noise):
        raise SamplingError(f"noise must come from a noise node (RandomNoise, DisableNoise), got {type(noise).__name__}")
    if not isinstance(guider, Guider):
        raise SamplingError(f"guider must come from a guider node (BasicGuider, CFGGuider), got {type(guider).__name__}")
    if not isinstance(sampler, Sampler):
        raise SamplingError(f"sampler must come from a sampler node (KSamplerSelect), got {type(sampler).__name__}")
    check_latent(guider.model, latent)
    values = check_sigmas(sigmas) if len(sigmas) else []
    negative = guider.negative if guider.negative is not None else guider.positive
    cfg = guider.cfg if guider.negative is not None else 1.0
    return run_sampler(guider.model, sampler.name, values, seed=noise.seed, add_noise=noise.enabled, cfg=cfg,
                       positive=guider.positive, negative=negative, latent=latent, callback=callback)
