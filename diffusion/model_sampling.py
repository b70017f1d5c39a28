"""How a MODEL turns noise levels into UNet inputs and UNet outputs into clean latents —
ComfyUI's ``model_sampling`` object, which its ModelSamplingDiscrete node swaps.

A :class:`~diffusion.models.DiffusionModel` says it with two fields: ``prediction_type``
and ``zsnr``.  From them this module gives

* the σ table every scheduler and the denoiser read (:func:`sigma_table`): the 1000
  training σ; rescaled to zero terminal SNR when ``zsnr``; for ``lcm`` only the 50 σ
  LCM was distilled on (ComfyUI's ModelSamplingDiscreteDistilled), so every scheduler
  picks its σ from those and the UNet sees timesteps 19, 39, … 999;
* the UNet's input scale (:func:`input_scale`) and the clean-latent prediction
  (:func:`denoised`), in ComfyUI's variance-exploding convention (``x = x0 + σ·noise``).

The names ComfyUI's node offers map to prediction types as :data:`NODE_SAMPLING` says.
"""

from __future__ import annotations

import math

from .errors import SamplingError
from .sigma_schedules import DiscreteSigmas, training_sigmas, training_sigmas_f64

#: What each prediction type means for the UNet output ``out`` at noise level σ:
#: epsilon (the noise), v_prediction (the velocity), x0 (the clean latent itself),
#: lcm (epsilon, then LCM's consistency boundary condition), img_to_img (the clean
#: latent, from an unscaled input).
PREDICTION_TYPES = ("epsilon", "v_prediction", "x0", "lcm", "img_to_img")

#: ComfyUI's ModelSamplingDiscrete ``sampling`` choices, in its order, and Loom's
#: prediction type for each (None: not offered for Loom's discrete SD models).
NODE_SAMPLING = {"eps": "epsilon", "v_prediction": "v_prediction", "lcm": "lcm", "x0": "x0",
                 "img_to_img": "img_to_img", "img_to_img_flow": None}

#: LCM's distillation constants (ComfyUI's LCM model sampling; the LCM paper's
#: boundary condition): σ_data and the factor the timestep is scaled by.
LCM_SIGMA_DATA = 0.5
LCM_TIMESTEP_SCALING = 10.0
#: LCM was distilled on this many of the 1000 training timesteps.
LCM_ORIGINAL_TIMESTEPS = 50

#: ComfyUI's value for the last ᾱ after the zero-terminal-SNR rescale: exactly 0 would
#: make σ infinite, so the last σ is √((1 − ᾱ)/ᾱ) for this ᾱ (≈ 4518.8) instead.
ZSNR_LAST_ALPHA_BAR = 4.8973451890853435e-08


class DistilledSigmas(DiscreteSigmas):
    """ComfyUI's ModelSamplingDiscreteDistilled: a table of ``n`` σ picked every
    ``1000 / n`` training timesteps from the top (999, 979, … 19 for LCM's 50); index ``i``
    of the table is training timestep ``i·skip + skip − 1``."""

    def __init__(self, full_sigmas, original_timesteps: int = LCM_ORIGINAL_TIMESTEPS):
        import torch

        full = torch.as_tensor(full_sigmas).float()
        total = len(full)
        self.skip = total // original_timesteps
        picked = torch.stack([full[total - 1 - i * self.skip] for i in reversed(range(original_timesteps))])
        super().__init__(picked)
        self.log_sigmas = self.sigmas.log()  # ComfyUI logs the float32 picks

    def timestep(self, sigma: float) -> int:
        return super().timestep(sigma) * self.skip + (self.skip - 1)

    def sigma(self, timesteps):
        import torch

        t = torch.as_tensor(timesteps, dtype=torch.float32)
        return super().sigma((t - (self.skip - 1)) / self.skip)


