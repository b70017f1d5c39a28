"""MODEL for flow-matching transformers (FLUX.1): the handle, its σ table, and the loader.

ComfyUI samples a flow model ("CONST" prediction) on one of two σ tables, and Loom keeps
the same two (:class:`FlowSampling`):

* ``flux`` — ComfyUI's ModelSamplingFlux: σ(t) = e^shift / (e^shift + 1/t − 1) at 10000
  t = 1/10000 … 1, and the transformer's timestep is σ itself (FLUX.1 dev and Fill, shift
  1.15 by default; the ModelSamplingFlux node sets shift from the image size);
* ``discrete_flow`` — ModelSamplingDiscreteFlow: σ(t) = shift·t / (1 + (shift − 1)·t) at
  1000 t = 1/1000 … 1, the timestep σ·multiplier (FLUX.1 schnell: shift 1, multiplier 1;
  ModelSamplingSD3 sets shift with multiplier 1000).

Every scheduler (``simple``, ``normal``, ``beta``, ``karras`` …) reads these tables through
the same interface as the SD σ table (:class:`~diffusion.sigma_schedules.DiscreteSigmas`),
so the KSampler and BasicScheduler give ComfyUI's σ for flow models too.  The clean-latent
prediction is ``x − σ·v`` and noise enters as ``σ·noise + (1 − σ)·latent``
(:mod:`diffusion.flux_sampling`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ModelLoadError
from .latent_formats import FLUX
from .models import DiffusionModel
from .sigma_schedules import DiscreteSigmas


@dataclass(frozen=True)
class FlowSampling:
    """Which flow σ table a model samples on (ComfyUI's model_sampling object for CONST models)."""

    kind: str = "flux"          # "flux" | "discrete_flow"
    shift: float = 1.15
    multiplier: float = 1.0

    def table(self) -> "FlowSigmas":
        return _table(self.kind, float(self.shift), float(self.multiplier))


class FlowSigmas(DiscreteSigmas):
    """σ ↔ timestep for a flow model, in float32 as ComfyUI computes them."""

    def __init__(self, sampling: FlowSampling):
        import torch

        self.sampling = sampling
        steps = 10000 if sampling.kind == "flux" else 1000
        t = torch.arange(1, steps + 1, 1) / steps
        if sampling.kind == "discrete_flow":
            t = t * sampling.multiplier
        super().__init__(self.sigma(t))

    def _shifted(self, t):
        """σ at normalised time t ∈ (0, 1], float32."""
        import torch

        s = self.sampling
        t = torch.as_tensor(t, dtype=torch.float32)
        if s.kind == "flux":
            e = math.exp(s.shift)
            return e / (e + (1 / t - 1))
        if s.shift == 1.0:
            return t
        return s.shift * t / (1 + (s.shift - 1) * t)

    def sigma(self, timesteps):
        import torch

        t = torch.as_tensor(timesteps, dtype=torch.float32)
        if self.sampling.kind == "discrete_flow":
            t = t / self.sampling.multiplier
        return self._shifted(t)

    def timestep(self, sigma: float) -> float:  # type: ignore[override]
        """The transformer's timestep for σ (σ itself for Flux; σ·multiplier for discrete flow)."""
        return float(sigma) * (self.sampling.multiplier if self.sampling.kind == "discrete_flow" else 1.0)

    def percent_to_sigma(self, percent: float) -> float:
        """ComfyUI's percent_to_sigma for flow models (start/end percent of a conditioning)."""
        if percent <= 0.0:
            return 1.0
        if percent >= 1.0:
            return 0.0
        return float(self._shifted(1.0 - percent))


@functools.lru_cache(maxsize=16)
def _table(kind: str, shift: float, multiplier: float) -> FlowSigmas:
    return FlowSigmas(FlowSampling(kind, shift, multiplier))


#: ComfyUI's defaults per variant (supported_models.Flux / FluxSchnell / FluxInpaint).
DEFAULT_SAMPLING = {
    "dev": FlowSampling("flux", 1.15),
    "fill": FlowSampling("flux", 1.15),
    "control": FlowSampling("flux", 1.15),
    "schnell": FlowSampling("discrete_flow", 1.0, 1.0),
}


def flux_shift(max_shift: float, base_shift: float, width: int, height: int) -> float:
    """ModelSamplingFlux's shift: linear in the number of 2×2 latent patches, base_shift at
    256 patches, max_shift at 4096 (a 1024² image)."""
    slope = (max_shift - base_shift) / (4096 - 256)
    return (width * height / (8 * 8 * 2 * 2)) * slope + (base_shift - slope * 256)


@dataclass(frozen=True)
class FlowModel(DiffusionModel):
    """MODEL for a flow-matching transformer.  ``unet`` holds the diffusers transformer (the
    name every MODEL consumer knows); ``prediction_type`` is ``"flow"``."""

    sampling: FlowSampling = FlowSampling()
    variant: str = "dev"
    guidance_embed: bool = True
    compute_dtype: Any = None

    @property
    def in_channels(self) -> int:
        return self.latent_format.channels

    def sigma_table(self) -> FlowSigmas:
        return self.sampling.table()


def is_flow(model: Any) -> bool:
    return isinstance(model, FlowModel)


# -- loading --------------------------------------------------------------------------------------

def build_flux_transformer(path: Path, weight_dtype: str, compute_dtype, loader: str = "UNETLoader"):
    """(diffusers FluxTransformer2DModel, FluxArchitecture) from a BFL/ComfyUI/diffusers single file,
    Linear weights in the storage dtype ``weight_dtype`` asks for, the rest in ``compute_dtype``."""
    from diffusers import FluxTransformer2DModel

    from .flux_files import bfl_to_diffusers, require_flux
    from .flux_weights import build_stored
    from .loading import WeightSource

    source = WeightSource(path)
    arch = require_flux(source.shapes(), path.name, loader)
    state = source.read([k for k in source.shapes() if k.startswith(arch.prefix)])  # not an all-in-one file's rest
    model = build_stored(lambda: FluxTransformer2DModel.from_config(arch.config), bfl_to_diffusers(state, arch),
                         weight_dtype, compute_dtype, f"{path.name}: Flux transformer")
    return model, arch


def load_flux_model(manager, path: str | Path, weight_dtype: str = "default") -> FlowModel:
    """UNETLoader: a FLUX.1 transformer file as a MODEL, loaded once per (file, weight_dtype)."""
    path = Path(path)

    def load(p: Path) -> FlowModel:
        module, arch = build_flux_transformer(p, weight_dtype, manager.unet_dtype)
        return FlowModel(module, "flux", "flow", FLUX, manager, source=p.name,
                         sampling=DEFAULT_SAMPLING[arch.variant], variant=arch.variant,
                         guidance_embed=arch.guidance_embed, compute_dtype=manager.unet_dtype)

    return manager.load_file(path, f"diffusion_model:{weight_dtype}", load, modules=lambda m: (m.unet,),
                             component="unet")


def check_model_file(path: Path) -> None:
    if not path.is_file():
        raise ModelLoadError(f"model file not found: {path}")