def rescale_zero_terminal_snr(sigmas):
    """σ of a β schedule rescaled so the last timestep has zero SNR (Lin et al. 2023,
    "Common Diffusion Noise Schedules and Sample Steps are Flawed", Algorithm 1): √ᾱ is
    shifted so its last value is 0 and scaled so its first is unchanged.  The last ᾱ is
    then set to :data:`ZSNR_LAST_ALPHA_BAR`, as ComfyUI does, to keep σ finite."""
    sqrt_abar = (1 / (sigmas * sigmas + 1)).sqrt()
    first, last = sqrt_abar[0].clone(), sqrt_abar[-1].clone()
    sqrt_abar = (sqrt_abar - last) * (first / (first - last))
    abar = sqrt_abar ** 2
    abar[-1] = ZSNR_LAST_ALPHA_BAR
    return ((1 - abar) / abar) ** 0.5


def sigma_table(prediction_type: str, zsnr: bool = False) -> DiscreteSigmas:
    """The σ table a model with this prediction type and zsnr setting samples on."""
    if not zsnr and prediction_type != "lcm":
        return DiscreteSigmas(training_sigmas())  # the default, bit for bit as before
    sigmas = training_sigmas_f64()
    if zsnr:
        sigmas = rescale_zero_terminal_snr(sigmas)
    if prediction_type == "lcm":
        return DistilledSigmas(sigmas)
    return DiscreteSigmas(sigmas)


def input_scale(prediction_type: str, sigma: float) -> float:
    """The factor the latent is multiplied by before the UNet (ComfyUI's calculate_input):
    1/√(σ²+1), except img_to_img models, which take the latent as it is."""
    return 1.0 if prediction_type == "img_to_img" else 1 / math.sqrt(sigma ** 2 + 1)


def denoised(prediction_type: str, x, out, sigma: float, timestep: int):
    """The clean latent predicted from the noisy latent ``x`` at ``sigma`` and the UNet's
    output ``out`` (ComfyUI's calculate_denoised).  ``timestep`` is the UNet's timestep
    (LCM's boundary condition depends on it)."""
    if prediction_type in ("x0", "img_to_img"):
        return out
    if prediction_type == "lcm":
        return lcm_denoised(x, out, sigma, timestep)
    # epsilon / v in the UNet's (variance-preserving) input space, as Loom has always computed them
    alpha = 1 / (sigma ** 2 + 1)
    a, s = math.sqrt(alpha), math.sqrt(1 - alpha)
    x_vp = x * (1 / math.sqrt(sigma ** 2 + 1))
    if prediction_type == "v_prediction":
        return a * x_vp - s * out
    return (x_vp - s * out) / a


def lcm_denoised(x, eps, sigma: float, timestep: int):
    """LCM's consistency-model parameterisation: the epsilon prediction's clean latent
    blended with the input by c_skip/c_out of the scaled timestep, so that at timestep 0
    the prediction is the input itself."""
    x0 = x - eps * sigma
    scaled = timestep * LCM_TIMESTEP_SCALING
    c_skip = LCM_SIGMA_DATA ** 2 / (scaled ** 2 + LCM_SIGMA_DATA ** 2)
    c_out = scaled / (scaled ** 2 + LCM_SIGMA_DATA ** 2) ** 0.5
    return c_out * x0 + c_skip * x


def with_sampling(model, sampling: str, zsnr: bool = False):
    """ModelSamplingDiscrete: a clone of ``model`` that predicts as ``sampling`` (ComfyUI's
    name) on the matching σ table; the input model is left as it was."""
    if sampling not in NODE_SAMPLING:
        raise SamplingError(f"unknown sampling {sampling!r}; choose from {', '.join(NODE_SAMPLING)}")
    if hasattr(model, "sigma_table"):  # a flow model (diffusion.flux_model.FlowModel)
        raise SamplingError("ModelSamplingDiscrete is for SD1/SD2/SDXL models; this FLUX.1 model samples on "
                            "flow-matching σ — use ModelSamplingFlux or ModelSamplingSD3")
    prediction = NODE_SAMPLING[sampling]
    if prediction is None:
        raise SamplingError(f"sampling {sampling!r} is for flow-matching models; Loom's SD1/SD2/SDXL models "
                            f"sample on a discrete σ table — choose one of "
                            f"{', '.join(k for k, v in NODE_SAMPLING.items() if v)}")
    return model.clone(prediction_type=prediction, zsnr=bool(zsnr))
